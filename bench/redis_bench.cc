// The storm of converge_storm_bench on Redis + SQLite (leases, window index
// and queue on Redis, the repo on SQLite), one by one and in batches, beside
// the raw ceiling measured in the same run on the same server: EVALSHA of
// converge's own window script (the WindowStore::Apply of a decision: one
// index add, the lease, one window read) straight through hiredis, one call
// per round trip, and pipelined --depth deep.
//
// Phases, on one redis-server (its own, started on loopback in a temporary
// directory with appendonly yes, unless --redis names one):
//   raw EVALSHA, 1 per round trip    --raw-calls calls on one connection
//   converge Submit, one by one      N actions, SQLite synchronous NORMAL
//   converge Submit, T threads       the same from --threads threads at
//                                    once (group commit), SQLite NORMAL
//   raw EVALSHA, pipelined           --raw-calls calls, --depth per round trip
//   converge SubmitBatch             N actions, batches of --batch, SQLite FULL
// The converge phases also report Redis round trips per decision.
//
// Usage: converge_redis_bench [--actions N] [--dimensions N] [--seconds S]
//                             [--batch B] [--depth D] [--raw-calls N]
//                             [--threads T]
//                             [--redis redis://HOST:PORT/DB] [--dir DIR]
// Defaults: 100,000 actions over 1,000 dimensions in 600 s (100 actions per
// dimension), batches of 1,000, pipelines 100 deep, 100,000 raw calls, 8
// threads.

#include <hiredis/hiredis.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "converge/manager.h"
#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"
#include "scripts.h"  // adapters/redis/src: the scripts' text and SHA
#include "storm.h"
#include "support/redis_server.h"

namespace {

using converge::bench::Flag;
using converge::bench::Seconds;
using converge::bench::Storm;
using converge::bench::StringFlag;

struct RoundTrips : converge::redis::RedisObserver {
  void OnRoundTrip(int, absl::Duration, const absl::Status&) override {
    count.fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<long> count{0};
};

// One window_apply call as WindowStore::Apply sends it for a decision that
// reads its window: add action_<i> to its dimension's K2 key, take the
// dimension's lease, read the window (scripts.cc documents the arguments).
// The raw calls spread over `dimensions` keys so that each holds a few
// members (about 4), as a window read before an instance exists does: the
// ceiling is the cheap call, not one that returns a long member list.
std::vector<std::string> RawArgs(const std::string& prefix, long i,
                                 long dimensions) {
  const long d = i % dimensions;
  const std::string k2 = prefix +
                         "bkmonitorv3.ee.{s1001}.fta_action.converge.1001."
                         "alert_info.1001_1_abnormal_" +
                         std::to_string(1000000 + d);
  const std::string t = std::to_string(1700000000 + i % 600);
  return {"EVALSHA",
          converge::redis::internal_redis::GetScripts().window_apply.sha,
          "3",
          prefix + "bkmonitorv3.ee.{d" + std::to_string(d) +
              "}.fta_action.converge.D" + std::to_string(d) + ".process.lock",
          k2,
          prefix + "converge.expires:" + k2,
          t + "000000",                                       // now (µs)
          "60000",                                            // gc grace (ms)
          "2100000000",                                       // key ttl (µs)
          "(" + std::to_string(1700000000 + i % 600 - 2100),  // trim
          "raw-token",
          "60000000",  // lease ttl (µs)
          std::to_string(1700000000 + i % 600 - 300),
          std::to_string(1700000000 + i % 600 + 300),
          "1",  // one add
          "1",
          t,
          "action_" + std::to_string(i + 1),
          "1",  // one group of one key
          "1",
          "1"};
}

bool Append(redisContext* c, const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(),
                                lens.data()) == REDIS_OK;
}

bool Receive(redisContext* c) {
  void* reply = nullptr;
  if (redisGetReply(c, &reply) != REDIS_OK || reply == nullptr) {
    std::fprintf(stderr, "raw: %s\n", c->errstr);
    return false;
  }
  const bool ok = static_cast<redisReply*>(reply)->type == REDIS_REPLY_ARRAY;
  if (!ok) {
    std::fprintf(stderr, "raw: unexpected reply: %s\n",
                 static_cast<redisReply*>(reply)->str);
  }
  freeReplyObject(reply);
  return ok;
}

// EVALSHA calls per second, `depth` per round trip. -1 on error.
double RawEvalsha(const converge::redis::RedisOptions& o,
                  const std::string& prefix, long calls, long depth,
                  long dimensions) {
  redisContext* c = redisConnect(o.host.c_str(), o.port);
  if (c == nullptr || c->err != 0) {
    std::fprintf(stderr, "raw: cannot connect\n");
    if (c != nullptr) redisFree(c);
    return -1;
  }
  const auto& script = converge::redis::internal_redis::GetScripts();
  redisReply* loaded = static_cast<redisReply*>(
      redisCommand(c, "SCRIPT LOAD %b", script.window_apply.text.data(),
                   script.window_apply.text.size()));
  if (loaded == nullptr) return -1;
  freeReplyObject(loaded);
  // The arguments are made before the clock starts: the ceiling measures
  // the client library, the network and the server.
  std::vector<std::vector<std::string>> args;
  args.reserve(calls);
  for (long i = 0; i < calls; ++i) {
    args.push_back(RawArgs(prefix, i, dimensions));
  }
  bool ok = true;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < calls && ok; i += depth) {
    const long end = std::min(calls, i + depth);
    for (long j = i; j < end && ok; ++j) ok = Append(c, args[j]);
    for (long j = i; j < end && ok; ++j) ok = Receive(c);
  }
  const double s = Seconds(std::chrono::steady_clock::now() - t0);
  redisFree(c);
  return ok ? calls / s : -1;
}

struct StormRun {
  double rate = -1;
  double round_trips = 0;  // Redis round trips per decision
  long outcomes[5] = {0, 0, 0, 0, 0};
};

StormRun RunStorm(Storm& storm, converge::redis::RedisOptions o,
                  const std::string& db, converge::sqlite::Synchronous sync,
                  long actions, long batch, int threads = 1) {
  StormRun run;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(db + suffix);
  }
  converge::VirtualClock clock(Storm::Start());
  RoundTrips trips;
  o.clock = &clock;
  o.observer = &trips;
  auto stores = converge::redis::OpenRedisStores(o);
  converge::sqlite::SqliteOptions so;
  so.path = db;
  so.clock = &clock;
  so.synchronous = sync;
  auto sql = converge::sqlite::OpenSqliteStores(so);
  if (!stores.ok() || !sql.ok()) {
    std::fprintf(
        stderr, "%s\n",
        (stores.ok() ? sql.status() : stores.status()).ToString().c_str());
    return run;
  }
  stores->repo = std::move(sql->repo);
  auto manager = converge::ConvergeManager::Create(stores->view(), &clock);
  if (!manager.ok()) return run;
  const long trips_before = trips.count.load();
  const auto t0 = std::chrono::steady_clock::now();
  if (!converge::bench::DriveStormWith(storm, **manager, clock, actions, batch,
                                       threads, run.outcomes)) {
    return StormRun{};
  }
  run.rate = actions / Seconds(std::chrono::steady_clock::now() - t0);
  run.round_trips =
      static_cast<double>(trips.count.load() - trips_before) / actions;
  return run;
}

void Report(const char* name, double rate, double ceiling) {
  std::printf("%-36s %10.0f /s   ratio to raw %.3f\n", name, rate,
              ceiling > 0 ? rate / ceiling : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  const long actions = Flag(argc, argv, "--actions", 100000);
  const long dimensions = Flag(argc, argv, "--dimensions", 1000);
  const long seconds = Flag(argc, argv, "--seconds", 600);
  const long batch = Flag(argc, argv, "--batch", 1000);
  const long depth = Flag(argc, argv, "--depth", 100);
  const long raw_calls = Flag(argc, argv, "--raw-calls", 100000);
  const long threads = Flag(argc, argv, "--threads", 8);
  const std::string uri = StringFlag(argc, argv, "--redis", "");
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir =
      StringFlag(argc, argv, "--dir", tmp != nullptr ? tmp : "/tmp");
  if (actions <= 0 || dimensions <= 0 || seconds <= 0 || batch <= 1 ||
      depth < 1 || raw_calls <= 0 || threads < 2 || threads > 256) {
    std::fprintf(stderr,
                 "converge_redis_bench: flags must be > 0, --batch > 1 and "
                 "--threads 2..256\n");
    return 2;
  }
  const std::string work =
      dir + "/converge-redis-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(work);

  // The server: the one named, or our own (stopped by PID at the end).
  converge::testing::RedisServerInfo own;
  converge::redis::RedisOptions o;
  if (!uri.empty()) {
    absl::StatusOr<converge::redis::RedisOptions> parsed =
        converge::redis::ParseRedisUri(uri);
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
      return 2;
    }
    o = *parsed;
  } else {
    absl::StatusOr<converge::testing::RedisServerInfo> started =
        converge::testing::StartRedisServer(work + "/redis", true);
    if (!started.ok()) {
      std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
      return 1;
    }
    own = *started;
    o.port = own.port;
  }
  o.key_prefix = "bench." + std::to_string(::getpid()) + ".";
  o.command_timeout = absl::Seconds(30);

  Storm storm(actions, dimensions, seconds);
  std::printf(
      "storm: %ld actions, %ld dimensions, %ld s of virtual time; Redis %s "
      "(%s), hiredis %d.%d.%d, SQLite repo\n",
      actions, dimensions, seconds,
      uri.empty() ? "own redis-server, appendonly yes" : uri.c_str(),
      o.unix_socket.empty() ? "TCP loopback" : "unix socket", HIREDIS_MAJOR,
      HIREDIS_MINOR, HIREDIS_PATCH);

  using converge::sqlite::Synchronous;
  const long raw_dimensions = std::max(1L, raw_calls / 4);
  const double raw_one =
      RawEvalsha(o, o.key_prefix + "raw1.", raw_calls, 1, raw_dimensions);
  const StormRun one =
      RunStorm(storm, o, work + "/one.db", Synchronous::kNormal, actions, 1);
  converge::redis::RedisOptions ot = o;
  ot.key_prefix += "threads.";
  const StormRun threaded =
      RunStorm(storm, ot, work + "/threads.db", Synchronous::kNormal, actions,
               1, static_cast<int>(threads));
  const double raw_pipe =
      RawEvalsha(o, o.key_prefix + "rawp.", raw_calls, depth, raw_dimensions);
  converge::redis::RedisOptions ob = o;
  ob.key_prefix += "batched.";
  const StormRun batched = RunStorm(storm, ob, work + "/batched.db",
                                    Synchronous::kFull, actions, batch);
  if (own.pid > 0) (void)converge::testing::StopRedisServer(own.pid);
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
  if (raw_one < 0 || one.rate < 0 || raw_pipe < 0 || batched.rate < 0 ||
      threaded.rate < 0) {
    return 1;
  }
  std::printf("-- one call per round trip; SQLite synchronous NORMAL\n");
  Report("raw EVALSHA window script", raw_one, raw_one);
  Report("converge Submit", one.rate, raw_one);
  std::printf("  Redis round trips per decision: %.3f\n", one.round_trips);
  const std::string threads_name =
      "converge Submit, " + std::to_string(threads) + " threads";
  Report(threads_name.c_str(), threaded.rate, raw_one);
  std::printf("  Redis round trips per decision: %.3f\n", threaded.round_trips);
  std::printf("-- pipelined %ld deep; SubmitBatch of %ld, SQLite FULL\n", depth,
              batch);
  Report("raw EVALSHA window script", raw_pipe, raw_pipe);
  Report("converge SubmitBatch", batched.rate, raw_pipe);
  std::printf("  Redis round trips per decision: %.3f\n", batched.round_trips);
  std::printf("outcomes: execute %ld, skip %ld (batched: %ld, %ld)\n",
              one.outcomes[0], one.outcomes[1], batched.outcomes[0],
              batched.outcomes[1]);
  std::printf(
      "targets: one-by-one >= 0.60 of raw: %s (1 thread), %s (%ld threads); "
      "batched >= 0.40 of raw pipelined: %s\n",
      one.rate >= 0.6 * raw_one ? "met" : "NOT met",
      threaded.rate >= 0.6 * raw_one ? "met" : "NOT met", threads,
      batched.rate >= 0.4 * raw_pipe ? "met" : "NOT met");
  if (batched.outcomes[0] != one.outcomes[0] ||
      batched.outcomes[1] != one.outcomes[1] ||
      !converge::bench::ThreadedMatches("threads", threaded.outcomes,
                                        one.outcomes)) {
    std::fprintf(stderr,
                 "batched and one-by-one outcomes differ, or the threads "
                 "decided a different number of actions\n");
    return 1;
  }
  return 0;
}
