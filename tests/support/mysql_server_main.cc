// The CTest fixture of the MySQL tests (tests/CMakeLists.txt):
//
//   converge_test_mysql_server start DIR   starts mariadbd (see
//       mysql_server.h) with its data in DIR/server, writes DIR/pid and
//       DIR/server.txt (port, then socket), and returns once it answers;
//   converge_test_mysql_server stop DIR    stops it by the PID in DIR/pid;
//   converge_test_mysql_server exec FILE SQL   runs SQL as the test account
//       on the server FILE (DIR/server.txt) names (the examples' tests).
//
// A server left behind by an interrupted run (DIR/pid names a live
// mariadbd) is stopped before a new one starts.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "mysql_server.h"
#include "server_process.h"

int main(int argc, char** argv) {
  using namespace converge::testing;
  if (argc == 4 && std::string(argv[1]) == "exec") {
    std::ifstream in(argv[2]);
    int port = 0;
    std::string socket;
    if (!(in >> port >> socket)) {
      std::fprintf(stderr, "cannot read %s\n", argv[2]);
      return 1;
    }
    absl::Status st = MysqlExec(socket, "", argv[3]);
    if (!st.ok()) std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return st.ok() ? 0 : 1;
  }
  return FixtureMain(
      argc, argv, "mariadbd",
      [](const std::string& dir) -> absl::StatusOr<pid_t> {
        std::error_code ec;
        std::filesystem::remove_all(dir + "/server", ec);
        absl::StatusOr<MysqlServerInfo> info =
            StartMysqlServer(dir + "/server", /*die_with_parent=*/false);
        if (!info.ok()) return info.status();
        std::ofstream(dir + "/server.txt") << info->port << "\n"
                                           << info->socket << "\n";
        std::printf("started mariadbd pid %d on 127.0.0.1:%d and %s\n",
                    static_cast<int>(info->pid), info->port,
                    info->socket.c_str());
        return info->pid;
      },
      StopMysqlServer);
}
