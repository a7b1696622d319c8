// A MariaDB server for tests: a data folder made by mariadb-install-db in
// a temporary directory, mariadbd on a unix socket there and on a free
// loopback port, no system service, no sudo, stopped by its PID. Tuned for
// tests (innodb_flush_log_at_trx_commit=2, no fsync, no doublewrite, no
// binary log, tables in the system tablespace, a small buffer pool): a crash
// of the machine may lose or damage recent commits, which tests do not care
// about (the benchmark overrides these for durable figures). Used by the CTest
// fixture (converge_test_mysql_server start|stop DIR) and, when a test
// executable runs outside CTest, by the harness itself (mysql_test_env.h).

#ifndef CONVERGE_TESTS_SUPPORT_MYSQL_SERVER_H_
#define CONVERGE_TESTS_SUPPORT_MYSQL_SERVER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace converge::testing {

struct MysqlServerInfo {
  pid_t pid = 0;
  int port = 0;
  std::string dir;     // data/, mysqld.sock, mariadbd.log
  std::string socket;  // dir + "/mysqld.sock"
};

// The account the tests use: it may create and drop databases.
inline constexpr char kTestMysqlUser[] = "converge";
inline constexpr char kTestMysqlPassword[] = "converge-test";

// mariadbd: $CONVERGE_MARIADBD, else /usr/sbin/mariadbd, else mysqld on
// PATH. Empty if none is found.
std::string FindMariadbd();

// Starts mariadbd on `dir` (created and initialized with mariadb-install-db
// and the test account if it has no data yet) on a free loopback port (or
// on `port` if > 0: a restart on the same data) and waits until it answers
// (at most 60 s). With `die_with_parent` the server gets SIGKILL when the
// calling thread's process exits, so a crashed test cannot leave it behind.
absl::StatusOr<MysqlServerInfo> StartMysqlServer(
    const std::string& dir, bool die_with_parent, int port = 0,
    const std::vector<std::string>& extra_args = {});

// Stops the server by PID: SIGTERM (a clean shutdown), SIGKILL after 30 s.
// Reaps it if it is our child.
absl::Status StopMysqlServer(pid_t pid);

// True if the server answers on `socket` as the test account.
bool MysqlAnswers(const std::string& socket);

// Runs one statement as the test account over `socket`, in `database` (""
// = none); its rows, if any, are dropped.
absl::Status MysqlExec(const std::string& socket, const std::string& database,
                       const std::string& sql);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_MYSQL_SERVER_H_
