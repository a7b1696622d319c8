// The fault test of the Redis store (tests/support/fault_drain.h): 4 worker
// processes (converge_redis_fault_worker) drain 20,000 actions from the
// Redis queue, deciding them on Redis + one SQLite file, while the Redis
// server is restarted (SIGTERM, then started again on the same data and
// port).

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"
#include "private_server.h"
#include "support/fault_drain.h"

namespace converge::testing {
namespace {

TEST_CASE(
    "fault: 4 workers drain 20,000 actions while the server restarts, every "
    "action has exactly one decision and no task is lost",
    "[redis][fault]") {
  PrivateServer server;
  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-redis-fault");
  REQUIRE(dir.ok());
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{*dir};
  const std::string db = *dir + "/converge.db";
  const std::string prefix = "fault.";

  redis::RedisOptions ro = server.Options();
  ro.key_prefix = prefix;
  absl::StatusOr<redis::RedisStores> stores = redis::OpenRedisStores(ro);
  REQUIRE(stores.ok());
  sqlite::SqliteOptions so;
  so.path = db;
  so.synchronous = sqlite::Synchronous::kNormal;
  absl::StatusOr<sqlite::SqliteStores> sql = sqlite::OpenSqliteStores(so);
  REQUIRE(sql.ok());
  stores->repo = std::move(sql->repo);

  fault::FaultTestSetup setup;
  setup.stores = stores->view();
  setup.dir = *dir;
  setup.start_worker = [&](int, const std::string& out) -> pid_t {
    const std::string port = std::to_string(server.info.port);
    pid_t pid = fork();
    if (pid == 0) {
      execl(CONVERGE_FAULT_WORKER, CONVERGE_FAULT_WORKER, port.c_str(),
            prefix.c_str(), db.c_str(), out.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  };
  setup.stop_server = [&] { server.Stop(); };    // SIGTERM: saves its AOF
  setup.start_server = [&] { server.Start(); };  // same port, same data
  fault::RunFaultTest(setup);
}

}  // namespace
}  // namespace converge::testing
