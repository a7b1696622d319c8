#include "mysql_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mysql.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server_process.h"

namespace converge::testing {
namespace {

// Runs `args` with stdout and stderr to `log`; returns its exit status.
int Run(std::vector<std::string> args, const std::string& log) {
  absl::StatusOr<pid_t> pid = SpawnProcess(std::move(args), log, true);
  if (!pid.ok()) return -1;
  int status = 0;
  while (waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// mariadb-install-db beside mariadbd.
std::string InstallDb(const std::string& mariadbd) {
  for (const char* p :
       {"/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"}) {
    if (access(p, X_OK) == 0) return p;
  }
  (void)mariadbd;
  return "";
}

// Runs `statements` as root over the socket (root has no password in a
// data folder made by Initialize).
absl::Status AsRoot(const std::string& socket,
                    const std::vector<std::string>& statements) {
  MYSQL* h = mysql_init(nullptr);
  if (h == nullptr) return absl::InternalError("mysql_init");
  unsigned timeout = 10;
  mysql_options(h, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  if (mysql_real_connect(h, nullptr, "root", "", nullptr, 0, socket.c_str(),
                         0) == nullptr) {
    absl::Status st = absl::UnavailableError(
        absl::StrCat("connect as root: ", mysql_error(h)));
    mysql_close(h);
    return st;
  }
  for (const std::string& s : statements) {
    if (mysql_real_query(h, s.data(), s.size()) != 0) {
      absl::Status st =
          absl::InternalError(absl::StrCat("\"", s, "\": ", mysql_error(h)));
      mysql_close(h);
      return st;
    }
  }
  mysql_close(h);
  return absl::OkStatus();
}

bool IsRoot() { return geteuid() == 0; }

}  // namespace

std::string FindMariadbd() {
  if (const char* env = getenv("CONVERGE_MARIADBD");
      env != nullptr && *env != '\0') {
    return env;
  }
  for (const char* p : {"/usr/sbin/mariadbd", "/usr/sbin/mysqld"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

bool MysqlAnswers(const std::string& socket) {
  MYSQL* h = mysql_init(nullptr);
  if (h == nullptr) return false;
  unsigned timeout = 1;
  mysql_options(h, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
  const bool ok =
      mysql_real_connect(h, nullptr, kTestMysqlUser, kTestMysqlPassword,
                         nullptr, 0, socket.c_str(), 0) != nullptr ||
      mysql_errno(h) == 1045;  // up, refusing the account: not ready yet
  const bool ready = ok && mysql_errno(h) == 0;
  mysql_close(h);
  return ready;
}

absl::Status MysqlExec(const std::string& socket, const std::string& database,
                       const std::string& sql) {
  MYSQL* h = mysql_init(nullptr);
  if (h == nullptr) return absl::InternalError("mysql_init");
  if (mysql_real_connect(h, nullptr, kTestMysqlUser, kTestMysqlPassword,
                         database.empty() ? nullptr : database.c_str(), 0,
                         socket.c_str(), 0) == nullptr ||
      mysql_real_query(h, sql.data(), sql.size()) != 0) {
    absl::Status st = absl::InternalError(
        absl::StrCat("mysql: \"", sql, "\": ", mysql_error(h)));
    mysql_close(h);
    return st;
  }
  if (MYSQL_RES* r = mysql_store_result(h); r != nullptr) {
    mysql_free_result(r);
  }
  mysql_close(h);
  return absl::OkStatus();
}

absl::StatusOr<MysqlServerInfo> StartMysqlServer(
    const std::string& dir, bool die_with_parent, int port,
    const std::vector<std::string>& extra_args) {
  const std::string program = FindMariadbd();
  if (program.empty()) {
    return absl::NotFoundError(
        "mariadbd not found (apt-get install mariadb-server, or set "
        "CONVERGE_MARIADBD)");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  const std::string data = dir + "/data";
  const std::string log = dir + "/mariadbd.log";
  // A unix socket's path has at most 107 bytes (sun_path): under a deep
  // build folder the socket goes to a short folder of its own in $TMPDIR
  // (or /tmp) instead; the path is reported in MysqlServerInfo either way.
  std::string socket = dir + "/mysqld.sock";
  if (socket.size() > 100) {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp != nullptr && *tmp != '\0' && std::strlen(tmp) < 60
                           ? std::string(tmp)
                           : std::string("/tmp");
    std::string templ = base + "/converge-mysql-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      return absl::InternalError(
          absl::StrCat("cannot make a folder for the socket in ", base, ": ",
                       std::strerror(errno)));
    }
    socket = templ + "/mysqld.sock";
  }
  const bool fresh = !std::filesystem::exists(data + "/mysql");
  if (fresh) {
    const std::string install = InstallDb(program);
    if (install.empty()) {
      return absl::NotFoundError("mariadb-install-db not found");
    }
    std::vector<std::string> args = {
        install, "--no-defaults", "--datadir=" + data,
        "--auth-root-authentication-method=normal", "--skip-test-db"};
    if (IsRoot()) args.push_back("--user=root");
    if (int rc = Run(args, dir + "/install.log"); rc != 0) {
      return absl::InternalError(
          absl::StrCat("mariadb-install-db failed (exit ", rc, "; see ", dir,
                       "/install.log)"));
    }
  }
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int p = port > 0 ? port : FreePort();
    if (p == 0) return absl::InternalError("no free port");
    std::vector<std::string> args = {
        program,
        "--no-defaults",
        "--datadir=" + data,
        "--socket=" + socket,
        "--port=" + std::to_string(p),
        "--bind-address=127.0.0.1",
        "--pid-file=" + dir + "/mariadbd.pid",
        "--log-error=" + log,
        "--skip-log-bin",
        "--skip-name-resolve",
        "--performance-schema=OFF",
        // Fast and small, for tests (never for the benchmark).
        "--innodb-flush-log-at-trx-commit=2",
        "--sync-binlog=0",
        "--innodb-doublewrite=0",
        "--innodb-flush-method=nosync",
        "--innodb-file-per-table=0",  // a CREATE TABLE makes no file
        "--innodb-buffer-pool-size=128M",
        "--innodb-log-file-size=64M",
        "--max-connections=1000",
    };
    if (IsRoot()) args.push_back("--user=root");
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    absl::StatusOr<pid_t> spawned =
        SpawnProcess(std::move(args), log, die_with_parent);
    if (!spawned.ok()) return spawned.status();
    const pid_t pid = *spawned;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool up = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (!ProcessAlive(pid)) break;
      if (access(socket.c_str(), F_OK) == 0) {
        if (fresh) {
          if (AsRoot(
                  socket,
                  {absl::StrCat("CREATE USER IF NOT EXISTS '", kTestMysqlUser,
                                "'@'%' IDENTIFIED BY '", kTestMysqlPassword,
                                "'"),
                   absl::StrCat("CREATE USER IF NOT EXISTS '", kTestMysqlUser,
                                "'@'localhost' IDENTIFIED BY '",
                                kTestMysqlPassword, "'"),
                   absl::StrCat("GRANT ALL ON *.* TO '", kTestMysqlUser,
                                "'@'%'"),
                   absl::StrCat("GRANT ALL ON *.* TO '", kTestMysqlUser,
                                "'@'localhost'")})
                  .ok()) {
            up = true;
            break;
          }
        } else if (MysqlAnswers(socket)) {
          up = true;
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (up) return MysqlServerInfo{pid, p, dir, socket};
    (void)StopMysqlServer(pid);
    if (port > 0) break;
  }
  return absl::UnavailableError(
      absl::StrCat("mariadbd did not start in ", dir, " (see ", log, ")"));
}

absl::Status StopMysqlServer(pid_t pid) { return StopProcess(pid, 30); }

}  // namespace converge::testing
