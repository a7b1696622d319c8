#include "http_test_util.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace converge::service::testing {

namespace bj = boost::json;

InProcess::InProcess(const std::string& config_json) {
  bj::value v = bj::parse(config_json);
  bj::object& o = v.as_object();
  if (!o.contains("listen")) o["listen"] = "127.0.0.1:0";
  if (!o.contains("store")) o["store"] = "memory:";
  absl::StatusOr<ServiceConfig> config = ParseServiceConfig(bj::serialize(v));
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  absl::StatusOr<std::unique_ptr<Service>> s = Service::Create(*config, &clock);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  service = *std::move(s);
  absl::StatusOr<std::unique_ptr<HttpServer>> h =
      HttpServer::Create(service.get());
  INFO(h.status().ToString());
  REQUIRE(h.ok());
  server = *std::move(h);
  REQUIRE(service->Start().ok());
  server->Start();
  port = server->port();
}

InProcess::~InProcess() {
  server->Stop();
  service->Stop(absl::ZeroDuration());
}

HttpResponse InProcess::Get(const std::string& target) {
  absl::StatusOr<HttpResponse> r =
      HttpFetch("127.0.0.1", port, "GET", target, "", absl::Seconds(10));
  INFO("GET " << target << ": " << r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

HttpResponse InProcess::Post(const std::string& target,
                             const std::string& body) {
  absl::StatusOr<HttpResponse> r =
      HttpFetch("127.0.0.1", port, "POST", target, body, absl::Seconds(10));
  INFO("POST " << target << ": " << r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

std::unique_ptr<HttpConnection> InProcess::Connect() {
  absl::StatusOr<std::unique_ptr<HttpConnection>> c =
      HttpConnection::Connect("127.0.0.1", port, absl::Seconds(10));
  REQUIRE(c.ok());
  return *std::move(c);
}

bj::value Json(const std::string& body) {
  boost::system::error_code ec;
  bj::value v = bj::parse(body, ec);
  INFO("body: " << body);
  REQUIRE(!ec);
  return v;
}

TempDir::TempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "converged-test.XXXXXX")
          .string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  REQUIRE(out.good());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  socklen_t len = sizeof(a);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

Child::Child(const std::vector<std::string>& argv,
             const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    // The child: unblock what the parent may have blocked, log to the file.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    FILE* log = std::fopen(log_path.c_str(), "w");
    if (log != nullptr) {
      ::dup2(::fileno(log), 1);
      ::dup2(::fileno(log), 2);
    }
    ::execv(args[0], args.data());
    std::perror("execv");
    ::_exit(127);
  }
}

Child::~Child() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
}

void Child::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool Child::Wait(absl::Duration timeout, int* status) {
  const absl::Time deadline = absl::Now() + timeout;
  while (pid_ > 0) {
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      return true;
    }
    if (absl::Now() >= deadline) return false;
    ::usleep(10'000);
  }
  return false;
}

void Child::Stop(absl::Duration grace) {
  if (pid_ <= 0) return;
  Signal(SIGTERM);
  int st = 0;
  if (!Wait(grace, &st)) {
    Signal(SIGKILL);
    Wait(absl::Seconds(5), &st);
  }
}

bool PollUntil(absl::Duration timeout, const std::function<bool()>& done) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    if (done()) return true;
    if (absl::Now() >= deadline) return false;
    ::usleep(20'000);
  }
}

Sink::Sink(std::vector<int> statuses) : statuses_(std::move(statuses)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listen_fd_ >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(::listen(listen_fd_, 64) == 0);
  socklen_t len = sizeof(a);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

Sink::~Sink() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::vector<std::string> Sink::bodies() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bodies_;
}

void Sink::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    // One request per connection (the pusher opens one per POST).
    std::string data;
    char buf[8192];
    size_t body_at = std::string::npos;
    size_t length = 0;
    for (;;) {
      pollfd q{fd, POLLIN, 0};
      if (::poll(&q, 1, 5000) <= 0) break;
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      data.append(buf, static_cast<size_t>(n));
      if (body_at == std::string::npos) {
        const size_t end = data.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        body_at = end + 4;
        const size_t cl = data.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) {
          const size_t eol = data.find("\r\n", cl);
          absl::SimpleAtoi(
              absl::string_view(data).substr(cl + 16, eol - cl - 16), &length);
        }
      }
      if (data.size() >= body_at + length) break;
    }
    const int n = requests_.fetch_add(1);
    const int status = n < static_cast<int>(statuses_.size())
                           ? statuses_[static_cast<size_t>(n)]
                           : 200;
    if (status == 200 && body_at != std::string::npos) {
      std::lock_guard<std::mutex> lock(mu_);
      bodies_.push_back(data.substr(body_at));
    }
    const std::string resp =
        absl::StrCat("HTTP/1.1 ", status,
                     " X\r\nContent-Length: 0\r\nConnection: "
                     "close\r\n\r\n");
    ::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL);
    ::close(fd);
  }
}

}  // namespace converge::service::testing
