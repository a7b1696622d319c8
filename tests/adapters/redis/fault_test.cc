// The fault test of the Redis store: 4 worker processes
// (converge_redis_fault_worker) drain 20,000 actions from the Redis queue,
// deciding them on Redis + one SQLite file, while the Redis server is
// restarted (SIGTERM, then started again on the same data and port).
// Afterwards every action has exactly one decision (stored once, never
// decided a second time by another worker), no task is lost (the queue is
// empty: nothing pending, in flight or dead; every summary ran), and every
// worker decided actions after the restart without being restarted itself.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "converge/processor.h"
#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"
#include "fault_common.h"
#include "private_server.h"

namespace converge::testing {
namespace {

TEST_CASE(
    "fault: 4 workers drain 20,000 actions while the server restarts, every "
    "action has exactly one decision and no task is lost",
    "[redis][fault]") {
  PrivateServer server;
  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-redis-fault");
  REQUIRE(dir.ok());
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{*dir};
  const std::string db = *dir + "/converge.db";
  const std::string prefix = "fault.";

  // The producer: queues every action (task "action:<id>").
  redis::RedisOptions ro = server.Options();
  ro.key_prefix = prefix;
  absl::StatusOr<redis::RedisStores> stores = redis::OpenRedisStores(ro);
  REQUIRE(stores.ok());
  sqlite::SqliteOptions so;
  so.path = db;
  so.synchronous = sqlite::Synchronous::kNormal;
  absl::StatusOr<sqlite::SqliteStores> sql = sqlite::OpenSqliteStores(so);
  REQUIRE(sql.ok());
  stores->repo = std::move(sql->repo);
  const Clock* clock = RealClock::Default();
  auto manager = ConvergeManager::Create(stores->view(), clock,
                                         fault::FaultManagerOptions())
                     .value();
  auto producer =
      Processor::Create(manager.get(), fault::FaultProcessorOptions()).value();
  const absl::Time start = clock->Now();
  for (int64_t id = 1; id <= fault::kActions; ++id) {
    REQUIRE(
        producer->SubmitAction(fault::ActionOf(id, start), fault::RuleOf(id))
            .ok());
  }
  REQUIRE(stores->queue->Stats("converge").value().pending == fault::kActions);

  // The workers.
  std::vector<pid_t> workers;
  std::vector<std::string> outs;
  for (int w = 0; w < fault::kWorkers; ++w) {
    outs.push_back(*dir + "/worker" + std::to_string(w) + ".txt");
    const std::string port = std::to_string(server.info.port);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      execl(CONVERGE_FAULT_WORKER, CONVERGE_FAULT_WORKER, port.c_str(),
            prefix.c_str(), db.c_str(), outs.back().c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    workers.push_back(pid);
  }
  struct Reaper {  // never leave a worker behind, whatever fails
    std::vector<pid_t>* pids;
    ~Reaper() {
      for (pid_t p : *pids) {
        if (p > 0 && kill(p, SIGKILL) == 0) waitpid(p, nullptr, 0);
      }
    }
  } reaper{&workers};

  auto stats = [&]() { return stores->queue->Stats("converge"); };
  auto wait_until = [&](auto done, absl::Duration limit) {
    const absl::Time deadline = absl::Now() + limit;
    while (absl::Now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };

  // Restart once about a quarter of the actions are taken.
  REQUIRE(wait_until(
      [&] {
        absl::StatusOr<QueueStats> st = stats();
        return st.ok() && st->pending <= fault::kActions * 3 / 4;
      },
      absl::Seconds(120)));
  const int64_t pending_at_restart = stats().value().pending;
  server.Stop();  // SIGTERM: the server saves its AOF and exits
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  server.Start();  // same port, same data
  const int64_t restarted_ms = absl::ToUnixMillis(absl::Now());
  INFO("pending when the server stopped: " << pending_at_restart);

  // Drained: nothing pending or in flight (summaries included).
  const bool drained = wait_until(
      [&] {
        absl::StatusOr<QueueStats> st = stats();
        return st.ok() && st->pending == 0 && st->in_flight == 0;
      },
      absl::Seconds(240));
  const QueueStats final_stats = stats().value();
  INFO("final: pending " << final_stats.pending << " in flight "
                         << final_stats.in_flight << " dead "
                         << final_stats.dead);
  REQUIRE(drained);
  CHECK(final_stats.dead == 0);
  CHECK(stores->queue->ListDead("converge").value().empty());

  // The workers ran throughout: each was started once, exits 0 on SIGTERM.
  for (pid_t& p : workers) {
    REQUIRE(kill(p, SIGTERM) == 0);
    int status = 0;
    REQUIRE(waitpid(p, &status, 0) == p);
    p = 0;
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  // Every action was decided once: at most one fresh decision across the
  // workers (a decision whose Submit failed after it was stored is replayed,
  // not decided again), and every action has its stored decision.
  std::map<int64_t, int> fresh;
  for (const std::string& out : outs) {
    std::ifstream in(out);
    REQUIRE(in.good());
    int64_t id, ms;
    int64_t after_restart = 0, total = 0;
    while (in >> id >> ms) {
      ++fresh[id];
      ++total;
      if (ms >= restarted_ms) ++after_restart;
    }
    INFO(out << ": " << total << " decided, " << after_restart
             << " after the restart");
    CHECK(after_restart > 0);  // recovered without being restarted
  }
  int64_t twice = 0, missing = 0, outcomes[2] = {0, 0};
  for (int64_t id = 1; id <= fault::kActions; ++id) {
    auto it = fresh.find(id);
    if (it != fresh.end() && it->second > 1) ++twice;
    absl::StatusOr<std::optional<ActionRecord>> rec =
        stores->repo->GetAction(id);
    REQUIRE(rec.ok());
    if (!rec->has_value()) {
      ++missing;
      continue;
    }
    ++outcomes[(*rec)->decision.outcome == Outcome::kExecute ? 0 : 1];
  }
  CHECK(twice == 0);
  CHECK(missing == 0);
  INFO("executed " << outcomes[0] << ", other outcomes " << outcomes[1]);
  CHECK(outcomes[0] + outcomes[1] == fault::kActions);

  // The thresholds held: per dimension, the executed set of every instance
  // is the rule's count, and every collect instance was summarized (ended).
  std::vector<ConvergeInstance> open = stores->repo->ListOpen(0).value();
  for (const ConvergeInstance& inst : open) {
    CHECK(inst.converge_func != ConvergeFunction::kCollect);
  }
  for (const ConvergeInstance& inst : open) {
    INFO("instance " << inst.id);
    CHECK(stores->repo->CountExecuted(inst.id).value() == 3);
  }
  // skip_when_exceed: one instance per even dimension, never ended.
  CHECK(open.size() == static_cast<size_t>(fault::kDimensions / 2));
}

}  // namespace
}  // namespace converge::testing
