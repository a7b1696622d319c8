#include "http_server.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace converge::service {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr uint32_t kHeaderLimit = 16 * 1024;

// Lingering close (as nginx's lingering_close): after an answer sent before
// the request was read whole (413, 429, a 503 while draining, a malformed
// head), the server stops sending and reads and drops what the client is
// still sending, for at most kLingerTime and kLingerBytes, before it closes.
// Closing a socket with unread data makes the kernel send a reset, and a
// client still writing its body then sees "connection reset" instead of the
// answer.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = size_t{64} << 20;
constexpr size_t kLingerChunk = 16 * 1024;
// Connections over limits.max_connections answered 503 and lingering at
// once; more are answered and closed at once (a flood of connections must
// not take file descriptors without bound).
constexpr int64_t kMaxRefusing = 64;

std::chrono::steady_clock::duration Chrono(absl::Duration d) {
  return std::chrono::microseconds(absl::ToInt64Microseconds(d));
}

}  // namespace

struct HttpServer::Impl {
  Service* service = nullptr;
  LimitsConfig limits;
  // Before ioc: sessions destroyed with it still count down.
  std::atomic<bool> draining{false};
  std::atomic<int64_t> connections{0};
  // Sessions refused over max_connections (not in `connections`), and
  // sessions lingering before their close: a drain waits for both.
  std::atomic<int64_t> refusing{0};
  std::atomic<int64_t> lingering{0};
  uint16_t port = 0;
  asio::io_context ioc;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>>
      work;
  // Every operation on the acceptor runs on its strand: accept
  // completions, the out-of-descriptors timer and the drain's close.
  asio::strand<asio::io_context::executor_type> accept_strand{
      asio::make_strand(ioc)};
  tcp::acceptor acceptor{accept_strand};
  std::vector<std::thread> threads;

  void Accept();
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `refused`: a connection over max_connections, counted apart.
  Session(tcp::socket socket, HttpServer::Impl* server, bool refused = false)
      : stream_(std::move(socket)), server_(server), refused_(refused) {
    ++(refused_ ? server_->refusing : server_->connections);
  }
  ~Session() {
    EndRequest();
    EndLinger();
    --(refused_ ? server_->refusing : server_->connections);
  }

  void Run() {
    asio::dispatch(stream_.get_executor(),
                   [self = shared_from_this()] { self->ReadHeader(); });
  }

  // Answers `answer` without reading a request, then lingers and closes
  // (a connection over limits.max_connections).
  void Refuse(HttpAnswer answer) {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this(),
                                            a = std::move(answer)]() mutable {
      self->Write(std::move(a), false);
    });
  }

 private:
  const LimitsConfig& limits() const { return server_->limits; }
  Service& service() { return *server_->service; }

  void EndRequest() {
    if (counted_) {
      --service().inflight();
      counted_ = false;
    }
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(static_cast<uint64_t>(limits().max_body_bytes));
    stream_.expires_after(
        Chrono(first_ ? limits().header_timeout : limits().idle_timeout));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) {
          self->OnHeader(ec);
        });
  }

  void OnHeader(beast::error_code ec) {
    const bool first = first_;
    first_ = false;
    if (ec) {
      if (ec == beast::error::timeout) {
        // Beast's stream has closed the socket already: no 408 can be
        // written; the client sees the connection close. A keep-alive
        // connection that sent nothing more is merely idle: no request,
        // no 408.
        if (first || parser_->got_some()) service().RecordHttpStatus(408);
        return Close();
      }
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset) {
        return Close();
      }
      if (ec == http::error::header_limit) {
        return Fail(431, "invalid_argument", "request headers exceed 16 KiB");
      }
      if (ec == http::error::body_limit) {
        return TooLarge();
      }
      return Fail(400, "invalid_argument",
                  absl::StrCat("malformed HTTP request: ", ec.message()));
    }
    const auto& req = parser_->get();
    const std::string_view target(req.target().data(), req.target().size());
    if (!Service::IsOperational(target)) {
      // Counted first, then the drain checked (both sequentially
      // consistent): Drain sets `draining`, then waits while requests are
      // in flight, so either this request sees the drain and is refused,
      // or Drain sees it in flight and waits for its answer.
      const int64_t before = service().inflight().fetch_add(1);
      if (server_->draining.load()) {
        --service().inflight();
        return Fail(503, "unavailable",
                    "converged is shutting down (SIGTERM); retry on another "
                    "instance or later",
                    true);
      }
      if (before >= limits().max_inflight_requests) {
        --service().inflight();
        return Fail(429, "resource_exhausted",
                    absl::StrCat("too many requests in flight (limits."
                                 "max_inflight_requests ",
                                 limits().max_inflight_requests, ")"),
                    true);
      }
      counted_ = true;
    }
    if (parser_->content_length() &&
        *parser_->content_length() >
            static_cast<uint64_t>(limits().max_body_bytes)) {
      return TooLarge();
    }
    auto expect = req.find(http::field::expect);
    if (expect != req.end() &&
        beast::iequals(expect->value(), "100-continue")) {
      auto cont = std::make_shared<http::response<http::empty_body>>(
          http::status::continue_, 11);
      stream_.expires_after(Chrono(limits().body_timeout));
      http::async_write(
          stream_, *cont,
          [self = shared_from_this(), cont](beast::error_code ec, size_t) {
            if (ec) return self->Close();
            self->ReadBody();
          });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(Chrono(limits().body_timeout));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnBody(ec);
                     });
  }

  void TooLarge() {
    Fail(413, "resource_exhausted",
         absl::StrCat("request body exceeds limits.max_body_bytes (",
                      limits().max_body_bytes, " bytes)"));
  }

  void OnBody(beast::error_code ec) {
    if (ec) {
      if (ec == beast::error::timeout) {
        service().RecordHttpStatus(408);
        return Close();
      }
      if (ec == http::error::body_limit) return TooLarge();
      if (ec == http::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset ||
          ec == http::error::partial_message) {
        return Close();
      }
      return Fail(400, "invalid_argument",
                  absl::StrCat("malformed HTTP request: ", ec.message()));
    }
    http::request<http::string_body> req = parser_->release();
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.body = std::move(req.body());
    HttpAnswer answer = service().Handle(request);
    const bool keep = req.keep_alive() && !server_->draining.load();
    if (request.method == "HEAD") answer.body.clear();
    Write(std::move(answer), keep);
  }

  void Fail(int status, std::string_view code, std::string_view message,
            bool retry = false) {
    HttpAnswer a = ErrorAnswer(status, code, message);
    if (retry) a.retry_after = limits().retry_after_seconds;
    Write(std::move(a), false);
  }

  void Write(HttpAnswer answer, bool keep_alive) {
    service().RecordHttpStatus(answer.status);
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(answer.status), 11);
    res->set(http::field::server, "converged");
    res->set(http::field::content_type, answer.content_type);
    if (answer.retry_after >= 0) {
      res->set(http::field::retry_after, std::to_string(answer.retry_after));
    }
    if (!answer.allow.empty()) res->set(http::field::allow, answer.allow);
    res->body() = std::move(answer.body);
    res->keep_alive(keep_alive);
    res->prepare_payload();
    stream_.expires_after(Chrono(limits().body_timeout));
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive](
                          beast::error_code ec, size_t) {
                        self->EndRequest();
                        if (ec) return self->Close();
                        if (!keep_alive) {
                          // Answered before the request was read whole, or
                          // draining (a client may have pipelined more):
                          // what the client still sends is drained first.
                          if (!self->parser_ || !self->parser_->is_done() ||
                              self->server_->draining.load()) {
                            return self->Linger();
                          }
                          return self->Close();
                        }
                        self->ReadHeader();
                      });
  }

  void Close() {
    EndRequest();
    EndLinger();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  // See kLingerTime. The answer has been written; the client sees the end
  // of the stream at once, and its writes keep succeeding until it has
  // read the answer and closed, or the bounds are reached.
  void Linger() {
    EndRequest();
    if (!lingering_) {
      lingering_ = true;
      ++server_->lingering;
    }
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger_.resize(kLingerChunk);
    stream_.expires_after(kLingerTime);
    LingerRead();
  }

  void EndLinger() {
    if (lingering_) {
      lingering_ = false;
      --server_->lingering;
    }
  }

  void LingerRead() {
    stream_.async_read_some(
        asio::buffer(linger_),
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->lingered_ += n;
          if (ec || self->lingered_ >= kLingerBytes) return self->Close();
          self->LingerRead();
        });
  }

  beast::tcp_stream stream_;
  HttpServer::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  bool counted_ = false;
  bool first_ = true;
  std::vector<char> linger_;
  size_t lingered_ = 0;
  bool lingering_ = false;
  const bool refused_;
};

}  // namespace

void HttpServer::Impl::Accept() {
  acceptor.async_accept(
      asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
        if (ec) {
          if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
            return;
          }
          if (ec == asio::error::no_descriptors ||
              ec == asio::error::no_buffer_space ||
              ec == asio::error::no_memory || ec.value() == ENFILE) {
            // Out of file descriptors (or memory): accepting again at once
            // fails again at once, a loop that takes a whole core. Wait a
            // moment for connections to close; the pending ones stay in
            // the listen backlog.
            auto wait = std::make_shared<asio::steady_timer>(
                accept_strand, std::chrono::milliseconds(100));
            wait->async_wait([this, wait](beast::error_code) {
              if (acceptor.is_open()) Accept();
            });
            return;
          }
          return Accept();
        }
        if (connections.load() >= limits.max_connections) {
          HttpAnswer busy = ErrorAnswer(
              503, "unavailable",
              "too many open connections (limits.max_connections), retry "
              "later");
          busy.retry_after = limits.retry_after_seconds;
          if (refusing.load() < kMaxRefusing) {
            std::make_shared<Session>(std::move(socket), this, true)
                ->Refuse(std::move(busy));
          } else {
            // Too many refusals lingering already: answer and close now.
            const std::string text = absl::StrCat(
                "HTTP/1.1 503 Service Unavailable\r\nServer: converged\r\n"
                "Content-Type: application/json\r\nRetry-After: ",
                busy.retry_after,
                "\r\nConnection: close\r\nContent-Length: ", busy.body.size(),
                "\r\n\r\n", busy.body);
            beast::error_code ignored;
            asio::write(socket, asio::buffer(text), ignored);
            socket.shutdown(tcp::socket::shutdown_both, ignored);
            service->RecordHttpStatus(503);
          }
        } else {
          std::make_shared<Session>(std::move(socket), this)->Run();
        }
        Accept();
      });
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(
    Service* service) {
  auto impl = std::make_unique<Impl>();
  impl->service = service;
  impl->limits = service->config().limits;
  std::string host;
  uint16_t port = 0;
  absl::Status st =
      SplitHostPort(service->config().listen, "listen", &host, &port);
  if (!st.ok()) return st;
  beast::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config: listen: \"", host, "\" is not an IP address: ", ec.message()));
  }
  const tcp::endpoint endpoint(address, port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec)
    impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("converged: cannot listen on ",
                                               service->config().listen, ": ",
                                               ec.message()));
  }
  impl->port = impl->acceptor.local_endpoint().port();
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::Start() {
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->Accept();
  const int n = impl_->service->config().http_threads;
  for (int i = 0; i < n; ++i) {
    impl_->threads.emplace_back([this] { impl_->ioc.run(); });
  }
}

int64_t HttpServer::Drain(absl::Duration timeout) {
  impl_->draining = true;
  impl_->service->BeginDrain();
  asio::post(impl_->accept_strand, [impl = impl_.get()] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
  const absl::Time deadline = absl::Now() + timeout;
  // The requests in flight are answered; the connections closing after an
  // early answer (refused, or lingering) get their bounded time too.
  while ((impl_->service->inflight().load() > 0 || impl_->refusing.load() > 0 ||
          impl_->lingering.load() > 0) &&
         absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const int64_t left = impl_->service->inflight().load();
  Stop();
  return left;
}

void HttpServer::Stop() {
  impl_->work.reset();
  impl_->ioc.stop();
  for (std::thread& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
}

}  // namespace converge::service
