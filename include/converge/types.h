// Enumerations of the converge model, with their upstream string values.
//
// Every enum has ToString (the exact upstream spelling, as stored in the
// converge tables and written in replay files) and a Parse function that
// returns kInvalidArgument naming the unknown value.

#ifndef CONVERGE_TYPES_H_
#define CONVERGE_TYPES_H_

#include <string_view>

#include "absl/status/statusor.h"

namespace converge {

// converge_instance.converge_type / converge_relation.related_type.
enum class ConvergeType {
  kAction,    // "action": first level, groups actions
  kConverge,  // "converge": second level (business summary), groups instances
};

// converge_relation.converge_status.
enum class ConvergeStatus {
  kExecuted,  // "executed": the member counts as executed or allowed
  kSkipped,   // "skipped": suppressed, told to wait, or sent to approval
};

// The converge functions (section 4 of the spec). All of them, including the
// ones upstream hides from its API (approve_when_failed, relevance, trigger).
enum class ConvergeFunction {
  kSkipWhenSuccess,
  kApproveWhenFailed,
  kSkipWhenProceed,
  kWaitWhenProceed,
  kSkipWhenExceed,
  kDefense,
  kCollect,
  kCollectAlarm,
  kRelevance,
  kTrigger,
};

// Upstream ActionStatus values. The host reports the status of actions it
// runs through ConvergeManager::ReportStatus; the result-aware functions read
// them.
enum class ActionStatus {
  kReceived,
  kWaiting,
  kConverging,
  kSleep,
  kConverged,
  kRunning,
  kSuccess,
  kPartialSuccess,
  kFailure,
  kPartialFailure,
  kSkipped,
  kForNotice,
  kForReference,
  kShield,
  kRetrying,
  kAuthorized,
  kUnauthorized,
  kChecking,
  kBlocked,
};

// What the caller should do with an action.
enum class Outcome {
  kExecute,   // "execute": run it (upstream status converged)
  kSkip,      // "skip": do not run it; a summary may report it (skipped)
  kSleep,     // "sleep": hold it; it is re-evaluated later (sleep)
  kApproval,  // "approval": run it only after approval (waiting)
  kShield,    // "shield": the caller said it is shielded (shield)
};

std::string_view ToString(ConvergeType v);
std::string_view ToString(ConvergeStatus v);
std::string_view ToString(ConvergeFunction v);
std::string_view ToString(ActionStatus v);
std::string_view ToString(Outcome v);

absl::StatusOr<ConvergeType> ParseConvergeType(std::string_view s);
absl::StatusOr<ConvergeStatus> ParseConvergeStatus(std::string_view s);
absl::StatusOr<ConvergeFunction> ParseConvergeFunction(std::string_view s);
absl::StatusOr<ActionStatus> ParseActionStatus(std::string_view s);
absl::StatusOr<Outcome> ParseOutcome(std::string_view s);

// The upstream status an outcome stores on the action: converged, skipped,
// sleep, waiting, shield.
ActionStatus StatusForOutcome(Outcome o);

// Upstream status groups.
bool IsProceedStatus(ActionStatus s);  // received waiting converging sleep
                                       // converged running
bool IsEndStatus(ActionStatus s);      // success partial_success failure
                                       // partial_failure skipped shield blocked

}  // namespace converge

#endif  // CONVERGE_TYPES_H_
