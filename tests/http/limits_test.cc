// Bad input and overload over real HTTP: 400 naming the field, 404, 405,
// 413, 431, 408 for slow clients, 429 and 503 with Retry-After.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "http_test_util.h"

namespace converge::service::testing {
namespace {

namespace bj = boost::json;

// A loopback server for one connection: reads the request's head, answers
// `head`, then sends `chunk` every `every` until the client goes away or
// `give_up` has passed.
class MisbehavingServer {
 public:
  MisbehavingServer(std::string head, std::string chunk, absl::Duration every,
                    absl::Duration give_up)
      : head_(std::move(head)), chunk_(std::move(chunk)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) ==
            0);
    REQUIRE(::listen(listen_fd_, 4) == 0);
    socklen_t len = sizeof(a);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, every, give_up] { Serve(every, give_up); });
  }
  ~MisbehavingServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  void Serve(absl::Duration every, absl::Duration give_up) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    std::string data;
    char buf[4096];
    while (data.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      data.append(buf, static_cast<size_t>(n));
    }
    const absl::Time end = absl::Now() + give_up;
    bool ok = ::send(fd, head_.data(), head_.size(), MSG_NOSIGNAL) > 0;
    while (ok && !stop_ && absl::Now() < end) {
      ok = ::send(fd, chunk_.data(), chunk_.size(), MSG_NOSIGNAL) > 0;
      std::this_thread::sleep_for(absl::ToChronoMicroseconds(every));
    }
    ::close(fd);
  }
  std::string head_;
  std::string chunk_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_CASE(
    "the webhook client: the timeout bounds the whole exchange, and a large "
    "answer is refused",
    "[http][limits]") {
  SECTION("a byte every 50 ms cannot keep a request going") {
    // Each byte comes well within the timeout; only a bound on the whole
    // exchange ends it. The server gives up after 20 s.
    MisbehavingServer trickle("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
                              "x", absl::Milliseconds(50), absl::Seconds(20));
    const absl::Time start = absl::Now();
    absl::StatusOr<HttpResponse> r =
        HttpFetch("127.0.0.1", trickle.port(), "POST", "/hook", "{}",
                  absl::Milliseconds(500));
    const absl::Duration took = absl::Now() - start;
    INFO(r.status().ToString() << " after " << took);
    CHECK(r.status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(took < absl::Seconds(10));  // 20 s without the bound
  }
  SECTION("an answer larger than the cap is not buffered") {
    MisbehavingServer flood(
        "HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n",
        std::string(1 << 16, 'x'), absl::Milliseconds(1), absl::Seconds(20));
    absl::StatusOr<HttpResponse> r =
        HttpFetch("127.0.0.1", flood.port(), "POST", "/hook", "{}",
                  absl::Seconds(30), 64 * 1024);
    INFO(r.status().ToString());
    CHECK(r.status().code() == absl::StatusCode::kResourceExhausted);
  }
}

constexpr const char* kAction =
    R"({"id":1,"converge_config":{"is_enabled":true,"converge_func":"collect",)"
    R"("timedelta":60,"count":1,"condition":[{"dimension":"alert_name","value":["self"]}]}})";

std::string Field(const HttpResponse& r) {
  const bj::value v = Json(r.body);
  const bj::object& e = v.at("error").as_object();
  return e.contains("field") ? std::string(e.at("field").as_string()) : "";
}
std::string Code(const HttpResponse& r) {
  return std::string(Json(r.body).at("error").at("code").as_string());
}

TEST_CASE("malformed JSON and wrong types are 400 naming the field",
          "[http][limits]") {
  InProcess s;
  HttpResponse bad = s.Post("/v1/actions", "{\"id\":");
  CHECK(bad.status == 400);
  CHECK(Code(bad) == "invalid_argument");
  CHECK(Json(bad.body).at("error").at("message").as_string().starts_with(
      "malformed JSON"));
  HttpResponse type = s.Post(
      "/v1/actions",
      absl::StrCat("[", kAction,
                   R"(,{"id":2,"alert_level":"high","converge_config":{}}])"));
  CHECK(type.status == 400);
  CHECK(Field(type) == "[1].alert_level");
  HttpResponse nested = s.Post(
      "/v1/actions",
      R"({"id":3,"converge_config":{"is_enabled":true,"converge_func":"collect",)"
      R"("timedelta":"60","count":1}})");
  CHECK(Field(nested) == "converge_config.timedelta");
  HttpResponse kind = s.Post("/v1/actions", "42");
  CHECK(kind.status == 400);
  HttpResponse big_value =
      s.Post("/v1/actions", absl::StrCat(R"({"id":4,"context":{"host":")",
                                         std::string(5000, 'x'),
                                         R"("},"converge_config":{}})"));
  CHECK(big_value.status == 400);
  CHECK(Field(big_value) == "context.host");
  // Nothing of a refused request was applied.
  CHECK(s.Get("/v1/actions/1").status == 404);
}

TEST_CASE("unknown routes are 404, wrong methods 405", "[http][limits]") {
  InProcess s;
  HttpResponse r = s.Get("/v2/actions");
  CHECK(r.status == 404);
  CHECK(Code(r) == "not_found");
  HttpResponse m = s.Get("/v1/actions");
  CHECK(m.status == 405);
  CHECK(m.Header("allow") == "POST");
  CHECK(s.Post("/v1/instances", "").status == 405);
}

TEST_CASE("a body over max_body_bytes is 413 and closes", "[http][limits]") {
  InProcess s(
      R"({"limits":{"max_body_bytes":1000,"max_actions_per_request":2}})");
  auto c = s.Connect();
  absl::StatusOr<HttpResponse> r =
      c->Request("POST", "/v1/actions", std::string(2000, ' '));
  REQUIRE(r.ok());
  CHECK(r->status == 413);
  CHECK(Code(*r) == "resource_exhausted");
  CHECK(c->WaitClosed(absl::Seconds(5)));
  // Chunked bodies are counted too.
  auto chunked = s.Connect();
  REQUIRE(chunked
              ->SendRaw(absl::StrCat(
                  "POST /v1/actions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n7d0\r\n",
                  std::string(2000, ' '), "\r\n0\r\n\r\n"))
              .ok());
  absl::StatusOr<HttpResponse> cr = chunked->ReadResponse();
  REQUIRE(cr.ok());
  CHECK(cr->status == 413);
  // Too many actions in one request.
  HttpResponse many = s.Post("/v1/actions", "[{},{},{}]");
  CHECK(many.status == 413);
  HttpResponse headers =
      s.Get(absl::StrCat("/healthz?", std::string(20000, 'a')));
  CHECK(headers.status == 431);
}

// The in-flight gauge as /metrics shows it.
int64_t Inflight(InProcess& s) {
  const std::string body = s.Get("/metrics").body;
  const std::string key = "converged_http_inflight_requests ";
  const size_t at = body.find("\n" + key);
  if (at == std::string::npos) return -1;
  return std::stoll(body.substr(at + 1 + key.size()));
}

// Sends a POST of `body_bytes` to `c` whole, in 64 KiB writes, then reads
// the answer. The server may answer before it has read the body; the
// client must still be able to send it all and read that answer (no reset).
absl::StatusOr<HttpResponse> PostWhole(HttpConnection& c, size_t body_bytes) {
  absl::Status st = c.SendRaw(
      absl::StrCat("POST /v1/actions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\nContent-Length: ",
                   body_bytes, "\r\n\r\n"));
  const std::string chunk(64 * 1024, ' ');
  for (size_t sent = 0; st.ok() && sent < body_bytes; sent += chunk.size()) {
    st = c.SendRaw(std::string_view(chunk).substr(
        0, std::min(chunk.size(), body_bytes - sent)));
  }
  if (!st.ok()) return st;
  return c.ReadResponse();
}

TEST_CASE(
    "an answer before the body is read lingers: the client can send "
    "its body whole and read the answer",
    "[http][limits]") {
  // 16 MiB is more than the loopback socket buffers of both ends hold, so
  // a server that closed at once would reset the client's writes.
  constexpr size_t kBody = 16 << 20;
  SECTION("413 by Content-Length") {
    InProcess s(R"({"limits":{"max_body_bytes":1000}})");
    auto c = s.Connect();
    absl::StatusOr<HttpResponse> r = PostWhole(*c, kBody);
    REQUIRE(r.ok());
    CHECK(r->status == 413);
    CHECK(c->WaitClosed(absl::Seconds(5)));
  }
  SECTION("429 over max_inflight_requests") {
    // A body the limit takes (else the head alone is a 413).
    InProcess s(
        R"({"limits":{"max_inflight_requests":1,"max_body_bytes":33554432}})");
    auto a = s.Connect();
    REQUIRE(a->SendRaw("POST /v1/actions HTTP/1.1\r\nHost: x\r\n"
                       "Content-Length: 100\r\n\r\n{")
                .ok());
    REQUIRE(PollUntil(absl::Seconds(5), [&] { return Inflight(s) == 1; }));
    auto c = s.Connect();
    absl::StatusOr<HttpResponse> r = PostWhole(*c, kBody);
    REQUIRE(r.ok());
    CHECK(r->status == 429);
  }
  SECTION("503 over max_connections") {
    InProcess s(
        R"({"limits":{"max_connections":1,"max_body_bytes":33554432}})");
    auto a = s.Connect();
    REQUIRE(a->Request("GET", "/healthz", "").ok());
    auto c = s.Connect();
    absl::StatusOr<HttpResponse> r = PostWhole(*c, kBody);
    REQUIRE(r.ok());
    CHECK(r->status == 503);
    CHECK(Code(*r) == "unavailable");
  }
}

TEST_CASE("slow clients are timed out", "[http][limits]") {
  InProcess s(
      R"({"limits":{"header_timeout_ms":200,"body_timeout_ms":200,"idle_timeout_ms":300}})");
  // Headers that never end.
  auto slow = s.Connect();
  REQUIRE(slow->SendRaw("POST /v1/actions HTTP/1.1\r\nHost: x\r\n").ok());
  const absl::Time start = absl::Now();
  CHECK(slow->WaitClosed(absl::Seconds(5)));
  CHECK(absl::Now() - start >= absl::Milliseconds(150));
  // A body that never completes.
  auto body = s.Connect();
  REQUIRE(body->SendRaw("POST /v1/actions HTTP/1.1\r\nHost: "
                        "x\r\nContent-Length: 100\r\n\r\n{")
              .ok());
  CHECK(body->WaitClosed(absl::Seconds(5)));
  // Beast closes a timed-out socket before the server's handler counts the
  // 408, so the count may lag the close by a moment.
  CHECK(PollUntil(absl::Seconds(5), [&] {
    return s.Get("/metrics")
               .body.find("converged_http_requests_total{code=\"408\"} 2") !=
           std::string::npos;
  }));
  // An idle connection is closed without a word.
  auto idle = s.Connect();
  CHECK(idle->WaitClosed(absl::Seconds(5)));
  // A keep-alive connection that is used stays usable.
  auto keep = s.Connect();
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<HttpResponse> k = keep->Request("GET", "/healthz", "");
    REQUIRE(k.ok());
    CHECK(k->status == 200);
  }
}

TEST_CASE("requests over max_inflight_requests get 429 and Retry-After",
          "[http][limits]") {
  InProcess s(
      R"({"limits":{"max_inflight_requests":1,"retry_after_seconds":3}})");
  // One request in flight: its headers are in, its body is not.
  auto a = s.Connect();
  const std::string action = kAction;
  REQUIRE(
      a->SendRaw(absl::StrCat(
                     "POST /v1/actions HTTP/1.1\r\nHost: x\r\nContent-Length: ",
                     action.size(), "\r\n\r\n", action.substr(0, 10)))
          .ok());
  REQUIRE(PollUntil(absl::Seconds(5), [&] { return Inflight(s) == 1; }));
  HttpResponse refused = s.Post("/v1/actions", kAction);
  CHECK(refused.status == 429);
  CHECK(refused.Header("retry-after") == "3");
  CHECK(Code(refused) == "resource_exhausted");
  // Operational routes are never refused.
  CHECK(s.Get("/healthz").status == 200);
  // The request in flight completes normally.
  REQUIRE(a->SendRaw(action.substr(10)).ok());
  absl::StatusOr<HttpResponse> done = a->ReadResponse();
  REQUIRE(done.ok());
  CHECK(done->status == 200);
  // The gauge drops once the response is written, a moment after the
  // client may have read it.
  CHECK(PollUntil(absl::Seconds(5), [&] { return Inflight(s) == 0; }));
  CHECK(s.Post("/v1/actions", kAction).status == 200);
}

TEST_CASE("a full queue is 503 with Retry-After", "[http][limits]") {
  // The sweep and retention tasks make two pending tasks.
  InProcess s(
      R"({"mode":"queued","queue":{"workers":0},"limits":{"max_queue_length":2}})");
  HttpResponse r = s.Post("/v1/actions", kAction);
  CHECK(r.status == 503);
  CHECK(r.Header("retry-after") == "1");
  CHECK(Code(r) == "unavailable");
  CHECK(s.Get("/v1/actions/1").status == 404);
}

TEST_CASE("connections over max_connections get 503", "[http][limits]") {
  InProcess s(R"({"limits":{"max_connections":1}})");
  auto a = s.Connect();
  absl::StatusOr<HttpResponse> first = a->Request("GET", "/healthz", "");
  REQUIRE(first.ok());
  auto b = s.Connect();
  absl::StatusOr<HttpResponse> refused = b->Request("GET", "/healthz", "");
  REQUIRE(refused.ok());
  CHECK(refused->status == 503);
  CHECK(refused->Header("retry-after") == "1");
}

TEST_CASE("draining answers 503 to new requests", "[http][limits]") {
  InProcess s;
  auto keep = s.Connect();
  REQUIRE(keep->Request("GET", "/healthz", "").ok());
  s.service->BeginDrain();
  CHECK(s.Get("/readyz").status == 503);
}

}  // namespace
}  // namespace converge::service::testing
