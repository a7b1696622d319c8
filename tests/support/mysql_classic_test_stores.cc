// MySQL alone with MysqlOptions::one_transaction off as the store under
// test (see test_stores.h): a Submit's window write, lease and release are
// transactions of their own, as they are in a batch of several.

#include "mysql_test_env.h"
#include "test_stores.h"

namespace converge::testing {

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  return MakeMysqlTestStores(clock, /*one_transaction=*/false);
}

std::string_view TestStoreName() { return "mysql_classic"; }

}  // namespace converge::testing
