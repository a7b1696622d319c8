// Each converge function as a pure function (section 4 of the spec).

#include "converge/functions.h"

#include <catch2/catch.hpp>
#include <vector>

namespace converge {
namespace {

std::vector<MemberStatus> Members(std::vector<ActionStatus> statuses,
                                  absl::Time at = absl::UnixEpoch()) {
  std::vector<MemberStatus> out;
  int64_t id = 1;
  for (ActionStatus s : statuses) out.push_back({id++, s, at});
  return out;
}

Outcome Eval(ConvergeFunction f, bool is_new, int64_t count,
             const std::vector<MemberStatus>& executed,
             ConvergeType type = ConvergeType::kAction) {
  FunctionInput in;
  in.func = f;
  in.is_new = is_new;
  in.count = count;
  in.executed = executed;
  in.type = type;
  in.now = absl::UnixEpoch() + absl::Seconds(100);
  in.window_seconds = 60;
  return EvaluateFunction(in).outcome;
}

using F = ConvergeFunction;
using S = ActionStatus;
using O = Outcome;

TEST_CASE("skip_when_success", "[functions]") {
  CHECK(Eval(F::kSkipWhenSuccess, true, 1, {}) == O::kExecute);
  CHECK(Eval(F::kSkipWhenSuccess, false, 1, Members({S::kSuccess})) ==
        O::kSkip);
  CHECK(Eval(F::kSkipWhenSuccess, false, 1, Members({S::kRunning})) ==
        O::kSleep);
  // partial_success is not success, and is neither failure nor sleep.
  CHECK(Eval(F::kSkipWhenSuccess, false, 1, Members({S::kPartialSuccess})) ==
        O::kSleep);
  CHECK(Eval(F::kSkipWhenSuccess, false, 1,
             Members({S::kFailure, S::kSleep})) == O::kExecute);
  CHECK(Eval(F::kSkipWhenSuccess, false, 1, Members({S::kSuccess}),
             ConvergeType::kConverge) == O::kExecute);
}

TEST_CASE("approve_when_failed", "[functions]") {
  CHECK(Eval(F::kApproveWhenFailed, true, 1, {}) == O::kExecute);  // fixed
  CHECK(Eval(F::kApproveWhenFailed, false, 1, Members({S::kFailure})) ==
        O::kApproval);
  CHECK(Eval(F::kApproveWhenFailed, false, 1, Members({S::kSuccess})) ==
        O::kSkip);
  CHECK(Eval(F::kApproveWhenFailed, false, 1, Members({S::kRunning})) ==
        O::kSleep);
}

TEST_CASE("skip_when_proceed and wait_when_proceed", "[functions]") {
  for (S s : {S::kReceived, S::kWaiting, S::kConverging, S::kSleep,
              S::kConverged, S::kRunning}) {
    CHECK(Eval(F::kSkipWhenProceed, false, 1, Members({s})) == O::kSkip);
    CHECK(Eval(F::kWaitWhenProceed, false, 1, Members({s})) == O::kSleep);
  }
  CHECK(Eval(F::kSkipWhenProceed, false, 1, {}) == O::kExecute);
  CHECK(Eval(F::kWaitWhenProceed, false, 1, Members({S::kFailure})) ==
        O::kExecute);
  CHECK(Eval(F::kWaitWhenProceed, false, 1, Members({S::kSuccess})) ==
        O::kExecute);
  // Fixed dead branch: success inside the window (now - 60 s) skips; an
  // older success does not.
  const absl::Time now = absl::UnixEpoch() + absl::Seconds(100);
  CHECK(Eval(F::kSkipWhenProceed, false, 1,
             Members({S::kSuccess}, now - absl::Seconds(30))) == O::kSkip);
  CHECK(Eval(F::kSkipWhenProceed, false, 1,
             Members({S::kSuccess}, now - absl::Seconds(90))) == O::kExecute);
  CHECK(Eval(F::kSkipWhenProceed, false, 1, Members({S::kFailure})) ==
        O::kExecute);
}

TEST_CASE("defense, skip_when_exceed, trigger, relevance", "[functions]") {
  const auto two = Members({S::kConverged, S::kSuccess});
  CHECK(Eval(F::kDefense, true, 2, two) == O::kExecute);
  CHECK(Eval(F::kDefense, false, 3, two) == O::kExecute);
  CHECK(Eval(F::kDefense, false, 2, two) == O::kApproval);
  CHECK(Eval(F::kSkipWhenExceed, true, 2, two) == O::kExecute);
  CHECK(Eval(F::kSkipWhenExceed, false, 3, two) == O::kExecute);
  CHECK(Eval(F::kSkipWhenExceed, false, 2, two) == O::kSkip);
  CHECK(Eval(F::kTrigger, true, 2, {}) == O::kExecute);
  CHECK(Eval(F::kTrigger, false, 9, {}) == O::kSkip);
  CHECK(Eval(F::kRelevance, false, 1, two) == O::kExecute);
  CHECK(Eval(F::kRelevance, true, 1, {}) == O::kExecute);
}

TEST_CASE("collect and collect_alarm schedule one summary on creation",
          "[functions]") {
  FunctionInput in;
  in.func = F::kCollect;
  in.is_new = true;
  in.count = 1;
  FunctionResult r = EvaluateFunction(in);
  CHECK(r.schedule_summary);
  CHECK(r.outcome == O::kExecute);
  in.biz_converge_existed = true;
  CHECK(EvaluateFunction(in).outcome == O::kSkip);

  const auto one = Members({S::kConverged});
  in.is_new = false;
  in.biz_converge_existed = false;
  in.executed = one;
  r = EvaluateFunction(in);
  CHECK_FALSE(r.schedule_summary);
  CHECK(r.outcome == O::kSkip);
  in.count = 2;
  CHECK(EvaluateFunction(in).outcome == O::kExecute);

  in.func = F::kCollectAlarm;
  in.is_new = true;
  r = EvaluateFunction(in);
  CHECK(r.schedule_summary);
  CHECK(r.outcome == O::kSkip);
  in.is_new = false;
  r = EvaluateFunction(in);
  CHECK_FALSE(r.schedule_summary);
  CHECK(r.outcome == O::kSkip);
}

}  // namespace
}  // namespace converge
