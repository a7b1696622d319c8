// The MySQL server the MySQL tests run against (mysql_test_stores.cc,
// redis_mysql_test_stores.cc, tests/adapters/mysql): the one the CTest
// fixture started, or one started for this process when the executable
// runs outside CTest. Every set of stores gets a database of its own.

#ifndef CONVERGE_TESTS_SUPPORT_MYSQL_TEST_ENV_H_
#define CONVERGE_TESTS_SUPPORT_MYSQL_TEST_ENV_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "converge/clock.h"
#include "converge/mysql/mysql_store.h"
#include "test_stores.h"

namespace converge::testing {

// The test server: port and socket.
struct TestMysqlServer {
  int port = 0;
  std::string socket;
  // The PID and directory of the server this process started (for tests
  // that restart it), or pid 0 when the server is the fixture's.
  int pid = 0;
  std::string dir;
};

// The server is, in order: the one described by the file
// $CONVERGE_TEST_MYSQL_SERVER_FILE (written by the CTest fixture,
// converge_test_mysql_server: port, then socket); else a mariadbd started on
// first use for this process and stopped at its exit. When none can be had
// (no mariadbd installed) the process exits with 77, which CTest reports as
// skipped (house-style.md, "Conformance suite").
const TestMysqlServer& TestMysql();

// A fresh, empty database on the test server, dropped when the returned
// owner is destroyed, and options to reach it (over the unix socket, as
// the test account).
struct TestDatabase {
  mysql::MysqlOptions options;
  std::shared_ptr<void> owner;  // drops the database
};
absl::StatusOr<TestDatabase> MakeTestDatabase();

// Runs one statement as the test account on `database` ("" = none).
absl::Status MysqlAdmin(const std::string& database, const std::string& sql);

// MySQL alone: all four stores on a fresh database (MakeTestDatabase),
// with MysqlOptions::one_transaction as given (default: the option's).
absl::StatusOr<TestStores> MakeMysqlTestStores(const Clock* clock,
                                               bool one_transaction = false);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_MYSQL_TEST_ENV_H_
