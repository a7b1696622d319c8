// The processor: at-least-once delivery without doubled work, lease
// contention, retries, dead letters and re-drive, the follow-up task kinds
// and the perpetual jobs, on the memory store and a virtual clock.

#include "converge/processor.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "converge/codec.h"
#include "converge/dimension.h"
#include "converge/metrics.h"
#include "converge/store/wrappers.h"
#include "test_util.h"

namespace converge::testing {
namespace {

// Records what the manager reports; thread-safe.
class Recorder : public ManagerListener {
 public:
  void OnDecision(const Decision& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    decisions_.push_back(d);
    cv_.notify_all();
  }
  void OnSummary(const Summary& s) override {
    std::lock_guard<std::mutex> lock(mu_);
    summaries_.push_back(s);
  }

  std::vector<Decision> decisions() const {
    std::lock_guard<std::mutex> lock(mu_);
    return decisions_;
  }
  std::vector<Summary> summaries() const {
    std::lock_guard<std::mutex> lock(mu_);
    return summaries_;
  }
  // Fresh (not replayed) decisions of `action_id`.
  int Fresh(int64_t action_id) const {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const Decision& d : decisions_) {
      n += d.action_id == action_id && !d.replayed ? 1 : 0;
    }
    return n;
  }
  // Waits (real time, bounded) until `n` decisions were reported.
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60),
                        [&] { return decisions_.size() >= n; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Decision> decisions_;
  std::vector<Summary> summaries_;
};

// Processor options for tests: the perpetual jobs off unless a test wants
// them, so that the queue holds only what the test put there.
ProcessorOptions Quiet() {
  ProcessorOptions o;
  o.sweep_interval = absl::ZeroDuration();
  o.retention_interval = absl::ZeroDuration();
  return o;
}

// An environment with a listener (and optionally metrics) on the manager.
struct ProcEnv {
  explicit ProcEnv(ManagerOptions options = {}, Metrics* metrics = nullptr)
      : env(WithListener(options, metrics)) {}

  ManagerOptions WithListener(ManagerOptions o, Metrics* metrics) {
    o.listener = &recorder;
    o.metrics = metrics;
    return o;
  }

  std::unique_ptr<Processor> Make(ProcessorOptions o = Quiet(),
                                  ConvergeManager* manager = nullptr) {
    absl::StatusOr<std::unique_ptr<Processor>> p =
        Processor::Create(manager ? manager : env.manager.get(), o);
    INFO(p.status().ToString());
    REQUIRE(p.ok());
    return *std::move(p);
  }

  QueueStore* queue() { return env.stores.queue.get(); }
  const std::string& queue_name() { return env.manager->options().task_queue; }
  std::vector<Task> Dead() {
    return queue()->ListDead(queue_name(), 0).value();
  }
  std::vector<Task> Pending() {
    return queue()->ListPending(queue_name(), 0).value();
  }
  std::optional<Decision> Stored(int64_t id) {
    return env.manager->GetDecision(id).value();
  }

  Recorder recorder;
  Env env;
};

// A queue whose acknowledgements never reach the store: the worker "dies"
// after its handler returned, before the ack.
class AckSwallower : public QueueStoreWrapper {
 public:
  using QueueStoreWrapper::QueueStoreWrapper;
  absl::StatusOr<bool> Ack(std::string_view, std::string_view) override {
    ++swallowed;
    return true;
  }
  std::atomic<int> swallowed{0};
};

// A repo that fails every call that decides while `fail` is set.
class FaultyRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  absl::StatusOr<std::optional<ActionRecord>> GetAction(int64_t id) override {
    if (fail) return Down();
    return InstanceRepoWrapper::GetAction(id);
  }
  absl::StatusOr<RecordResult> RecordDecision(const ActionRecord& r) override {
    if (fail) return Down();
    return InstanceRepoWrapper::RecordDecision(r);
  }
  absl::StatusOr<RecordResult> Join(const ActionRecord& r,
                                    const ConvergeRelation& rel) override {
    if (fail) return Down();
    return InstanceRepoWrapper::Join(r, rel);
  }
  absl::StatusOr<CreateResult> Create(const CreateRequest& r) override {
    if (fail) return Down();
    return InstanceRepoWrapper::Create(r);
  }
  absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view d) override {
    if (fail) return Down();
    return InstanceRepoWrapper::LookupOpen(d);
  }
  absl::StatusOr<std::optional<ConvergeInstance>> FindOpen(
      std::string_view d) override {
    if (fail) return Down();
    return InstanceRepoWrapper::FindOpen(d);
  }
  std::atomic<bool> fail{true};

 private:
  static absl::Status Down() {
    return absl::UnavailableError("injected: repo unreachable");
  }
};

bool Contains(const std::string& text, const std::string& needle) {
  return absl::StrContains(text, needle);
}

TEST_CASE("processor: an action task is decided and acknowledged",
          "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(100));
  auto p = e.Make();
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 60);

  REQUIRE(p->NextDue().value() == std::nullopt);
  REQUIRE(p->SubmitAction(Act(1, 100), rule).ok());
  CHECK(p->SubmitAction(Act(1, 100), rule).code() ==
        absl::StatusCode::kAlreadyExists);
  CHECK(p->NextDue().value() == T(100));
  // Due later: not run before its time.
  REQUIRE(p->SubmitAction(Act(2, 100), rule, T(130)).ok());

  CHECK(p->Drain().value() == 1);
  REQUIRE(e.Stored(1).has_value());
  CHECK(e.Stored(1)->outcome == Outcome::kExecute);
  CHECK_FALSE(e.Stored(2).has_value());
  CHECK(p->NextDue().value() == T(130));
  e.env.clock.Set(T(130));
  CHECK(p->RunOnce().value());
  CHECK_FALSE(p->RunOnce().value());
  REQUIRE(e.Stored(2).has_value());
  CHECK(e.Stored(2)->primary);

  const ProcessorStats s = p->stats();
  CHECK(s.processed == 2);
  CHECK(s.requeued + s.retried + s.dead + s.stale + s.errors == 0);
  CHECK(e.queue()->Stats(e.queue_name()).value().pending == 0);

  // Input checks before anything is queued.
  CHECK(p->SubmitAction(Act(0, 100), rule).code() ==
        absl::StatusCode::kInvalidArgument);
  ConvergeConfig bad = rule;
  bad.count = -1;
  absl::Status st = p->SubmitAction(Act(3, 100), bad);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(st.message() == "converge_config.count: must be >= 0, got -1");
  Action deep = Act(4, 100);
  Value v = "x";
  for (int i = 0; i <= kMaxValueNesting; ++i) v = Value(Value::List{v});
  deep.context["deep"] = v;
  CHECK(p->SubmitAction(deep, rule).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(e.Pending().empty());
}

TEST_CASE("processor: Create checks its options", "[processor]") {
  ProcEnv e;
  auto bad = [&](ProcessorOptions o) {
    return Processor::Create(e.env.manager.get(), o).status();
  };
  CHECK(Processor::Create(nullptr).status().code() ==
        absl::StatusCode::kInvalidArgument);
  ProcessorOptions o;
  o.visibility_timeout = absl::ZeroDuration();
  CHECK(bad(o).message() ==
        "processor: options.visibility_timeout: must be finite and > 0, got "
        "0");
  o = ProcessorOptions{};
  o.max_attempts = 0;
  CHECK(bad(o).code() == absl::StatusCode::kInvalidArgument);
  o = ProcessorOptions{};
  o.threads = 0;
  CHECK(bad(o).code() == absl::StatusCode::kInvalidArgument);
  o = ProcessorOptions{};
  o.retry_backoff_min = absl::Minutes(20);
  CHECK(bad(o).message() ==
        "processor: options.retry_backoff_max: must be >= retry_backoff_min");
  o = ProcessorOptions{};
  o.sweep_interval = -absl::Seconds(1);
  CHECK(bad(o).code() == absl::StatusCode::kInvalidArgument);
  o = ProcessorOptions{};
  o.idle_wait = absl::InfiniteDuration();
  CHECK(bad(o).code() == absl::StatusCode::kInvalidArgument);
}

// Issue 3, "Done when": a worker that takes a task and dies without
// acknowledging it leads to exactly one decision after the visibility
// timeout.
TEST_CASE(
    "processor: a worker that dies before its ack: one decision, the "
    "redelivery is a replay",
    "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(100));
  AckSwallower dying_queue(e.queue());
  Stores view = e.env.stores.view();
  view.queue = &dying_queue;
  ManagerOptions mo;
  mo.listener = &e.recorder;
  auto dying_manager = ConvergeManager::Create(view, &e.env.clock, mo).value();
  ProcessorOptions o = Quiet();
  o.visibility_timeout = absl::Seconds(60);
  auto dying = e.Make(o, dying_manager.get());
  auto survivor = e.Make(o);

  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 600);
  REQUIRE(survivor->SubmitAction(Act(1, 100), rule).ok());
  REQUIRE(dying->RunOnce().value());
  CHECK(dying_queue.swallowed == 1);
  const Decision first = e.Stored(1).value();
  CHECK(first.primary);
  CHECK(e.queue()->Stats(e.queue_name()).value().in_flight == 1);

  // Hidden until the visibility timeout has passed.
  CHECK_FALSE(survivor->RunOnce().value());
  e.env.clock.Advance(absl::Seconds(59));
  CHECK_FALSE(survivor->RunOnce().value());
  e.env.clock.Advance(absl::Seconds(1));
  REQUIRE(survivor->RunOnce().value());

  // Exactly one decision, and the second run was a replay of it.
  const std::vector<Decision> seen = e.recorder.decisions();
  REQUIRE(seen.size() == 2);
  CHECK_FALSE(seen[0].replayed);
  CHECK(seen[1].replayed);
  CHECK(seen[1].converge_id == first.converge_id);
  CHECK(e.recorder.Fresh(1) == 1);
  const Decision stored = e.Stored(1).value();
  CHECK(stored.decided_at == first.decided_at);
  CHECK(stored.converge_id == first.converge_id);
  CHECK(e.env.Relations(*first.converge_id).size() == 1);
  CHECK(e.env.stores.repo->ListOpen(0).value().size() == 1);
  const QueueStats qs = e.queue()->Stats(e.queue_name()).value();
  CHECK(qs.pending + qs.in_flight + qs.dead == 0);
  CHECK(survivor->stats().processed == 1);
}

TEST_CASE("processor: a task taken and dropped before running is run later",
          "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(100));
  ProcessorOptions o = Quiet();
  o.visibility_timeout = absl::Seconds(30);
  auto p = e.Make(o);
  REQUIRE(p->SubmitAction(Act(1, 100), Rule(ConvergeFunction::kCollect, 1, 60))
              .ok());
  // A worker takes the task and dies at once.
  auto taken =
      e.queue()->Dequeue(e.queue_name(), e.env.clock.Now(), absl::Seconds(30));
  REQUIRE(taken.value().has_value());
  CHECK_FALSE(p->RunOnce().value());
  CHECK(p->NextDue().value() == std::nullopt);  // in flight is not pending
  e.env.clock.Advance(absl::Seconds(30));
  REQUIRE(p->RunOnce().value());
  CHECK(e.recorder.Fresh(1) == 1);
  CHECK(e.Stored(1)->outcome == Outcome::kExecute);
  // The dead worker's receipt is stale now.
  CHECK_FALSE(e.queue()->Ack(e.queue_name(), (*taken)->receipt).value());
}

TEST_CASE("processor: an acknowledgement after a redelivery is stale",
          "[processor]") {
  ProcEnv e;
  ProcessorOptions o = Quiet();
  o.visibility_timeout = absl::Seconds(10);
  auto slow = e.Make(o);
  auto fast = e.Make(o);
  std::atomic<int> runs{0};
  // The first run outlives its visibility timeout; while it is still
  // running, the other processor gets the task again and finishes it.
  auto handler = [&](const Task&) {
    if (++runs == 1) {
      e.env.clock.Advance(absl::Seconds(11));
      REQUIRE(fast->RunOnce().value());
    }
    return absl::OkStatus();
  };
  REQUIRE(slow->RegisterHandler("slow", handler).ok());
  REQUIRE(fast->RegisterHandler("slow", handler).ok());
  Task t;
  t.id = "slow:1";
  t.kind = "slow";
  t.due = e.env.clock.Now();
  REQUIRE(e.queue()->Enqueue(e.queue_name(), t).ok());
  REQUIRE(slow->RunOnce().value());
  CHECK(runs == 2);
  CHECK(fast->stats().processed == 1);
  CHECK(slow->stats().stale == 1);
  CHECK(slow->stats().processed == 0);
}

// A repo whose evaluation steps under the lease take a little longer
// (yielding the CPU), so that workers really meet on busy leases. Nothing
// depends on how long: it only widens the window.
class SlowRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  absl::StatusOr<std::vector<MemberStatus>> ExecutedMembers(
      int64_t id) override {
    Pause();
    return InstanceRepoWrapper::ExecutedMembers(id);
  }
  absl::StatusOr<CreateResult> Create(const CreateRequest& r) override {
    Pause();
    return InstanceRepoWrapper::Create(r);
  }

 private:
  static void Pause() {
    for (int i = 0; i < 20; ++i) std::this_thread::yield();
  }
};

// The order-independent facts of a run.
struct Facts {
  struct Group {
    int instances = 0;
    int64_t executed_set = 0;  // summed over its instances
    int relations = 0;
    int primaries = 0;
    std::map<Outcome, int> outcomes;
    bool operator==(const Group&) const = default;
  };
  std::map<std::string, Group> groups;
  int decisions = 0;  // stored decisions
  int fresh = 0;      // fresh decisions reported
  int max_fresh_per_action = 0;
  size_t summaries = 0;
  size_t summarized_actions = 0;
  size_t dead = 0;
  int64_t left = 0;  // pending + in flight
  bool operator==(const Facts&) const = default;
};

// 2000 webhooks over 5 alert_info groups (skip_when_exceed, count 3), 500
// notices over 5 receivers (collect, count 2) and 500 jobs over 5 groups
// (skip_when_proceed, count 1), all in one window, processed by `threads`
// workers calling Drain until nothing is due, the virtual clock moved to
// the next due task between rounds. Consecutive actions share a group, so
// the workers meet on the same lease; a busy lease comes back to the
// processor at once (lease_attempts 1). skip_when_proceed reads statuses,
// so each of its joins takes the lease: that is where most of the
// contention is.
Facts StormFacts(int threads, ProcessorStats* stats) {
  constexpr int kWebhooks = 2000, kNotices = 500, kJobs = 500, kGroups = 5;
  ManagerOptions mo;
  mo.lease_attempts = 1;
  ProcEnv e(mo);
  e.env.clock.Set(T(1000));
  SlowRepo slow(e.env.stores.repo.get());
  Stores view = e.env.stores.view();
  view.repo = &slow;
  auto manager =
      ConvergeManager::Create(view, &e.env.clock, e.WithListener(mo, nullptr))
          .value();
  ProcessorOptions po = Quiet();
  po.contention_delay = absl::Seconds(1);
  auto p = e.Make(po, manager.get());

  const ConvergeConfig webhook_rule =
      Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  const ConvergeConfig notice_rule =
      Rule(ConvergeFunction::kCollect, 2, 3600, "receiver");
  const ConvergeConfig job_rule =
      Rule(ConvergeFunction::kSkipWhenProceed, 1, 3600, "job");
  std::map<int64_t, std::string> group_of;
  for (int64_t id = 1; id <= kWebhooks + kNotices + kJobs; ++id) {
    // Blocks of 4 consecutive actions per group, 100 blocks of each kind.
    const int64_t local = id <= kWebhooks ? id - 1
                          : id <= kWebhooks + kNotices
                              ? id - kWebhooks - 1
                              : id - kWebhooks - kNotices - 1;
    const std::string g = absl::StrCat(local / 4 % kGroups);
    Action a = Act(id, 900 + id * 0.01, "g" + g);
    if (id <= kWebhooks) {
      group_of[id] = "webhook g" + g;
      REQUIRE(p->SubmitAction(a, webhook_rule).ok());
    } else if (id <= kWebhooks + kNotices) {
      a.plugin_type = "notice";
      a.context["receiver"] = "r" + g;
      group_of[id] = "notice r" + g;
      REQUIRE(p->SubmitAction(a, notice_rule).ok());
    } else {
      a.plugin_type = "job";
      a.context["job"] = "j" + g;
      group_of[id] = "job j" + g;
      REQUIRE(p->SubmitAction(a, job_rule).ok());
    }
  }

  for (int round = 0; round < 10000; ++round) {
    std::atomic<int> failures{0};
    std::latch start(threads);
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        start.arrive_and_wait();
        if (!p->Drain().ok()) ++failures;
      });
    }
    for (auto& w : workers) w.join();
    REQUIRE(failures == 0);
    std::optional<absl::Time> next = p->NextDue().value();
    if (!next.has_value()) break;
    e.env.clock.Set(std::max(*next, e.env.clock.Now()));
  }

  Facts f;
  std::set<int64_t> instances_seen;
  for (const auto& [id, group] : group_of) {
    std::optional<Decision> d = e.Stored(id);
    if (!d.has_value()) continue;
    ++f.decisions;
    Facts::Group& g = f.groups[group];
    ++g.outcomes[d->outcome];
    f.max_fresh_per_action =
        std::max(f.max_fresh_per_action, e.recorder.Fresh(id));
    if (d->converge_id.has_value() &&
        instances_seen.insert(*d->converge_id).second) {
      ++g.instances;
      g.executed_set +=
          e.env.stores.repo->CountExecuted(*d->converge_id).value();
      for (const ConvergeRelation& r : e.env.Relations(*d->converge_id)) {
        ++g.relations;
        g.primaries += r.is_primary ? 1 : 0;
      }
    }
  }
  for (const Decision& d : e.recorder.decisions()) f.fresh += !d.replayed;
  for (const Summary& s : e.recorder.summaries()) {
    ++f.summaries;
    f.summarized_actions += s.action_ids.size();
  }
  f.dead = e.Dead().size();
  *stats = p->stats();
  const QueueStats qs = e.queue()->Stats(e.queue_name()).value();
  f.left = qs.pending + qs.in_flight;
  return f;
}

// Issue 3, "Done when": 4 worker threads on one store with heavy lock
// contention produce the same final state as one worker. Which action
// creates an instance, and instance ids, depend on the interleaving; the
// counts below do not: under the lease, a dimension's first actions run
// until the executed set reaches the threshold, whatever their order.
TEST_CASE("processor: 4 workers under lease contention end as 1 worker does",
          "[processor][concurrency]") {
  ProcessorStats one_stats, four_stats;
  const Facts one = StormFacts(1, &one_stats);
  const Facts four = StormFacts(4, &four_stats);
  INFO("1 worker: requeued " << one_stats.requeued << ", retried "
                             << one_stats.retried);
  INFO("4 workers: requeued " << four_stats.requeued << ", retried "
                              << four_stats.retried);

  // The expected state, spelled out.
  CHECK(one_stats.requeued == 0);  // nobody to contend with
  CHECK(one.decisions == 3000);
  CHECK(one.fresh == 3000);
  CHECK(one.max_fresh_per_action == 1);
  CHECK(one.dead == 0);
  CHECK(one.left == 0);
  REQUIRE(one.groups.size() == 15);
  for (const auto& [name, g] : one.groups) {
    INFO(name);
    CHECK(g.instances == 1);
    CHECK(g.primaries == 1);
    if (absl::StartsWith(name, "webhook")) {
      CHECK(g.relations == 400);
      CHECK(g.executed_set == 3);
      CHECK(g.outcomes == std::map<Outcome, int>{{Outcome::kExecute, 3},
                                                 {Outcome::kSkip, 397}});
    } else if (absl::StartsWith(name, "job")) {
      CHECK(g.relations == 100);
      CHECK(g.executed_set == 1);
      CHECK(g.outcomes == std::map<Outcome, int>{{Outcome::kExecute, 1},
                                                 {Outcome::kSkip, 99}});
    } else {
      CHECK(g.relations == 100);
      CHECK(g.executed_set == 2);
      CHECK(g.outcomes == std::map<Outcome, int>{{Outcome::kExecute, 2},
                                                 {Outcome::kSkip, 98}});
    }
  }
  // One summary per notice instance, reporting its skipped members.
  CHECK(one.summaries == 5);
  CHECK(one.summarized_actions == 5 * 98);

  // And the same with four workers.
  CHECK(four.groups == one.groups);
  CHECK(four == one);
  CHECK(four_stats.retried == 0);
  // There was lease contention to survive, unless the store's write lock
  // serializes whole decisions (a repo with batches: SQLite), which leaves
  // none to contend for.
  Env probe;
  if (!RepoHasBatches(*probe.stores.repo)) CHECK(four_stats.requeued > 0);
  CHECK(four_stats.processed == one_stats.processed);
}

TEST_CASE("processor: Start runs workers, Stop is prompt", "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(100));
  ProcessorOptions o = Quiet();
  o.threads = 4;
  o.idle_wait = absl::Hours(1);  // Stop must not wait for it
  auto p = e.Make(o);
  REQUIRE(p->Start().ok());
  CHECK(p->Start().code() == absl::StatusCode::kFailedPrecondition);
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 600);
  constexpr int kActions = 200;
  for (int id = 1; id <= kActions; ++id) {
    REQUIRE(
        p->SubmitAction(Act(id, 100, absl::StrCat("g", id % 4)), rule).ok());
  }
  // Each submission wakes a worker; wait for the outcome, not for a time.
  REQUIRE(e.recorder.WaitFor(kActions));
  const auto before = std::chrono::steady_clock::now();
  p->Stop();
  CHECK(std::chrono::steady_clock::now() - before < std::chrono::seconds(30));
  p->Stop();  // idempotent
  CHECK(p->stats().processed == kActions);
  CHECK(e.recorder.Fresh(1) == 1);

  // Started again, it goes on.
  REQUIRE(p->Start().ok());
  REQUIRE(p->SubmitAction(Act(kActions + 1, 100), rule).ok());
  REQUIRE(e.recorder.WaitFor(kActions + 1));
  p->Stop();
  CHECK(p->stats().processed == kActions + 1);
}

// Issue 3, "Done when": a task failing every time ends in the dead-letter
// queue after the configured retries, and can be re-driven.
TEST_CASE(
    "processor: a task that always fails is buried after max_attempts and "
    "re-driven once the fault is gone",
    "[processor]") {
  Metrics metrics;
  ProcEnv e({}, &metrics);
  e.env.clock.Set(T(100));
  FaultyRepo repo(e.env.stores.repo.get());
  ManagerOptions mo;
  mo.listener = &e.recorder;
  mo.metrics = &metrics;
  Stores view = e.env.stores.view();
  view.repo = &repo;
  auto manager = ConvergeManager::Create(view, &e.env.clock, mo).value();
  ProcessorOptions o = Quiet();
  o.max_attempts = 4;
  o.retry_backoff_min = absl::Seconds(30);
  o.retry_backoff_max = absl::Minutes(10);
  auto p = e.Make(o, manager.get());

  REQUIRE(p->SubmitAction(Act(1, 100), Rule(ConvergeFunction::kCollect, 1, 60))
              .ok());
  for (int attempt = 1; attempt <= 4; ++attempt) {
    INFO("attempt " << attempt);
    REQUIRE(p->RunOnce().value());
    if (attempt == 4) break;
    // Backoff: 30 s * 2^(attempt-1), jittered to [0.5, 1.0] of it.
    const absl::Time next = p->NextDue().value().value();
    const absl::Duration full = absl::Seconds(30) * (1 << (attempt - 1));
    CHECK(next - e.env.clock.Now() >= full / 2);
    CHECK(next - e.env.clock.Now() <= full);
    CHECK_FALSE(p->RunOnce().value());  // not before its time
    e.env.clock.Set(next);
  }
  CHECK(p->NextDue().value() == std::nullopt);
  std::vector<Task> dead = e.Dead();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].id == "action:1");
  CHECK(dead[0].attempts == 4);
  CHECK(dead[0].last_error == "UNAVAILABLE: injected: repo unreachable");
  CHECK_FALSE(e.Stored(1).has_value());
  ProcessorStats s = p->stats();
  CHECK(s.retried == 3);
  CHECK(s.dead == 1);
  CHECK(s.processed == 0);
  const std::string text = metrics.RenderPrometheus();
  CHECK(Contains(text, "converge_retries_total{kind=\"action\"} 3\n"));
  CHECK(Contains(text, "converge_dead_letters_total{kind=\"action\"} 1\n"));

  // Re-driven while the fault lasts: buried again after as many attempts.
  // Then, with the fault gone, decided exactly once.
  repo.fail = false;
  REQUIRE(
      e.queue()->Redrive(e.queue_name(), "action:1", e.env.clock.Now()).ok());
  CHECK(p->Drain().value() == 1);
  CHECK(e.Dead().empty());
  REQUIRE(e.Stored(1).has_value());
  CHECK(e.Stored(1)->primary);
  CHECK(e.recorder.Fresh(1) == 1);
  CHECK(p->stats().processed == 1);
  // Run again (a late duplicate): a replay, still one decision.
  REQUIRE(p->SubmitAction(Act(1, 100), Rule(ConvergeFunction::kCollect, 1, 60))
              .ok());
  CHECK(p->Drain().value() == 1);
  CHECK(e.recorder.Fresh(1) == 1);
}

TEST_CASE("processor: lease contention requeues without burning attempts",
          "[processor]") {
  Metrics metrics;
  ManagerOptions mo;
  mo.lease_attempts = 1;  // report a busy lease at once
  ProcEnv e(mo, &metrics);
  e.env.clock.Set(T(100));
  ProcessorOptions o = Quiet();
  o.max_attempts = 2;
  o.contention_delay = absl::Seconds(3);
  auto p = e.Make(o);

  // Another holder has the dimension's lease.
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 600);
  const Action a = Act(1, 100);
  const std::string key =
      e.env.manager->LeaseKey(ComputeDimension(rule, rule, a.context).dimension)
          .value();
  REQUIRE(e.env.stores.lock->TryAcquire(key, "someone-else", absl::Minutes(10))
              .value());

  REQUIRE(p->SubmitAction(a, rule).ok());
  for (int i = 1; i <= 10; ++i) {
    INFO("run " << i);
    REQUIRE(p->RunOnce().value());
    CHECK(p->stats().requeued == i);
    const absl::Time next = p->NextDue().value().value();
    CHECK(next - e.env.clock.Now() >= absl::Milliseconds(1500));
    CHECK(next - e.env.clock.Now() <= absl::Seconds(3));
    CHECK(e.Pending().at(0).attempts == 0);
    e.env.clock.Set(next);
  }
  CHECK(p->stats().retried == 0);
  CHECK(p->stats().dead == 0);
  CHECK_FALSE(e.Stored(1).has_value());

  REQUIRE(e.env.stores.lock->Release(key, "someone-else").value());
  REQUIRE(p->RunOnce().value());
  CHECK(e.Stored(1).has_value());
  CHECK(p->stats().processed == 1);
  CHECK(e.Dead().empty());
  CHECK(Contains(metrics.RenderPrometheus(),
                 "converge_requeues_total{kind=\"action\"} 10\n"));
}

TEST_CASE("processor: re-polls turn sleep into execute, or skip on timeout",
          "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(100));
  auto p = e.Make();
  // wait_when_proceed: a joiner sleeps while an executed member proceeds.
  ConvergeConfig rule = Rule(ConvergeFunction::kWaitWhenProceed, 1, 600);
  ConvergeConfig short_rule = Rule(ConvergeFunction::kWaitWhenProceed, 1, 60);
  REQUIRE(p->SubmitAction(Act(1, 100, "a"), rule).ok());
  REQUIRE(p->SubmitAction(Act(2, 100, "a"), rule).ok());
  REQUIRE(p->SubmitAction(Act(11, 100, "b"), short_rule).ok());
  REQUIRE(p->SubmitAction(Act(12, 100, "b"), short_rule).ok());
  CHECK(p->Drain().value() == 4);
  CHECK(e.Stored(1)->outcome == Outcome::kExecute);
  CHECK(e.Stored(2)->outcome == Outcome::kSleep);
  CHECK(e.Stored(12)->outcome == Outcome::kSleep);
  e.env.Report(1, ActionStatus::kRunning);
  e.env.Report(11, ActionStatus::kRunning);

  // Every 30 s: still sleeping, the re-poll comes back.
  REQUIRE(p->NextDue().value() == T(130));
  e.env.clock.Set(T(130));
  CHECK(p->Drain().value() == 2);
  CHECK(e.Stored(2)->outcome == Outcome::kSleep);
  CHECK(e.Stored(12)->outcome == Outcome::kSleep);
  CHECK(p->stats().requeued == 2);
  CHECK(p->NextDue().value() == T(160));

  // Action 1 finished: 2 runs at the next re-poll. Group b's window (60 s)
  // bounds its sleep: 12 is skipped once 100 + 60 has passed.
  e.env.Report(1, ActionStatus::kSuccess);
  e.env.clock.Set(T(160));
  CHECK(p->Drain().value() == 2);
  CHECK(e.Stored(2)->outcome == Outcome::kExecute);
  CHECK(e.Stored(12)->outcome == Outcome::kSleep);
  e.env.clock.Set(T(190));
  CHECK(p->Drain().value() == 1);
  CHECK(e.Stored(12)->outcome == Outcome::kSkip);
  CHECK(e.Stored(12)->reason == "sleep timed out");
  CHECK(p->NextDue().value() == std::nullopt);
  CHECK(p->stats().dead == 0);
}

TEST_CASE(
    "processor: a sleeper sent to approval by its re-poll times out "
    "to skip too",
    "[processor]") {
  ManagerOptions mo;
  mo.approval_timeout = absl::Minutes(30);
  ProcEnv e(mo);
  e.env.clock.Set(T(100));
  auto p = e.Make();
  // approve_when_failed: the creator runs, a joiner sleeps while it runs,
  // and goes to approval once it has failed.
  const ConvergeConfig rule =
      Rule(ConvergeFunction::kApproveWhenFailed, 1, 3600);
  REQUIRE(p->SubmitAction(Act(1, 100), rule).ok());
  REQUIRE(p->SubmitAction(Act(2, 100), rule).ok());
  CHECK(p->Drain().value() == 2);
  CHECK(e.Stored(1)->outcome == Outcome::kExecute);
  CHECK(e.Stored(2)->outcome == Outcome::kSleep);
  e.env.Report(1, ActionStatus::kFailure);
  e.env.clock.Set(T(130));
  CHECK(p->Drain().value() == 1);  // the re-poll
  REQUIRE(e.Stored(2)->outcome == Outcome::kApproval);
  // Its approval timeout is scheduled, 30 minutes after that decision.
  bool scheduled = false;
  for (const Task& t : e.Pending()) {
    if (t.kind != task_kinds::kApproval || t.subject_id != 2) continue;
    scheduled = true;
    CHECK(t.due == T(130) + absl::Minutes(30));
  }
  CHECK(scheduled);
  e.env.clock.Set(T(130) + absl::Minutes(30));
  CHECK(p->Drain().value() == 1);
  CHECK(e.Stored(2)->outcome == Outcome::kSkip);
  CHECK(p->NextDue().value() == std::nullopt);
  CHECK(e.Dead().empty());
}

TEST_CASE("processor: an approval that never comes times out to skip",
          "[processor]") {
  ManagerOptions mo;
  mo.approval_timeout = absl::Minutes(30);
  ProcEnv e(mo);
  e.env.clock.Set(T(100));
  auto p = e.Make();
  // defense: once the threshold is reached, joiners go to approval.
  const ConvergeConfig rule = Rule(ConvergeFunction::kDefense, 1, 3600);
  for (int id = 1; id <= 3; ++id) {
    REQUIRE(p->SubmitAction(Act(id, 100), rule).ok());
  }
  CHECK(p->Drain().value() == 3);
  CHECK(e.Stored(1)->outcome == Outcome::kExecute);
  CHECK(e.Stored(2)->outcome == Outcome::kApproval);
  CHECK(e.Stored(3)->outcome == Outcome::kApproval);
  CHECK(e.env.manager->Approve(3).value().outcome == Outcome::kExecute);

  // A stray early run of an approval task (say, re-driven by hand) leaves
  // the approval alone and waits for its timeout.
  Task early;
  early.id = "approval-early:2";
  early.kind = std::string(task_kinds::kApproval);
  early.subject_id = 2;
  early.due = e.env.clock.Now();
  REQUIRE(e.queue()->Enqueue(e.queue_name(), early).ok());
  CHECK(p->Drain().value() == 1);
  CHECK(e.Stored(2)->outcome == Outcome::kApproval);
  bool found = false;
  for (const Task& t : e.Pending()) {
    if (t.id != early.id) continue;
    found = true;
    CHECK(t.due == T(100) + absl::Minutes(30));
  }
  CHECK(found);

  e.env.clock.Set(T(100) + absl::Minutes(30));
  CHECK(p->Drain().value() == 3);  // approval:2, approval:3, the early one
  CHECK(e.Stored(2)->outcome == Outcome::kSkip);
  CHECK(e.Stored(3)->outcome == Outcome::kExecute);  // approved stays
  CHECK(p->NextDue().value() == std::nullopt);
  CHECK(e.Dead().empty());
}

TEST_CASE(
    "processor: unknown kinds and bad payloads are buried with the reason",
    "[processor]") {
  ProcEnv e;
  auto p = e.Make();
  auto enqueue = [&](std::string id, std::string kind, int64_t subject,
                     std::string payload) {
    Task t;
    t.id = std::move(id);
    t.kind = std::move(kind);
    t.subject_id = subject;
    t.payload = std::move(payload);
    t.due = e.env.clock.Now();
    REQUIRE(e.queue()->Enqueue(e.queue_name(), t).ok());
  };
  enqueue("mystery:1", "mystery", 1, "");
  enqueue("action:5", "action", 5, "garbage");
  std::string valid =
      EncodeActionTask(Act(6, 0), Rule(ConvergeFunction::kCollect, 1, 60));
  enqueue("action:6", "action", 6, valid.substr(0, valid.size() - 3));
  enqueue("action:7", "action", 7, valid);  // carries action 6
  CHECK(p->Drain().value() == 4);

  std::map<std::string, std::string> reason;
  for (const Task& t : e.Dead()) {
    reason[t.id] = t.last_error;
    CHECK(t.attempts == 1);  // at once, not after max_attempts
  }
  REQUIRE(reason.size() == 4);
  CHECK(reason["mystery:1"] ==
        "INVALID_ARGUMENT: processor: no handler for task kind \"mystery\" "
        "(task mystery:1)");
  CHECK(reason["action:5"] ==
        "INVALID_ARGUMENT: action task: not an action task (format byte 0x67, "
        "expected 0xc1)");
  // Cut inside the condition's "self": its length points past the end.
  CHECK(reason["action:6"] ==
        "INVALID_ARGUMENT: action task: byte 72: converge_config.condition "
        "value: length 4 exceeds the 3 bytes left");
  CHECK(reason["action:7"] ==
        "INVALID_ARGUMENT: processor: task action:7 carries action 6");
  CHECK(p->stats().dead == 4);
  CHECK_FALSE(e.Stored(6).has_value());
  CHECK_FALSE(e.Stored(7).has_value());

  // An action the manager would refuse (sizes are its check) is refused
  // before it is queued.
  Action big = Act(8, 0);
  big.signal = std::string(10000, 'x');
  absl::Status refused =
      p->SubmitAction(big, Rule(ConvergeFunction::kCollect, 1, 60));
  CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StartsWith(refused.message(),
                         "action.signal: value of 10000 bytes"));
  for (const Task& t : e.Pending()) CHECK(t.id != "action:8");
}

TEST_CASE("processor: host handlers ack, retry and bury", "[processor]") {
  ProcEnv e;
  ProcessorOptions o = Quiet();
  o.max_attempts = 2;
  auto p = e.Make(o);
  std::vector<int64_t> ran;
  REQUIRE(p->RegisterHandler("notify", [&](const Task& t) {
             ran.push_back(t.subject_id);
             if (t.subject_id == 2) return absl::UnavailableError("smtp down");
             if (t.subject_id == 3) return absl::InvalidArgumentError("bad");
             if (t.subject_id == 4) throw std::runtime_error("oops");
             return absl::OkStatus();
           }).ok());
  CHECK(p->RegisterHandler("notify", [](const Task&) {
           return absl::OkStatus();
         }).code() == absl::StatusCode::kAlreadyExists);
  CHECK(p->RegisterHandler("summary", [](const Task&) {
           return absl::OkStatus();
         }).code() == absl::StatusCode::kInvalidArgument);
  CHECK(p->RegisterHandler("x", nullptr).code() ==
        absl::StatusCode::kInvalidArgument);
  for (int64_t id = 1; id <= 4; ++id) {
    Task t;
    t.id = absl::StrCat("notify:", id);
    t.kind = "notify";
    t.subject_id = id;
    t.due = e.env.clock.Now();
    REQUIRE(e.queue()->Enqueue(e.queue_name(), t).ok());
  }
  CHECK(p->Drain().value() == 4);
  CHECK(p->stats().processed == 1);
  CHECK(p->stats().retried == 2);          // 2, and 4 (it threw)
  CHECK(p->stats().dead == 1);             // InvalidArgument: at once
  e.env.clock.Advance(absl::Seconds(30));  // the longest first backoff
  CHECK(p->Drain().value() == 2);
  CHECK(p->stats().dead == 3);  // still failing after 2 attempts
  // The two retries come in the order of their jittered due times.
  REQUIRE(ran.size() == 6);
  CHECK(std::vector<int64_t>(ran.begin(), ran.begin() + 4) ==
        std::vector<int64_t>{1, 2, 3, 4});
  CHECK(std::set<int64_t>(ran.begin() + 4, ran.end()) ==
        std::set<int64_t>{2, 4});
  std::map<std::string, std::string> reason;
  for (const Task& t : e.Dead()) reason[t.id] = t.last_error;
  CHECK(reason == std::map<std::string, std::string>{
                      {"notify:2", "UNAVAILABLE: smtp down"},
                      {"notify:3", "INVALID_ARGUMENT: bad"},
                      {"notify:4",
                       "INTERNAL: processor: the handler of task "
                       "kind \"notify\" threw: oops"}});
}

TEST_CASE("processor: the sweep and retention jobs reschedule themselves",
          "[processor]") {
  Metrics metrics;
  ManagerOptions mo;
  mo.sweep_grace = absl::Seconds(60);
  ProcEnv e(mo, &metrics);
  e.env.clock.Set(T(1000));
  ProcessorOptions o;  // sweep every 60 s, retention every hour
  auto p = e.Make(o);
  auto again = e.Make(o);  // a second process: the jobs exist already

  auto due_of = [&](const std::string& id) -> std::optional<absl::Time> {
    for (const Task& t : e.Pending()) {
      if (t.id == id) return t.due;
    }
    return std::nullopt;
  };
  CHECK(e.Pending().size() == 2);
  CHECK(due_of("sweep") == T(1060));
  CHECK(due_of("retention") == T(1000) + absl::Hours(1));

  // An instance whose window (60 s) passes: the sweep ends it once
  // create_time + W + grace is behind it.
  REQUIRE(p->SubmitAction(Act(1, 1000),
                          Rule(ConvergeFunction::kSkipWhenExceed, 1, 60))
              .ok());
  CHECK(p->Drain().value() == 1);
  const int64_t cid = e.Stored(1)->converge_id.value();
  e.env.clock.Set(T(1060));
  CHECK(p->Drain().value() == 1);
  CHECK(due_of("sweep") == T(1120));
  CHECK(e.env.Instance(cid).is_open());
  e.env.clock.Set(T(1121));
  CHECK(p->Drain().value() == 1);
  CHECK(due_of("sweep") == T(1181));
  CHECK_FALSE(e.env.Instance(cid).is_open());
  CHECK(p->stats().processed == 3);

  // The sweep refreshed the gauges.
  const std::string text = metrics.RenderPrometheus();
  CHECK(Contains(text,
                 "converge_queue_length{queue=\"converge\",state=\"pending\"} "
                 "1\n"));
  CHECK(Contains(text, "converge_open_instances{level=\"action\"} 0\n"));

  // An hour later both have run, and are due again one period on. The
  // sweep ran once (its task is due again after each run, so a long pause
  // costs one run, not one per missed period).
  e.env.clock.Set(T(1000) + absl::Hours(1));
  CHECK(again->Drain().value() == 2);
  CHECK(due_of("sweep") == T(1000) + absl::Hours(1) + absl::Seconds(60));
  CHECK(due_of("retention") == T(1000) + absl::Hours(2));
  CHECK(e.Dead().empty());
}

TEST_CASE("processor: a failing periodic job is never buried", "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(1000));
  // The sweep lists open instances: make that fail.
  class FailingList : public InstanceRepoWrapper {
   public:
    using InstanceRepoWrapper::InstanceRepoWrapper;
    absl::StatusOr<std::vector<ConvergeInstance>> ListOpen(size_t) override {
      return absl::UnavailableError("injected: list failed");
    }
    absl::StatusOr<std::vector<ConvergeInstance>> ListOpenAfter(
        int64_t, size_t) override {
      return absl::UnavailableError("injected: list failed");
    }
  } failing(e.env.stores.repo.get());
  Stores view = e.env.stores.view();
  view.repo = &failing;
  auto manager = ConvergeManager::Create(view, &e.env.clock).value();
  ProcessorOptions o;
  o.max_attempts = 2;
  o.retention_interval = absl::ZeroDuration();
  auto p = e.Make(o, manager.get());
  for (int i = 0; i < 6; ++i) {
    e.env.clock.Set(p->NextDue().value().value());
    REQUIRE(p->RunOnce().value());
  }
  CHECK(e.Dead().empty());
  CHECK(e.Pending().size() == 1);
  CHECK(p->stats().retried == 6);
}

TEST_CASE(
    "processor: a periodic job that fails with kInvalidArgument is "
    "not buried either",
    "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(1000));
  class BadList : public InstanceRepoWrapper {
   public:
    using InstanceRepoWrapper::InstanceRepoWrapper;
    absl::StatusOr<std::vector<ConvergeInstance>> ListOpenAfter(
        int64_t, size_t) override {
      return absl::InvalidArgumentError("injected: bad listing");
    }
  } failing(e.env.stores.repo.get());
  Stores view = e.env.stores.view();
  view.repo = &failing;
  auto manager = ConvergeManager::Create(view, &e.env.clock).value();
  ProcessorOptions o;
  o.retention_interval = absl::ZeroDuration();
  auto p = e.Make(o, manager.get());
  e.env.clock.Set(T(1060));
  REQUIRE(p->RunOnce().value());
  CHECK(e.Dead().empty());
  const std::vector<Task> pending = e.Pending();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == "sweep");
  CHECK(pending[0].due == T(1120));  // its next period
}

TEST_CASE(
    "processor: a processor with a job off passes its task on to one "
    "that runs it",
    "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(1000));
  ProcessorOptions on_options;
  on_options.retention_interval = absl::ZeroDuration();
  auto on = e.Make(on_options);  // schedules the sweep at 1060
  auto off = e.Make();           // both jobs off
  // An instance the sweep would end from 1000 + 300 + 60 on.
  e.env.Submit(Act(1, 1000), Rule(ConvergeFunction::kSkipWhenExceed, 1, 300));
  e.env.clock.Set(T(1400));
  REQUIRE(off->RunOnce().value());
  // Not run, not deleted: due again one default period on.
  CHECK(e.env.Instance(1).is_open());
  std::vector<Task> pending = e.Pending();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == "sweep");
  CHECK(pending[0].due == T(1460));
  e.env.clock.Set(T(1460));
  REQUIRE(on->RunOnce().value());
  CHECK_FALSE(e.env.Instance(1).is_open());
  pending = e.Pending();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].due == T(1520));
  CHECK(e.Dead().empty());
}

TEST_CASE("processor: Create revives a buried periodic job", "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(1000));
  ProcessorOptions o;
  o.retention_interval = absl::ZeroDuration();
  auto first = e.Make(o);
  // The sweep task buried (by an older version, or by hand).
  e.env.clock.Set(T(1060));
  std::optional<Delivery> d =
      e.queue()
          ->Dequeue(e.queue_name(), e.env.clock.Now(), absl::Seconds(60))
          .value();
  REQUIRE(d.has_value());
  REQUIRE(d->task.id == "sweep");
  REQUIRE(e.queue()->Bury(e.queue_name(), d->receipt, "buried").value());
  REQUIRE(e.Pending().empty());
  auto second = e.Make(o);
  CHECK(e.Dead().empty());
  std::vector<Task> pending = e.Pending();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == "sweep");
  CHECK(pending[0].due == T(1120));
}

TEST_CASE(
    "processor: a task whose runs never settle is buried, not run "
    "again",
    "[processor]") {
  ProcEnv e;
  e.env.clock.Set(T(1000));
  ProcessorOptions o = Quiet();
  o.max_attempts = 3;
  auto p = e.Make(o);
  int runs = 0;
  REQUIRE(p->RegisterHandler("crashy", [&](const Task&) {
             ++runs;
             return absl::OkStatus();
           }).ok());
  Task t;
  t.id = "crashy:1";
  t.kind = "crashy";
  t.due = e.env.clock.Now();
  REQUIRE(e.queue()->Enqueue(e.queue_name(), t).ok());
  // Three deliveries whose workers died before settling them.
  for (int i = 0; i < 3; ++i) {
    REQUIRE(e.queue()
                ->Dequeue(e.queue_name(), e.env.clock.Now(), absl::Seconds(10))
                .value()
                .has_value());
    e.env.clock.Advance(absl::Seconds(11));
  }
  REQUIRE(p->RunOnce().value());
  CHECK(runs == 0);
  const std::vector<Task> dead = e.Dead();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].id == "crashy:1");
  CHECK(absl::StrContains(dead[0].last_error,
                          "delivered 4 times (max_attempts 3) and its last "
                          "run never settled"));
  CHECK(p->stats().dead == 1);
}

TEST_CASE("Sweep goes on past an instance that fails, then reports it",
          "[processor]") {
  ProcEnv e;
  class FailingEnd : public InstanceRepoWrapper {
   public:
    using InstanceRepoWrapper::InstanceRepoWrapper;
    absl::StatusOr<bool> End(int64_t id, absl::Time at) override {
      if (id == 1) return absl::UnavailableError("injected: end failed");
      return InstanceRepoWrapper::End(id, at);
    }
  } failing(e.env.stores.repo.get());
  Stores view = e.env.stores.view();
  view.repo = &failing;
  auto manager = ConvergeManager::Create(view, &e.env.clock).value();
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  e.env.Submit(Act(1, 0, "a"), rule);
  e.env.Submit(Act(2, 0, "b"), rule);
  e.env.clock.Set(T(400));
  absl::StatusOr<SweepResult> r = manager->Sweep();
  CHECK(r.status().code() == absl::StatusCode::kUnavailable);
  CHECK(e.env.Instance(1).is_open());
  CHECK_FALSE(e.env.Instance(2).is_open());  // not held up by instance 1
}

}  // namespace
}  // namespace converge::testing
