#include "client.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "internal/hash.h"
#include "internal/strings.h"

namespace converge::redis::internal_redis {
namespace {

using converge::internal::AV;
using converge::internal::StrCat;

Reply Convert(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(Convert(r->element[i]));
      }
      break;
    default:
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

// hiredis writes with write(2), so a write to a server that has closed the
// connection (a restart, CLIENT KILL, a unix socket whose peer is gone)
// raises SIGPIPE, whose default action ends the host process. For the
// scope of a round trip SIGPIPE is blocked on the calling thread, and one
// raised meanwhile is taken off the pending set before the thread's mask
// is restored: the write fails with EPIPE instead, and the call returns
// kUnavailable. A SIGPIPE already pending before the scope is left alone.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      return;  // not ours: leave it to the host
    }
    active_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeGuard() {
    if (!active_) return;
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec now{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool active_ = false;
};

bool IsNoScript(const Reply& r) {
  return r.is_error() && absl::StartsWith(r.str, "NOSCRIPT");
}

}  // namespace

Command& Command::Arg(int64_t v) {
  args.push_back(StrCat(v));
  return *this;
}

Script::Script(std::string_view n, std::string t)
    : name(n), text(std::move(t)) {
  converge::internal::AppendSha1Hex(text, &sha);
}

Command EvalCommand(const Script& script, absl::Span<const std::string> keys,
                    absl::Span<const std::string> args) {
  Command c;
  c.args.reserve(3 + keys.size() + args.size());
  c.Arg("EVALSHA").Arg(script.sha).Arg(static_cast<int64_t>(keys.size()));
  for (const std::string& k : keys) c.args.push_back(k);
  for (const std::string& a : args) c.args.push_back(a);
  return c;
}

// One hiredis connection.
class Client::Conn {
 public:
  explicit Conn(redisContext* ctx) : ctx_(ctx) {}
  ~Conn() {
    if (ctx_ != nullptr) redisFree(ctx_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  redisContext* ctx() const { return ctx_; }

  // True if the server closed the connection while it sat in the pool (a
  // restarted server): a pending EOF or error shows as readable. Costs a
  // poll(2), no round trip, so that a command is never sent on a
  // connection known to be dead (whether it ran would be unknowable).
  bool Stale() const {
    pollfd p{};
    p.fd = ctx_->fd;
    p.events = POLLIN | POLLRDHUP;
    return poll(&p, 1, 0) != 0;
  }

  // Sends `commands` and reads one reply per command. False on a
  // connection failure (ctx()->err says which).
  bool RoundTrip(absl::Span<const Command> commands, std::vector<Reply>* out) {
    const SigpipeGuard no_sigpipe;
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const Command& c : commands) {
      argv.clear();
      lens.clear();
      for (const std::string& a : c.args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()),
                                 argv.data(), lens.data()) != REDIS_OK) {
        return false;
      }
    }
    out->clear();
    out->reserve(commands.size());
    for (size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
        saved_errno_ = errno;
        return false;
      }
      out->push_back(Convert(static_cast<redisReply*>(raw)));
      freeReplyObject(raw);
    }
    return true;
  }

  int saved_errno() const { return saved_errno_; }

 private:
  redisContext* ctx_;
  int saved_errno_ = 0;
};

Client::Client(const RedisOptions& options) : options_(options) {
  server_ = options.unix_socket.empty()
                ? StrCat(options.host, ":", options.port)
                : options.unix_socket;
}

Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const RedisOptions& options) {
  auto bad = [](std::string_view field, std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("redis: options.", field, ": ", why));
  };
  if (options.unix_socket.empty()) {
    if (options.host.empty()) return bad("host", "empty");
    if (options.port < 1 || options.port > 65535) {
      return bad("port", StrCat(options.port, " is outside 1..65535"));
    }
  }
  if (options.db < 0) return bad("db", "must be >= 0");
  if (options.pool_size < 1) return bad("pool_size", "must be >= 1");
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return bad("connect_timeout", "must be > 0");
  }
  if (options.command_timeout < absl::ZeroDuration()) {
    return bad("command_timeout", "must be >= 0");
  }
  std::unique_ptr<Client> client(new Client(options));
  absl::StatusOr<std::unique_ptr<Conn>> first = client->Borrow();
  if (!first.ok()) return first.status();
  client->Return(*std::move(first), true);
  return client;
}

absl::Status Client::ConnStatus(const Conn& conn, std::string_view what) const {
  const redisContext* c = conn.ctx();
  const int e = conn.saved_errno();
  if (c->err == REDIS_ERR_IO && (e == EAGAIN || e == EWOULDBLOCK)) {
    return absl::DeadlineExceededError(
        StrCat("redis: ", server_, ": ", what, ": no reply within ",
               absl::FormatDuration(options_.command_timeout),
               " (the connection is dropped; the command may have run)"));
  }
  std::string detail = c->errstr[0] != '\0' ? c->errstr : "connection failed";
  return absl::UnavailableError(
      StrCat("redis: ", server_, ": ", what, ": ", detail));
}

absl::StatusOr<std::unique_ptr<Client::Conn>> Client::Open() {
  const timeval connect_tv = absl::ToTimeval(options_.connect_timeout);
  redisContext* ctx = options_.unix_socket.empty()
                          ? redisConnectWithTimeout(options_.host.c_str(),
                                                    options_.port, connect_tv)
                          : redisConnectUnixWithTimeout(
                                options_.unix_socket.c_str(), connect_tv);
  if (ctx == nullptr) {
    return absl::ResourceExhaustedError(
        StrCat("redis: ", server_, ": cannot allocate a connection"));
  }
  auto conn = std::make_unique<Conn>(ctx);
  if (ctx->err != 0) {
    return absl::UnavailableError(
        StrCat("redis: ", server_, ": connect: ", ctx->errstr));
  }
  if (options_.unix_socket.empty()) redisEnableKeepAlive(ctx);
  // The handshake runs under the connect timeout.
  redisSetTimeout(ctx, connect_tv);
  std::vector<Command> hello;
  if (!options_.password.empty()) {
    Command auth;
    auth.Arg("AUTH");
    if (!options_.user.empty()) auth.Arg(options_.user);
    auth.Arg(options_.password);
    hello.push_back(std::move(auth));
  }
  if (options_.db != 0) {
    hello.push_back(Command().Arg("SELECT").Arg(int64_t{options_.db}));
  }
  hello.push_back(Command().Arg("PING"));
  std::vector<Reply> replies;
  if (!conn->RoundTrip(hello, &replies)) {
    absl::Status st = ConnStatus(*conn, "connect");
    if (absl::IsDeadlineExceeded(st)) {
      return absl::UnavailableError(
          StrCat("redis: ", server_, ": connect: no answer within ",
                 absl::FormatDuration(options_.connect_timeout)));
    }
    return st;
  }
  for (size_t i = 0; i < replies.size(); ++i) {
    if (!replies[i].is_error()) continue;
    const std::string_view verb(hello[i].args[0]);
    // A server that cannot serve now (at maxclients, loading) answers the
    // first command, whichever it is, with that: retry later, not a
    // password or a database number to fix.
    absl::Status st = ReplyStatus(replies[i].str);
    if (absl::IsUnavailable(st) || absl::IsResourceExhausted(st)) {
      return absl::Status(st.code(), StrCat(st.message(), " (", verb, ")"));
    }
    if (verb == "AUTH") {
      return absl::PermissionDeniedError(
          StrCat("redis: ", server_, ": AUTH: ", replies[i].str));
    }
    if (verb == "SELECT") {
      return absl::InvalidArgumentError(StrCat(
          "redis: ", server_, ": SELECT ", options_.db, ": ", replies[i].str));
    }
    return absl::Status(st.code(), StrCat(st.message(), " (PING)"));
  }
  timeval command_tv{0, 0};  // 0: no limit
  if (options_.command_timeout > absl::ZeroDuration()) {
    command_tv = absl::ToTimeval(options_.command_timeout);
  }
  redisSetTimeout(ctx, command_tv);
  return conn;
}

absl::StatusOr<std::unique_ptr<Client::Conn>> Client::Borrow() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    while (!idle_.empty()) {
      std::unique_ptr<Conn> conn = std::move(idle_.back());
      idle_.pop_back();
      if (!conn->Stale()) return conn;
      --open_;  // closed by the server: drop it, look again
    }
    if (open_ < options_.pool_size) break;
    cv_.wait(lock);
  }
  ++open_;
  lock.unlock();
  absl::StatusOr<std::unique_ptr<Conn>> conn = Open();
  if (!conn.ok()) {
    lock.lock();
    --open_;
    cv_.notify_one();
  }
  return conn;
}

void Client::Return(std::unique_ptr<Conn> conn, bool healthy) {
  std::lock_guard<std::mutex> lock(mu_);
  if (healthy) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
    conn.reset();
  }
  cv_.notify_one();
}

absl::StatusOr<std::vector<Reply>> Client::Pipeline(
    absl::Span<const Command> commands) {
  std::vector<Reply> replies;
  if (commands.empty()) return replies;
  absl::StatusOr<std::unique_ptr<Conn>> conn = Borrow();
  const absl::Time start = absl::Now();
  absl::Status st;
  if (conn.ok()) {
    if (!(*conn)->RoundTrip(commands, &replies)) {
      st = ConnStatus(**conn, commands.size() == 1
                                  ? std::string_view(commands[0].args[0])
                                  : std::string_view("pipeline"));
    }
    Return(*std::move(conn), st.ok());
  } else {
    st = conn.status();
  }
  round_trips_.fetch_add(1, std::memory_order_relaxed);
  if (options_.observer != nullptr) {
    options_.observer->OnRoundTrip(static_cast<int>(commands.size()),
                                   absl::Now() - start, st);
  }
  if (!st.ok()) return st;
  return replies;
}

absl::StatusOr<Reply> Client::Call(const Command& command) {
  absl::StatusOr<std::vector<Reply>> r = Pipeline({&command, 1});
  if (!r.ok()) return r.status();
  return std::move(r->front());
}

absl::StatusOr<std::vector<Reply>> Client::EvalPipeline(
    absl::Span<const Command> evals, absl::Span<const Script* const> scripts) {
  absl::StatusOr<std::vector<Reply>> replies = Pipeline(evals);
  if (!replies.ok()) return replies.status();
  // NOSCRIPT: the server lost its script cache (restart, SCRIPT FLUSH). A
  // NOSCRIPT command did not run, so running it again is safe.
  std::vector<size_t> again;
  for (size_t i = 0; i < replies->size(); ++i) {
    if (IsNoScript((*replies)[i])) again.push_back(i);
  }
  for (int round = 0; !again.empty() && round < 3; ++round) {
    std::vector<Command> commands;
    std::vector<const Script*> loaded;
    for (size_t i : again) {
      bool seen = false;
      for (const Script* s : loaded) seen = seen || s == scripts[i];
      if (seen) continue;
      loaded.push_back(scripts[i]);
      commands.push_back(
          Command().Arg("SCRIPT").Arg("LOAD").Arg(scripts[i]->text));
    }
    const size_t loads = commands.size();
    for (size_t i : again) commands.push_back(evals[i]);
    absl::StatusOr<std::vector<Reply>> retry = Pipeline(commands);
    if (!retry.ok()) return retry.status();
    for (size_t j = 0; j < loads; ++j) {
      if ((*retry)[j].is_error()) {
        absl::Status st = ReplyStatus((*retry)[j].str);
        return absl::Status(st.code(), StrCat(st.message(), " (SCRIPT LOAD ",
                                              loaded[j]->name, ")"));
      }
    }
    std::vector<size_t> still;
    for (size_t j = 0; j < again.size(); ++j) {
      Reply& r = (*retry)[loads + j];
      if (IsNoScript(r)) still.push_back(again[j]);
      (*replies)[again[j]] = std::move(r);
    }
    again = std::move(still);
  }
  return replies;
}

absl::StatusOr<Reply> Client::Eval(const Script& script,
                                   absl::Span<const std::string> keys,
                                   absl::Span<const std::string> args) {
  const Command command = EvalCommand(script, keys, args);
  const Script* s = &script;
  absl::StatusOr<std::vector<Reply>> r = EvalPipeline({&command, 1}, {&s, 1});
  if (!r.ok()) return r.status();
  Reply& reply = r->front();
  if (reply.is_error()) return ReplyStatus(reply.str);
  return std::move(reply);
}

absl::Status Client::LoadScripts(absl::Span<const Script* const> scripts) {
  std::vector<Command> commands;
  for (const Script* s : scripts) {
    commands.push_back(Command().Arg("SCRIPT").Arg("LOAD").Arg(s->text));
  }
  absl::StatusOr<std::vector<Reply>> r = Pipeline(commands);
  if (!r.ok()) return r.status();
  for (size_t i = 0; i < r->size(); ++i) {
    const Reply& reply = (*r)[i];
    if (reply.is_error()) {
      absl::Status st = ReplyStatus(reply.str);
      return absl::Status(st.code(), StrCat(st.message(), " (SCRIPT LOAD ",
                                            scripts[i]->name, ")"));
    }
    if (reply.str != scripts[i]->sha) {
      return absl::InternalError(
          StrCat("redis: ", server_, ": SCRIPT LOAD ", scripts[i]->name,
                 " returned SHA ", reply.str, ", expected ", scripts[i]->sha));
    }
  }
  return absl::OkStatus();
}

absl::Status Client::ReplyStatus(std::string_view text) const {
  // The error class is the first word (Redis' convention, which the
  // scripts' redis.error_reply keeps).
  std::string_view cls = text.substr(0, text.find(' '));
  std::string message = StrCat("redis: ", server_, ": ", text);
  if (cls == "INVALIDARGUMENT") return absl::InvalidArgumentError(message);
  if (cls == "FAILEDPRECONDITION" || cls == "WRONGTYPE") {
    return absl::FailedPreconditionError(message);
  }
  if (cls == "NOTFOUND") return absl::NotFoundError(message);
  if (cls == "ALREADYEXISTS") return absl::AlreadyExistsError(message);
  if (cls == "DATALOSS") return absl::DataLossError(message);
  // The server cannot serve now: loading its data after a restart, busy
  // with a long script, a replica after a failover, no master, shutting
  // down, a cluster slot that moved, or at its maxclients. Retry later.
  if (cls == "LOADING" || cls == "BUSY" || cls == "READONLY" ||
      cls == "MASTERDOWN" || cls == "TRYAGAIN" || cls == "CLUSTERDOWN" ||
      cls == "MOVED" || cls == "ASK" || cls == "NOREPLICAS" ||
      absl::StartsWith(AV(text), "ERR Errors trying to SHUTDOWN") ||
      absl::StartsWith(AV(text), "ERR max number of clients reached")) {
    return absl::UnavailableError(message);
  }
  if (cls == "OOM") return absl::ResourceExhaustedError(message);
  if (cls == "NOAUTH" || cls == "NOPERM" || cls == "WRONGPASS") {
    return absl::PermissionDeniedError(message);
  }
  return absl::InternalError(message);
}

}  // namespace converge::redis::internal_redis
