#include "converge/types.h"

#include <array>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "internal/strings.h"

namespace converge {
namespace {

template <typename E, size_t N>
using Table = std::array<std::pair<E, std::string_view>, N>;

constexpr Table<ConvergeType, 2> kConvergeTypes{{
    {ConvergeType::kAction, "action"},
    {ConvergeType::kConverge, "converge"},
}};

constexpr Table<ConvergeStatus, 2> kConvergeStatuses{{
    {ConvergeStatus::kExecuted, "executed"},
    {ConvergeStatus::kSkipped, "skipped"},
}};

constexpr Table<ConvergeFunction, 10> kFunctions{{
    {ConvergeFunction::kSkipWhenSuccess, "skip_when_success"},
    {ConvergeFunction::kApproveWhenFailed, "approve_when_failed"},
    {ConvergeFunction::kSkipWhenProceed, "skip_when_proceed"},
    {ConvergeFunction::kWaitWhenProceed, "wait_when_proceed"},
    {ConvergeFunction::kSkipWhenExceed, "skip_when_exceed"},
    {ConvergeFunction::kDefense, "defense"},
    {ConvergeFunction::kCollect, "collect"},
    {ConvergeFunction::kCollectAlarm, "collect_alarm"},
    {ConvergeFunction::kRelevance, "relevance"},
    {ConvergeFunction::kTrigger, "trigger"},
}};

constexpr Table<ActionStatus, 19> kActionStatuses{{
    {ActionStatus::kReceived, "received"},
    {ActionStatus::kWaiting, "waiting"},
    {ActionStatus::kConverging, "converging"},
    {ActionStatus::kSleep, "sleep"},
    {ActionStatus::kConverged, "converged"},
    {ActionStatus::kRunning, "running"},
    {ActionStatus::kSuccess, "success"},
    {ActionStatus::kPartialSuccess, "partial_success"},
    {ActionStatus::kFailure, "failure"},
    {ActionStatus::kPartialFailure, "partial_failure"},
    {ActionStatus::kSkipped, "skipped"},
    {ActionStatus::kForNotice, "for_notice"},
    {ActionStatus::kForReference, "for_reference"},
    {ActionStatus::kShield, "shield"},
    {ActionStatus::kRetrying, "retrying"},
    {ActionStatus::kAuthorized, "authorized"},
    {ActionStatus::kUnauthorized, "unauthorized"},
    {ActionStatus::kChecking, "checking"},
    {ActionStatus::kBlocked, "blocked"},
}};

constexpr Table<Outcome, 5> kOutcomes{{
    {Outcome::kExecute, "execute"},
    {Outcome::kSkip, "skip"},
    {Outcome::kSleep, "sleep"},
    {Outcome::kApproval, "approval"},
    {Outcome::kShield, "shield"},
}};

template <typename E, size_t N>
std::string_view Name(const Table<E, N>& table, E v) {
  for (const auto& [e, name] : table) {
    if (e == v) return name;
  }
  return "unknown";
}

template <typename E, size_t N>
absl::StatusOr<E> Parse(const Table<E, N>& table, std::string_view s,
                        std::string_view what) {
  for (const auto& [e, name] : table) {
    if (name == s) return e;
  }
  std::vector<absl::string_view> names;
  for (const auto& entry : table) names.push_back(internal::AV(entry.second));
  return absl::InvalidArgumentError(
      internal::StrCat("unknown ", what, " \"", s, "\" (expected one of ",
                       absl::StrJoin(names, ", "), ")"));
}

}  // namespace

std::string_view ToString(ConvergeType v) { return Name(kConvergeTypes, v); }
std::string_view ToString(ConvergeStatus v) {
  return Name(kConvergeStatuses, v);
}
std::string_view ToString(ConvergeFunction v) { return Name(kFunctions, v); }
std::string_view ToString(ActionStatus v) { return Name(kActionStatuses, v); }
std::string_view ToString(Outcome v) { return Name(kOutcomes, v); }

absl::StatusOr<ConvergeType> ParseConvergeType(std::string_view s) {
  return Parse(kConvergeTypes, s, "converge type");
}
absl::StatusOr<ConvergeStatus> ParseConvergeStatus(std::string_view s) {
  return Parse(kConvergeStatuses, s, "converge status");
}
absl::StatusOr<ConvergeFunction> ParseConvergeFunction(std::string_view s) {
  return Parse(kFunctions, s, "converge function");
}
absl::StatusOr<ActionStatus> ParseActionStatus(std::string_view s) {
  return Parse(kActionStatuses, s, "action status");
}
absl::StatusOr<Outcome> ParseOutcome(std::string_view s) {
  return Parse(kOutcomes, s, "outcome");
}

ActionStatus StatusForOutcome(Outcome o) {
  switch (o) {
    case Outcome::kExecute:
      return ActionStatus::kConverged;
    case Outcome::kSkip:
      return ActionStatus::kSkipped;
    case Outcome::kSleep:
      return ActionStatus::kSleep;
    case Outcome::kApproval:
      return ActionStatus::kWaiting;
    case Outcome::kShield:
      return ActionStatus::kShield;
  }
  return ActionStatus::kConverged;
}

bool IsProceedStatus(ActionStatus s) {
  switch (s) {
    case ActionStatus::kReceived:
    case ActionStatus::kWaiting:
    case ActionStatus::kConverging:
    case ActionStatus::kSleep:
    case ActionStatus::kConverged:
    case ActionStatus::kRunning:
      return true;
    default:
      return false;
  }
}

bool IsEndStatus(ActionStatus s) {
  switch (s) {
    case ActionStatus::kSuccess:
    case ActionStatus::kPartialSuccess:
    case ActionStatus::kFailure:
    case ActionStatus::kPartialFailure:
    case ActionStatus::kSkipped:
    case ActionStatus::kShield:
    case ActionStatus::kBlocked:
      return true;
    default:
      return false;
  }
}

}  // namespace converge
