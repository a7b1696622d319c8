#include "server_process.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace converge::testing {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

bool ProcessAlive(pid_t pid) {
  // Reap it if it is our child (a zombie still answers kill(pid, 0)).
  int status;
  if (waitpid(pid, &status, WNOHANG) == pid) return false;
  return kill(pid, 0) == 0;
}

absl::StatusOr<pid_t> SpawnProcess(std::vector<std::string> args,
                                   const std::string& log,
                                   bool die_with_parent) {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    if (die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
    } else {
      setsid();
    }
    // Its own stdio: never hold the pipes of CTest or of a test.
    int in = open("/dev/null", O_RDONLY);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    for (int fd = 3; fd < 1024; ++fd) close(fd);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

absl::Status StopProcess(pid_t pid, int grace_seconds) {
  if (pid <= 0) return absl::InvalidArgumentError("no pid");
  if (kill(pid, SIGTERM) != 0) {
    if (errno == ESRCH) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat("kill ", pid, ": ", strerror(errno)));
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(grace_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!ProcessAlive(pid)) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  while (ProcessAlive(pid)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

namespace {

pid_t ReadPid(const std::string& dir) {
  std::ifstream in(dir + "/pid");
  long pid = 0;
  if (!(in >> pid)) return 0;
  return static_cast<pid_t>(pid);
}

// True if `pid` runs a program whose command line contains `name`.
bool Runs(pid_t pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::stringstream s;
  s << in.rdbuf();
  return s.str().find(name) != std::string::npos;
}

int Stop(const std::string& dir, const std::string& name,
         const std::function<absl::Status(pid_t)>& stop) {
  const pid_t pid = ReadPid(dir);
  if (pid <= 0 || !Runs(pid, name)) return 0;
  absl::Status st = stop(pid);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  std::filesystem::remove(dir + "/pid");
  std::printf("stopped %s pid %d\n", name.c_str(), static_cast<int>(pid));
  return 0;
}

}  // namespace

int FixtureMain(
    int argc, char** argv, const std::string& name,
    const std::function<absl::StatusOr<pid_t>(const std::string&)>& start,
    const std::function<absl::Status(pid_t)>& stop) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s start|stop DIR\n", argv[0]);
    return 2;
  }
  const std::string cmd = argv[1];
  const std::string dir = std::filesystem::absolute(argv[2]).string();
  if (cmd == "stop") return Stop(dir, name, stop);
  if (cmd != "start") {
    std::fprintf(stderr, "usage: %s start|stop DIR\n", argv[0]);
    return 2;
  }
  if (Stop(dir, name, stop) != 0) return 1;
  absl::StatusOr<pid_t> pid = start(dir);
  if (!pid.ok()) {
    std::fprintf(stderr, "%s\n", pid.status().ToString().c_str());
    return 1;
  }
  std::ofstream(dir + "/pid") << *pid << "\n";
  return 0;
}

}  // namespace converge::testing
