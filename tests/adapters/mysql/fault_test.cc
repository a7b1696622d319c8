// The fault test of the MySQL store (tests/support/fault_drain.h): 4 worker
// processes (converge_mysql_fault_worker) drain 20,000 actions from the
// MySQL queue, deciding them on MySQL alone, while the server is restarted
// (SIGTERM, a clean shutdown, then started again on the same data and
// port). The server is the test's own (a data folder of its own), so that
// the other tests' server is never stopped.

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "converge/mysql/mysql_store.h"
#include "support/fault_drain.h"
#include "support/mysql_server.h"
#include "support/temp_dir.h"

namespace converge::testing {
namespace {

TEST_CASE(
    "fault: 4 workers drain 20,000 actions while the server restarts, every "
    "action has exactly one decision and no task is lost",
    "[mysql][fault]") {
  // With MysqlOptions::one_transaction off (the default) and on.
  const bool one = GENERATE(false, true);
  INFO("one_transaction " << one);
  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-mysql-fault");
  REQUIRE(dir.ok());
  struct Server {
    MysqlServerInfo info;
    std::string dir;
    ~Server() {
      if (info.pid > 0) (void)StopMysqlServer(info.pid);
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } server;
  server.dir = *dir;
  absl::StatusOr<MysqlServerInfo> started =
      StartMysqlServer(*dir + "/server", /*die_with_parent=*/true);
  INFO(started.status().ToString());
  REQUIRE(started.ok());
  server.info = *started;

  mysql::MysqlOptions o;
  o.unix_socket = server.info.socket;
  o.user = kTestMysqlUser;
  o.password = kTestMysqlPassword;
  o.database = "converge_fault";
  REQUIRE(
      MysqlExec(server.info.socket, "", "CREATE DATABASE " + o.database).ok());
  absl::StatusOr<mysql::MysqlStores> stores = mysql::OpenMysqlStores(o);
  INFO(stores.status().ToString());
  REQUIRE(stores.ok());

  fault::FaultTestSetup setup;
  setup.stores = stores->view();
  setup.dir = *dir;
  setup.start_worker = [&](int, const std::string& out) -> pid_t {
    pid_t pid = fork();
    if (pid == 0) {
      execl(CONVERGE_FAULT_WORKER, CONVERGE_FAULT_WORKER, o.unix_socket.c_str(),
            o.user.c_str(), o.password.c_str(), o.database.c_str(), out.c_str(),
            one ? "one_transaction" : static_cast<char*>(nullptr),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  };
  setup.stop_server = [&] {
    REQUIRE(StopMysqlServer(server.info.pid).ok());
    server.info.pid = 0;
  };
  setup.start_server = [&] {
    absl::StatusOr<MysqlServerInfo> again = StartMysqlServer(
        *dir + "/server", /*die_with_parent=*/true, server.info.port);
    INFO(again.status().ToString());
    REQUIRE(again.ok());
    server.info = *again;
  };
  fault::RunFaultTest(setup);
}

}  // namespace
}  // namespace converge::testing
