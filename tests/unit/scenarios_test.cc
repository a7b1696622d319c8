// The test scenarios of converge-semantics.md section 8, on the memory store
// with a virtual clock. Where the spec gives "upstream" and "fixed" results,
// these tests assert ours, as project-decisions.md decides.

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "converge/context.h"
#include "converge/dimension.h"
#include "converge/store/wrappers.h"
#include "test_util.h"

namespace converge::testing {
namespace {

using CS = ConvergeStatus;

TEST_CASE("S1 skip_when_exceed: threshold and window expiry", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);

  Decision a1 = env.Submit(Act(1, 0), rule);
  CHECK(a1.outcome == Outcome::kExecute);
  CHECK_FALSE(a1.converge_id.has_value());

  Decision a2 = env.Submit(Act(2, 10), rule);
  CHECK(a2.outcome == Outcome::kExecute);
  REQUIRE(a2.converge_id == 1);
  CHECK(a2.primary);
  const ConvergeInstance c1 = env.Instance(1);
  CHECK(c1.converge_type == ConvergeType::kAction);
  CHECK(c1.is_visible);
  CHECK(c1.is_open());
  CHECK(c1.dimension.rfind("!sha1#", 0) == 0);
  CHECK(c1.dimension.size() == 46);
  CHECK_RELATION(env, 1, 2, true, CS::kExecuted);
  CHECK_RELATION(env, 1, 1, false, CS::kExecuted);
  CHECK(env.RelationOf(1, 1)->alerts.empty());  // bulk-attached: no alerts

  Decision a3 = env.Submit(Act(3, 20), rule);
  CHECK(a3.outcome == Outcome::kSkip);
  CHECK(a3.converge_id == 1);
  CHECK_FALSE(a3.primary);
  CHECK_RELATION(env, 1, 3, false, CS::kSkipped);
  CHECK(env.RelationOf(1, 3)->alerts == std::vector<std::string>{"alert-3"});

  Decision a4 = env.Submit(Act(4, 400), rule);
  CHECK(a4.outcome == Outcome::kExecute);
  CHECK_FALSE(a4.converge_id.has_value());
  const ConvergeInstance ended = env.Instance(1);
  REQUIRE(ended.end_time.has_value());
  CHECK(*ended.end_time == T(400));
  CHECK(ended.dimension == c1.dimension + " fixed at 400 #1");
  CHECK(env.stores.repo->ListOpen(0).value().empty());
  CHECK(env.Relations(1).size() == 3);
}

TEST_CASE("S2 defense: beyond the threshold needs approval", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kDefense, 2, 300);
  CHECK(env.Submit(Act(1, 0), rule).outcome == Outcome::kExecute);
  Decision a2 = env.Submit(Act(2, 10), rule);
  CHECK(a2.outcome == Outcome::kExecute);
  CHECK(a2.primary);
  Decision a3 = env.Submit(Act(3, 20), rule);
  CHECK(a3.outcome == Outcome::kApproval);
  CHECK_RELATION(env, 1, 3, false, CS::kSkipped);
  Decision a5 = env.Submit(Act(5, 30), rule);
  CHECK(a5.outcome == Outcome::kApproval);
  CHECK_RELATION(env, 1, 5, false, CS::kSkipped);
  // The stored status is upstream's "waiting".
  CHECK(env.stores.repo->GetAction(3).value()->status ==
        ActionStatus::kWaiting);
  // Nothing ends the instance until a later same-D action is past the window.
  CHECK(env.Instance(1).is_open());
}

TEST_CASE("S3 skip_when_success", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenSuccess, 1, 3600);
  Decision a1 = env.Submit(Act(1, 0), rule);
  CHECK(a1.outcome == Outcome::kExecute);
  CHECK(a1.primary);
  CHECK(a1.converge_id == 1);
  CHECK_RELATION(env, 1, 1, true, CS::kExecuted);

  SECTION("(a) the first one succeeded: skipped") {
    env.Report(1, ActionStatus::kSuccess);
    Decision a2 = env.Submit(Act(2, 60), rule);
    CHECK(a2.outcome == Outcome::kSkip);
    CHECK_RELATION(env, 1, 2, false, CS::kSkipped);
  }
  SECTION("(b) still running: sleep; after it fails the sleeper runs") {
    env.Report(1, ActionStatus::kRunning);
    Decision a2 = env.Submit(Act(2, 60), rule);
    CHECK(a2.outcome == Outcome::kSleep);
    CHECK_RELATION(env, 1, 2, false, CS::kSkipped);
    env.clock.Set(T(90));
    CHECK(env.manager->Reevaluate(2).value().outcome == Outcome::kSleep);
    env.Report(1, ActionStatus::kFailure);
    env.clock.Set(T(120));
    Decision again = env.manager->Reevaluate(2).value();
    CHECK(again.outcome == Outcome::kExecute);
    CHECK(env.manager->GetDecision(2).value()->outcome == Outcome::kExecute);
    // The relation stays skipped, as upstream.
    CHECK_RELATION(env, 1, 2, false, CS::kSkipped);
  }
  SECTION("(c) running forever: the sleeper is skipped after its timeout") {
    env.Report(1, ActionStatus::kRunning);
    Action a2 = Act(2, 60);
    a2.execute_timeout = 600;
    CHECK(env.Submit(a2, rule).outcome == Outcome::kSleep);
    env.clock.Set(T(600));
    CHECK(env.manager->Reevaluate(2).value().outcome == Outcome::kSleep);
    env.clock.Set(T(661));
    Decision timed_out = env.manager->Reevaluate(2).value();
    CHECK(timed_out.outcome == Outcome::kSkip);
    CHECK(env.stores.repo->GetAction(2).value()->status ==
          ActionStatus::kSkipped);
  }
}

TEST_CASE("S4 approve_when_failed: the creator runs (fixed)", "[scenario]") {
  Env env;
  const ConvergeConfig rule =
      Rule(ConvergeFunction::kApproveWhenFailed, 1, 3600);
  // Upstream sends the creator to approval; ours runs it.
  Decision a1 = env.Submit(Act(1, 0), rule);
  CHECK(a1.outcome == Outcome::kExecute);
  CHECK(a1.primary);
  env.Report(1, ActionStatus::kRunning);
  Decision a2 = env.Submit(Act(2, 10), rule);
  CHECK(a2.outcome == Outcome::kSleep);

  SECTION("the first one succeeds: the sleeper is skipped") {
    env.Report(1, ActionStatus::kSuccess);
    env.clock.Set(T(40));
    CHECK(env.manager->Reevaluate(2).value().outcome == Outcome::kSkip);
  }
  SECTION("the first one fails: the sleeper goes to approval") {
    env.Report(1, ActionStatus::kFailure);
    env.clock.Set(T(40));
    CHECK(env.manager->Reevaluate(2).value().outcome == Outcome::kApproval);
    CHECK(env.stores.repo->GetAction(2).value()->status ==
          ActionStatus::kWaiting);
  }
}

TEST_CASE("S5 skip_when_proceed, with the dead branch fixed", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenProceed, 1, 600);
  CHECK(env.Submit(Act(1, 0), rule).outcome == Outcome::kExecute);
  // A1 is converged (dispatched), then running: later ones are skipped.
  CHECK(env.Submit(Act(2, 10), rule).outcome == Outcome::kSkip);
  env.Report(1, ActionStatus::kRunning);
  CHECK(env.Submit(Act(3, 20), rule).outcome == Outcome::kSkip);

  SECTION("A1 succeeded inside the window: skipped (upstream ran it)") {
    env.clock.Set(T(30));
    env.Report(1, ActionStatus::kSuccess);
    CHECK(env.Submit(Act(4, 40), rule).outcome == Outcome::kSkip);
    CHECK_RELATION(env, 1, 4, false, CS::kSkipped);
  }
  SECTION("A1 failed: the next one runs") {
    env.Report(1, ActionStatus::kFailure);
    Decision a4 = env.Submit(Act(4, 40), rule);
    CHECK(a4.outcome == Outcome::kExecute);
    CHECK_RELATION(env, 1, 4, false, CS::kExecuted);
  }
}

TEST_CASE("S6 wait_when_proceed: sleep until the runner finishes",
          "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kWaitWhenProceed, 1, 600);
  CHECK(env.Submit(Act(1, 0), rule).outcome == Outcome::kExecute);
  env.Report(1, ActionStatus::kRunning);
  Decision a2 = env.Submit(Act(2, 10), rule);
  CHECK(a2.outcome == Outcome::kSleep);
  env.clock.Set(T(40));
  Decision poll1 = env.manager->Reevaluate(2).value();
  CHECK(poll1.outcome == Outcome::kSleep);
  env.Report(1, ActionStatus::kSuccess);
  env.clock.Set(T(70));
  Decision poll2 = env.manager->Reevaluate(2).value();
  CHECK(poll2.outcome == Outcome::kExecute);
  CHECK(env.stores.repo->GetAction(2).value()->status ==
        ActionStatus::kConverged);
  CHECK_RELATION(env, 1, 2, false, CS::kSkipped);
  // Re-evaluating a decided (non-sleeping) action changes nothing.
  Decision again = env.manager->Reevaluate(2).value();
  CHECK(again.replayed);
  CHECK(again.outcome == Outcome::kExecute);
}

TEST_CASE("S7 trigger: the creator runs, later ones are skipped",
          "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kTrigger, 3, 300);
  CHECK(env.Submit(Act(1, 0), rule).outcome == Outcome::kExecute);
  CHECK(env.Submit(Act(2, 5), rule).outcome == Outcome::kExecute);
  Decision a3 = env.Submit(Act(3, 10), rule);
  CHECK(a3.outcome == Outcome::kExecute);
  CHECK(a3.primary);
  CHECK(env.Submit(Act(4, 15), rule).outcome == Outcome::kSkip);
  CHECK_RELATION(env, 1, 3, true, CS::kExecuted);
  CHECK_RELATION(env, 1, 1, false, CS::kExecuted);
  CHECK_RELATION(env, 1, 2, false, CS::kExecuted);
  CHECK_RELATION(env, 1, 4, false, CS::kSkipped);
}

TEST_CASE("S8 relevance: grouping without suppression", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kRelevance, 2, 300);
  CHECK(env.Submit(Act(1, 0), rule).outcome == Outcome::kExecute);
  Decision a2 = env.Submit(Act(2, 5), rule);
  CHECK(a2.outcome == Outcome::kExecute);
  CHECK(a2.primary);
  Decision a3 = env.Submit(Act(3, 10), rule);
  CHECK(a3.outcome == Outcome::kExecute);
  CHECK(a3.converge_id == 1);
  CHECK_RELATION(env, 1, 3, false, CS::kExecuted);
  CHECK(env.stores.repo->CountExecuted(1).value() == 3);
}

// A notice as the bkmonitor profile sees it: the context carries the pieces
// of notice_info.
Action Notice(int64_t id, double at) {
  Action a = Act(id, at);
  a.plugin_type = "notice";
  a.context.clear();
  a.context["dimensions"] = "d41d8cd98f00b204e9800998ecf8427e";
  a.context["notice_way"] = "mail";
  a.context["notice_receiver"] = "alice";
  return a;
}

ManagerOptions Bkmonitor() {
  ManagerOptions o;
  o.rules.profile = Profile::kBkmonitor;
  return o;
}

TEST_CASE("S9 collect on notices, no business summary", "[scenario]") {
  Env env(Bkmonitor());
  ConvergeConfig rule = Rule(ConvergeFunction::kCollect, 5, 3600);
  rule.need_biz_converge = false;  // the profile forces 120 s, count 1

  Decision n1 = env.Submit(Notice(1, 0), rule);
  CHECK(n1.outcome == Outcome::kExecute);
  CHECK(n1.primary);
  REQUIRE(n1.converge_id == 1);
  CHECK_RELATION(env, 1, 1, true, CS::kExecuted);
  const ConvergeInstance c1 = env.Instance(1);
  CHECK(c1.converge_config.timedelta == 120);
  CHECK(c1.converge_config.count == 1);
  CHECK(c1.window_seconds == 120);
  // D covers notice_info plus the original condition keys.
  CHECK(c1.converged_condition.count("notice_info") == 1);
  CHECK(c1.converged_condition.count("alert_info") == 1);

  // Its summary task is scheduled 60 s after creation.
  std::vector<Task> pending =
      env.stores.queue->ListPending("converge", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == "summary:1");
  CHECK(pending[0].kind == "summary");
  CHECK(pending[0].subject_id == 1);
  CHECK(pending[0].due == T(60));

  CHECK(env.Submit(Notice(2, 20), rule).outcome == Outcome::kSkip);
  CHECK(env.Submit(Notice(3, 40), rule).outcome == Outcome::kSkip);
  CHECK_RELATION(env, 1, 2, false, CS::kSkipped);
  CHECK_RELATION(env, 1, 3, false, CS::kSkipped);
  // Exactly one summary task per instance.
  CHECK(env.stores.queue->Stats("converge").value().pending == 1);

  // The summary's run ends C1 (lifecycle issue); N4 then starts a new
  // instance: the window matches N1..N4, minus the related ones = {N4}.
  env.clock.Set(T(63));
  REQUIRE(env.manager->EndInstance(1).value());
  Decision n4 = env.Submit(Notice(4, 90), rule);
  CHECK(n4.outcome == Outcome::kExecute);
  CHECK(n4.primary);
  CHECK(n4.converge_id == 2);
  CHECK(env.Relations(2).size() == 1);
  CHECK(env.stores.queue->Stats("converge").value().pending == 2);
}

TEST_CASE("S10 collect_alarm at first level", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kCollectAlarm, 2, 300);
  CHECK(env.Submit(Act(1, 0), rule).outcome == Outcome::kExecute);
  Decision a2 = env.Submit(Act(2, 10), rule);
  // The creator is suppressed too, but its relation says executed.
  CHECK(a2.outcome == Outcome::kSkip);
  CHECK(a2.primary);
  CHECK_RELATION(env, 1, 2, true, CS::kExecuted);
  CHECK_RELATION(env, 1, 1, false, CS::kExecuted);
  CHECK(env.Submit(Act(3, 20), rule).outcome == Outcome::kSkip);
  CHECK_RELATION(env, 1, 3, false, CS::kSkipped);
  std::vector<Task> pending =
      env.stores.queue->ListPending("converge", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].subject_id == 1);
  CHECK(pending[0].due == T(70));
}

TEST_CASE("S12 window anchoring and late processing", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 120);
  env.clock.Set(T(103));  // A1@100 is processed at 103
  Decision a1 = env.Submit(Act(1, 100), rule);
  CHECK(a1.outcome == Outcome::kExecute);
  CHECK(a1.primary);
  CHECK(env.Instance(1).create_time == T(103));

  env.clock.Set(T(110));  // A0@40 arrives late
  Decision a0 = env.Submit(Act(100, 40), rule);
  CHECK(a0.outcome == Outcome::kSkip);
  CHECK(a0.converge_id == 1);

  Decision a5 = env.Submit(Act(5, 300), rule);
  CHECK(a5.outcome == Outcome::kExecute);
  CHECK(a5.primary);
  CHECK(a5.converge_id == 2);
  CHECK_FALSE(env.Instance(1).is_open());
}

TEST_CASE("S13 duplicate delivery is idempotent", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  env.Submit(Act(1, 0), rule);
  Decision a2 = env.Submit(Act(2, 10), rule);
  Decision a3 = env.Submit(Act(3, 20), rule);
  const size_t relations = env.Relations(1).size();

  SECTION("(a) a skipped action delivered twice") {
    Decision again = env.Submit(Act(3, 20), rule);
    CHECK(again.replayed);
    CHECK(again.outcome == Outcome::kSkip);
    CHECK(again.converge_id == a3.converge_id);
    CHECK(again.decided_at == a3.decided_at);
  }
  SECTION("(b) the creator redelivered after it ran: no-op (fixed)") {
    env.clock.Set(T(50));
    Decision again = env.Submit(Act(2, 10), rule);
    CHECK(again.replayed);
    CHECK(again.outcome == Outcome::kExecute);  // upstream: overwritten skip
    CHECK(again.primary);
    CHECK(again.converge_id == a2.converge_id);
    CHECK(env.stores.repo->GetAction(2).value()->status ==
          ActionStatus::kConverged);
    CHECK_RELATION(env, 1, 2, true, CS::kExecuted);
  }
  CHECK(env.Relations(1).size() == relations);
  CHECK(env.stores.repo->ListOpen(0).value().size() == 1);
}

// Shows A5's evaluation the state from before A4's instance committed, as a
// second evaluator that raced A4 would see it.
class StaleSnapshotRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  bool stale = false;
  int creates_refused = 0;

  absl::StatusOr<std::optional<ConvergeInstance>> FindOpen(
      std::string_view dimension) override {
    if (stale) return std::optional<ConvergeInstance>();
    return InstanceRepoWrapper::FindOpen(dimension);
  }
  absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view dimension) override {
    if (stale) return std::optional<OpenInstanceRef>();
    return InstanceRepoWrapper::LookupOpen(dimension);
  }
  absl::StatusOr<std::vector<int64_t>> Unrelated(absl::Span<const int64_t> ids,
                                                 ConvergeType type) override {
    if (stale) return std::vector<int64_t>(ids.begin(), ids.end());
    return InstanceRepoWrapper::Unrelated(ids, type);
  }
  absl::StatusOr<CreateResult> Create(const CreateRequest& request) override {
    absl::StatusOr<CreateResult> r = InstanceRepoWrapper::Create(request);
    if (r.status().code() == absl::StatusCode::kAlreadyExists) {
      ++creates_refused;
      stale = false;  // the loser re-reads the real state
    }
    return r;
  }
};

TEST_CASE("S15 concurrent creation race: one instance, one primary",
          "[scenario]") {
  Env env;
  StaleSnapshotRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* view) { view->repo = &repo; });
  auto& manager = env.manager;
  auto& stores = env.stores;
  auto& clock = env.clock;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 4, 300);

  for (int i = 1; i <= 3; ++i) {
    clock.Set(T(i));
    CHECK(manager->Submit(Act(i, i), rule).value().outcome ==
          Outcome::kExecute);
  }
  clock.Set(T(4));
  Decision a4 = manager->Submit(Act(4, 4), rule).value();
  CHECK(a4.primary);
  CHECK(a4.outcome == Outcome::kExecute);

  // A5 passed the threshold "at the same time" as A4: it saw no instance.
  repo.stale = true;
  clock.Set(T(5));
  Decision a5 = manager->Submit(Act(5, 5), rule).value();
  CHECK(repo.creates_refused == 1);
  CHECK_FALSE(a5.primary);
  CHECK(a5.converge_id == a4.converge_id);
  CHECK(a5.outcome == Outcome::kSkip);  // executed {A1..A4} = 4 >= 4

  std::vector<ConvergeInstance> open = stores.repo->ListOpen(0).value();
  REQUIRE(open.size() == 1);
  int primaries = 0;
  const std::vector<ConvergeRelation> relations =
      stores.repo->Relations(open[0].id).value();
  for (const auto& rel : relations) {
    primaries += rel.is_primary ? 1 : 0;
  }
  CHECK(primaries == 1);
}

TEST_CASE("S16 shielded actions do not count (fixed)", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  Action a1 = Act(1, 0);
  a1.shielded = true;
  Decision d1 = env.Submit(a1, rule);
  CHECK(d1.outcome == Outcome::kShield);
  CHECK_FALSE(d1.converge_id.has_value());
  CHECK(env.stores.repo->GetAction(1).value()->status == ActionStatus::kShield);
  // Not indexed: the window key of its alert_info is empty.
  const std::string key = env.WindowKey("g1");
  CHECK(env.stores.window->Size(key).value() == 0);

  // Upstream creates C1 at A2 and counts A1 as executed; ours waits for A3.
  Decision d2 = env.Submit(Act(2, 10), rule);
  CHECK(d2.outcome == Outcome::kExecute);
  CHECK_FALSE(d2.converge_id.has_value());
  Decision d3 = env.Submit(Act(3, 20), rule);
  CHECK(d3.outcome == Outcome::kExecute);
  CHECK(d3.primary);
  CHECK(env.Relations(*d3.converge_id).size() == 2);  // A3 and A2, not A1
  CHECK(env.RelationOf(*d3.converge_id, 1) == nullptr);
}

TEST_CASE("S16 illegal configs execute without instance or lock",
          "[scenario]") {
  Env env;
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  SECTION("timedelta 0") { rule.timedelta = 0; }
  SECTION("is_enabled false") { rule.is_enabled = false; }
  SECTION("empty condition without the bkmonitor profile") {
    rule.condition.clear();
  }
  for (int i = 1; i <= 3; ++i) {
    Decision d = env.Submit(Act(i, i), rule);
    CHECK(d.outcome == Outcome::kExecute);
    CHECK_FALSE(d.converge_id.has_value());
    CHECK_FALSE(d.reason.empty());
  }
  CHECK(env.stores.repo->ListOpen(0).value().empty());
  // A shielded action is still shielded under an illegal config.
  Action shielded = Act(9, 9);
  shielded.shielded = true;
  CHECK(env.Submit(shielded, rule).outcome == Outcome::kShield);
}

// ---- lifecycle: summaries, second level, leases, ends ----

// The upstream notice default with its business summary (section 1.6).
ConvergeConfig NoticeRule() {
  ConvergeConfig c;
  c.is_enabled = true;
  c.converge_func = ConvergeFunction::kCollect;
  c.timedelta = 60;
  c.count = 1;
  for (const char* key : {"strategy_id", "dimensions", "alert_level", "signal",
                          "bk_biz_id", "notice_receiver", "notice_way"}) {
    c.condition.push_back(Condition{key, {Value("self")}});
  }
  c.need_biz_converge = true;
  auto sub = std::make_shared<ConvergeConfig>();
  sub->is_enabled = true;
  sub->converge_func = ConvergeFunction::kCollectAlarm;
  sub->timedelta = 60;
  sub->count = 2;
  for (const char* key : {"bk_biz_id", "notice_receiver", "notice_way",
                          "alert_level", "signal"}) {
    sub->condition.push_back(Condition{key, {Value("self")}});
  }
  c.sub_converge_config = sub;
  return c;
}

// A notice of strategy `strategy` (one first-level instance per strategy).
Action StrategyNotice(int64_t id, double at, int64_t strategy) {
  Action a = Notice(id, at);
  a.strategy_id = strategy;
  return a;
}

// Records what the manager reports, in order.
struct Recorder : ManagerListener {
  void OnDecision(const Decision& d) override {
    lines.push_back(internal_line("decision", d.action_id,
                                  std::string(ToString(d.outcome))));
  }
  void OnInstance(const InstanceEvent& e) override {
    lines.push_back(internal_line("instance", e.converge_id,
                                  std::string(ToString(e.kind))));
  }
  void OnSummary(const Summary& s) override {
    summaries.push_back(s);
    lines.push_back(internal_line("summary", s.converge_id, "sent"));
  }
  static std::string internal_line(const char* type, int64_t id,
                                   const std::string& what) {
    return std::string(type) + " " + std::to_string(id) + " " + what;
  }
  std::vector<std::string> lines;
  std::vector<Summary> summaries;
};

TEST_CASE("S9 the summary reports the skipped notices and ends the instance",
          "[scenario]") {
  Env env(Bkmonitor());
  ConvergeConfig rule = Rule(ConvergeFunction::kCollect, 5, 3600);
  rule.need_biz_converge = false;
  env.Submit(Notice(1, 0), rule);
  SECTION("with suppressed notices") {
    env.Submit(Notice(2, 20), rule);
    env.Submit(Notice(3, 40), rule);
    env.clock.Set(T(63));
    Summary s = env.manager->RunSummary(1).value();
    CHECK(s.sent);
    CHECK(s.action_ids == std::vector<int64_t>{2, 3});
    CHECK(s.converge_type == ConvergeType::kAction);
    CHECK(s.template_type == ConvergeType::kAction);
    CHECK(s.time == T(63));
    CHECK_FALSE(env.Instance(1).is_open());
    // Running it again (a redelivered task) changes nothing.
    Summary again = env.manager->RunSummary(1).value();
    CHECK_FALSE(again.sent);
    CHECK(again.action_ids.empty());
  }
  SECTION("variant: nothing to report, the instance still ends") {
    env.clock.Set(T(63));
    Summary s = env.manager->RunSummary(1).value();
    CHECK_FALSE(s.sent);
    CHECK(s.action_ids.empty());
    CHECK_FALSE(env.Instance(1).is_open());
  }
  CHECK(env.manager->RunSummary(99).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("S10 the summary reports the suppressed creator too", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kCollectAlarm, 2, 300);
  env.Submit(Act(1, 0), rule);
  env.Submit(Act(2, 10), rule);
  env.Submit(Act(3, 20), rule);
  env.clock.Set(T(70));
  Summary s = env.manager->RunSummary(1).value();
  CHECK(s.sent);
  CHECK(s.action_ids == std::vector<int64_t>{2, 3});  // A1 ran: not reported
  CHECK_FALSE(env.Instance(1).is_open());
}

TEST_CASE("S11 multi-level business summary", "[scenario]") {
  Recorder recorder;
  ManagerOptions options = Bkmonitor();
  options.listener = &recorder;
  Env env(options);
  const ConvergeConfig rule = NoticeRule();
  auto sub_task = [&](int64_t id) {
    REQUIRE(env.manager->ProcessSubConverge(id).ok());
  };

  // Each notice creates its own first-level instance; the business counter
  // goes 1, 2, 3, 4 (threshold: the raw sub count, 2).
  Decision n1 = env.Submit(StrategyNotice(1, 0, 1), rule);
  sub_task(1);
  Decision n2 = env.Submit(StrategyNotice(2, 10, 2), rule);
  sub_task(2);
  Decision n3 = env.Submit(StrategyNotice(3, 20, 3), rule);
  CHECK(n1.outcome == Outcome::kExecute);
  CHECK(n2.outcome == Outcome::kExecute);
  CHECK(n3.outcome == Outcome::kSkip);  // the business already has enough
  CHECK(n3.primary);
  CHECK_RELATION(env, 3, 3, true, CS::kExecuted);
  // Nothing at the second level after F1's and F2's tasks.
  CHECK(env.stores.repo->ListOpen(0).value().size() == 3);
  CHECK(env.Instance(1).is_visible);

  // F3's task: {F1, F2, F3} reach the threshold of 3: S is created.
  sub_task(3);
  const ConvergeInstance s = env.Instance(4);
  CHECK(s.converge_type == ConvergeType::kConverge);
  CHECK(s.converge_func == ConvergeFunction::kCollectAlarm);
  CHECK(s.window_seconds == 120);
  CHECK_RELATION(env, 4, 3, true, CS::kExecuted);
  CHECK_RELATION(env, 4, 1, false, CS::kSkipped);
  CHECK_RELATION(env, 4, 2, false, CS::kSkipped);
  for (int64_t f : {1, 2, 3}) CHECK_FALSE(env.Instance(f).is_visible);

  Decision n4 = env.Submit(StrategyNotice(4, 30, 4), rule);
  CHECK(n4.outcome == Outcome::kSkip);
  CHECK(n4.converge_id == 5);
  sub_task(5);
  CHECK_RELATION(env, 4, 5, false, CS::kSkipped);
  CHECK_FALSE(env.Instance(5).is_visible);
  // A second delivery of F4's task changes nothing.
  sub_task(5);
  CHECK(env.Relations(4).size() == 4);

  // F1's own summary: hidden, so it reports nothing and does not end F1.
  env.clock.Set(T(60));
  Summary f1 = env.manager->RunSummary(1).value();
  CHECK_FALSE(f1.sent);
  CHECK(env.Instance(1).is_open());

  // The business summary: resets the counter, reports N3 and N4, ends S
  // and, recursively, F1..F4.
  const std::string counter = env.manager->key_space()
                                  .Render(keys::kSubConvergeDimensionLock,
                                          {{"bk_biz_id", "2"},
                                           {"signal", "abnormal"},
                                           {"notice_way", "mail"},
                                           {"notice_receiver", "alice"},
                                           {"alert_level", "1"}},
                                          "s0")
                                  .value();
  CHECK(env.stores.window->CounterValue(counter).value() == 4);
  env.clock.Set(T(80));
  Summary ks = env.manager->RunSummary(4).value();
  CHECK(ks.sent);
  CHECK(ks.converge_type == ConvergeType::kConverge);
  CHECK(ks.template_type == ConvergeType::kConverge);
  CHECK(ks.action_ids == std::vector<int64_t>{3, 4});
  CHECK(env.stores.window->CounterValue(counter).value() == 0);
  for (int64_t id : {1, 2, 3, 4, 5}) {
    const ConvergeInstance inst = env.Instance(id);
    CHECK_FALSE(inst.is_open());
    CHECK(absl::StrContains(inst.dimension, " fixed at "));
  }
  CHECK(env.stores.repo->ListOpen(0).value().empty());
  // F3's summary comes after: already ended, nothing sent.
  CHECK_FALSE(env.manager->RunSummary(3).value().sent);

  // What the listener saw, in order.
  const std::vector<std::string> expected_prefix = {
      "instance 1 created", "decision 1 execute", "instance 2 created",
      "decision 2 execute", "instance 3 created", "decision 3 skip",
      "instance 4 created", "instance 3 hidden",  "instance 1 hidden",
      "instance 2 hidden",  "instance 5 created", "decision 4 skip",
      "instance 5 hidden",  "instance 4 ended",   "instance 3 ended",
      "instance 1 ended",   "instance 2 ended",   "instance 5 ended",
      "summary 4 sent"};  // ends in relation order
  CHECK(recorder.lines == expected_prefix);
}

TEST_CASE("S11 the business summary is a task of the manager's queue",
          "[scenario]") {
  Env env(Bkmonitor());
  const ConvergeConfig rule = NoticeRule();
  env.Submit(StrategyNotice(1, 0, 1), rule);
  std::vector<Task> pending =
      env.stores.queue->ListPending("converge", 0).value();
  REQUIRE(pending.size() == 2);
  // Second-level processing is due at once, the summary after 60 s.
  CHECK(pending[0].id == "subconverge:1");
  CHECK(pending[0].due == T(0));
  CHECK(pending[1].id == "summary:1");
  CHECK(pending[1].due == T(60));
  // Without need_biz_converge there is no second level.
  ConvergeConfig plain = rule;
  plain.need_biz_converge = false;
  env.Submit(StrategyNotice(2, 1, 2), plain);
  CHECK(env.stores.queue->Stats("converge").value().pending == 3);
}

TEST_CASE("S14 one evaluator per dimension: a busy lease refuses, then frees",
          "[scenario]") {
  ManagerOptions options;
  options.lease_attempts = 1;  // no waiting: report busy at once
  Env env(options);
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 4, 300);
  env.Submit(Act(1, 0), rule);
  // W1 evaluates D (holds its lease); upstream's capacity max(4 // 2, 1) = 2
  // would let a second evaluator in. Ours lets none.
  const std::string d =
      ComputeDimension(rule, rule, BuildContext(Act(2, 1))).dimension;
  const std::string lease = env.manager->LeaseKey(d).value();
  REQUIRE(env.stores.lock->TryAcquire(lease, "w1", absl::Seconds(60)).value());
  env.clock.Set(T(1));
  absl::StatusOr<Decision> busy = env.manager->Submit(Act(2, 1), rule);
  REQUIRE_FALSE(busy.ok());
  CHECK(IsLeaseBusy(busy.status()));
  CHECK_FALSE(IsLeaseBusy(absl::UnavailableError("store down")));
  // Nothing was decided: the caller requeues.
  CHECK_FALSE(env.manager->GetDecision(2).value().has_value());

  SECTION("the holder releases: the requeued action proceeds") {
    REQUIRE(env.stores.lock->Release(lease, "w1").value());
    CHECK(env.Submit(Act(2, 1), rule).outcome == Outcome::kExecute);
  }
  SECTION("the holder crashed: its lease expires after its ttl") {
    env.clock.Set(T(30));
    CHECK_FALSE(env.manager->Submit(Act(2, 1), rule).ok());
    env.clock.Set(T(62));
    CHECK(env.Submit(Act(2, 1), rule).outcome == Outcome::kExecute);
  }
  // The settled-join fast path needs no lease: with the instance at its
  // threshold, joiners are decided while the lease is held.
  for (int i = 3; i <= 4; ++i) env.Submit(Act(i, i), rule);
  REQUIRE(env.stores.lock->TryAcquire(lease, "w1", absl::Seconds(60)).value());
  CHECK(env.Submit(Act(5, 5), rule).outcome == Outcome::kSkip);
}

TEST_CASE("S17 an action already finished when its task arrives",
          "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 2, 300);
  Decision first = env.Submit(Act(1, 0), rule);
  env.Report(1, ActionStatus::kSuccess);
  env.clock.Set(T(5));
  Decision again = env.Submit(Act(1, 0), rule);
  CHECK(again.replayed);
  CHECK(again.outcome == first.outcome);
  CHECK(again.decided_at == first.decided_at);
  // The reported status stays: nothing was written.
  CHECK(env.stores.repo->GetAction(1).value()->status ==
        ActionStatus::kSuccess);
  CHECK(env.stores.repo->ListOpen(0).value().empty());
}

TEST_CASE("S18 a first-level instance that ended before its second-level task",
          "[scenario]") {
  Env env(Bkmonitor());
  const ConvergeConfig rule = NoticeRule();
  for (int i = 1; i <= 3; ++i) env.Submit(StrategyNotice(i, i, i), rule);
  // F1's summary runs before its (delayed) second-level task.
  env.clock.Set(T(61));
  CHECK_FALSE(env.manager->RunSummary(1).value().sent);
  CHECK_FALSE(env.Instance(1).is_open());
  for (int64_t f : {1, 2, 3}) REQUIRE(env.manager->ProcessSubConverge(f).ok());
  // F1 is never hidden or linked; F2 and F3 alone are below the threshold.
  CHECK(env.Instance(1).is_visible);
  CHECK(env.stores.repo->CountOpen().value().converge == 0);
  // A fourth strategy makes three live instances: S links F2..F4 only.
  env.Submit(StrategyNotice(4, 62, 4), rule);
  REQUIRE(env.manager->ProcessSubConverge(4).ok());
  CHECK(env.stores.repo->CountOpen().value().converge == 1);
  const std::vector<ConvergeRelation> rels = env.Relations(5);
  REQUIRE(rels.size() == 3);
  for (const ConvergeRelation& r : rels) CHECK(r.related_id != 1);
  CHECK(env.Instance(1).is_visible);
}

TEST_CASE("a second-level summary task that was lost is scheduled again",
          "[scenario]") {
  Env env(Bkmonitor());
  const ConvergeConfig rule = NoticeRule();
  for (int i = 1; i <= 3; ++i) env.Submit(StrategyNotice(i, i, i), rule);
  for (int64_t f : {1, 2, 3}) REQUIRE(env.manager->ProcessSubConverge(f).ok());
  REQUIRE(env.stores.repo->CountOpen().value().converge == 1);
  const int64_t s = 4;
  REQUIRE(env.Instance(s).converge_type == ConvergeType::kConverge);
  // Its summary task lost (a crash between the creation and the enqueue).
  QueueStore* q = env.stores.queue.get();
  bool found = false;
  for (int i = 0; i < 10; ++i) {
    std::optional<Delivery> d =
        q->Dequeue("converge", T(1000), absl::Seconds(60)).value();
    if (!d.has_value()) break;
    if (d->task.id == absl::StrCat("summary:", s)) {
      REQUIRE(q->Ack("converge", d->receipt).value());
      found = true;
    }
  }
  REQUIRE(found);
  // A retried second-level task of a linked instance schedules it again.
  REQUIRE(env.manager->ProcessSubConverge(3).ok());
  bool again = false;
  const std::vector<Task> pending = q->ListPending("converge", 0).value();
  for (const Task& t : pending) {
    again = again || t.id == absl::StrCat("summary:", s);
  }
  CHECK(again);
}

TEST_CASE("the sweep ends a hidden instance whose second level has ended",
          "[scenario]") {
  Env env(Bkmonitor());
  const ConvergeConfig rule = NoticeRule();
  for (int i = 1; i <= 3; ++i) env.Submit(StrategyNotice(i, i, i), rule);
  for (int64_t f : {1, 2, 3}) REQUIRE(env.manager->ProcessSubConverge(f).ok());
  const int64_t s = 4;
  REQUIRE_FALSE(env.Instance(1).is_visible);
  // S ends without its first-level instances (a crash between the ends).
  env.clock.Set(T(500));
  REQUIRE(env.stores.repo->End(s, env.clock.Now()).value());
  for (int64_t f : {1, 2, 3}) REQUIRE(env.Instance(f).is_open());
  // Past their window (60 s with the bkmonitor minute windows) and the
  // sweep's grace: the sweep ends them.
  env.clock.Set(T(1000));
  SweepResult r = env.manager->Sweep().value();
  CHECK(r.ended == 3);
  for (int64_t f : {1, 2, 3}) CHECK_FALSE(env.Instance(f).is_open());
}

// Ends first-level instance `victim` just before the next Create or Link
// of the second level: its own summary, run by another worker, wins the
// race against the second-level task that has read it open.
class EndBeforeLinkRepo final : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  void Arm(int64_t victim, absl::Time at) {
    victim_ = victim;
    at_ = at;
  }
  absl::StatusOr<CreateResult> Create(const CreateRequest& request) override {
    if (request.instance.converge_type == ConvergeType::kConverge) Fire();
    return InstanceRepoWrapper::Create(request);
  }
  absl::StatusOr<std::vector<ConvergeRelation>> Link(
      int64_t converge_id,
      absl::Span<const ConvergeRelation> relations) override {
    Fire();
    return InstanceRepoWrapper::Link(converge_id, relations);
  }

 private:
  void Fire() {
    if (victim_ == 0) return;
    REQUIRE(target()->End(victim_, at_).value());
    victim_ = 0;
  }
  int64_t victim_ = 0;
  absl::Time at_;
};

TEST_CASE("the second level does not take in a member that has just ended",
          "[scenario]") {
  Recorder recorder;
  ManagerOptions options = Bkmonitor();
  options.listener = &recorder;
  Env env(options);
  EndBeforeLinkRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* view) { view->repo = &repo; });
  const ConvergeConfig rule = NoticeRule();
  // As in S11: F1's and F2's tasks find too few; F3's creates S.
  env.Submit(StrategyNotice(1, 1, 1), rule);
  REQUIRE(env.manager->ProcessSubConverge(1).ok());
  env.Submit(StrategyNotice(2, 2, 2), rule);
  REQUIRE(env.manager->ProcessSubConverge(2).ok());
  env.Submit(StrategyNotice(3, 3, 3), rule);
  REQUIRE(env.stores.repo->CountOpen().value().converge == 0);
  const int64_t s = 4;  // the second-level instance, once created
  auto related = [&](int64_t id) {
    std::vector<int64_t> ids;
    for (const ConvergeRelation& r : env.Relations(id)) {
      ids.push_back(r.related_id);
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  auto heard_hidden = [&](int64_t id) {
    const std::string line = absl::StrCat("instance ", id, " hidden");
    return std::find(recorder.lines.begin(), recorder.lines.end(), line) !=
           recorder.lines.end();
  };

  SECTION("a candidate ends before the creation") {
    repo.Arm(1, env.clock.Now());
    REQUIRE(env.manager->ProcessSubConverge(3).ok());
    REQUIRE(env.Instance(s).converge_type == ConvergeType::kConverge);
    CHECK(related(s) == std::vector<int64_t>{2, 3});
    CHECK(env.Instance(1).is_visible);  // its own summary reports it
    CHECK_FALSE(heard_hidden(1));
    CHECK(heard_hidden(2));
  }
  SECTION("the creating member itself ends before the creation") {
    repo.Arm(3, env.clock.Now());
    REQUIRE(env.manager->ProcessSubConverge(3).ok());
    CHECK(env.stores.repo->CountOpen().value().converge == 0);
    for (int64_t f : {1, 2, 3}) CHECK(env.Instance(f).is_visible);
    CHECK_FALSE(heard_hidden(3));
  }
  SECTION("a joining member ends before the link") {
    REQUIRE(env.manager->ProcessSubConverge(3).ok());
    REQUIRE(env.Instance(s).converge_type == ConvergeType::kConverge);
    env.Submit(StrategyNotice(4, 4, 4), rule);  // instance 5
    repo.Arm(5, env.clock.Now());
    REQUIRE(env.manager->ProcessSubConverge(5).ok());
    CHECK(related(s) == std::vector<int64_t>{1, 2, 3});
    CHECK(env.Instance(5).is_visible);
    CHECK_FALSE(heard_hidden(5));
  }
}

// Runs `hook` once, just before the next End or EndVisible: what another
// worker does between a summary's read and its end.
class BeforeEndRepo final : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  std::function<void()> hook;
  absl::StatusOr<bool> End(int64_t id, absl::Time now) override {
    if (hook) std::exchange(hook, nullptr)();
    return InstanceRepoWrapper::End(id, now);
  }
  absl::StatusOr<bool> EndVisible(int64_t id, absl::Time now) override {
    if (hook) std::exchange(hook, nullptr)();
    return InstanceRepoWrapper::EndVisible(id, now);
  }
};

TEST_CASE(
    "a first-level summary does not go out once its instance has been "
    "linked to the second level",
    "[scenario]") {
  Recorder recorder;
  ManagerOptions options = Bkmonitor();
  options.listener = &recorder;
  Env env(options);
  BeforeEndRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* view) { view->repo = &repo; });
  const ConvergeConfig rule = NoticeRule();
  env.Submit(StrategyNotice(1, 1, 1), rule);
  REQUIRE(env.manager->ProcessSubConverge(1).ok());
  // A second notice of strategy 1: skipped into F1, to be reported once.
  Decision n10 = env.Submit(StrategyNotice(10, 1.5, 1), rule);
  REQUIRE(n10.outcome == Outcome::kSkip);
  REQUIRE(n10.converge_id == std::optional<int64_t>(1));
  env.Submit(StrategyNotice(2, 2, 2), rule);
  REQUIRE(env.manager->ProcessSubConverge(2).ok());
  env.Submit(StrategyNotice(3, 3, 3), rule);
  // F1's summary reads F1 visible; before it ends F1, F3's second-level
  // task creates S and links F1 (hides it).
  repo.hook = [&] { REQUIRE(env.manager->ProcessSubConverge(3).ok()); };
  env.clock.Set(T(61));
  Summary f1 = env.manager->RunSummary(1).value();
  const int64_t s = 4;
  REQUIRE(env.Instance(s).converge_type == ConvergeType::kConverge);
  CHECK_FALSE(f1.sent);
  CHECK(env.Instance(1).is_open());  // S's now: its summary ends it
  CHECK_FALSE(env.Instance(1).is_visible);
  REQUIRE(env.manager->RunSummary(s).ok());
  CHECK_FALSE(env.Instance(1).is_open());
  // Action 10 is reported once, by S.
  int reported = 0;
  for (const Summary& sum : recorder.summaries) {
    reported += static_cast<int>(
        std::count(sum.action_ids.begin(), sum.action_ids.end(), 10));
  }
  CHECK(reported == 1);
}

TEST_CASE("Approvals: approve, reject, time out", "[scenario]") {
  Recorder recorder;
  ManagerOptions options;
  options.listener = &recorder;
  Env env(options);
  const ConvergeConfig rule = Rule(ConvergeFunction::kDefense, 2, 300);
  env.Submit(Act(1, 0), rule);
  env.Submit(Act(2, 10), rule);
  for (int i = 3; i <= 5; ++i) {
    CHECK(env.Submit(Act(i, 10 + i), rule).outcome == Outcome::kApproval);
  }
  // Each waiting action has its timeout task, 30 min after its decision.
  std::vector<Task> pending =
      env.stores.queue->ListPending("converge", 0).value();
  REQUIRE(pending.size() == 3);
  CHECK(pending[0].id == "approval:3");
  CHECK(pending[0].due == T(13) + absl::Minutes(30));

  Decision approved = env.manager->Approve(3).value();
  CHECK(approved.outcome == Outcome::kExecute);
  CHECK(approved.reason == "approved");
  CHECK(env.stores.repo->GetAction(3).value()->status ==
        ActionStatus::kConverged);
  Decision rejected = env.manager->Reject(4).value();
  CHECK(rejected.outcome == Outcome::kSkip);
  CHECK(env.stores.repo->GetAction(4).value()->status ==
        ActionStatus::kSkipped);
  // A second answer is refused; an unknown action is not found.
  CHECK(env.manager->Approve(3).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(env.manager->Reject(3).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(env.manager->Approve(99).status().code() ==
        absl::StatusCode::kNotFound);

  // The timeout: not before it is due, then skip.
  env.clock.Set(T(15) + absl::Minutes(29));
  CHECK(env.manager->ExpireApproval(5).value().outcome == Outcome::kApproval);
  env.clock.Set(T(15) + absl::Minutes(30));
  Decision expired = env.manager->ExpireApproval(5).value();
  CHECK(expired.outcome == Outcome::kSkip);
  CHECK(expired.reason == "approval timed out");
  // The timeout of an answered approval changes nothing.
  CHECK(env.manager->ExpireApproval(3).value().outcome == Outcome::kExecute);
  CHECK(recorder.lines.back() == "decision 5 skip");
}

TEST_CASE("Sleep schedules its re-poll", "[scenario]") {
  Env env;
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenSuccess, 1, 3600);
  env.Submit(Act(1, 0), rule);
  env.Report(1, ActionStatus::kRunning);
  CHECK(env.Submit(Act(2, 60), rule).outcome == Outcome::kSleep);
  std::vector<Task> pending =
      env.stores.queue->ListPending("converge", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == "repoll:2");
  CHECK(pending[0].kind == "repoll");
  CHECK(pending[0].due == T(90));
}

TEST_CASE("Sweep ends instances whose window has passed", "[scenario]") {
  Recorder recorder;
  ManagerOptions options;
  options.listener = &recorder;
  Env env(options);
  const ConvergeConfig exceed = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  const ConvergeConfig collect =
      Rule(ConvergeFunction::kCollect, 1, 30, "alert_info");
  env.Submit(Act(1, 0, "a"), exceed);   // C1, W = 300
  env.Submit(Act(2, 0, "b"), collect);  // C2, W = 30, summary at 60
  env.Submit(Act(3, 10, "b"), collect);

  env.clock.Set(T(120));  // C2: 0 + max(30, 60) + 60 grace = 120: not yet
  SweepResult r = env.manager->Sweep().value();
  CHECK(r.scanned == 2);
  CHECK(r.ended == 0);
  env.clock.Set(T(121));  // the summary never ran: the sweep runs it
  r = env.manager->Sweep().value();
  CHECK(r.ended == 1);
  CHECK(r.summaries == 1);
  REQUIRE(recorder.summaries.size() == 1);
  CHECK(recorder.summaries[0].action_ids == std::vector<int64_t>{3});
  CHECK(env.Instance(1).is_open());
  env.clock.Set(T(361));  // C1: 0 + 300 + 60
  r = env.manager->Sweep().value();
  CHECK(r.scanned == 1);
  CHECK(r.ended == 1);
  CHECK_FALSE(env.Instance(1).is_open());
  CHECK(env.manager->Sweep().value().scanned == 0);
}

TEST_CASE("lazy expiry of a collect instance sends its summary", "[scenario]") {
  Recorder recorder;
  ManagerOptions options;
  options.listener = &recorder;
  Env env(options);
  const ConvergeConfig collect =
      Rule(ConvergeFunction::kCollect, 1, 30, "alert_info");
  env.Submit(Act(2, 0, "b"), collect);  // C1, W = 30, summary due at 60
  CHECK(env.Submit(Act(3, 10, "b"), collect).outcome == Outcome::kSkip);
  // At 40 C1 has expired for A4 (created before 40 - 30): A4 ends it, and
  // the summary of A3 goes out then, not at 60, when C1 has ended.
  const Decision a4 = env.Submit(Act(4, 40, "b"), collect);
  CHECK(a4.converge_id != std::optional<int64_t>(1));
  CHECK_FALSE(env.Instance(1).is_open());
  REQUIRE(recorder.summaries.size() == 1);
  CHECK(recorder.summaries[0].converge_id == 1);
  CHECK(recorder.summaries[0].action_ids == std::vector<int64_t>{3});
  // The summary task, when it comes, has nothing more to say.
  env.clock.Set(T(60));
  Summary late = env.manager->RunSummary(1).value();
  CHECK_FALSE(late.sent);
  CHECK(recorder.summaries.size() == 1);
}

// After a call that ended an instance, fails the next read of an instance
// or of relations once: the store going away right after a commit.
class FailAfterEndRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  absl::StatusOr<bool> End(int64_t id, absl::Time at) override {
    return Arm(InstanceRepoWrapper::End(id, at));
  }
  absl::StatusOr<bool> EndVisible(int64_t id, absl::Time at) override {
    return Arm(InstanceRepoWrapper::EndVisible(id, at));
  }
  absl::StatusOr<ConvergeInstance> GetInstance(int64_t id) override {
    if (Fire()) return absl::UnavailableError("test: the store went away");
    return InstanceRepoWrapper::GetInstance(id);
  }
  absl::StatusOr<std::vector<ConvergeRelation>> Relations(
      int64_t converge_id) override {
    if (Fire()) return absl::UnavailableError("test: the store went away");
    return InstanceRepoWrapper::Relations(converge_id);
  }

 private:
  absl::StatusOr<bool> Arm(absl::StatusOr<bool> r) {
    if (r.ok() && *r && !failed_) armed_ = true;
    return r;
  }
  bool Fire() {
    if (!armed_) return false;
    armed_ = false;
    failed_ = true;
    return true;
  }
  bool armed_ = false;
  bool failed_ = false;
};

TEST_CASE(
    "an end that is stored is reported, and its summary goes out, even if "
    "a later call fails",
    "[scenario]") {
  Recorder recorder;
  ManagerOptions options = Bkmonitor();
  options.listener = &recorder;
  Env env(options);
  FailAfterEndRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* view) { view->repo = &repo; });
  auto heard = [&](const std::string& line) {
    return std::count(recorder.lines.begin(), recorder.lines.end(), line);
  };

  SECTION("first level") {
    ConvergeConfig collect = Rule(ConvergeFunction::kCollect, 1, 30);
    collect.need_biz_converge = false;
    env.Submit(Notice(2, 0), collect);
    env.Submit(Notice(3, 10), collect);
    env.clock.Set(T(70));
    // Nothing is read after the end: the call succeeds.
    absl::StatusOr<Summary> first = env.manager->RunSummary(1);
    REQUIRE(first.ok());
    CHECK(first->sent);
    CHECK_FALSE(env.Instance(1).is_open());
    REQUIRE(recorder.summaries.size() == 1);
    CHECK(recorder.summaries[0].action_ids == std::vector<int64_t>{3});
    CHECK(heard("instance 1 ended") == 1);
  }
  SECTION("second level") {
    const ConvergeConfig rule = NoticeRule();
    env.Submit(StrategyNotice(1, 0, 1), rule);
    REQUIRE(env.manager->ProcessSubConverge(1).ok());
    env.Submit(StrategyNotice(2, 10, 2), rule);
    REQUIRE(env.manager->ProcessSubConverge(2).ok());
    env.Submit(StrategyNotice(3, 20, 3), rule);  // skipped
    REQUIRE(env.manager->ProcessSubConverge(3).ok());
    const int64_t s = 4;
    REQUIRE(env.Instance(s).converge_type == ConvergeType::kConverge);
    env.clock.Set(T(80));
    // S's end is stored, then reading its relations (to end F1..F3)
    // fails: the call fails, to be retried, but S's end is reported and
    // its summary has gone out.
    absl::StatusOr<Summary> first = env.manager->RunSummary(s);
    CHECK(first.status().code() == absl::StatusCode::kUnavailable);
    CHECK_FALSE(env.Instance(s).is_open());
    CHECK(heard("instance 4 ended") == 1);
    REQUIRE(recorder.summaries.size() == 1);
    CHECK(recorder.summaries[0].action_ids == std::vector<int64_t>{3});
    CHECK(env.Instance(1).is_open());
    // The retry ends the first level, sends nothing again.
    absl::StatusOr<Summary> retry = env.manager->RunSummary(s);
    REQUIRE(retry.ok());
    CHECK_FALSE(retry->sent);
    CHECK(recorder.summaries.size() == 1);
    CHECK(heard("instance 4 ended") == 1);
    for (int64_t f : {1, 2, 3}) {
      CHECK_FALSE(env.Instance(f).is_open());
      CHECK(heard(absl::StrCat("instance ", f, " ended")) == 1);
    }
  }
}

TEST_CASE("Purge deletes ended instances after the retention", "[scenario]") {
  ManagerOptions options;
  options.retention = absl::Hours(1);
  Env env(options);
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  env.Submit(Act(1, 0, "a"), rule);
  env.Submit(Act(2, 5, "a"), rule);
  env.Submit(Act(3, 0, "b"), rule);  // C2 stays open
  env.clock.Set(T(400));
  REQUIRE(env.manager->EndInstance(1).value());
  env.clock.Set(T(400) + absl::Minutes(59));
  PurgeResult none = env.manager->Purge().value();
  CHECK(none.instances == 0);
  CHECK(none.actions == 0);  // members go with their instance
  CHECK(env.manager->GetDecision(1).value().has_value());
  env.clock.Set(T(401) + absl::Hours(1));
  PurgeResult p = env.manager->Purge().value();
  CHECK(p.instances == 1);
  CHECK(p.relations == 2);
  CHECK(p.actions == 2);  // A1, A2; A3 belongs to the open C2
  CHECK(env.stores.repo->GetInstance(1).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(env.Instance(2).is_open());
  CHECK(env.manager->GetDecision(3).value().has_value());
  CHECK_FALSE(env.manager->GetDecision(1).value().has_value());
}

}  // namespace
}  // namespace converge::testing
