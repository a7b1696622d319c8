#include "http_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace converge::service {
namespace {

absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

int TimeoutMs(absl::Duration d) {
  const int64_t ms = absl::ToInt64Milliseconds(d);
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

absl::Status Errno(std::string_view what) {
  return absl::UnavailableError(
      absl::StrCat("http: ", Av(what), ": ", std::strerror(errno)));
}

// Waits for `events` on fd.
absl::Status WaitFd(int fd, short events, absl::Duration timeout,
                    std::string_view what) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int n = ::poll(&p, 1, TimeoutMs(timeout));
    if (n > 0) return absl::OkStatus();
    if (n == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("http: ", Av(what), " timed out"));
    }
    if (errno != EINTR) return Errno(what);
  }
}

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  auto it = headers.find(absl::AsciiStrToLower(Av(name)));
  return it == headers.end() ? "" : it->second;
}

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::Connect(
    std::string_view host, uint16_t port, absl::Duration timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string h(host);
  const std::string p = std::to_string(port);
  if (int rc = ::getaddrinfo(h.c_str(), p.c_str(), &hints, &res); rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("http: cannot resolve ", h, ": ", ::gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError("http: no address");
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd =
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                 ai->ai_protocol);
    if (fd < 0) {
      last = Errno("socket");
      continue;
    }
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      absl::Status st = WaitFd(fd, POLLOUT, timeout, "connect");
      if (st.ok()) {
        int err = 0;
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      } else {
        last = st;
        ::close(fd);
        continue;
      }
    }
    if (rc != 0) {
      last = Errno(absl::StrCat("connect to ", h, ":", port));
      ::close(fd);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::freeaddrinfo(res);
    return std::unique_ptr<HttpConnection>(new HttpConnection(fd, h, timeout));
  }
  ::freeaddrinfo(res);
  return last;
}

HttpConnection::~HttpConnection() { ::close(fd_); }

void HttpConnection::Limit(absl::Time deadline, size_t max_response_bytes) {
  deadline_ = deadline;
  max_response_bytes_ = max_response_bytes;
}

absl::StatusOr<absl::Duration> HttpConnection::Wait(
    std::string_view what) const {
  const absl::Duration left = deadline_ - absl::Now();
  if (left <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError(
        absl::StrCat("http: ", Av(what), " timed out"));
  }
  return std::min(timeout_, left);
}

absl::Status HttpConnection::SendRaw(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      absl::StatusOr<absl::Duration> wait = Wait("write");
      if (!wait.ok()) return wait.status();
      absl::Status st = WaitFd(fd_, POLLOUT, *wait, "write");
      if (!st.ok()) return st;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return Errno("write");
  }
  return absl::OkStatus();
}

absl::Status HttpConnection::Fill() {
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  char chunk[16384];
  for (;;) {
    if (absl::Now() >= deadline_) {
      return absl::DeadlineExceededError("http: read timed out");
    }
    const ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n > 0) {
      read_bytes_ += static_cast<size_t>(n);
      if (max_response_bytes_ > 0 && read_bytes_ > max_response_bytes_) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "http: response larger than ", max_response_bytes_, " bytes"));
      }
      buf_.append(chunk, static_cast<size_t>(n));
      return absl::OkStatus();
    }
    if (n == 0) return absl::OutOfRangeError("http: connection closed");
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      absl::StatusOr<absl::Duration> wait = Wait("read");
      if (!wait.ok()) return wait.status();
      absl::Status st = WaitFd(fd_, POLLIN, *wait, "read");
      if (!st.ok()) return st;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) {
      return absl::OutOfRangeError("http: connection reset");
    }
    return Errno("read");
  }
}

absl::StatusOr<std::string> HttpConnection::ReadLine() {
  for (;;) {
    const size_t eol = buf_.find("\r\n", pos_);
    if (eol != std::string::npos) {
      std::string line = buf_.substr(pos_, eol - pos_);
      pos_ = eol + 2;
      return line;
    }
    absl::Status st = Fill();
    if (!st.ok()) return st;
  }
}

absl::StatusOr<std::string> HttpConnection::ReadExact(size_t n) {
  while (buf_.size() - pos_ < n) {
    absl::Status st = Fill();
    if (!st.ok()) return st;
  }
  std::string out = buf_.substr(pos_, n);
  pos_ += n;
  return out;
}

absl::StatusOr<HttpResponse> HttpConnection::ReadResponse() {
  HttpResponse r;
  read_bytes_ = buf_.size() - pos_;  // what came with the last response
  absl::StatusOr<std::string> status = ReadLine();
  if (!status.ok()) return status.status();
  // "HTTP/1.1 200 OK"
  const size_t sp = status->find(' ');
  if (sp == std::string::npos ||
      !absl::SimpleAtoi(Av(std::string_view(*status).substr(sp + 1, 3)),
                        &r.status)) {
    return absl::DataLossError(
        absl::StrCat("http: bad status line \"", *status, "\""));
  }
  for (;;) {
    absl::StatusOr<std::string> line = ReadLine();
    if (!line.ok()) return line.status();
    if (line->empty()) break;
    const size_t colon = line->find(':');
    if (colon == std::string::npos) continue;
    r.headers[absl::AsciiStrToLower(line->substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(
            Av(std::string_view(*line).substr(colon + 1))));
  }
  const std::string te = absl::AsciiStrToLower(r.Header("transfer-encoding"));
  const std::string cl = r.Header("content-length");
  if (te == "chunked") {
    for (;;) {
      absl::StatusOr<std::string> size_line = ReadLine();
      if (!size_line.ok()) return size_line.status();
      size_t size = 0;
      if (!absl::SimpleHexAtoi(
              Av(std::string_view(*size_line).substr(0, size_line->find(';'))),
              &size)) {
        return absl::DataLossError("http: bad chunk size");
      }
      if (size == 0) {
        // Trailers, up to the empty line.
        for (;;) {
          absl::StatusOr<std::string> t = ReadLine();
          if (!t.ok()) return t.status();
          if (t->empty()) break;
        }
        break;
      }
      absl::StatusOr<std::string> data = ReadExact(size + 2);
      if (!data.ok()) return data.status();
      r.body.append(*data, 0, size);
    }
  } else if (!cl.empty()) {
    size_t n = 0;
    if (!absl::SimpleAtoi(Av(cl), &n)) {
      return absl::DataLossError("http: bad Content-Length");
    }
    absl::StatusOr<std::string> data = ReadExact(n);
    if (!data.ok()) return data.status();
    r.body = *std::move(data);
  } else if (r.status != 204 && r.status != 304) {
    // Until the close.
    for (;;) {
      absl::Status st = Fill();
      if (absl::IsOutOfRange(st)) break;
      if (!st.ok()) return st;
    }
    r.body = buf_.substr(pos_);
    pos_ = buf_.size();
  }
  return r;
}

absl::StatusOr<HttpResponse> HttpConnection::Request(
    std::string_view method, std::string_view target, std::string_view body,
    std::string_view content_type, const std::vector<std::string>& headers) {
  std::string req = absl::StrCat(Av(method), " ", Av(target),
                                 " HTTP/1.1\r\nHost: ", host_, "\r\n");
  if (!body.empty() || method == "POST" || method == "PUT") {
    absl::StrAppend(&req, "Content-Type: ", Av(content_type),
                    "\r\nContent-Length: ", body.size(), "\r\n");
  }
  for (const std::string& h : headers) absl::StrAppend(&req, h, "\r\n");
  req += "\r\n";
  req.append(body.data(), body.size());
  absl::Status st = SendRaw(req);
  if (!st.ok()) return st;
  return ReadResponse();
}

bool HttpConnection::WaitClosed(absl::Duration wait) {
  const absl::Time deadline = absl::Now() + wait;
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd p{fd_, POLLIN, 0};
    const int n = ::poll(&p, 1, TimeoutMs(left));
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EINTR) continue;
      return true;
    }
    char c[4096];
    const ssize_t r = ::recv(fd_, c, sizeof(c), 0);
    if (r == 0) return true;
    if (r < 0 && errno != EAGAIN && errno != EINTR) return true;
    // Data (an error response before the close): keep reading.
  }
}

absl::Status ParseHttpUrl(std::string_view url, std::string* host,
                          uint16_t* port, std::string* target) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: expected an http:// URL, got \"", Av(url), "\""));
  }
  url.remove_prefix(kScheme.size());
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  *target =
      slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  *port = 80;
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos &&
      authority.find(']', colon) == std::string_view::npos) {
    uint32_t p = 0;
    if (!absl::SimpleAtoi(Av(authority.substr(colon + 1)), &p) || p == 0 ||
        p > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("http: bad port in \"", Av(url), "\""));
    }
    *port = static_cast<uint16_t>(p);
    authority = authority.substr(0, colon);
  }
  if (authority.size() >= 2 && authority.front() == '[') {
    authority = authority.substr(1, authority.size() - 2);
  }
  if (authority.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: no host in \"", Av(url), "\""));
  }
  *host = std::string(authority);
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> HttpFetch(std::string_view host, uint16_t port,
                                       std::string_view method,
                                       std::string_view target,
                                       std::string_view body,
                                       absl::Duration timeout,
                                       size_t max_response_bytes) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::StatusOr<std::unique_ptr<HttpConnection>> c =
      HttpConnection::Connect(host, port, timeout);
  if (!c.ok()) return c.status();
  (*c)->Limit(deadline, max_response_bytes);
  return (*c)->Request(method, target, body);
}

}  // namespace converge::service
