// A worker of the Redis fault test (fault_test.cc,
// tests/support/fault_drain.h): a Processor on Redis + SQLite.
//
//   converge_redis_fault_worker PORT KEY_PREFIX SQLITE_PATH OUT_FILE

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"
#include "support/fault_drain.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s PORT KEY_PREFIX SQLITE_PATH OUT_FILE\n",
                 argv[0]);
    return 2;
  }
  converge::fault::PrepareFaultWorker();
  converge::redis::RedisOptions ro;
  ro.port = std::atoi(argv[1]);
  ro.key_prefix = argv[2];
  ro.connect_timeout = absl::Milliseconds(500);
  ro.command_timeout = absl::Seconds(2);
  ro.pool_size = 4;
  auto stores = converge::redis::OpenRedisStores(ro);
  converge::sqlite::SqliteOptions so;
  so.path = argv[3];
  so.synchronous = converge::sqlite::Synchronous::kNormal;
  so.check_on_open = false;
  auto sql = converge::sqlite::OpenSqliteStores(so);
  if (!stores.ok() || !sql.ok()) {
    std::fprintf(
        stderr, "worker: %s\n",
        (stores.ok() ? sql.status() : stores.status()).ToString().c_str());
    return 1;
  }
  stores->repo = std::move(sql->repo);
  return converge::fault::RunFaultWorker(stores->view(), argv[4]);
}
