#include "converge/functions.h"

#include <algorithm>

namespace converge {
namespace {

bool Any(absl::Span<const MemberStatus> executed, bool (*pred)(ActionStatus)) {
  return std::any_of(executed.begin(), executed.end(),
                     [&](const MemberStatus& m) { return pred(m.status); });
}

// skip_when_success (section 4): skipped if one succeeded; sleep while one is
// neither failed nor sleeping; otherwise run ("partial_success" is not
// success).
Outcome SkipWhenSuccess(const FunctionInput& in) {
  if (in.type == ConvergeType::kConverge || in.executed.empty()) {
    return Outcome::kExecute;
  }
  if (Any(in.executed,
          [](ActionStatus s) { return s == ActionStatus::kSuccess; })) {
    return Outcome::kSkip;
  }
  if (Any(in.executed, [](ActionStatus s) {
        return s != ActionStatus::kFailure && s != ActionStatus::kSleep;
      })) {
    return Outcome::kSleep;
  }
  return Outcome::kExecute;
}

bool ThresholdReached(const FunctionInput& in) {
  const int64_t n = in.executed_count >= 0
                        ? in.executed_count
                        : static_cast<int64_t>(in.executed.size());
  return n >= in.count;
}

}  // namespace

bool FunctionReadsStatuses(ConvergeFunction func) {
  switch (func) {
    case ConvergeFunction::kSkipWhenSuccess:
    case ConvergeFunction::kApproveWhenFailed:
    case ConvergeFunction::kSkipWhenProceed:
    case ConvergeFunction::kWaitWhenProceed:
      return true;
    default:
      return false;
  }
}

FunctionResult EvaluateFunction(const FunctionInput& in) {
  FunctionResult r;
  switch (in.func) {
    case ConvergeFunction::kSkipWhenSuccess:
      r.outcome = SkipWhenSuccess(in);
      break;
    case ConvergeFunction::kApproveWhenFailed:
      // Upstream sends the creator itself to approval (its executed set is
      // empty); we let the creator run (project-decisions.md, point 10).
      if (in.is_new) {
        r.outcome = Outcome::kExecute;
      } else {
        r.outcome = SkipWhenSuccess(in);
        if (r.outcome == Outcome::kExecute) r.outcome = Outcome::kApproval;
      }
      break;
    case ConvergeFunction::kSkipWhenProceed: {
      if (in.executed.empty()) break;
      if (Any(in.executed, IsProceedStatus)) {
        r.outcome = Outcome::kSkip;
        break;
      }
      // Upstream's dead branch, fixed: also skip when an executed sibling
      // finished successfully inside the window.
      const absl::Time since = in.now - absl::Seconds(in.window_seconds);
      for (const MemberStatus& m : in.executed) {
        if (m.status == ActionStatus::kSuccess && m.status_time >= since) {
          r.outcome = Outcome::kSkip;
          break;
        }
      }
      break;
    }
    case ConvergeFunction::kWaitWhenProceed:
      if (Any(in.executed, IsProceedStatus)) r.outcome = Outcome::kSleep;
      break;
    case ConvergeFunction::kDefense:
      if (!in.is_new && ThresholdReached(in)) r.outcome = Outcome::kApproval;
      break;
    case ConvergeFunction::kSkipWhenExceed:
      if (!in.is_new && ThresholdReached(in)) r.outcome = Outcome::kSkip;
      break;
    case ConvergeFunction::kCollect:
      if (in.is_new) {
        r.schedule_summary = true;
        if (in.biz_converge_existed) r.outcome = Outcome::kSkip;
      } else if (in.biz_converge_existed || ThresholdReached(in)) {
        r.outcome = Outcome::kSkip;
      }
      break;
    case ConvergeFunction::kCollectAlarm:
      r.schedule_summary = in.is_new;
      r.outcome = Outcome::kSkip;
      break;
    case ConvergeFunction::kRelevance:
      break;
    case ConvergeFunction::kTrigger:
      if (!in.is_new) r.outcome = Outcome::kSkip;
      break;
  }
  return r;
}

}  // namespace converge
