// The capabilities of a store under test that does not say otherwise (see
// TestCapabilities in tests/support/test_stores.h): all of them. Weak, so
// that a harness that excuses its store defines its own.

#include "support/test_stores.h"

namespace converge::testing {

__attribute__((weak)) TestCapabilities TestStoreCapabilities() { return {}; }

}  // namespace converge::testing
