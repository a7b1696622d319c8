// HttpServer: converged's HTTP/1.1 transport on Boost.Asio and Beast (the
// only translation unit that includes Beast, so that edits elsewhere
// rebuild quickly). It reads requests with the limits of
// ServiceConfig::limits, hands them to a Service on the event loop's
// threads, and writes the answers (docs/http-api.md, "Limits and
// overload"):
//   - a body over max_body_bytes: 413, and the connection is closed;
//   - headers over 16 KiB: 431;
//   - headers not complete within header_timeout (idle_timeout between
//     keep-alive requests), or a body not complete within body_timeout:
//     the connection is closed (counted as 408 on /metrics);
//   - max_inflight_requests requests already in flight: 429 with
//     Retry-After (the operational routes are exempt);
//   - max_connections open: 503 with Retry-After, closed;
//   - while draining: 503 with Retry-After and Connection: close.
//
// Thread safety: Start, Drain and Stop from one thread.

#ifndef CONVERGE_TOOLS_CONVERGED_HTTP_SERVER_H_
#define CONVERGE_TOOLS_CONVERGED_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service.h"

namespace converge::service {

class HttpServer {
 public:
  // Binds the service's listen address (kUnavailable when it cannot).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Create(Service* service);
  ~HttpServer();

  // The bound port (the one picked when the config said port 0).
  uint16_t port() const;

  // Runs the event loop on config.http_threads threads.
  void Start();

  // Graceful shutdown: stops accepting, answers 503 to requests that start
  // from now on, and waits until the requests in flight are answered (at
  // most `timeout`); then stops the event loop. Returns the number of
  // requests still in flight when it gave up (0 = clean).
  int64_t Drain(absl::Duration timeout);

  // Stops the event loop at once (idempotent).
  void Stop();

  // The event loop and its state (http_server.cc).
  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_HTTP_SERVER_H_
