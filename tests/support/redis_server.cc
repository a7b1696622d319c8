#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server_process.h"

namespace converge::testing {
std::string FindRedisServer() {
  if (const char* env = getenv("CONVERGE_REDIS_SERVER");
      env != nullptr && *env != '\0') {
    return env;
  }
  if (const char* path = getenv("PATH"); path != nullptr) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find(':', start);
      if (end == std::string::npos) end = p.size();
      std::string candidate = p.substr(start, end - start) + "/redis-server";
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
      start = end + 1;
    }
  }
  if (access("/usr/bin/redis-server", X_OK) == 0)
    return "/usr/bin/redis-server";
  return "";
}

bool RedisAnswers(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  timeval tv{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const char ping[] = "PING\r\n";
    char buf[64] = {0};
    if (write(fd, ping, sizeof(ping) - 1) == sizeof(ping) - 1) {
      ssize_t n = read(fd, buf, sizeof(buf) - 1);
      // Up and serving: PONG, or a refusal for want of AUTH.
      ok = (n >= 5 && strncmp(buf, "+PONG", 5) == 0) ||
           (n >= 7 && strncmp(buf, "-NOAUTH", 7) == 0);
    }
  }
  close(fd);
  return ok;
}

absl::StatusOr<RedisServerInfo> StartRedisServer(
    const std::string& dir, bool die_with_parent, int port,
    const std::vector<std::string>& extra_args) {
  const std::string program = FindRedisServer();
  if (program.empty()) {
    return absl::NotFoundError(
        "redis-server not found (apt-get install redis-server, or set "
        "CONVERGE_REDIS_SERVER)");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  const std::string log = dir + "/redis.log";
  // A port taken between FreePort and the server's bind: try another.
  for (int attempt = 0; attempt < 5; ++attempt) {
    const int p = port > 0 ? port : FreePort();
    if (p == 0) return absl::InternalError("no free port");
    const std::string port_text = std::to_string(p);
    std::vector<std::string> args = {program,     "--port",
                                     port_text,   "--bind",
                                     "127.0.0.1", "--dir",
                                     dir,         "--appendonly",
                                     "yes",       "--save",
                                     "",          "--daemonize",
                                     "no",        "--protected-mode",
                                     "yes",       "--logfile",
                                     "",          "--unixsocket",
                                     "",          "--databases",
                                     "16"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    absl::StatusOr<pid_t> spawned = SpawnProcess(args, log, die_with_parent);
    if (!spawned.ok()) return spawned.status();
    const pid_t pid = *spawned;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!ProcessAlive(pid)) break;
      if (RedisAnswers(p)) {
        return RedisServerInfo{pid, p, dir};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    (void)StopRedisServer(pid);
    if (port > 0) break;
  }
  return absl::UnavailableError(
      absl::StrCat("redis-server did not start in ", dir, " (see ", log, ")"));
}

absl::Status StopRedisServer(pid_t pid) { return StopProcess(pid, 10); }

}  // namespace converge::testing
