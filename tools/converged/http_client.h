// A small blocking HTTP/1.1 client over POSIX sockets: the webhook pusher
// of converged, the HTTP tests and the loopback load generator of bench/
// use it. It speaks what they need and no more: requests with a
// Content-Length body, responses with a Content-Length or chunked body (or
// one ended by the close), keep-alive, and raw writes for tests of
// misbehaving clients. No TLS, no redirects.
//
// Thread safety: an HttpConnection is used by one thread at a time.

#ifndef CONVERGE_TOOLS_CONVERGED_HTTP_CLIENT_H_
#define CONVERGE_TOOLS_CONVERGED_HTTP_CLIENT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace converge::service {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  // The header's value, or "".
  std::string Header(std::string_view name) const;
};

class HttpConnection {
 public:
  // Connects to host:port (numeric IPv4/IPv6 or a name). `timeout` bounds
  // the connect and every later read and write. kUnavailable when the
  // connection is refused, kDeadlineExceeded on a timeout.
  static absl::StatusOr<std::unique_ptr<HttpConnection>> Connect(
      std::string_view host, uint16_t port, absl::Duration timeout);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends a request and reads its response. `headers` are extra header
  // lines ("Name: value").
  absl::StatusOr<HttpResponse> Request(
      std::string_view method, std::string_view target, std::string_view body,
      std::string_view content_type = "application/json",
      const std::vector<std::string>& headers = {});

  // Writes bytes as they are (tests of partial and malformed requests).
  absl::Status SendRaw(std::string_view bytes);
  // Reads one response.
  absl::StatusOr<HttpResponse> ReadResponse();
  // True when the peer has closed the connection (reads EOF or a reset
  // within `wait`); false when it is still open after `wait`.
  bool WaitClosed(absl::Duration wait);

  // Bounds what follows: every read and write fails with
  // kDeadlineExceeded once `deadline` has passed (a peer that trickles a
  // byte at a time within each timeout cannot keep a request going), and
  // reading more than `max_response_bytes` of a response (0: no limit)
  // fails with kResourceExhausted.
  void Limit(absl::Time deadline, size_t max_response_bytes);

  const std::string& host() const { return host_; }

 private:
  HttpConnection(int fd, std::string host, absl::Duration timeout)
      : fd_(fd), host_(std::move(host)), timeout_(timeout) {}
  // Reads more into buf_; kOutOfRange on EOF.
  absl::Status Fill();
  absl::StatusOr<std::string> ReadLine();
  absl::StatusOr<std::string> ReadExact(size_t n);

  // timeout_, or less when the deadline is nearer; kDeadlineExceeded once
  // it has passed.
  absl::StatusOr<absl::Duration> Wait(std::string_view what) const;
  int fd_;
  std::string host_;
  absl::Duration timeout_;
  absl::Time deadline_ = absl::InfiniteFuture();
  size_t max_response_bytes_ = 0;
  size_t read_bytes_ = 0;  // of the response being read
  std::string buf_;
  size_t pos_ = 0;
};

// Splits "http://HOST:PORT/PATH" (the port defaults to 80, the path to
// "/"). kInvalidArgument for anything else.
absl::Status ParseHttpUrl(std::string_view url, std::string* host,
                          uint16_t* port, std::string* target);

// One request on a fresh connection. `timeout` bounds the whole exchange
// (connect, request, response), and a response larger than
// `max_response_bytes` (0: no limit) is kResourceExhausted.
absl::StatusOr<HttpResponse> HttpFetch(std::string_view host, uint16_t port,
                                       std::string_view method,
                                       std::string_view target,
                                       std::string_view body,
                                       absl::Duration timeout,
                                       size_t max_response_bytes = 0);

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_HTTP_CLIENT_H_
