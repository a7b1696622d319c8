// The CTest fixture of the Redis tests (tests/CMakeLists.txt):
//
//   converge_test_redis_server start DIR   starts redis-server (see
//       redis_server.h) with its data in DIR/data, writes DIR/pid and
//       DIR/uri ("redis://127.0.0.1:PORT"), and returns once it answers;
//   converge_test_redis_server stop DIR    stops it by the PID in DIR/pid.
//
// A server left behind by an interrupted run (DIR/pid names a live
// redis-server) is stopped before a new one starts.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "redis_server.h"
#include "server_process.h"

int main(int argc, char** argv) {
  using namespace converge::testing;
  return FixtureMain(
      argc, argv, "redis-server",
      [](const std::string& dir) -> absl::StatusOr<pid_t> {
        std::error_code ec;
        std::filesystem::remove_all(dir + "/data", ec);
        absl::StatusOr<RedisServerInfo> info =
            StartRedisServer(dir + "/data", /*die_with_parent=*/false);
        if (!info.ok()) return info.status();
        std::ofstream(dir + "/uri")
            << "redis://127.0.0.1:" << info->port << "\n";
        std::printf("started redis-server pid %d on 127.0.0.1:%d in %s\n",
                    static_cast<int>(info->pid), info->port, info->dir.c_str());
        return info->pid;
      },
      StopRedisServer);
}
