// The CTest fixture of the Redis tests (tests/CMakeLists.txt):
//
//   converge_test_redis_server start DIR   starts redis-server (see
//       redis_server.h) with its data in DIR/data, writes DIR/pid and
//       DIR/uri ("redis://127.0.0.1:PORT"), and returns once it answers;
//   converge_test_redis_server stop DIR    stops it by the PID in DIR/pid.
//
// A server left behind by an interrupted run (DIR/pid names a live
// redis-server) is stopped before a new one starts.

#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "redis_server.h"

namespace {

using converge::testing::RedisServerInfo;

pid_t ReadPid(const std::string& dir) {
  std::ifstream in(dir + "/pid");
  long pid = 0;
  if (!(in >> pid)) return 0;
  return static_cast<pid_t>(pid);
}

// True if `pid` is a running redis-server (not a reused PID).
bool IsRedisServer(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::stringstream s;
  s << in.rdbuf();
  return s.str().find("redis-server") != std::string::npos;
}

int Stop(const std::string& dir) {
  const pid_t pid = ReadPid(dir);
  if (pid <= 0 || !IsRedisServer(pid)) return 0;
  absl::Status st = converge::testing::StopRedisServer(pid);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  std::filesystem::remove(dir + "/pid");
  std::printf("stopped redis-server pid %d\n", static_cast<int>(pid));
  return 0;
}

int Start(const std::string& dir) {
  if (Stop(dir) != 0) return 1;
  std::error_code ec;
  std::filesystem::remove_all(dir + "/data", ec);
  absl::StatusOr<RedisServerInfo> info = converge::testing::StartRedisServer(
      dir + "/data", /*die_with_parent=*/false);
  if (!info.ok()) {
    std::fprintf(stderr, "%s\n", info.status().ToString().c_str());
    return 1;
  }
  std::ofstream(dir + "/pid") << info->pid << "\n";
  std::ofstream(dir + "/uri") << "redis://127.0.0.1:" << info->port << "\n";
  std::printf("started redis-server pid %d on 127.0.0.1:%d in %s\n",
              static_cast<int>(info->pid), info->port, info->dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s start|stop DIR\n", argv[0]);
    return 2;
  }
  const std::string cmd = argv[1];
  const std::string dir = std::filesystem::absolute(argv[2]).string();
  if (cmd == "start") return Start(dir);
  if (cmd == "stop") return Stop(dir);
  std::fprintf(stderr, "usage: %s start|stop DIR\n", argv[0]);
  return 2;
}
