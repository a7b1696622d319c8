// The converge data model: actions, converge instances, relations, decisions.
//
// Field names follow upstream's tables (converge_instance, converge_relation)
// and action_instance (section 1 of converge-semantics.md). Thread safety:
// plain value types.

#ifndef CONVERGE_MODEL_H_
#define CONVERGE_MODEL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "converge/config.h"
#include "converge/types.h"
#include "converge/value.h"

namespace converge {

// The per-action context map: what "self" in a condition resolves to. Keys
// are upstream's converge dimensions (alert_info, notice_info, ...) or any key
// of the caller's own.
using Context = std::map<std::string, Value, std::less<>>;

// One action the host is about to run (upstream ActionInstance).
struct Action {
  int64_t id = 0;           // unique, > 0
  absl::Time create_time;   // the score and the anchor of the window
  int64_t bk_biz_id = 0;    // business
  int64_t strategy_id = 0;  // 0 = no strategy
  std::string signal;       // abnormal, recovered, closed, ...
  int alert_level = 3;      // 1 fatal, 2 warning, 3 remind
  std::string plugin_type;  // notice, webhook, job, ...
  int64_t action_config_id = 0;
  std::vector<std::string> alerts;  // alert ids
  bool is_parent = false;  // parent ("virtual main") notices never converge
  bool shielded = false;   // the host's shield check matched
  // Execute timeout of the action's config, seconds; bounds how long a
  // `sleep` outcome may last (together with the window). 0 = none.
  int64_t execute_timeout = 0;
  // Context values. Composite keys (alert_info, notice_info, action_info, ...)
  // may be left out: BuildContext derives them (converge/context.h).
  Context context;
};

// converge_instance.
struct ConvergeInstance {
  int64_t id = 0;
  ConvergeType converge_type = ConvergeType::kAction;
  ConvergeFunction converge_func = ConvergeFunction::kSkipWhenExceed;
  int64_t bk_biz_id = 0;
  // D while open; "D fixed at <unix_ts> #<id>" once ended.
  std::string dimension;
  std::string description;
  std::string content = "{}";
  absl::Time create_time;
  std::optional<absl::Time> end_time;  // nullopt = open
  bool is_visible = true;  // false = absorbed by a second-level instance
  // Snapshot of the effective config the instance was created with, and
  // converged_condition (the condition values after "self" replacement).
  ConvergeConfig converge_config;
  std::map<std::string, std::vector<Value>, std::less<>> converged_condition;
  // Window length in seconds the instance was created with (W).
  int64_t window_seconds = 0;

  bool is_open() const { return !end_time.has_value(); }
};

// converge_relation.
struct ConvergeRelation {
  int64_t id = 0;
  int64_t converge_id = 0;
  int64_t related_id = 0;
  ConvergeType related_type = ConvergeType::kAction;
  bool is_primary = false;
  ConvergeStatus converge_status = ConvergeStatus::kSkipped;
  std::vector<std::string> alerts;  // filled for an action's own relation
};

// The decision taken for an action. Stored, so that a redelivered action gets
// the same decision again (exactly one decision per action).
struct Decision {
  int64_t action_id = 0;
  Outcome outcome = Outcome::kExecute;
  std::optional<int64_t> converge_id;  // the instance it joined or created
  bool primary = false;                // this action created the instance
  absl::Time decided_at;
  // True when the decision came from the store (a redelivery), not from a
  // new evaluation.
  bool replayed = false;
  // Short reason: "created", "joined", "below threshold", "shielded",
  // "sleep timed out", "the instance it waited on has ended", or why the
  // config is illegal. The instance's description explains a grouping.
  std::string reason;
};

// What the stores keep per decided action: the decision plus the status the
// host reports back (ReportStatus), which the result-aware functions read.
struct ActionRecord {
  int64_t id = 0;
  absl::Time create_time;
  int64_t strategy_id = 0;  // routes the dimension lease (hash tag)
  int64_t execute_timeout = 0;
  ActionStatus status = ActionStatus::kReceived;
  absl::Time status_time;  // when status was last set
  Decision decision;
};

// Members of an instance's executed set, with their current status.
struct MemberStatus {
  int64_t action_id = 0;
  ActionStatus status = ActionStatus::kReceived;
  absl::Time status_time;
};

}  // namespace converge

#endif  // CONVERGE_MODEL_H_
