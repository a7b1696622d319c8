// MySQL alone with MysqlOptions::one_transaction on as the store under
// test (see test_stores.h): a Submit's window write, lease, task, decision
// and release are one transaction.

#include "mysql_test_env.h"
#include "test_stores.h"

namespace converge::testing {

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  return MakeMysqlTestStores(clock, /*one_transaction=*/true);
}

std::string_view TestStoreName() { return "mysql_one_transaction"; }

}  // namespace converge::testing
