// The fault test of a shared store, written once for every backend
// (tests/adapters/redis/fault_test.cc, tests/adapters/mysql/fault_test.cc):
// 4 worker processes drain 20,000 actions from the store's task queue while
// the server is restarted (stopped, then started again on the same data
// and port). Afterwards every action has exactly one decision (stored once,
// never decided a second time by another worker), no task is lost (the
// queue is empty: nothing pending, in flight or dead; every summary ran),
// and every worker decided actions after the restart without being
// restarted itself.
//
// What the test and its workers agree on: the actions, their rules, and the
// manager's and processor's options (short leases, visibility and
// backoffs, so that a restart of the server is ridden out in seconds); the
// worker's loop (RunFaultWorker) and the test's body (RunFaultTest).

#ifndef CONVERGE_TESTS_SUPPORT_FAULT_DRAIN_H_
#define CONVERGE_TESTS_SUPPORT_FAULT_DRAIN_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "converge/manager.h"
#include "converge/processor.h"

namespace converge::fault {

inline constexpr int64_t kActions = 20000;
inline constexpr int kWorkers = 4;
inline constexpr int64_t kDimensions = 400;

inline int64_t DimensionOf(int64_t id) { return id % kDimensions; }

// Even dimensions: skip_when_exceed, 3 run; odd: collect, 2 run and a
// summary task (due 2 s after the instance is created) ends the instance.
inline ConvergeConfig RuleOf(int64_t id) {
  ConvergeConfig c;
  c.is_enabled = true;
  const bool even = DimensionOf(id) % 2 == 0;
  c.converge_func =
      even ? ConvergeFunction::kSkipWhenExceed : ConvergeFunction::kCollect;
  c.count = even ? 3 : 2;
  c.timedelta = 3600;
  c.condition = {Condition{"alert_info", {Value("self")}}};
  return c;
}

inline Action ActionOf(int64_t id, absl::Time create_time) {
  Action a;
  a.id = id;
  a.create_time = create_time;
  a.bk_biz_id = 2;
  a.strategy_id = 10 + DimensionOf(id) % 7;
  a.signal = "abnormal";
  a.alert_level = 1;
  a.plugin_type = "webhook";
  a.action_config_id = 7;
  a.alerts = {"alert-" + std::to_string(id)};
  a.context["alert_info"] = "g" + std::to_string(DimensionOf(id));
  return a;
}

inline ManagerOptions FaultManagerOptions() {
  ManagerOptions o;
  o.lease_ttl = absl::Seconds(5);  // a lease stranded by the restart
  o.summary_delay = absl::Seconds(2);
  return o;
}

inline ProcessorOptions FaultProcessorOptions() {
  ProcessorOptions o;
  o.visibility_timeout = absl::Seconds(3);
  o.max_attempts = 50;  // errors while the server is down are retried
  o.retry_backoff_min = absl::Milliseconds(50);
  o.retry_backoff_max = absl::Milliseconds(500);
  o.contention_delay = absl::Milliseconds(20);
  o.sweep_interval = absl::ZeroDuration();      // no perpetual jobs: the queue
  o.retention_interval = absl::ZeroDuration();  // drains to empty
  o.threads = 2;
  o.idle_wait = absl::Milliseconds(20);
  return o;
}

// ---- the worker ----

namespace internal {
inline std::atomic<bool> worker_stop{false};
inline void OnTerm(int) { worker_stop.store(true); }

struct Recorder : ManagerListener {
  void OnDecision(const Decision& d) override {
    if (d.replayed) return;
    std::lock_guard<std::mutex> lock(mu);
    decided.emplace_back(d.action_id, absl::ToUnixMillis(absl::Now()));
  }
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> decided;
};
}  // namespace internal

// Installs the SIGTERM handler; call first in a worker's main.
inline void PrepareFaultWorker() { signal(SIGTERM, internal::OnTerm); }

// A worker's life: a Processor on `stores` drains the shared task queue
// until SIGTERM, riding out restarts of the server. On exit it writes one
// line per action it decided itself (not replayed) to `out`: "<action id>
// <unix ms>", and prints its processor stats. Returns the exit code.
inline int RunFaultWorker(const Stores& stores, const char* out) {
  internal::Recorder recorder;
  ManagerOptions mo = FaultManagerOptions();
  mo.listener = &recorder;
  auto manager = ConvergeManager::Create(stores, RealClock::Default(), mo);
  if (!manager.ok()) {
    std::fprintf(stderr, "worker: %s\n", manager.status().ToString().c_str());
    return 1;
  }
  auto processor = Processor::Create(manager->get(), FaultProcessorOptions());
  if (!processor.ok() || !(*processor)->Start().ok()) {
    std::fprintf(stderr, "worker: cannot start the processor\n");
    return 1;
  }
  while (!internal::worker_stop.load()) usleep(20 * 1000);
  (*processor)->Stop();

  std::ofstream file(out);
  for (const auto& [id, ms] : recorder.decided) {
    file << id << " " << ms << "\n";
  }
  file.close();
  const ProcessorStats st = (*processor)->stats();
  std::printf(
      "worker %d: processed %lld requeued %lld retried %lld dead %lld stale "
      "%lld errors %lld decided %zu\n",
      static_cast<int>(getpid()), static_cast<long long>(st.processed),
      static_cast<long long>(st.requeued), static_cast<long long>(st.retried),
      static_cast<long long>(st.dead), static_cast<long long>(st.stale),
      static_cast<long long>(st.errors), recorder.decided.size());
  return 0;
}

// ---- the test ----

struct FaultTestSetup {
  // The stores of the test process (producer and checker).
  Stores stores;
  // A directory for the workers' output files.
  std::string dir;
  // Runs worker `index` (fork + exec), writing its decisions to `out`.
  std::function<pid_t(int index, const std::string& out)> start_worker;
  // Stops the server, then starts it again on the same data and port.
  std::function<void()> stop_server;
  std::function<void()> start_server;
};

// The test's body (Catch2 assertions): queues every action, starts the
// workers, restarts the server once about a quarter of the actions are
// taken, waits for the queue to drain, and checks every claim above.
inline void RunFaultTest(const FaultTestSetup& setup) {
  const Stores& stores = setup.stores;
  const Clock* clock = RealClock::Default();
  auto manager =
      ConvergeManager::Create(stores, clock, FaultManagerOptions()).value();
  auto producer =
      Processor::Create(manager.get(), FaultProcessorOptions()).value();
  const absl::Time start = clock->Now();
  for (int64_t id = 1; id <= kActions; ++id) {
    REQUIRE(producer->SubmitAction(ActionOf(id, start), RuleOf(id)).ok());
  }
  REQUIRE(stores.queue->Stats("converge").value().pending == kActions);

  std::vector<pid_t> workers;
  std::vector<std::string> outs;
  struct Reaper {  // never leave a worker behind, whatever fails
    std::vector<pid_t>* pids;
    ~Reaper() {
      for (pid_t p : *pids) {
        if (p > 0 && kill(p, SIGKILL) == 0) waitpid(p, nullptr, 0);
      }
    }
  } reaper{&workers};
  for (int w = 0; w < kWorkers; ++w) {
    outs.push_back(setup.dir + "/worker" + std::to_string(w) + ".txt");
    const pid_t pid = setup.start_worker(w, outs.back());
    REQUIRE(pid > 0);
    workers.push_back(pid);
  }

  auto stats = [&]() { return stores.queue->Stats("converge"); };
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
        return st.ok() && st->pending <= kActions * 3 / 4;
      },
      absl::Seconds(120)));
  const int64_t pending_at_restart = stats().value().pending;
  setup.stop_server();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  setup.start_server();
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
  CHECK(stores.queue->ListDead("converge", 0).value().empty());

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
  for (int64_t id = 1; id <= kActions; ++id) {
    auto it = fresh.find(id);
    if (it != fresh.end() && it->second > 1) ++twice;
    absl::StatusOr<std::optional<ActionRecord>> rec =
        stores.repo->GetAction(id);
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
  CHECK(outcomes[0] + outcomes[1] == kActions);

  // The thresholds held: per dimension, the executed set of every instance
  // is the rule's count, and every collect instance was summarized (ended).
  std::vector<ConvergeInstance> open = stores.repo->ListOpen(0).value();
  for (const ConvergeInstance& inst : open) {
    CHECK(inst.converge_func != ConvergeFunction::kCollect);
  }
  for (const ConvergeInstance& inst : open) {
    INFO("instance " << inst.id);
    CHECK(stores.repo->CountExecuted(inst.id).value() == 3);
  }
  // skip_when_exceed: one instance per even dimension, never ended.
  CHECK(open.size() == static_cast<size_t>(kDimensions / 2));
}

}  // namespace converge::fault

#endif  // CONVERGE_TESTS_SUPPORT_FAULT_DRAIN_H_
