// The test MySQL server (see mysql_test_env.h).

#include "mysql_test_env.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "mysql_server.h"
#include "temp_dir.h"

namespace converge::testing {
namespace {

std::mutex server_mu;
TestMysqlServer* server = nullptr;  // leaked on purpose: stopped by atexit

void StopOwned() {
  if (server != nullptr && server->pid > 0) {
    (void)StopMysqlServer(server->pid);
    server->pid = 0;
    std::error_code ec;
    std::filesystem::remove_all(server->dir, ec);
  }
}

}  // namespace

const TestMysqlServer& TestMysql() {
  std::lock_guard<std::mutex> lock(server_mu);
  if (server != nullptr) return *server;
  server = new TestMysqlServer;
  if (const char* file = getenv("CONVERGE_TEST_MYSQL_SERVER_FILE");
      file != nullptr && *file != '\0') {
    std::ifstream in(file);
    if (!(in >> server->port >> server->socket)) {
      std::fprintf(stderr,
                   "mysql tests: %s is missing or unreadable (did the CTest "
                   "fixture mysql.server.start run?)\n",
                   file);
      std::exit(1);
    }
    return *server;
  }
  if (FindMariadbd().empty()) {
    std::fprintf(stderr,
                 "mysql tests: no server configured and no mariadbd "
                 "installed: skipped\n");
    std::exit(77);
  }
  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-mysql");
  if (!dir.ok()) {
    std::fprintf(stderr, "mysql tests: %s\n", dir.status().ToString().c_str());
    std::exit(1);
  }
  absl::StatusOr<MysqlServerInfo> info =
      StartMysqlServer(*dir, /*die_with_parent=*/true);
  if (!info.ok()) {
    std::fprintf(stderr, "mysql tests: %s\n", info.status().ToString().c_str());
    std::exit(1);
  }
  server->port = info->port;
  server->socket = info->socket;
  server->pid = info->pid;
  server->dir = *dir;
  std::atexit(StopOwned);
  return *server;
}

absl::Status MysqlAdmin(const std::string& database, const std::string& sql) {
  return MysqlExec(TestMysql().socket, database, sql);
}

absl::StatusOr<TestDatabase> MakeTestDatabase() {
  static std::atomic<int64_t> next{0};
  static const int64_t start = absl::ToUnixMicros(absl::Now()) % 1000000000;
  const std::string name =
      absl::StrCat("ct_", getpid(), "_", start, "_", ++next);
  if (auto st = MysqlAdmin("", "CREATE DATABASE " + name); !st.ok()) {
    return st;
  }
  struct Dropper {
    std::string name;
    ~Dropper() { (void)MysqlAdmin("", "DROP DATABASE IF EXISTS " + name); }
  };
  TestDatabase db;
  auto dropper = std::make_shared<Dropper>();
  dropper->name = name;
  db.owner = dropper;
  const TestMysqlServer& s = TestMysql();
  db.options.unix_socket = s.socket;
  db.options.port = s.port;
  db.options.user = kTestMysqlUser;
  db.options.password = kTestMysqlPassword;
  db.options.database = name;
  return db;
}

absl::StatusOr<TestStores> MakeMysqlTestStores(const Clock* clock,
                                               bool one_transaction) {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  if (!db.ok()) return db.status();
  db->options.clock = clock;
  db->options.one_transaction = one_transaction;
  absl::StatusOr<mysql::MysqlStores> made = mysql::OpenMysqlStores(db->options);
  if (!made.ok()) return made.status();
  TestStores stores;
  stores.owner = db->owner;
  stores.lock = std::move(made->lock);
  stores.queue = std::move(made->queue);
  stores.repo = std::move(made->repo);
  stores.window = std::move(made->window);
  return stores;
}

// What MySQL cannot do (see TestCapabilities): utf8mb4 text columns,
// AUTO_INCREMENT, DATETIME(6), lock, window and queue writes outside the
// repo's batch. Overrides the conformance suite's default (a weak
// definition) in every executable on the MySQL repo.
TestCapabilities TestStoreCapabilities() {
  TestCapabilities c;
  c.any_bytes_in_text = false;
  c.rollback_returns_ids = false;
  c.nanosecond_instance_times = false;
  c.hot_key_iterations = 250;
  c.batch_takes_other_stores = false;
  return c;
}

}  // namespace converge::testing
