// The test scenarios of converge-semantics.md section 8, on the memory store
// with a virtual clock. Where the spec gives "upstream" and "fixed" results,
// these tests assert ours, as project-decisions.md decides.

#include <catch2/catch.hpp>

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

}  // namespace
}  // namespace converge::testing
