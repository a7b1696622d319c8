// Redis-specific tests: options and URIs, the key layout on the server,
// round trips per decision, leases on the server's clock, scripts reloaded
// after NOSCRIPT, reconnection after a restart, timeouts, and how Redis
// errors map to codes. The store contracts are tested by conformance_redis.

#include "converge/redis/redis_store.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "converge/manager.h"
#include "converge/sqlite/sqlite_store.h"
#include "converge/store/wrappers.h"
#include "private_server.h"
#include "support/redis_server.h"
#include "support/redis_test_env.h"
#include "unit/builders.h"

namespace converge::testing {
namespace {

// A raw connection, for looking at what the stores wrote.
struct Raw {
  explicit Raw(const redis::RedisOptions& o) {
    ctx = redisConnect(o.host.c_str(), o.port);
    REQUIRE(ctx != nullptr);
    REQUIRE(ctx->err == 0);
    if (o.db != 0) Cmd({"SELECT", std::to_string(o.db)});
  }
  ~Raw() { redisFree(ctx); }

  // The reply as text: strings and integers as themselves, nil as "(nil)",
  // errors as "ERR:<text>", arrays as "[a,b,...]".
  std::string Cmd(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisReply* r = static_cast<redisReply*>(redisCommandArgv(
        ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
    REQUIRE(r != nullptr);
    std::string out = Text(r);
    freeReplyObject(r);
    return out;
  }
  static std::string Text(const redisReply* r) {
    switch (r->type) {
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_STATUS:
        return std::string(r->str, r->len);
      case REDIS_REPLY_ERROR:
        return "ERR:" + std::string(r->str, r->len);
      case REDIS_REPLY_INTEGER:
        return std::to_string(r->integer);
      case REDIS_REPLY_ARRAY: {
        std::string s = "[";
        for (size_t i = 0; i < r->elements; ++i) {
          if (i > 0) s += ",";
          s += Text(r->element[i]);
        }
        return s + "]";
      }
      default:
        return "(nil)";
    }
  }
  redisContext* ctx;
};

redis::RedisOptions Options(const Clock* clock = nullptr) {
  absl::StatusOr<redis::RedisOptions> o = TestRedisOptions();
  REQUIRE(o.ok());
  o->clock = clock;
  return *o;
}

redis::RedisStores Open(const redis::RedisOptions& o) {
  absl::StatusOr<redis::RedisStores> s = redis::OpenRedisStores(o);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return *std::move(s);
}

// ---- options and URIs ----

TEST_CASE("ParseRedisUri", "[redis]") {
  auto o = redis::ParseRedisUri("redis://localhost");
  REQUIRE(o.ok());
  CHECK(o->host == "localhost");
  CHECK(o->port == 6379);
  CHECK(o->db == 0);
  CHECK(o->password.empty());

  o = redis::ParseRedisUri(
      "redis://alice:p%40ss@10.0.0.1:7000/3?key_prefix=app.&pool_size=4&"
      "connect_timeout_ms=250&command_timeout_ms=0&gc_grace_ms=-1");
  REQUIRE(o.ok());
  CHECK(o->user == "alice");
  CHECK(o->password == "p@ss");
  CHECK(o->host == "10.0.0.1");
  CHECK(o->port == 7000);
  CHECK(o->db == 3);
  CHECK(o->key_prefix == "app.");
  CHECK(o->pool_size == 4);
  CHECK(o->connect_timeout == absl::Milliseconds(250));
  CHECK(o->command_timeout == absl::ZeroDuration());
  CHECK(o->gc_grace < absl::ZeroDuration());

  o = redis::ParseRedisUri("redis://secret@[::1]:6380");
  REQUIRE(o.ok());
  CHECK(o->user.empty());
  CHECK(o->password == "secret");
  CHECK(o->host == "::1");
  CHECK(o->port == 6380);

  o = redis::ParseRedisUri("unix:///run/redis/redis.sock?db=2");
  REQUIRE(o.ok());
  CHECK(o->unix_socket == "/run/redis/redis.sock");
  CHECK(o->db == 2);

  for (const char* bad :
       {"sqlite:x.db", "redis://", "redis://h:0", "redis://h:65536",
        "redis://h:x", "redis://h/-1", "redis://h/x", "redis://h?nope=1",
        "redis://h?pool_size=0", "redis://h?db", "unix://relative.sock",
        "redis://[::1", "redis://h?key_prefix=%zz"}) {
    INFO(bad);
    CHECK(redis::ParseRedisUri(bad).status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("OpenRedisStores refuses bad options, naming the field", "[redis]") {
  auto code_of = [](redis::RedisOptions o, std::string_view field) {
    absl::StatusOr<redis::RedisStores> s = redis::OpenRedisStores(o);
    INFO(s.status().ToString());
    CHECK(absl::StrContains(s.status().message(),
                            absl::string_view(field.data(), field.size())));
    return s.status().code();
  };
  const redis::RedisOptions good = Options();
  redis::RedisOptions o = good;
  o.host = "";
  CHECK(code_of(o, "host") == absl::StatusCode::kInvalidArgument);
  o = good;
  o.port = 70000;
  CHECK(code_of(o, "port") == absl::StatusCode::kInvalidArgument);
  o = good;
  o.db = -1;
  CHECK(code_of(o, "db") == absl::StatusCode::kInvalidArgument);
  o = good;
  o.pool_size = 0;
  CHECK(code_of(o, "pool_size") == absl::StatusCode::kInvalidArgument);
  o = good;
  o.connect_timeout = absl::ZeroDuration();
  CHECK(code_of(o, "connect_timeout") == absl::StatusCode::kInvalidArgument);
  o = good;
  o.command_timeout = -absl::Seconds(1);
  CHECK(code_of(o, "command_timeout") == absl::StatusCode::kInvalidArgument);
  o = good;
  o.db = 1000;  // the server has 16
  CHECK(code_of(o, "SELECT") == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a server that is not there is kUnavailable", "[redis]") {
  std::optional<PrivateServer> gone(std::in_place);
  redis::RedisOptions o = gone->Options();
  gone.reset();  // stopped: nothing listens on its port now
  absl::StatusOr<redis::RedisStores> s = redis::OpenRedisStores(o);
  INFO(s.status().ToString());
  CHECK(s.status().code() == absl::StatusCode::kUnavailable);
  CHECK(absl::StartsWith(s.status().message(),
                         absl::StrCat("redis: 127.0.0.1:", o.port, ": ")));
}

TEST_CASE("AUTH, and a refused password is kPermissionDenied", "[redis]") {
  PrivateServer server({"--requirepass", "s3cret"});
  redis::RedisOptions o = server.Options();
  CHECK(redis::OpenRedisStores(o).status().code() ==
        absl::StatusCode::kPermissionDenied);  // NOAUTH on PING
  o.password = "wrong";
  absl::StatusOr<redis::RedisStores> s = redis::OpenRedisStores(o);
  CHECK(s.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(absl::StrContains(s.status().message(), "AUTH"));
  o.password = "s3cret";
  o.db = 5;
  redis::RedisStores ok = Open(o);
  CHECK(ok.lock->TryAcquire("L", "t", absl::Seconds(5)).value());
  Raw raw(o);
  CHECK(raw.Cmd({"AUTH", "s3cret"}) == "OK");
  CHECK(raw.Cmd({"SELECT", "5"}) == "OK");
  CHECK(raw.Cmd({"HGET", "own.L", "token"}) == "t");
}

TEST_CASE("a server at maxclients is kUnavailable, not a refused password",
          "[redis]") {
  PrivateServer server({"--requirepass", "s3cret", "--maxclients", "1"});
  redis::RedisOptions o = server.Options();
  o.password = "s3cret";
  {
    Raw holder(o);  // the one client the server takes
    CHECK(holder.Cmd({"AUTH", "s3cret"}) == "OK");
    // The server writes "ERR max number of clients reached" and closes the
    // connection: the client reads that error as the answer to AUTH, or
    // (what redis-server 7.0 on loopback gives, the close overtaking the
    // error) a closed or reset connection. Either way the caller should
    // retry later: kUnavailable, never kPermissionDenied.
    absl::StatusOr<redis::RedisStores> s = redis::OpenRedisStores(o);
    INFO(s.status().ToString());
    CHECK(s.status().code() == absl::StatusCode::kUnavailable);
  }
  // Once the other client has gone, the same options connect.
  absl::StatusOr<redis::RedisStores> s;
  for (int i = 0; i < 100; ++i) {
    s = redis::OpenRedisStores(o);
    if (s.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(s.ok());
  CHECK(s->lock->TryAcquire("L", "t", absl::Seconds(5)).value());
}

TEST_CASE("a unix socket", "[redis]") {
  PrivateServer server({"--unixsocket", "{dir}/redis.sock"});
  const std::string sock = server.dir + "/redis.sock";
  absl::StatusOr<redis::RedisOptions> o =
      redis::ParseRedisUri(absl::StrCat("unix://", sock, "?key_prefix=u."));
  REQUIRE(o.ok());
  redis::RedisStores s = Open(*o);
  CHECK(s.lock->TryAcquire("L", "t", absl::Seconds(5)).value());
  CHECK_FALSE(s.lock->TryAcquire("L", "u", absl::Seconds(5)).value());
}

TEST_CASE(
    "a server that closes the connection in the middle of a write is "
    "kUnavailable, not a SIGPIPE that ends the process",
    "[redis]") {
  // The server drops a client whose unread input passes 1 MB, while the
  // client is still writing an 8 MB task: the client's next write(2) meets
  // a closed unix socket (EPIPE, and SIGPIPE, whose default action would
  // end this test's process).
  PrivateServer server({"--unixsocket", "{dir}/redis.sock",
                        "--client-query-buffer-limit", "1mb"});
  struct sigaction before {};
  REQUIRE(sigaction(SIGPIPE, nullptr, &before) == 0);
  REQUIRE(before.sa_handler == SIG_DFL);  // as in a host that did not ask
  redis::RedisOptions o;
  o.unix_socket = server.dir + "/redis.sock";
  o.key_prefix = "pipe.";
  redis::RedisStores s = Open(o);
  Task big;
  big.id = "big";
  big.kind = "k";
  big.due = T(1000);
  big.payload.assign(8 << 20, 'x');
  for (int i = 0; i < 3; ++i) {
    absl::Status st = s.queue->Enqueue("q", big);
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kUnavailable);
  }
  // No SIGPIPE left pending or blocked on this thread.
  sigset_t pending;
  sigemptyset(&pending);
  REQUIRE(sigpending(&pending) == 0);
  CHECK(sigismember(&pending, SIGPIPE) == 0);
  sigset_t mask;
  REQUIRE(pthread_sigmask(SIG_BLOCK, nullptr, &mask) == 0);
  CHECK(sigismember(&mask, SIGPIPE) == 0);
  // The stores go on with a new connection.
  Task small = big;
  small.id = "small";
  small.payload = "p";
  CHECK(s.queue->Enqueue("q", small).ok());
  CHECK(s.queue->Stats("q").value().pending == 1);
}

// ---- layout ----

TEST_CASE("keys on upstream's templates, expiry as data", "[redis]") {
  VirtualClock clock(T(1700000000));
  redis::RedisOptions o = Options(&clock);
  redis::RedisStores s = Open(o);
  Raw raw(o);
  const std::string& p = o.key_prefix;

  // K2: a sorted set of "action_<id>" scored by epoch seconds (upstream's
  // reader sees what it wrote); its expiry in a companion key, and a real
  // TTL of the time left plus gc_grace.
  const std::string k2 =
      "bkmonitorv3.ee.{s42}.fta_action.converge.42.alert_info.x";
  WindowRequest req;
  req.add = {WindowEntry{k2, "action_7", T(1700000000)},
             WindowEntry{k2, "action_8", T(1700000000.25)}};
  req.key_ttl = absl::Seconds(1800);
  REQUIRE(s.window->Apply(req).ok());
  CHECK(raw.Cmd({"ZRANGE", p + k2, "0", "-1", "WITHSCORES"}) ==
        "[action_7,1700000000,action_8,1700000000.25]");
  const std::string meta = p + "converge.expires:" + k2;
  CHECK(raw.Cmd({"GET", meta}) ==
        std::to_string((int64_t{1700000000} + 1800) * 1000000));
  const int64_t ttl = std::stoll(raw.Cmd({"PTTL", p + k2}));
  CHECK(ttl > (1800 + 60 - 5) * 1000);
  CHECK(ttl <= (1800 + 60) * 1000);

  // K4: an integer string (upstream INCR), expiry as for K2.
  const std::string k4 =
      "bkmonitorv3.ee.{s0}.fta_action.sub_converge.lock.2.a.b.c.1";
  REQUIRE(s.window->Increment(k4, absl::Seconds(120), 2).ok());
  REQUIRE(s.window->Increment(k4, absl::Seconds(120), 2).ok());
  CHECK(raw.Cmd({"GET", p + k4}) == "2");
  CHECK(raw.Cmd({"TYPE", p + k4}) == "string");

  // K5: a hash of the owner's token and the expiry on the clock.
  const std::string k5 =
      "bkmonitorv3.ee.{dabc}.fta_action.converge.D.process.lock";
  REQUIRE(s.lock->TryAcquire(k5, "tok", absl::Seconds(60)).value());
  CHECK(raw.Cmd({"HGETALL", p + k5}) ==
        absl::StrCat("[token,tok,expires,",
                     (int64_t{1700000000} + 60) * 1000000, "]"));
  CHECK(std::stoll(raw.Cmd({"PTTL", p + k5})) > 60 * 1000);

  // Queues: five keys under the queue's hash tag.
  Task t;
  t.id = "summary:1";
  t.kind = "summary";
  t.due = T(1700000060);
  REQUIRE(s.queue->Enqueue("converge", t).ok());
  CHECK(raw.Cmd({"ZCARD", p + "converge.queue.{converge}.pending"}) == "1");
  CHECK(raw.Cmd({"HEXISTS", p + "converge.queue.{converge}.tasks",
                 "summary:1"}) == "1");
  CHECK(raw.Cmd({"GET", p + "converge.queue.{converge}.seq"}) == "1");

  // Meta keys are reserved.
  CHECK(s.window->Increment("converge.expires:x", absl::Seconds(1), 1)
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("gc_grace < 0 sets no real TTLs", "[redis]") {
  VirtualClock clock(T(1000));
  redis::RedisOptions o = Options(&clock);
  o.gc_grace = -absl::Seconds(1);
  redis::RedisStores s = Open(o);
  Raw raw(o);
  REQUIRE(s.lock->TryAcquire("L", "t", absl::Seconds(5)).value());
  CHECK(raw.Cmd({"PTTL", o.key_prefix + "L"}) == "-1");
  WindowRequest req;
  req.add = {WindowEntry{"k", "action_1", T(1000)}};
  req.key_ttl = absl::Seconds(5);
  REQUIRE(s.window->Apply(req).ok());
  CHECK(raw.Cmd({"PTTL", o.key_prefix + "k"}) == "-1");
  // Expiry still follows the clock.
  clock.Advance(absl::Seconds(6));
  CHECK(s.window->Size("k").value() == 0);
  CHECK(s.lock->TryAcquire("L", "u", absl::Seconds(5)).value());
}

// ---- more servers ----

// Counts round trips (RedisObserver).
struct RoundTrips : redis::RedisObserver {
  void OnRoundTrip(int, absl::Duration, const absl::Status&) override {
    ++count;
  }
  std::atomic<int64_t> count{0};
};

// Redis Cluster's slot (CRC16/XMODEM of the hash tag), as the store routes.
int Slot(std::string_view tag) {
  uint16_t crc = 0;
  for (unsigned char c : tag) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc & 16383;
}

TEST_CASE("more_servers: keys go to the server of their hash tag",
          "[redis][servers]") {
  // The CRC16 of Redis Cluster's specification: "123456789" -> 0x31C3.
  REQUIRE(Slot("123456789") == (0x31C3 & 16383));
  VirtualClock clock(T(1000));
  redis::RedisOptions o = Options(&clock);
  redis::RedisServer second;
  second.host = o.host;
  second.port = o.port;
  second.db = o.db + 1;
  o.more_servers = {second};
  RoundTrips trips;
  o.observer = &trips;
  redis::RedisStores s = Open(o);
  // Two tags on different servers (server = slot * 2 / 16384).
  std::string a, b;
  for (int i = 0; a.empty() || b.empty(); ++i) {
    const std::string tag = "t" + std::to_string(i);
    (Slot(tag) < 8192 ? a : b) = tag;
  }
  const std::string lease = "{" + a + "}.lease";
  const std::string index = "{" + b + "}.index";
  const std::string index_a = "{" + a + "}.index";
  WindowRequest first;
  first.add = {WindowEntry{index, "action_1", T(100)},
               WindowEntry{index_a, "action_2", T(100)}};
  first.key_ttl = absl::Seconds(60);
  REQUIRE(s.window->Apply(first).ok());
  Raw db0(o);
  redis::RedisOptions o1 = o;
  o1.db = second.db;
  Raw db1(o1);
  const std::string& p = o.key_prefix;
  CHECK(db0.Cmd({"ZCARD", p + index_a}) == "1");
  CHECK(db1.Cmd({"ZCARD", p + index}) == "1");
  CHECK(db0.Cmd({"EXISTS", p + index}) == "0");
  // Its companion expiry key goes with it, though its hash differs.
  CHECK(db1.Cmd({"EXISTS", p + "converge.expires:" + index}) == "1");

  // A split Apply: the lease on server 0, the index on server 1.
  WindowRequest req;
  req.add = {WindowEntry{index, "action_3", T(110)}};
  req.lease = LeaseRequest{lease, "me", absl::Seconds(30)};
  req.read_groups = {{index}, {index, index_a}};
  const int64_t before = trips.count.load();
  absl::StatusOr<WindowResult> r = s.window->Apply(req);
  REQUIRE(r.ok());
  // One script per server: the add and the reads on server 1, then the
  // lease and the read of index_a on server 0.
  CHECK(trips.count.load() - before == 2);
  CHECK(r->lease_acquired);
  REQUIRE(r->groups.size() == 2);
  std::sort(r->groups[0].begin(), r->groups[0].end());
  std::sort(r->groups[1].begin(), r->groups[1].end());
  CHECK(r->groups[0] == std::vector<std::string>{"action_1", "action_3"});
  CHECK(r->groups[1] ==
        std::vector<std::string>{"action_1", "action_2", "action_3"});
  CHECK(db0.Cmd({"HGET", p + lease, "token"}) == "me");
  // The manager's shape: the lease on one server, the strategy's index keys
  // on another: two round trips.
  WindowRequest again;
  again.add = {WindowEntry{index, "action_5", T(111)}};
  again.lease = LeaseRequest{lease, "me", absl::Seconds(30)};
  again.read_groups = {{index}};
  const int64_t before_again = trips.count.load();
  r = s.window->Apply(again);
  REQUIRE(r.ok());
  CHECK(trips.count.load() - before_again == 2);
  CHECK(r->lease_acquired);
  REQUIRE(r->groups.size() == 1);
  CHECK(r->groups[0].size() == 3);
  CHECK(s.window->Remove(index, "action_5").value());
  // The lease is the LockStore's, on the same server.
  CHECK_FALSE(s.lock->TryAcquire(lease, "other", absl::Seconds(5)).value());
  // Busy: the adds are applied, the reads skipped.
  WindowRequest other = req;
  other.add = {WindowEntry{index, "action_4", T(120)}};
  other.lease->token = "other";
  r = s.window->Apply(other);
  REQUIRE(r.ok());
  CHECK_FALSE(r->lease_acquired);
  CHECK(r->groups.empty());
  CHECK(s.window->Size(index).value() == 3);
  CHECK(s.lock->Release(lease, "me").value());

  // An invalid Apply spread over both servers writes nothing on either.
  REQUIRE(s.window->Increment("{" + a + "}.cnt", absl::Seconds(60), 10).ok());
  WindowRequest bad;
  bad.add = {WindowEntry{"{" + b + "}.fresh", "action_9", T(100)},
             WindowEntry{"{" + a + "}.cnt", "action_9", T(100)}};
  CHECK(s.window->Apply(bad).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(s.window->Size("{" + b + "}.fresh").value() == 0);

  // Queues live on the server of their name.
  Task t;
  t.id = "x";
  t.due = T(1);
  REQUIRE(s.queue->Enqueue(a, t).ok());
  REQUIRE(s.queue->Enqueue(b, t).ok());
  CHECK(db0.Cmd({"ZCARD", p + "converge.queue.{" + a + "}.pending"}) == "1");
  CHECK(db1.Cmd({"ZCARD", p + "converge.queue.{" + b + "}.pending"}) == "1");
}

TEST_CASE("ParseRedisUri: several hosts", "[redis][servers]") {
  auto o = redis::ParseRedisUri("redis://:pw@h1:7001,h2,[::1]:7003/4");
  REQUIRE(o.ok());
  CHECK(o->host == "h1");
  CHECK(o->port == 7001);
  CHECK(o->db == 4);
  CHECK(o->password == "pw");
  REQUIRE(o->more_servers.size() == 2);
  CHECK(o->more_servers[0].host == "h2");
  CHECK(o->more_servers[0].port == 6379);
  CHECK(o->more_servers[0].db == 4);
  CHECK(o->more_servers[1].host == "::1");
  CHECK(o->more_servers[1].port == 7003);
  CHECK(redis::ParseRedisUri("redis://h1,,h2").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

// ---- round trips ----

// Store calls (wrappers).
struct CountingLock : LockStoreWrapper {
  using LockStoreWrapper::LockStoreWrapper;
  absl::StatusOr<bool> TryAcquire(std::string_view k, std::string_view t,
                                  absl::Duration ttl) override {
    ++calls;
    return LockStoreWrapper::TryAcquire(k, t, ttl);
  }
  absl::StatusOr<bool> Release(std::string_view k,
                               std::string_view t) override {
    ++calls;
    return LockStoreWrapper::Release(k, t);
  }
  absl::StatusOr<bool> Extend(std::string_view k, std::string_view t,
                              absl::Duration ttl) override {
    ++calls;
    return LockStoreWrapper::Extend(k, t, ttl);
  }
  int calls = 0;
};

struct CountingWindow : WindowStoreWrapper {
  using WindowStoreWrapper::WindowStoreWrapper;
  absl::StatusOr<WindowResult> Apply(const WindowRequest& r) override {
    ++calls;
    return WindowStoreWrapper::Apply(r);
  }
  absl::StatusOr<bool> Remove(std::string_view k, std::string_view m) override {
    ++calls;
    return WindowStoreWrapper::Remove(k, m);
  }
  absl::StatusOr<int64_t> Size(std::string_view k) override {
    ++calls;
    return WindowStoreWrapper::Size(k);
  }
  absl::StatusOr<int64_t> Increment(std::string_view k, absl::Duration ttl,
                                    int64_t up_to) override {
    ++calls;
    return WindowStoreWrapper::Increment(k, ttl, up_to);
  }
  absl::StatusOr<int64_t> CounterValue(std::string_view k) override {
    ++calls;
    return WindowStoreWrapper::CounterValue(k);
  }
  absl::StatusOr<bool> Delete(std::string_view k) override {
    ++calls;
    return WindowStoreWrapper::Delete(k);
  }
  int calls = 0;
};

struct CountingQueue : QueueStoreWrapper {
  using QueueStoreWrapper::QueueStoreWrapper;
  absl::Status Enqueue(std::string_view q, const Task& t) override {
    ++calls;
    return QueueStoreWrapper::Enqueue(q, t);
  }
  int calls = 0;
};

// Redis + SQLite with every Redis store call and round trip counted.
struct CountedStores {
  explicit CountedStores(const Clock* clock) {
    redis::RedisOptions o = Options(clock);
    o.observer = &trips;
    redis = Open(o);
    absl::StatusOr<std::string> d = MakeTestTempDir("converge-rt");
    REQUIRE(d.ok());
    dir = *d;
    sqlite::SqliteOptions so;
    so.path = dir + "/converge.db";
    so.clock = clock;
    so.synchronous = sqlite::Synchronous::kOff;
    absl::StatusOr<sqlite::SqliteStores> sql = sqlite::OpenSqliteStores(so);
    REQUIRE(sql.ok());
    redis.repo = std::move(sql->repo);
    lock = std::make_unique<CountingLock>(redis.lock.get());
    window = std::make_unique<CountingWindow>(redis.window.get());
    queue = std::make_unique<CountingQueue>(redis.queue.get());
  }
  ~CountedStores() {
    redis = {};
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  Stores view() {
    return Stores{lock.get(), queue.get(), redis.repo.get(), window.get()};
  }
  int64_t calls() const { return lock->calls + window->calls + queue->calls; }

  RoundTrips trips;
  redis::RedisStores redis;
  std::string dir;
  std::unique_ptr<CountingLock> lock;
  std::unique_ptr<CountingWindow> window;
  std::unique_ptr<CountingQueue> queue;
};

TEST_CASE(
    "deciding an action that joins an existing instance costs at "
    "most 2 Redis round trips",
    "[redis][round_trips]") {
  // Every function that can have members join, on the path that takes the
  // lease (it reads member statuses, or the threshold is not reached yet).
  for (ConvergeFunction f :
       {ConvergeFunction::kSkipWhenSuccess, ConvergeFunction::kSkipWhenProceed,
        ConvergeFunction::kWaitWhenProceed, ConvergeFunction::kSkipWhenExceed,
        ConvergeFunction::kDefense, ConvergeFunction::kCollect,
        ConvergeFunction::kApproveWhenFailed}) {
    INFO("function " << ToString(f));
    VirtualClock clock(T(1000));
    CountedStores stores(&clock);
    auto manager = ConvergeManager::Create(stores.view(), &clock).value();
    // count 2: actions 1 and 2 create the instance, 3..6 join it.
    const ConvergeConfig rule = Rule(f, 2, 300);
    for (int64_t id = 1; id <= 2; ++id) {
      clock.Advance(absl::Seconds(1));
      REQUIRE(
          manager->Submit(Act(id, 1000 + static_cast<double>(id)), rule).ok());
    }
    const auto open = stores.redis.repo->ListOpen(0).value();
    REQUIRE(open.size() == 1);
    int64_t most = 0;
    for (int64_t id = 3; id <= 6; ++id) {
      clock.Advance(absl::Seconds(1));
      const int64_t trips_before = stores.trips.count.load();
      const int64_t calls_before = stores.calls();
      absl::StatusOr<Decision> d =
          manager->Submit(Act(id, 1000 + static_cast<double>(id)), rule);
      REQUIRE(d.ok());
      REQUIRE(d->converge_id == open[0].id);  // joined
      int64_t trips = stores.trips.count.load() - trips_before;
      const int64_t calls = stores.calls() - calls_before;
      INFO("action " << id << ": " << trips << " round trips, " << calls
                     << " store calls, outcome " << ToString(d->outcome));
      // A sleep or approval outcome also schedules its timer task (the
      // re-poll, the approval timeout): one Enqueue more, as upstream
      // publishes a Celery task there.
      const bool timer =
          d->outcome == Outcome::kSleep || d->outcome == Outcome::kApproval;
      CHECK(trips <= (timer ? 3 : 2));
      CHECK(calls == trips);  // each store call is one round trip
      if (timer) --trips;
      most = std::max(most, trips);
    }
    // The functions that read member statuses always take the lease (Apply,
    // Release); the others join without it once the threshold is reached.
    if (f == ConvergeFunction::kSkipWhenSuccess ||
        f == ConvergeFunction::kSkipWhenProceed ||
        f == ConvergeFunction::kWaitWhenProceed ||
        f == ConvergeFunction::kApproveWhenFailed) {
      CHECK(most == 2);
    }
  }
}

TEST_CASE("a settled join takes no Redis round trip at all",
          "[redis][round_trips]") {
  VirtualClock clock(T(1000));
  CountedStores stores(&clock);
  auto manager = ConvergeManager::Create(stores.view(), &clock).value();
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  REQUIRE(manager->Submit(Act(1, 1000), rule).ok());
  REQUIRE(manager->Submit(Act(2, 1001), rule)->converge_id.has_value());
  const int64_t before = stores.trips.count.load();
  absl::StatusOr<Decision> d = manager->Submit(Act(3, 1002), rule);
  REQUIRE(d.ok());
  CHECK(d->outcome == Outcome::kSkip);
  CHECK(stores.trips.count.load() - before == 0);
}

// ---- leases ----

TEST_CASE(
    "a holder whose lease expired cannot release or renew the new "
    "holder's lease (server clock)",
    "[redis][lease]") {
  redis::RedisStores s = Open(Options());  // clock null: Redis' TIME
  REQUIRE(s.lock->TryAcquire("D", "old", absl::Milliseconds(100)).value());
  CHECK_FALSE(s.lock->TryAcquire("D", "new", absl::Seconds(30)).value());
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  REQUIRE(s.lock->TryAcquire("D", "new", absl::Seconds(30)).value());
  CHECK_FALSE(s.lock->Release("D", "old").value());
  CHECK_FALSE(s.lock->Extend("D", "old", absl::Seconds(30)).value());
  // Nor through Apply with its stale token.
  WindowRequest req;
  req.lease = LeaseRequest{"D", "old", absl::Seconds(30)};
  CHECK_FALSE(s.window->Apply(req).value().lease_acquired);
  // The new holder is untouched.
  CHECK_FALSE(s.lock->TryAcquire("D", "third", absl::Seconds(30)).value());
  CHECK(s.lock->Extend("D", "new", absl::Seconds(30)).value());
  CHECK(s.lock->Release("D", "new").value());
}

TEST_CASE(
    "a holder whose lease expired cannot release or renew the new "
    "holder's lease (virtual clock, many keys and holders)",
    "[redis][lease]") {
  VirtualClock clock(T(1000));
  redis::RedisStores s = Open(Options(&clock));
  for (int k = 0; k < 20; ++k) {
    const std::string key = "D" + std::to_string(k);
    REQUIRE(s.lock->TryAcquire(key, "old", absl::Seconds(10)).value());
  }
  clock.Advance(absl::Seconds(10));  // expiry is exclusive: expired now
  for (int k = 0; k < 20; ++k) {
    const std::string key = "D" + std::to_string(k);
    REQUIRE(s.lock->TryAcquire(key, "new", absl::Seconds(10)).value());
    CHECK_FALSE(s.lock->Release(key, "old").value());
    CHECK_FALSE(s.lock->Extend(key, "old", absl::Seconds(10)).value());
    CHECK_FALSE(s.lock->TryAcquire(key, "old", absl::Seconds(10)).value());
    CHECK(s.lock->Extend(key, "new", absl::Seconds(10)).value());
  }
}

TEST_CASE("index keys and counters expire on the server clock", "[redis]") {
  redis::RedisStores s = Open(Options());
  WindowRequest req;
  req.add = {WindowEntry{"k", "action_1", T(1000)}};
  req.key_ttl = absl::Milliseconds(100);
  REQUIRE(s.window->Apply(req).ok());
  REQUIRE(s.window->Increment("c", absl::Milliseconds(100), 5).value() == 1);
  CHECK(s.window->Size("k").value() == 1);
  CHECK(s.window->CounterValue("c").value() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  CHECK(s.window->Size("k").value() == 0);
  CHECK(s.window->CounterValue("c").value() == 0);
}

// ---- scripts, connections, errors ----

TEST_CASE("scripts are loaded again after NOSCRIPT", "[redis]") {
  // SCRIPT FLUSH empties the server's whole script cache, so it runs on a
  // server of its own: on the shared one, another test running at the same
  // time could load a script between the flush and the count below, or meet
  // a NOSCRIPT that adds a round trip to its own counts.
  PrivateServer server;
  VirtualClock clock(T(1000));
  redis::RedisOptions o = server.Options(&clock);
  RoundTrips trips;
  o.observer = &trips;
  redis::RedisStores s = Open(o);
  REQUIRE(s.lock->TryAcquire("L", "a", absl::Seconds(10)).value());
  Raw raw(o);
  REQUIRE(raw.Cmd({"SCRIPT", "FLUSH"}) == "OK");
  const int64_t before = trips.count.load();
  CHECK(s.lock->Release("L", "a").value());
  // EVALSHA (NOSCRIPT), then SCRIPT LOAD + EVALSHA pipelined.
  CHECK(trips.count.load() - before == 2);
  CHECK(raw.Cmd({"SCRIPT", "EXISTS", "0"}) == "[0]");
  const int64_t after = trips.count.load();
  CHECK(s.lock->TryAcquire("L", "b", absl::Seconds(10)).value());
  CHECK(trips.count.load() - after == 2);  // another script: loaded too
  const int64_t loaded = trips.count.load();
  CHECK(s.lock->Release("L", "b").value());
  CHECK(trips.count.load() - loaded == 1);  // loaded before: one round trip
}

TEST_CASE(
    "after a restart the stores reconnect, and data on the append-only "
    "file survives",
    "[redis][restart]") {
  PrivateServer server;
  VirtualClock clock(T(1000));
  redis::RedisOptions o = server.Options(&clock);
  o.pool_size = 4;
  redis::RedisStores s = Open(o);
  Task t;
  t.id = "t1";
  t.kind = "summary";
  t.due = T(1000);
  REQUIRE(s.queue->Enqueue("q", t).ok());
  REQUIRE(s.lock->TryAcquire("L", "a", absl::Seconds(60)).value());
  // Several pooled connections, all of which the restart will close.
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 50; ++j) (void)s.queue->Stats("q");
    });
  }
  for (auto& th : threads) th.join();

  server.Stop();  // SIGTERM: Redis writes its AOF and exits
  absl::StatusOr<QueueStats> down = s.queue->Stats("q");
  INFO(down.status().ToString());
  CHECK(down.status().code() == absl::StatusCode::kUnavailable);
  server.Start();  // same port, same data

  // Every pooled connection is found closed before use: no call fails.
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<QueueStats> st = s.queue->Stats("q");
    INFO(st.status().ToString());
    REQUIRE(st.ok());
    CHECK(st->pending == 1);
  }
  CHECK_FALSE(s.lock->TryAcquire("L", "b", absl::Seconds(60)).value());
  std::optional<Delivery> d =
      s.queue->Dequeue("q", T(1000), absl::Seconds(30)).value();
  REQUIRE(d.has_value());
  CHECK(d->task.id == "t1");
  CHECK(s.queue->Ack("q", d->receipt).value());
}

TEST_CASE("a command that outlives command_timeout is kDeadlineExceeded",
          "[redis]") {
  PrivateServer server;
  redis::RedisOptions o = server.Options();
  o.command_timeout = absl::Milliseconds(200);
  redis::RedisStores s = Open(o);
  REQUIRE(s.window->Size("k").ok());
  Raw raw(o);
  REQUIRE(raw.Cmd({"CLIENT", "PAUSE", "1000", "ALL"}) == "OK");
  absl::StatusOr<int64_t> r = s.window->Size("k");
  INFO(r.status().ToString());
  CHECK(r.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::StartsWith(r.status().message(),
                         absl::StrCat("redis: 127.0.0.1:", o.port, ": ")));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  // The timed-out connection was dropped; a new one works.
  CHECK(s.window->Size("k").ok());
}

TEST_CASE("error replies keep Redis' text and map to codes", "[redis]") {
  VirtualClock clock(T(1000));
  redis::RedisOptions o = Options(&clock);
  redis::RedisStores s = Open(o);
  REQUIRE(s.lock->TryAcquire("L", "a", absl::Seconds(10)).value());
  // A window write on a lease key: refused before anything is written.
  WindowRequest req;
  req.add = {WindowEntry{"L", "action_1", T(1)}};
  absl::StatusOr<WindowResult> r = s.window->Apply(req);
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(r.status().message(), "holds a hash"));
  // A lease on an index key: Redis' own WRONGTYPE, its text kept.
  REQUIRE(s.window->Increment("C", absl::Seconds(10), 5).ok());
  absl::StatusOr<bool> l = s.lock->TryAcquire("C", "a", absl::Seconds(10));
  INFO(l.status().ToString());
  CHECK(l.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(l.status().message(), "WRONGTYPE"));
  CHECK(absl::StartsWith(l.status().message(), "redis: "));
}

TEST_CASE("pool_size bounds the connections, callers wait their turn",
          "[redis]") {
  PrivateServer server;  // CLIENT LIST counts only our connections
  VirtualClock clock(T(1000));
  redis::RedisOptions o = server.Options(&clock);
  o.pool_size = 2;
  redis::RedisStores s = Open(o);
  Raw raw(o);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        if (!s.window
                 ->Increment("c" + std::to_string(t), absl::Seconds(60), 1000)
                 .ok())
          ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors.load() == 0);
  for (int t = 0; t < 8; ++t) {
    CHECK(s.window->CounterValue("c" + std::to_string(t)).value() == 100);
  }
  // Our stores hold at most 2 connections (plus the raw one).
  const std::string list = raw.Cmd({"CLIENT", "LIST"});
  CHECK(std::count(list.begin(), list.end(), '\n') <= 3);
}

}  // namespace
}  // namespace converge::testing
