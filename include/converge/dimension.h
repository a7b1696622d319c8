// Dimension D, the window, and the effective config of one evaluation.
//
// D is computed exactly as upstream (section 3.3 of converge-semantics.md):
//   "!sha1#" + sha1("#" + func + for each condition key k in sorted order,
//                   for each value v: "|" + k + ":" + render(v))
// with one fix: a list value of four or more items renders as
// "first,<md5(joined)[:5]>.<n-2>,last" instead of crashing.
//
// Thread safety: pure functions.

#ifndef CONVERGE_DIMENSION_H_
#define CONVERGE_DIMENSION_H_

#include <map>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/config.h"
#include "converge/model.h"

namespace converge {

using ConvergedCondition =
    std::map<std::string, std::vector<Value>, std::less<>>;

struct DimensionResult {
  std::string dimension;       // "!sha1#" + 40 hex
  std::string canonical_text;  // the text that was hashed
  // Condition values after "self" replacement; a list entry is replaced by
  // its first item (null for an empty list). Keys of the merged condition.
  ConvergedCondition converged_condition;
};

// Computes D over `effective.condition` overlaid with `original.condition`
// (original entries win, as upstream), resolving "self" from `context` (a
// missing key renders as "").
DimensionResult ComputeDimension(const ConvergeConfig& effective,
                                 const ConvergeConfig& original,
                                 const Context& context);

// The same with the context given as a lookup (null = key absent). With
// `details` false only `dimension` is filled (the hot path of a decision
// that joins an open instance needs nothing else).
using ContextLookup = absl::FunctionRef<const Value*(std::string_view)>;
DimensionResult ComputeDimension(const ConvergeConfig& effective,
                                 const ConvergeConfig& original,
                                 ContextLookup lookup, bool details = true);

// Upstream's render of one condition value into the canonical text.
std::string RenderDimensionValue(const Value& v);

// The effective form of a config for one object, after the profile's
// overrides, with its legality and window.
struct EffectiveConfig {
  ConvergeConfig config;  // after overrides
  bool legal = false;     // false: the object executes, no instance, no lock
  std::string illegal_reason;
  int64_t window_seconds = 0;  // W: max_timedelta if > 0 else timedelta
                               // (floored to minutes with minute_windows)
};

// Applies `options` to `original` for an object of `type`. `plugin_type` and
// `context` pick the notice override; `is_parent` makes it illegal.
EffectiveConfig MakeEffective(const ConvergeConfig& original,
                              const RuleOptions& options, ConvergeType type,
                              std::string_view plugin_type, bool is_parent,
                              const Context& context);

// The three steps of MakeEffective, for callers that avoid copying configs.
// ApplyProfile rewrites `config` with the profile's overrides and returns
// true if it changed anything (always false for the plain profile).
bool ApplyProfile(ConvergeConfig* config, const RuleOptions& options,
                  ConvergeType type, std::string_view plugin_type,
                  bool has_notice_info);
// Empty if legal, else why the config is illegal (upstream's order).
std::string IllegalReason(const ConvergeConfig& config, bool is_parent);
// W in seconds: max_timedelta if > 0 else timedelta, floored to minutes with
// minute_windows or the bkmonitor profile.
int64_t WindowSeconds(const ConvergeConfig& config, const RuleOptions& options);

// Lowercase hex digests (used for D and for list rendering).
std::string Sha1Hex(std::string_view data);
std::string Md5Hex(std::string_view data);

}  // namespace converge

#endif  // CONVERGE_DIMENSION_H_
