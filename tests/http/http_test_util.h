// Helpers of the converged tests: an in-process converged (Service and
// HttpServer on a loopback port, on a virtual clock), child processes
// started and stopped by PID, free ports, temporary directories, and a
// tiny HTTP sink that records what it receives.
//
// Thread safety: each helper object is used from the test's thread, except
// Sink, whose server thread records under a mutex.

#ifndef CONVERGE_TESTS_HTTP_HTTP_TEST_UTIL_H_
#define CONVERGE_TESTS_HTTP_HTTP_TEST_UTIL_H_

#include <sys/types.h>

#include <atomic>
#include <boost/json.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "converge/clock.h"
#include "http_client.h"
#include "http_server.h"
#include "service.h"

namespace converge::service::testing {

// The virtual clock's start.
inline constexpr int64_t kStart = 1'700'000'000;

class InProcess {
 public:
  // Starts converged with `config_json` (listen and store default to
  // 127.0.0.1:0 and memory:). Fails the test on error.
  explicit InProcess(const std::string& config_json = "{}");
  ~InProcess();

  HttpResponse Get(const std::string& target);
  HttpResponse Post(const std::string& target, const std::string& body);
  // A connection to the server (for raw and keep-alive requests).
  std::unique_ptr<HttpConnection> Connect();

  VirtualClock clock{absl::FromUnixSeconds(kStart)};
  std::unique_ptr<Service> service;
  std::unique_ptr<HttpServer> server;
  uint16_t port = 0;
};

// JSON of a response body (fails the test when it is not JSON).
boost::json::value Json(const std::string& body);

// A fresh directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);

// A loopback port that was free a moment ago.
uint16_t FreePort();

// A child process (argv[0] is a path), its stdout and stderr into
// `log_path`. The destructor kills it (SIGKILL) if it still runs.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log_path);
  ~Child();
  pid_t pid() const { return pid_; }
  // Sends `sig` by PID.
  void Signal(int sig);
  // Waits for the exit; false if it did not exit within `timeout`. *status
  // is the exit code (128 + signal when killed).
  bool Wait(absl::Duration timeout, int* status);
  // SIGTERM, and SIGKILL after `grace`.
  void Stop(absl::Duration grace = absl::Seconds(5));

 private:
  pid_t pid_ = -1;
};

// Polls `done` every 20 ms until it is true or `timeout` passes (for
// external processes, whose progress no clock of ours drives).
bool PollUntil(absl::Duration timeout, const std::function<bool()>& done);

// A loopback HTTP server that records each request body and answers with
// the next status of `statuses` (then 200 forever).
class Sink {
 public:
  explicit Sink(std::vector<int> statuses = {});
  ~Sink();
  uint16_t port() const { return port_; }
  std::vector<std::string> bodies() const;
  int requests() const { return requests_.load(); }

 private:
  void Serve();
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> statuses_;
  std::atomic<int> requests_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

}  // namespace converge::service::testing

#endif  // CONVERGE_TESTS_HTTP_HTTP_TEST_UTIL_H_
