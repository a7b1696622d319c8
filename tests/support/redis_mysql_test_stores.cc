// Redis + MySQL as the store under test (see test_stores.h), the
// recommended split: the lock, window and queue stores on the test Redis
// server (redis_test_env.h) under a key prefix of their own, the repo on a
// fresh database of the test MySQL server (mysql_test_env.h).

#include "mysql_test_env.h"
#include "redis_test_env.h"
#include "test_stores.h"

namespace converge::testing {

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  absl::StatusOr<redis::RedisOptions> ro = TestRedisOptions();
  if (!ro.ok()) return ro.status();
  ro->clock = clock;
  absl::StatusOr<redis::RedisStores> made = redis::OpenRedisStores(*ro);
  if (!made.ok()) return made.status();
  absl::StatusOr<TestStores> sql = MakeMysqlTestStores(clock);
  if (!sql.ok()) return sql.status();
  sql->lock = std::move(made->lock);
  sql->queue = std::move(made->queue);
  sql->window = std::move(made->window);
  return sql;
}

std::string_view TestStoreName() { return "redis_mysql"; }

}  // namespace converge::testing
