// The upstream `converge_config` object as typed structs, its validation, and
// the effective (profile-adjusted) form the manager works with.
//
// JSON parsing lives in the converge::json target (converge/json/json.h); the
// core takes these structs. Thread safety: plain value types.

#ifndef CONVERGE_CONFIG_H_
#define CONVERGE_CONFIG_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "converge/types.h"
#include "converge/value.h"

namespace converge {

// One entry of `condition`: `{"dimension": "notice_info", "value": ["self"]}`.
// A value equal to the string "self" stands for the action's own context
// value of `dimension`; anything else is a literal.
struct Condition {
  std::string dimension;
  std::vector<Value> value;
};

// `converge_config` (and `sub_converge_config`, which has the same fields).
struct ConvergeConfig {
  // Missing or false: the config is illegal and actions simply execute.
  bool is_enabled = false;
  ConvergeFunction converge_func = ConvergeFunction::kSkipWhenExceed;
  // Window in seconds. <= 0 makes the config illegal (actions execute).
  int64_t timedelta = 0;
  // If > 0 it replaces timedelta as the window (seconds). 0 = not set.
  int64_t max_timedelta = 0;
  // Threshold: an instance is created once this many actions match.
  int64_t count = 1;
  std::vector<Condition> condition;
  // Upstream default true: run the second level (business summary) for
  // instances this config creates, when sub_converge_config is set.
  bool need_biz_converge = true;
  // Second-level config; null when absent or empty.
  std::shared_ptr<const ConvergeConfig> sub_converge_config;
  std::string description;  // internal; upstream sets it for shield texts
  std::string context;      // internal; stored as the instance's `content`
};

// Checks what the JSON layer cannot: negative timedelta, max_timedelta or
// count, empty dimension names, and the same for sub_converge_config.
// Returns kInvalidArgument whose message names the field path, for example
// "converge_config.sub_converge_config.count: must be >= 0, got -1".
absl::Status ValidateConfig(const ConvergeConfig& config,
                            std::string_view path = "converge_config");

// Which forced overrides apply (project-decisions.md, "The bkmonitor
// profile").
enum class Profile {
  // The config is used as given. Windows are second-granular.
  kPlain,
  // Upstream's forced defaults: notice actions get timedelta 120, count 1 and
  // condition notice_info (when the context has one); other actions with an
  // empty condition get action_info; the second level gets timedelta 120 and
  // count 3. Windows are floored to whole minutes.
  kBkmonitor,
};

// Options that shape how configs are applied.
struct RuleOptions {
  Profile profile = Profile::kPlain;
  // Floor windows to whole minutes as upstream does (W = timedelta / 60).
  // Forced on by the bkmonitor profile. Default false: second-granular.
  bool minute_windows = false;
  // Second-level overrides used by the bkmonitor profile
  // (MULTI_STRATEGY_COLLECT_WINDOW / _THRESHOLD upstream).
  int64_t multi_strategy_collect_window = 120;
  int64_t multi_strategy_collect_threshold = 3;
};

}  // namespace converge

#endif  // CONVERGE_CONFIG_H_
