// Redis + SQLite as the store under test (see test_stores.h): the lock,
// window and queue stores on the test Redis server (redis_test_env.h) under
// a key prefix of their own, the repo on a fresh SQLite file in its own
// temporary directory, removed with the set.

#include <filesystem>
#include <string>

#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"
#include "redis_test_env.h"
#include "test_stores.h"

namespace converge::testing {
namespace {

struct TempDir {
  std::filesystem::path path;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  absl::StatusOr<redis::RedisOptions> options = TestRedisOptions();
  if (!options.ok()) return options.status();
  options->clock = clock;
  absl::StatusOr<redis::RedisStores> made = redis::OpenRedisStores(*options);
  if (!made.ok()) return made.status();

  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-sqlite");
  if (!dir.ok()) return dir.status();
  auto owner = std::make_shared<TempDir>();
  owner->path = *dir;
  sqlite::SqliteOptions sql;
  sql.path = (owner->path / "converge.db").string();
  sql.clock = clock;
  // The file does not outlive the test: no fsync.
  sql.synchronous = sqlite::Synchronous::kOff;
  absl::StatusOr<sqlite::SqliteStores> repo = sqlite::OpenSqliteStores(sql);
  if (!repo.ok()) return repo.status();

  TestStores stores;
  stores.owner = owner;
  stores.lock = std::move(made->lock);
  stores.queue = std::move(made->queue);
  stores.window = std::move(made->window);
  stores.repo = std::move(repo->repo);
  return stores;
}

std::string_view TestStoreName() { return "redis"; }

}  // namespace converge::testing
