// MySQL alone as the store under test (see test_stores.h): every store on
// a fresh database of the test server (mysql_test_env.h), dropped with the
// set.

#include "mysql_test_env.h"
#include "test_stores.h"

namespace converge::testing {

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  return MakeMysqlTestStores(clock);
}

std::string_view TestStoreName() { return "mysql"; }

}  // namespace converge::testing
