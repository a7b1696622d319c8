// ConvergeManager behaviour beyond the scenarios: bad input, leases,
// idempotency of side effects, options.

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>

#include "absl/strings/match.h"
#include "converge/dimension.h"
#include "converge/store/errors.h"
#include "converge/store/wrappers.h"
#include "test_util.h"

namespace converge::testing {
namespace {

bool Mentions(const absl::Status& s, const std::string& text) {
  return absl::StrContains(std::string(s.message()), text);
}

TEST_CASE("bad actions are InvalidArgument naming the field", "[manager]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  Action a = Act(1, 0);
  std::string field;
  SECTION("id") {
    a.id = 0;
    field = "action.id";
  }
  SECTION("create_time") {
    a.create_time = absl::InfiniteFuture();
    field = "action.create_time";
  }
  SECTION("execute_timeout") {
    a.execute_timeout = -1;
    field = "action.execute_timeout";
  }
  SECTION("oversized context value") {
    a.context["notice_receiver"] = std::string(5000, 'x');
    field = "action.context.notice_receiver";
  }
  SECTION("oversized list item") {
    a.context["dimensions"] = Value::List{"a", std::string(5000, 'y')};
    field = "action.context.dimensions[1]";
  }
  SECTION("oversized alert id") {
    a.alerts = {"ok", std::string(5000, 'z')};
    field = "action.alerts[1]";
  }
  SECTION("empty alert id") {
    a.alerts = {"ok", ""};
    field = "action.alerts[1]: empty alert id";
  }
  SECTION("empty context key") {
    a.context[""] = "v";
    field = "action.context";
  }
  absl::StatusOr<Decision> d = env.manager->Submit(a, rule);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == absl::StatusCode::kInvalidArgument);
  INFO(d.status().ToString());
  CHECK(Mentions(d.status(), field));
  // Nothing was stored.
  if (a.id > 0) CHECK_FALSE(env.stores.repo->GetAction(a.id).value());
}

TEST_CASE("bad configs are InvalidArgument naming the field path",
          "[manager]") {
  Env env;
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  std::string field;
  SECTION("count") {
    rule.count = -1;
    field = "converge_config.count";
  }
  SECTION("timedelta") {
    rule.timedelta = -5;
    field = "converge_config.timedelta";
  }
  SECTION("sub_converge_config.count") {
    auto sub = std::make_shared<ConvergeConfig>(
        Rule(ConvergeFunction::kCollectAlarm, 2, 60));
    sub->count = -3;
    rule.sub_converge_config = sub;
    field = "converge_config.sub_converge_config.count";
  }
  SECTION("condition dimension") {
    rule.condition.push_back(Condition{"", {Value("self")}});
    field = "converge_config.condition[1].dimension";
  }
  // Bounded conditions (max_condition_values, max_value_bytes): a config
  // of thousands of values made every action's keys cost seconds.
  SECTION("too many condition values") {
    rule.condition.emplace_back();
    rule.condition.back().dimension = "ip";
    for (int i = 0; i < 256; ++i) {
      rule.condition.back().value.emplace_back(std::to_string(i));
    }  // 1 + 256 values
    field =
        "converge_config.condition: 257 values in all exceed the limit "
        "of 256";
  }
  SECTION("too many conditions") {
    for (int i = 0; i < 300; ++i) {
      rule.condition.emplace_back();
      rule.condition.back().dimension = "d" + std::to_string(i);
    }
    field = "converge_config.condition: 301 values";
  }
  SECTION("oversized condition dimension") {
    rule.condition.emplace_back();
    rule.condition.back().dimension = std::string(5000, 'd');
    field = "converge_config.condition[1].dimension: value of 5000 bytes";
  }
  SECTION("oversized condition value") {
    rule.condition.emplace_back();
    rule.condition.back().dimension = "ip";
    rule.condition.back().value.emplace_back(std::string(5000, 'v'));
    field = "converge_config.condition[1].value[0]: value of 5000 bytes";
  }
  SECTION("sub_converge_config condition") {
    auto sub = std::make_shared<ConvergeConfig>(
        Rule(ConvergeFunction::kCollectAlarm, 2, 60));
    sub->condition.emplace_back();
    sub->condition.back().dimension = "ip";
    const Value::List list = {std::string(5000, 'w')};
    sub->condition.back().value.emplace_back(list);
    rule.sub_converge_config = sub;
    field = "converge_config.sub_converge_config.condition[1].value[0][0]";
  }
  absl::StatusOr<Decision> d = env.manager->Submit(Act(1, 0), rule);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == absl::StatusCode::kInvalidArgument);
  INFO(d.status().ToString());
  CHECK(Mentions(d.status(), field));
  CHECK_FALSE(env.stores.repo->GetAction(1).value());
}

TEST_CASE("Create rejects missing stores and bad options", "[manager]") {
  VirtualClock clock;
  auto stores = memory::NewMemoryStores({&clock}).value();
  Stores view = stores.view();
  view.queue = nullptr;
  CHECK(ConvergeManager::Create(view, &clock).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(ConvergeManager::Create(stores.view(), nullptr).status().code() ==
        absl::StatusCode::kInvalidArgument);
  ManagerOptions o;
  o.lease_attempts = 0;
  CHECK(ConvergeManager::Create(stores.view(), &clock, o).status().code() ==
        absl::StatusCode::kInvalidArgument);
  o = ManagerOptions();
  o.lease_ttl = absl::ZeroDuration();
  CHECK(ConvergeManager::Create(stores.view(), &clock, o).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("a busy dimension lease is Unavailable and decides nothing",
          "[manager]") {
  ManagerOptions o;
  o.lease_attempts = 3;
  Env env(o);
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  CHECK(env.Submit(Act(1, 0), rule).outcome == Outcome::kExecute);
  const std::string dimension =
      ComputeDimension(rule, rule, Context{{"alert_info", Value("g1")}})
          .dimension;
  const std::string key = env.manager->LeaseKey(dimension).value();
  REQUIRE(env.stores.lock->TryAcquire(key, "other", absl::Seconds(60)).value());

  absl::StatusOr<Decision> d2 = env.manager->Submit(Act(2, 1), rule);
  REQUIRE_FALSE(d2.ok());
  CHECK(d2.status().code() == absl::StatusCode::kUnavailable);
  CHECK(Mentions(d2.status(), dimension));
  CHECK_FALSE(env.stores.repo->GetAction(2).value());

  // The other holder's lease expires (virtual time): the retry succeeds and
  // takes the lease over; the stale holder cannot release it afterwards.
  env.clock.Advance(absl::Seconds(61));
  Decision d2b = env.manager->Submit(Act(2, 1), rule).value();
  CHECK(d2b.primary);
  CHECK(env.Instance(*d2b.converge_id).dimension == dimension);
  CHECK_FALSE(env.stores.lock->Release(key, "other").value());
}

TEST_CASE("joiners whose outcome is settled take no lease", "[manager]") {
  // skip_when_exceed with the threshold reached: the outcome cannot change,
  // so a joiner decides even while another evaluator holds the lease.
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  Decision d1 = env.Submit(Act(1, 0), rule);
  const std::string key =
      env.manager->LeaseKey(env.Instance(*d1.converge_id).dimension).value();
  REQUIRE(env.stores.lock->TryAcquire(key, "other", absl::Seconds(60)).value());
  CHECK(env.Submit(Act(2, 1), rule).outcome == Outcome::kSkip);
  // A function that reads statuses still needs the lease.
  ManagerOptions o;
  o.lease_attempts = 1;
  Env env2(o);
  const ConvergeConfig wait = Rule(ConvergeFunction::kWaitWhenProceed, 1, 300);
  Decision w1 = env2.Submit(Act(1, 0), wait);
  const std::string key2 =
      env2.manager->LeaseKey(env2.Instance(*w1.converge_id).dimension).value();
  REQUIRE(
      env2.stores.lock->TryAcquire(key2, "other", absl::Seconds(60)).value());
  CHECK(env2.manager->Submit(Act(2, 1), wait).status().code() ==
        absl::StatusCode::kUnavailable);
}

TEST_CASE("the manager releases its lease after each decision", "[manager]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  Decision d1 = env.Submit(Act(1, 0), rule);
  const std::string key =
      env.manager->LeaseKey(env.Instance(*d1.converge_id).dimension).value();
  // Free: another token takes it at once.
  CHECK(env.stores.lock->TryAcquire(key, "probe", absl::Seconds(1)).value());
}

// Fails Enqueue once, as a queue server that goes away right after the
// instance committed.
class FlakyQueue : public QueueStoreWrapper {
 public:
  using QueueStoreWrapper::QueueStoreWrapper;
  int failures = 1;
  absl::Status Enqueue(std::string_view queue, const Task& task) override {
    if (failures > 0) {
      --failures;
      return absl::UnavailableError("flaky: queue went away");
    }
    return QueueStoreWrapper::Enqueue(queue, task);
  }
};

TEST_CASE("a lost summary task is rescheduled by the redelivery", "[manager]") {
  Env env;
  FlakyQueue queue(env.stores.queue.get());
  env.Rewire([&](Stores* view) { view->queue = &queue; });
  auto& manager = env.manager;
  auto& stores = env.stores;
  const ConvergeConfig rule = Rule(ConvergeFunction::kCollect, 1, 120);

  const bool atomic = RepoHasBatches(*stores.repo);
  absl::StatusOr<Decision> first = manager->Submit(Act(1, 0), rule);
  REQUIRE_FALSE(first.ok());
  CHECK(first.status().code() == absl::StatusCode::kUnavailable);
  // Without transactions the decision committed with the instance, and the
  // redelivery replays it and schedules the summary, once. With them the
  // failed Submit stored nothing, and the redelivery decides it afresh,
  // the same way, with its summary.
  Decision again = manager->Submit(Act(1, 0), rule).value();
  CHECK(again.replayed == !atomic);
  CHECK(again.primary);
  CHECK(again.outcome == Outcome::kExecute);
  CHECK(stores.queue->Stats("converge").value().pending == 1);
  CHECK(manager->Submit(Act(1, 0), rule).value().replayed);
  CHECK(stores.queue->Stats("converge").value().pending == 1);
}

TEST_CASE("ReportStatus, Reevaluate and EndInstance on unknown ids",
          "[manager]") {
  Env env;
  CHECK(env.manager->ReportStatus(99, ActionStatus::kSuccess).code() ==
        absl::StatusCode::kNotFound);
  CHECK(env.manager->Reevaluate(99).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(env.manager->EndInstance(99).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK_FALSE(env.manager->GetDecision(99).value().has_value());
}

TEST_CASE("ending twice rewrites the dimension once", "[manager]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  Decision d = env.Submit(Act(1, 0), rule);
  const std::string dimension = env.Instance(*d.converge_id).dimension;
  env.clock.Set(T(5));
  CHECK(env.manager->EndInstance(*d.converge_id).value());
  env.clock.Set(T(6));
  CHECK_FALSE(env.manager->EndInstance(*d.converge_id).value());
  const ConvergeInstance ended = env.Instance(*d.converge_id);
  CHECK(ended.dimension == dimension + " fixed at 5 #1");
  CHECK(*ended.end_time == T(5));
}

TEST_CASE("conditions on any context key are indexed and matched",
          "[manager]") {
  // Upstream only indexes alert_info, notice_info and action_info (7.2 #12).
  Env env;
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  rule.condition = {Condition{"dimensions", {Value("self")}},
                    Condition{"signal", {Value("self")}}};
  auto act = [](int64_t id, double at, std::string host) {
    Action a = Act(id, at);
    a.context["dimensions"] = std::move(host);
    return a;
  };
  CHECK(env.Submit(act(1, 0, "h1"), rule).outcome == Outcome::kExecute);
  CHECK(env.Submit(act(2, 1, "h2"), rule).outcome == Outcome::kExecute);
  Decision d3 = env.Submit(act(3, 2, "h1"), rule);
  CHECK(d3.primary);  // matches {A1, A3}: both keys agree
  CHECK(env.Submit(act(4, 3, "h1"), rule).outcome == Outcome::kSkip);
  CHECK(env.Submit(act(5, 4, "h2"), rule).outcome == Outcome::kExecute);
}

TEST_CASE("literal condition values match actions whose context equals them",
          "[manager]") {
  Env env;
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  rule.condition = {Condition{"alert_info", {Value("g1"), Value("g2")}}};
  // Union within the key: g1 and g2 actions group together.
  CHECK(env.Submit(Act(1, 0, "g1"), rule).outcome == Outcome::kExecute);
  Decision d2 = env.Submit(Act(2, 1, "g2"), rule);
  CHECK(d2.primary);
  CHECK(env.Relations(*d2.converge_id).size() == 2);
}

TEST_CASE(
    "a key with several literal values beside a second key: union within "
    "the key, intersection across keys",
    "[manager]") {
  // Upstream reads one index key per value, then slices the reads by one
  // per condition key: with alert_info's two keys it intersects g1's
  // members with g2's (disjoint) and never reaches the host key.
  Env env;
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  rule.condition = {Condition{"alert_info", {Value("g1"), Value("g2")}},
                    Condition{"dimensions", {Value("self")}}};
  auto act = [](int64_t id, double at, std::string group, std::string host) {
    Action a = Act(id, at, std::move(group));
    a.context["dimensions"] = std::move(host);
    return a;
  };
  auto members = [&](int64_t cid) {
    std::vector<int64_t> ids;
    for (const ConvergeRelation& r : env.Relations(cid)) {
      ids.push_back(r.related_id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  CHECK(env.Submit(act(1, 0, "g1", "h1"), rule).outcome == Outcome::kExecute);
  CHECK(env.Submit(act(2, 1, "g2", "h2"), rule).outcome == Outcome::kExecute);
  // g2 on h1 matches action 1 (g1 on h1): the threshold of 2 is reached.
  const Decision d3 = env.Submit(act(3, 2, "g2", "h1"), rule);
  REQUIRE(d3.primary);
  CHECK(members(*d3.converge_id) == std::vector<int64_t>{1, 3});
  // g1 on h2 matches action 2 only: another instance.
  const Decision d4 = env.Submit(act(4, 3, "g1", "h2"), rule);
  REQUIRE(d4.primary);
  CHECK(*d4.converge_id != *d3.converge_id);
  CHECK(members(*d4.converge_id) == std::vector<int64_t>{2, 4});
  // A later g1 action on h1 joins the first instance.
  const Decision d5 = env.Submit(act(5, 4, "g1", "h1"), rule);
  CHECK(d5.outcome == Outcome::kSkip);
  CHECK(d5.converge_id == d3.converge_id);
}

TEST_CASE("an instance's description says in English what grouped it",
          "[manager]") {
  ManagerOptions options;
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  std::string expected;
  SECTION("one key") {
    expected =
        "within 300 s, when 2 or more alerts share the same alert info, "
        "skip_when_exceed applies to executions of the same package";
  }
  SECTION("two keys, labelled, in key order; an unknown key raw") {
    rule.condition = {Condition{"signal", {Value("self")}},
                      Condition{"alert_info", {Value("self")}},
                      Condition{"rack", {Value("self")}}};
    expected =
        "within 300 s, when 2 or more alerts share the same alert info,"
        "rack,alert signal, skip_when_exceed applies to executions of the "
        "same package";
  }
  SECTION("the effective window, not the configured one") {
    options.rules.minute_windows = true;
    rule.timedelta = 150;  // floored to whole minutes
    expected =
        "within 120 s, when 2 or more alerts share the same alert info, "
        "skip_when_exceed applies to executions of the same package";
  }
  Env env(options);
  Action a1 = Act(1, 0), a2 = Act(2, 1);
  a1.context["rack"] = a2.context["rack"] = "r1";
  env.Submit(a1, rule);
  const Decision d2 = env.Submit(a2, rule);
  REQUIRE(d2.primary);
  CHECK(env.Instance(*d2.converge_id).description == expected);
}

// Records what the manager asks of the window index.
class RecordingWindow : public WindowStoreWrapper {
 public:
  using WindowStoreWrapper::WindowStoreWrapper;
  absl::StatusOr<WindowResult> Apply(const WindowRequest& request) override {
    if (!request.add.empty()) writes.push_back(request);
    return WindowStoreWrapper::Apply(request);
  }
  std::vector<WindowRequest> writes;
};

TEST_CASE(
    "the window index keeps members W + index_retention, and a key lives "
    "index_retention + W after its last write",
    "[manager]") {
  ManagerOptions options;
  options.index_retention = absl::Seconds(100);
  Env env(options);
  RecordingWindow window(env.stores.window.get());
  env.Rewire([&](Stores* v) { v->window = &window; });
  // W = 300 s; a threshold never reached, so that every action is indexed.
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 9, 300);
  env.Submit(Act(1, 0), rule);
  REQUIRE(window.writes.size() == 1);
  const WindowRequest& first = window.writes.front();
  CHECK(first.trim_before == T(0) - absl::Seconds(400));
  CHECK(first.key_ttl == absl::Seconds(400));
  // The key of alert_info g1, which action 1 was added to.
  std::string key;
  for (const WindowEntry& e : first.add) {
    if (e.member == "action_1" && absl::StrContains(e.key, "g1")) key = e.key;
  }
  REQUIRE_FALSE(key.empty());
  WindowStore& store = *env.stores.window;

  // 399 s later action 1 is out of the window but within the retention.
  env.Submit(Act(2, 399), rule);
  CHECK(window.writes.back().trim_before == T(-1));
  CHECK(store.Size(key).value() == 2);
  // 401 s later it is trimmed by the next write.
  env.Submit(Act(3, 401), rule);
  CHECK(window.writes.back().trim_before == T(1));
  CHECK(store.Size(key).value() == 2);  // actions 2 and 3
  // The key expires 400 s after its last write (at 401 s).
  env.clock.Set(T(800));
  CHECK(store.Size(key).value() == 2);
  env.clock.Set(T(802));
  CHECK(store.Size(key).value() == 0);
}

TEST_CASE("second-granular windows by default, minutes as an option",
          "[manager]") {
  SECTION("seconds: a 30 s window works") {
    Env env;
    const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 30);
    Decision d1 = env.Submit(Act(1, 0), rule);
    CHECK(d1.primary);
    CHECK(env.Submit(Act(2, 20), rule).outcome == Outcome::kSkip);
    // 31 s later the instance has expired relative to the new action.
    CHECK(env.Submit(Act(3, 40), rule).primary);
  }
  SECTION("minute_windows: 90 s floors to 60 s") {
    ManagerOptions o;
    o.rules.minute_windows = true;
    Env env(o);
    const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 90);
    Decision d1 = env.Submit(Act(1, 0), rule);
    CHECK(env.Instance(*d1.converge_id).window_seconds == 60);
    CHECK(env.Submit(Act(2, 70), rule).primary);
  }
}

}  // namespace
}  // namespace converge::testing

namespace converge::testing {
namespace {

// Runs `hook` once, the first time LookupOpen is called while armed: the
// moment between a decision's unlocked hint and its lease.
class HookRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  std::function<void()> hook;
  absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view dimension) override {
    auto r = InstanceRepoWrapper::LookupOpen(dimension);
    if (hook) {
      auto h = std::move(hook);
      hook = nullptr;
      h();
    }
    return r;
  }
};

TEST_CASE("an expired hint is read again under the lease", "[manager]") {
  Env env;
  HookRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* view) { view->repo = &repo; });
  auto& manager = env.manager;
  auto& clock = env.clock;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 100);
  auto submit = [&](int64_t id, double at) {
    clock.Set(std::max(clock.Now(), T(at)));
    return manager->Submit(Act(id, at), rule).value();
  };
  submit(1, 0);
  REQUIRE(submit(2, 1).primary);  // C1
  // X@200 sees C1 (outside its window) in its hint; before it takes the
  // lease, Y ends C1 and runs, and Z creates C2 with Y attached.
  Decision y, z;
  repo.hook = [&] {
    y = submit(11, 200);
    z = submit(12, 201);
  };
  Decision x = submit(10, 200);
  REQUIRE(y.outcome == Outcome::kExecute);
  REQUIRE(z.primary);
  // X must join C2 (executed {Z, Y} = 2 >= 2), not run below the threshold.
  CHECK(x.converge_id == z.converge_id);
  CHECK(x.outcome == Outcome::kSkip);
}

TEST_CASE("one lease per dimension, whatever the strategy", "[manager]") {
  ManagerOptions o;
  o.lease_attempts = 1;
  Env env(o);
  // The condition names no strategy-specific key, so every strategy's
  // actions share D and its instance.
  const ConvergeConfig rule =
      Rule(ConvergeFunction::kWaitWhenProceed, 1, 300, "bk_biz_id");
  Decision d1 = env.Submit(Act(1, 0), rule);
  REQUIRE(d1.primary);
  const std::string dimension = env.Instance(*d1.converge_id).dimension;
  REQUIRE(env.stores.lock
              ->TryAcquire(env.manager->LeaseKey(dimension).value(), "other",
                           absl::Seconds(60))
              .value());
  // An action of another strategy joins the same instance, so it needs the
  // same lease (wait_when_proceed reads statuses: never a settled join).
  Action a2 = Act(2, 1);
  a2.strategy_id = 7;
  CHECK(env.manager->Submit(a2, rule).status().code() ==
        absl::StatusCode::kUnavailable);
  env.clock.Advance(absl::Seconds(61));
  Decision d2 = env.manager->Submit(a2, rule).value();
  CHECK(d2.converge_id == d1.converge_id);
  CHECK(d2.outcome == Outcome::kSleep);
}

}  // namespace
}  // namespace converge::testing

namespace converge::testing {
namespace {

TEST_CASE("settled joiners are not indexed", "[manager]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  const std::string key = env.WindowKey("g1");
  env.Submit(Act(1, 0), rule);                   // below threshold: indexed
  REQUIRE(env.Submit(Act(2, 1), rule).primary);  // creates: indexed
  CHECK(env.stores.window->Size(key).value() == 2);
  // Threshold reached: later joiners are decided without an index entry,
  // and matching (which drops related actions) is unchanged.
  CHECK(env.Submit(Act(3, 2), rule).outcome == Outcome::kSkip);
  CHECK(env.Submit(Act(4, 3), rule).outcome == Outcome::kSkip);
  CHECK(env.stores.window->Size(key).value() == 2);
  // After the window, a new instance forms from the unrelated actions only.
  CHECK(env.Submit(Act(5, 400), rule).outcome == Outcome::kExecute);
  CHECK(env.Submit(Act(6, 401), rule).primary);
}

// ---- SubmitBatch ----

struct CountingListener : ManagerListener {
  void OnDecision(const Decision& d) override { decisions.push_back(d); }
  void OnInstance(const InstanceEvent& e) override { events.push_back(e); }
  std::vector<Decision> decisions;
  std::vector<InstanceEvent> events;
};

// A repo whose batches commit (or fail to) without real transactions: it
// shows what the manager does around a batch.
class BatchingRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  struct Batch : RepoBatch {
    BatchingRepo* repo;
    explicit Batch(BatchingRepo* r) : repo(r) {}
    ~Batch() override {
      if (!committed) ++repo->rollbacks;
    }
    absl::Status Commit() override {
      committed = true;
      ++repo->commits;
      if (repo->conflicts > 0) {
        --repo->conflicts;
        return ConflictError("test: met another writer");
      }
      return repo->commit_status;
    }
    void RetriedOnConflict() override { ++repo->retried_on_conflict; }
    bool committed = false;
  };
  absl::StatusOr<std::unique_ptr<RepoBatch>> BeginBatch() override {
    ++begun;
    return std::unique_ptr<RepoBatch>(new Batch(this));
  }
  absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view dimension) override {
    if (++lookups == fail_lookup) return absl::UnavailableError("repo down");
    return InstanceRepoWrapper::LookupOpen(dimension);
  }
  absl::Status commit_status;
  int conflicts = 0;  // commits to fail with ConflictError first
  int begun = 0, commits = 0, rollbacks = 0, retried_on_conflict = 0;
  int lookups = 0, fail_lookup = 0;
};

// An Env whose listener counts what it hears and whose repo batches
// (BatchingRepo), for tests of when a batch's outcomes are told.
struct ListenedBatchEnv {
  static ManagerOptions Listened(CountingListener* listener) {
    ManagerOptions options;
    options.listener = listener;
    return options;
  }
  CountingListener listener;
  Env env{Listened(&listener)};
  BatchingRepo repo{env.stores.repo.get()};
  ListenedBatchEnv() {
    env.Rewire([&](Stores* v) { v->repo = &repo; });
  }
};

TEST_CASE("SubmitBatch gives the decisions of one-by-one submission",
          "[manager]") {
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 300);
  std::vector<Action> actions;
  for (int i = 1; i <= 40; ++i) {
    actions.push_back(Act(i, i, i % 3 == 0 ? "a" : "b"));
  }
  Env one_by_one;
  one_by_one.clock.Set(T(50));
  std::vector<Decision> expected;
  for (const Action& a : actions) {
    expected.push_back(one_by_one.manager->Submit(a, rule).value());
  }
  for (bool transactional : {false, true}) {
    Env env;
    BatchingRepo repo(env.stores.repo.get());
    if (transactional) env.Rewire([&](Stores* v) { v->repo = &repo; });
    env.clock.Set(T(50));
    std::vector<ConvergeManager::BatchItem> items;
    for (const Action& a : actions) items.push_back({&a, &rule});
    std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      REQUIRE(got[i].ok());
      CHECK(got[i]->outcome == expected[i].outcome);
      CHECK(got[i]->converge_id == expected[i].converge_id);
      CHECK(got[i]->primary == expected[i].primary);
    }
    CHECK(repo.begun == (transactional ? 1 : 0));
    CHECK(repo.commits == (transactional ? 1 : 0));
  }
}

// Counts the bulk calls, forwarded to the target's own.
class BulkCountingRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> LookupOpenMany(
      absl::Span<const std::string> dimensions) override {
    ++lookups;
    return target()->LookupOpenMany(dimensions);
  }
  absl::StatusOr<std::vector<std::optional<ActionRecord>>> GetActions(
      absl::Span<const int64_t> ids) override {
    ++get_actions;
    return target()->GetActions(ids);
  }
  absl::Status PrepareJoins(
      absl::Span<const std::pair<int64_t, int64_t>> joins) override {
    prepared += joins.size();
    return target()->PrepareJoins(joins);
  }
  int lookups = 0, get_actions = 0;
  size_t prepared = 0;
};
class BulkCountingWindow : public WindowStoreWrapper {
 public:
  using WindowStoreWrapper::WindowStoreWrapper;
  absl::StatusOr<std::vector<WindowResult>> ApplyMany(
      absl::Span<const WindowRequest> requests) override {
    applied += requests.size();
    return target()->ApplyMany(requests);
  }
  size_t applied = 0;
};

TEST_CASE(
    "SubmitBatch with bulk reads (batch_prefetch) gives the decisions of "
    "one-by-one submission",
    "[manager]") {
  // Two rules on alert_info alone, and one on alert_info and host, whose
  // dimensions share alert_info's window keys; several batches, so that
  // instances are created, joined and found expired; a dimension twice in
  // a batch, an action twice, a shielded one.
  const ConvergeConfig exceed = Rule(ConvergeFunction::kSkipWhenExceed, 3, 120);
  const ConvergeConfig collect = Rule(ConvergeFunction::kCollect, 1, 120);
  ConvergeConfig two = Rule(ConvergeFunction::kSkipWhenExceed, 2, 120);
  two.condition.push_back(Condition{"host", {Value("self")}});
  std::vector<Action> actions;
  std::vector<const ConvergeConfig*> configs;
  for (int i = 1; i <= 160; ++i) {
    const int group = i % 7;
    Action a = Act(i, 10 + i * 3, "g" + std::to_string(group));
    a.context["host"] = "h" + std::to_string(i % 2);
    // Some on both hosts: indexed under both, matched by both dimensions.
    if (i % 5 == 0) a.context["host"] = Value::List{Value("h0"), Value("h1")};
    if (i % 37 == 0) a.shielded = true;
    actions.push_back(a);
    configs.push_back(group < 3 ? &exceed : group < 5 ? &collect : &two);
    if (i % 29 == 0) {  // the same action again, later in its batch
      actions.push_back(a);
      configs.push_back(configs.back());
    }
  }
  auto same = [](const std::vector<Decision>& want,
                 const std::vector<absl::StatusOr<Decision>>& got) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      INFO("item " << i << ": " << got[i].status().ToString());
      REQUIRE(got[i].ok());
      CHECK(got[i]->action_id == want[i].action_id);
      CHECK(got[i]->outcome == want[i].outcome);
      CHECK(got[i]->converge_id == want[i].converge_id);
      CHECK(got[i]->primary == want[i].primary);
      CHECK(got[i]->reason == want[i].reason);
    }
  };
  constexpr size_t kBatch = 9;
  // One by one, the clock at each batch's last action (as the batches).
  std::vector<Decision> expected;
  {
    Env env;
    for (size_t at = 0; at < actions.size(); at += kBatch) {
      const size_t end = std::min(actions.size(), at + kBatch);
      env.clock.Set(actions[end - 1].create_time);
      for (size_t i = at; i < end; ++i) {
        absl::StatusOr<Decision> d =
            env.manager->Submit(actions[i], *configs[i]);
        INFO(d.status().ToString());
        REQUIRE(d.ok());
        Decision plain = *d;
        plain.replayed = false;
        expected.push_back(plain);
      }
    }
  }
  for (auto mode :
       {ManagerOptions::BatchPrefetch::kOn, ManagerOptions::BatchPrefetch::kOff,
        ManagerOptions::BatchPrefetch::kAuto}) {
    INFO("batch_prefetch " << static_cast<int>(mode));
    ManagerOptions options;
    options.batch_prefetch = mode;
    Env env(options);
    // A repo without transactions gets one that batches (and leaves other
    // writers free), so that the bulk reads run on every store.
    BatchingRepo batching(env.stores.repo.get());
    const bool native = RepoHasBatches(*env.stores.repo);
    BulkCountingRepo repo(native ? env.stores.repo.get() : &batching);
    BulkCountingWindow window(env.stores.window.get());
    env.Rewire([&](Stores* v) {
      v->repo = &repo;
      v->window = &window;
    });
    std::vector<absl::StatusOr<Decision>> got;
    for (size_t at = 0; at < actions.size(); at += kBatch) {
      const size_t end = std::min(actions.size(), at + kBatch);
      std::vector<ConvergeManager::BatchItem> items;
      for (size_t i = at; i < end; ++i) {
        items.push_back({&actions[i], configs[i]});
      }
      env.clock.Set(actions[end - 1].create_time);
      for (absl::StatusOr<Decision>& d : env.manager->SubmitBatch(items)) {
        if (d.ok()) d->replayed = false;
        got.push_back(std::move(d));
      }
      // No lease is left behind.
      CHECK(env.manager->stores().lock->ListLeases("", 0).value().empty());
    }
    same(expected, got);
    // The bulk calls were made (or not).
    const bool on =
        mode == ManagerOptions::BatchPrefetch::kOn ||
        (mode == ManagerOptions::BatchPrefetch::kAuto &&
         !env.manager->stores().repo->BeginBatch().value()->ExcludesWriters());
    INFO("bulk reads " << on << ": " << repo.lookups << " LookupOpenMany, "
                       << repo.get_actions << " GetActions, " << repo.prepared
                       << " joins prepared, " << window.applied
                       << " window requests applied together");
    CHECK((repo.lookups > 0) == on);
    if (on) CHECK(repo.get_actions > 0);  // (summaries read members too)
    CHECK((repo.prepared > 0) == on);
    CHECK((window.applied > 0) == on);
  }
}

TEST_CASE(
    "SubmitBatch with bulk reads: an item reads the index entries of the "
    "items before it, also those decided as they come",
    "[manager]") {
  // Rule on alert_info and host, threshold 3. One batch: a and r, both
  // (g, [h0, h1]) (one dimension: r is decided as it comes, after a), then
  // i (g, h0), a dimension of its own whose window meets theirs. One by
  // one, a sees itself (1) and r sees a and itself (2): both execute
  // below the threshold; i sees a, r and itself (3) and creates, attaching
  // them. Had i's window been read before r was indexed, i would have
  // seen 2 and executed, and r created.
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 300);
  rule.condition.push_back(Condition{"host", {Value("self")}});
  Action a = Act(1, 100, "g");
  a.context["host"] = Value::List{Value("h0"), Value("h1")};
  Action r = Act(2, 101, "g");
  r.context["host"] = Value::List{Value("h0"), Value("h1")};
  Action i = Act(3, 102, "g");
  i.context["host"] = "h0";
  ManagerOptions options;
  options.batch_prefetch = ManagerOptions::BatchPrefetch::kOn;
  Env env(options);
  BatchingRepo repo(env.stores.repo.get());
  if (!RepoHasBatches(*env.stores.repo)) {
    env.Rewire([&](Stores* v) { v->repo = &repo; });
  }
  env.clock.Set(T(102));
  std::vector<ConvergeManager::BatchItem> items = {
      {&a, &rule}, {&r, &rule}, {&i, &rule}};
  std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
  REQUIRE(got.size() == 3);
  for (const auto& d : got) REQUIRE(d.ok());
  CHECK(got[0]->reason == "below threshold");
  CHECK(got[1]->reason == "below threshold");
  CHECK(got[2]->reason == "created");
  REQUIRE(got[2]->converge_id.has_value());
  CHECK(env.manager->stores()
            .repo->Relations(*got[2]->converge_id)
            .value()
            .size() == 3);
}

// Forwards the bulk calls to the target's own (MySQL's statements), where
// InstanceRepoWrapper leaves them to the defaults.
class BulkForwardingRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  absl::StatusOr<std::vector<std::optional<ActionRecord>>> GetActions(
      absl::Span<const int64_t> ids) override {
    return target()->GetActions(ids);
  }
  absl::Status PrepareJoins(
      absl::Span<const std::pair<int64_t, int64_t>> joins) override {
    return target()->PrepareJoins(joins);
  }
  absl::StatusOr<std::vector<ConvergeInstance>> GetInstances(
      absl::Span<const int64_t> ids) override {
    return target()->GetInstances(ids);
  }
};

// Answers LookupOpenMany with `stale` for its dimension (as a connection
// that remembers an instance another one has ended).
class StaleBulkHint : public BulkForwardingRepo {
 public:
  using BulkForwardingRepo::BulkForwardingRepo;
  absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> LookupOpenMany(
      absl::Span<const std::string> dimensions) override {
    absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> r =
        target()->LookupOpenMany(dimensions);
    if (!r.ok()) return r;
    for (size_t i = 0; i < dimensions.size(); ++i) {
      if (dimensions[i] == stale_dimension) (*r)[i] = stale;
    }
    return r;
  }
  std::string stale_dimension;
  OpenInstanceRef stale;
};

TEST_CASE(
    "SubmitBatch with bulk reads: an item planned to join an instance that "
    "has ended reads the window as one by one",
    "[manager]") {
  // Rule on alert_info and host, threshold 2. Instance I of (g, h0) is
  // created by two actions and ended, but the batch's hint still has it
  // open. Batch: A (g, h0), planned to join I; B (g, [h0, h1]), a
  // dimension of its own whose window meets A's keys. One by one, A's join
  // is refused and A sees itself alone (I's members are related): it
  // executes; B sees A and itself and creates. Had B's index write come
  // before A's read, A would have created.
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  rule.condition.push_back(Condition{"host", {Value("self")}});
  ManagerOptions options;
  options.batch_prefetch = ManagerOptions::BatchPrefetch::kOn;
  Env env(options);
  BatchingRepo batching(env.stores.repo.get());
  StaleBulkHint repo(RepoHasBatches(*env.stores.repo) ? env.stores.repo.get()
                                                      : &batching);
  env.Rewire([&](Stores* v) { v->repo = &repo; });
  Action a0 = Act(1, 100, "g"), a1 = Act(2, 101, "g");
  a0.context["host"] = "h0";
  a1.context["host"] = "h0";
  CHECK(env.Submit(a0, rule).reason == "below threshold");
  const Decision created = env.Submit(a1, rule);
  REQUIRE(created.reason == "created");
  const int64_t instance = created.converge_id.value();
  // (An ended instance's dimension is rewritten: read it first.)
  repo.stale_dimension =
      env.manager->stores().repo->GetInstance(instance).value().dimension;
  REQUIRE(env.manager->EndInstance(instance).value());
  repo.stale = OpenInstanceRef{instance, T(101), 2};

  Action a = Act(3, 110, "g");
  a.context["host"] = "h0";
  Action b = Act(4, 111, "g");
  b.context["host"] = Value::List{Value("h0"), Value("h1")};
  env.clock.Set(T(111));
  std::vector<ConvergeManager::BatchItem> items = {{&a, &rule}, {&b, &rule}};
  std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
  REQUIRE(got.size() == 2);
  REQUIRE(got[0].ok());
  REQUIRE(got[1].ok());
  CHECK(got[0]->reason == "below threshold");
  CHECK(got[1]->reason == "created");
  CHECK(env.manager->stores().lock->ListLeases("", 0).value().empty());
}

// Answers the first LookupOpenMany with no instance open for any dimension
// (as if the instance were created just after the batch's look).
class LateInstanceHint : public BulkForwardingRepo {
 public:
  using BulkForwardingRepo::BulkForwardingRepo;
  absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> LookupOpenMany(
      absl::Span<const std::string> dimensions) override {
    if (calls++ == 0) {
      return std::vector<std::optional<OpenInstanceRef>>(dimensions.size());
    }
    return target()->LookupOpenMany(dimensions);
  }
  int calls = 0;
};

TEST_CASE(
    "SubmitBatch with bulk reads: an action twice, the second time "
    "shielded, gets its first decision back",
    "[manager]") {
  // X's dimension has an open instance that the batch's first look misses:
  // X takes the lease, finds the instance and joins it. Its second
  // occurrence, shielded, is already decided: its decision comes back.
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  ManagerOptions options;
  options.batch_prefetch = ManagerOptions::BatchPrefetch::kOn;
  Env env(options);
  BatchingRepo batching(env.stores.repo.get());
  LateInstanceHint repo(RepoHasBatches(*env.stores.repo) ? env.stores.repo.get()
                                                         : &batching);
  env.Rewire([&](Stores* v) { v->repo = &repo; });
  const Decision created = env.Submit(Act(1, 100, "g"), rule);
  REQUIRE(created.reason == "created");
  Action x = Act(2, 110, "g");
  Action shielded = x;
  shielded.shielded = true;
  Action other = Act(3, 110, "h");  // so that the batch has two dimensions
  env.clock.Set(T(110));
  std::vector<ConvergeManager::BatchItem> items = {
      {&x, &rule}, {&other, &rule}, {&shielded, &rule}};
  std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
  REQUIRE(got.size() == 3);
  for (const auto& d : got) {
    INFO(d.status().ToString());
    REQUIRE(d.ok());
  }
  CHECK(repo.calls == 2);  // the hint, then again under the leases
  CHECK(got[0]->reason == "joined");
  CHECK(got[0]->converge_id == created.converge_id);
  CHECK(got[2]->replayed);
  CHECK(got[2]->outcome == got[0]->outcome);
  CHECK(got[2]->converge_id == created.converge_id);
  CHECK(env.manager->stores().repo->GetAction(2).value()->decision.reason ==
        "joined");
}

// On its first RecordDecision, moves the clock past every lease and lets
// "another process" take them all (as a batch whose earlier items waited
// for row locks longer than the leases last).
class SlowFirstRecord : public InstanceRepoWrapper {
 public:
  SlowFirstRecord(InstanceRepo* target, VirtualClock* clock, LockStore* lock)
      : InstanceRepoWrapper(target), clock_(clock), lock_(lock) {}
  absl::StatusOr<RecordResult> RecordDecision(
      const ActionRecord& record) override {
    if (!slowed_) {
      slowed_ = true;
      std::vector<LeaseInfo> held = lock_->ListLeases("", 0).value();
      clock_->Advance(absl::Minutes(5));
      for (const LeaseInfo& l : held) {
        taken += lock_->TryAcquire(l.key, "other", absl::Minutes(5)).value();
      }
    }
    return InstanceRepoWrapper::RecordDecision(record);
  }
  int taken = 0;

 private:
  VirtualClock* clock_;
  LockStore* lock_;
  bool slowed_ = false;
};

TEST_CASE(
    "SubmitBatch with bulk reads: a lease taken for the batch and lost "
    "while earlier items were decided is not written under",
    "[manager]") {
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 300);
  ManagerOptions options;
  options.batch_prefetch = ManagerOptions::BatchPrefetch::kOn;
  options.lease_ttl = absl::Seconds(60);
  Env env(options);
  BatchingRepo batching(env.stores.repo.get());
  SlowFirstRecord repo(
      RepoHasBatches(*env.stores.repo) ? env.stores.repo.get() : &batching,
      &env.clock, env.stores.view().lock);
  env.Rewire([&](Stores* v) { v->repo = &repo; });
  Action a = Act(1, 100, "a"), b = Act(2, 100, "b");
  env.clock.Set(T(100));
  std::vector<ConvergeManager::BatchItem> items = {{&a, &rule}, {&b, &rule}};
  std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
  REQUIRE(got.size() == 2);
  REQUIRE(got[0].ok());
  CHECK(got[0]->reason == "below threshold");
  CHECK(repo.taken >= 1);  // b's lease, at least
  // b's lease was taken over: b is refused (retried later), not decided
  // from what it read under the lease it lost.
  CHECK(IsLeaseBusy(got[1].status()));
  CHECK_FALSE(env.manager->stores().repo->GetAction(2).value().has_value());
}

// Leases of every key but the first one asked for are held by "another
// process": refused, and counted.
class BusyAfterFirst : public WindowStoreWrapper {
 public:
  using WindowStoreWrapper::WindowStoreWrapper;
  absl::StatusOr<WindowResult> Apply(const WindowRequest& request) override {
    if (request.lease.has_value()) {
      if (first.empty()) first = request.lease->key;
      if (request.lease->key != first) {
        ++refused;
        WindowResult busy;
        busy.lease_acquired = false;
        return busy;
      }
    }
    return WindowStoreWrapper::Apply(request);
  }
  std::string first;
  int refused = 0;
};

TEST_CASE(
    "SubmitBatch: a batch that defers its lease releases does not wait for "
    "a busy lease while it holds one",
    "[manager]") {
  ManagerOptions options;
  options.lease_attempts = 50;
  options.lease_backoff_min = absl::Microseconds(1);
  options.lease_backoff_max = absl::Microseconds(1);
  Env env(options);
  BatchingRepo repo(env.stores.repo.get());  // ExcludesWriters: false
  BusyAfterFirst window(env.stores.window.get());
  env.Rewire([&](Stores* v) {
    v->repo = &repo;
    v->window = &window;
  });
  env.clock.Set(T(50));
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 300);
  Action a = Act(1, 0, "a"), b = Act(2, 0, "b");
  std::vector<ConvergeManager::BatchItem> items = {{&a, &rule}, {&b, &rule}};
  std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
  REQUIRE(got.size() == 2);
  CHECK(got[0].ok());
  // Holding a's lease, the batch asked for b's once, not 50 times.
  CHECK(IsLeaseBusy(got[1].status()));
  CHECK(window.refused == 1);
  CHECK(repo.commits == 1);
  // a's lease was released when the batch ended.
  CHECK(env.manager->stores().lock->ListLeases("", 0).value().empty());
  // Alone (holding nothing), an item waits for the lease as Submit does.
  std::vector<absl::StatusOr<Decision>> alone =
      env.manager->SubmitBatch(absl::MakeConstSpan(&items[1], 1));
  CHECK(IsLeaseBusy(alone[0].status()));
  CHECK(window.refused == 1 + 50);
}

TEST_CASE("SubmitBatch: per-item errors stay per item", "[manager]") {
  Env env;
  BatchingRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* v) { v->repo = &repo; });
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 300);
  Action good = Act(1, 0);
  Action bad = Act(0, 0);  // id 0
  std::vector<ConvergeManager::BatchItem> items = {{&good, &rule},
                                                   {&bad, &rule}};
  std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
  REQUIRE(got.size() == 2);
  CHECK(got[0].ok());
  CHECK(got[1].status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(repo.commits == 1);
  // A null item fails the whole batch before anything is written.
  items.push_back({nullptr, &rule});
  got = env.manager->SubmitBatch(items);
  for (const auto& r : got) {
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  }
  CHECK(repo.begun == 1);
}

TEST_CASE(
    "a batch of one that met another writer runs again, and a batch of several "
    "returns the conflict",
    "[manager]") {
  ListenedBatchEnv fixture;
  CountingListener& listener = fixture.listener;
  Env& env = fixture.env;
  BatchingRepo& repo = fixture.repo;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  Action a1 = Act(1, 0), a2 = Act(2, 1), a3 = Act(3, 2);

  SECTION(
      "Submit: told it may be run again, and run again (the last "
      "time)") {
    repo.conflicts = 1;
    absl::StatusOr<Decision> d = env.manager->Submit(a1, rule);
    REQUIRE(d.ok());
    CHECK(repo.begun == 2);
    CHECK(repo.commits == 2);
    CHECK(repo.retried_on_conflict == 1);
    // Heard once, after the commit that held.
    CHECK(listener.decisions.size() == 1);
  }
  SECTION("Submit: a second conflict is returned") {
    repo.conflicts = 2;
    absl::StatusOr<Decision> d = env.manager->Submit(a1, rule);
    CHECK(IsConflict(d.status()));
    CHECK(repo.begun == 2);
    CHECK(listener.decisions.empty());
  }
  SECTION(
      "SubmitBatch of several: returned, and not told it may be run "
      "again") {
    repo.conflicts = 1;
    std::vector<ConvergeManager::BatchItem> items = {{&a2, &rule},
                                                     {&a3, &rule}};
    std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
    REQUIRE(got.size() == 2);
    for (const auto& r : got) CHECK(IsConflict(r.status()));
    CHECK(repo.begun == 1);
    CHECK(repo.retried_on_conflict == 0);
    CHECK(listener.decisions.empty());
  }
  SECTION("another error is not run again") {
    repo.commit_status = absl::AbortedError("not a conflict");
    absl::StatusOr<Decision> d = env.manager->Submit(a1, rule);
    CHECK(d.status().code() == absl::StatusCode::kAborted);
    CHECK_FALSE(IsConflict(d.status()));
    CHECK(repo.begun == 1);
  }
}

TEST_CASE("SubmitBatch: the listener hears of a batch only after its commit",
          "[manager]") {
  ListenedBatchEnv fixture;
  CountingListener& listener = fixture.listener;
  Env& env = fixture.env;
  BatchingRepo& repo = fixture.repo;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  Action a1 = Act(1, 0), a2 = Act(2, 1);
  std::vector<ConvergeManager::BatchItem> items = {{&a1, &rule}, {&a2, &rule}};

  SECTION("a failed commit: every item fails, nothing is heard") {
    repo.commit_status = absl::UnavailableError("disk gone");
    std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
    for (const auto& r : got) {
      CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    }
    CHECK(listener.decisions.empty());
    CHECK(listener.events.empty());
  }
  SECTION("a store error rolls the whole batch back") {
    repo.fail_lookup = 2;  // the second action's look-up
    std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
    for (const auto& r : got) {
      CHECK(r.status().code() == absl::StatusCode::kUnavailable);
    }
    CHECK(repo.rollbacks == 1);
    CHECK(repo.commits == 0);
    CHECK(listener.decisions.empty());
  }
  SECTION("a commit: decisions and events, in order") {
    std::vector<absl::StatusOr<Decision>> got = env.manager->SubmitBatch(items);
    REQUIRE(listener.decisions.size() == 2);
    CHECK(listener.decisions[0].action_id == 1);
    CHECK(listener.decisions[1].action_id == 2);
    REQUIRE(listener.events.size() == 1);
    CHECK(listener.events[0].kind == InstanceEvent::Kind::kCreated);
  }
}

}  // namespace
}  // namespace converge::testing
