// The replay format of the converge command line (docs/replay-format.md):
// input events, and the output lines written for what the manager does.
//
// Input: one JSON object a line, each an action, a status report, an
// approval, or a tick. Output: one compact JSON object a line, a decision,
// an instance event or a summary, with its keys in a fixed order.
//
// Thread safety: free functions without shared state.

#ifndef CONVERGE_TOOLS_CONVERGE_EVENTS_H_
#define CONVERGE_TOOLS_CONVERGE_EVENTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "converge/config.h"
#include "converge/manager.h"
#include "converge/model.h"
#include "converge/types.h"

namespace converge::cli {

// One input event.
struct Event {
  enum class Type { kAction, kStatus, kApproval, kTick };
  Type type = Type::kTick;
  absl::Time time;  // "time": Unix seconds, to the microsecond
  int64_t id = 0;   // the action (action, status and approval events)
  // kAction: the action (its create_time is `time`) and its config.
  Action action;
  ConvergeConfig config;
  ActionStatus status = ActionStatus::kReceived;  // kStatus
  bool approved = false;                          // kApproval
};

// What is wrong with an input: the path of the offending field inside the
// event object ("converge_config.count", "context.host", "alerts[2]"; empty
// when the text is not a JSON object at all), and what is wrong with it.
struct InputError {
  std::string field;
  std::string detail;

  // `field "F": detail`, or the detail alone.
  std::string ToString() const;
};

// True for lines the replay skips: empty, blank, or a comment (the first
// non-blank character is '#').
bool IsSkippedLine(std::string_view line);

// Parses one event. `default_config_json`, when not empty, is the
// converge_config (a JSON object) of action events that have none (the
// per-case default of `converge test`); otherwise an action event without
// converge_config is an error. Returns nullopt and sets *error on bad input.
std::optional<Event> ParseEvent(std::string_view text,
                                std::string_view default_config_json,
                                InputError* error);

// Checks an event's time against the previous event's: times must not
// decrease, and may not jump ahead by more than kMaxTimeJump (the replay
// runs every periodic job, such as the sweep each minute, across a gap, so
// a huge gap would take very long).
// Returns the error for field "time", or nullopt.
inline constexpr absl::Duration kMaxTimeJump = absl::Hours(24 * 366);
std::optional<InputError> CheckEventTime(absl::Time time, absl::Time previous);

// An InputError for a kInvalidArgument the manager or the processor
// returned for an action ("action.context.host: ..."), with the field named
// as in the event ("context.host"); nullopt for any other status.
std::optional<InputError> InputErrorFromStatus(const absl::Status& status);

// A time as the replay format writes it: whole seconds as an integer
// ("1700000000"), otherwise seconds with up to six decimals, trailing
// zeros removed ("1700000002.947").
std::string TimeToJson(absl::Time t);

// The output lines (no trailing newline), keys in this order:
//   {"type":"decision","time":T,"action_id":N,"outcome":O,
//    "converge_id":ID|null,"primary":B}
//   {"type":"instance","time":T,"event":E,"converge_id":ID,
//    "converge_type":C,"func":F}
//   {"type":"summary","time":T,"converge_id":ID,"converge_type":C,
//    "action_ids":[...ascending]}
// A decision's time is when it was taken (decided_at): a replayed decision
// repeats the time of the original.
std::string DecisionLine(const Decision& decision);
std::string InstanceLine(const InstanceEvent& event);
std::string SummaryLine(const Summary& summary);

}  // namespace converge::cli

#endif  // CONVERGE_TOOLS_CONVERGE_EVENTS_H_
