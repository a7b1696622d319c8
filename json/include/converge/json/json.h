// JSON reading and writing for converge (the converge::json target): the
// upstream `converge_config` object, context values, and replay actions.
//
// The core takes typed structs (converge/config.h, converge/model.h) and knows
// no JSON; this target is the bridge. It is built on Boost.JSON, but no Boost
// type appears in this header, so users need not include or link Boost
// themselves.
//
// Errors: every parse function returns kInvalidArgument (never throws) with a
// message that starts with "json: " and names the field path, for example
//   json: converge_config.sub_converge_config.count: expected an integer,
//     got string
//   json: converge_config.condition[1].dimension: missing required key
//   json: converge_config: malformed JSON at offset 17: syntax error
// The path of the top-level object is the `path` argument. Texts longer than
// kMaxInputBytes, or nested deeper than kMaxDepth, are rejected.
//
// Thread safety: all functions are free functions without shared state; they
// may be called concurrently.

#ifndef CONVERGE_JSON_JSON_H_
#define CONVERGE_JSON_JSON_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "converge/config.h"
#include "converge/model.h"
#include "converge/value.h"

namespace converge::json {

// Inputs longer than this many bytes are rejected with kInvalidArgument
// ("... exceeds 1048576 bytes").
inline constexpr std::size_t kMaxInputBytes = 1 << 20;

// Arrays and objects nested deeper than this are rejected with
// kInvalidArgument.
inline constexpr int kMaxDepth = 32;

// The first integer literal of JSON text `text` (a number without fraction
// or exponent, outside strings) that is below -2^63 or above 2^64 - 1,
// which Boost.JSON would read as an inexact float: its text, byte offset
// and path ("context.n", "condition[1].value[0]"; keys as written). Empty
// if there is none. Every parse function here refuses such text, naming
// the path ("json: action.id: integer 18446744073709551616 is out of the
// 64-bit range"); integers from 2^63 to 2^64 - 1 are refused where they
// are read as int64.
struct OversizedInteger {
  std::string_view text;  // points into the text searched: keep it alive
  std::size_t offset = 0;
  std::string path;
};
std::optional<OversizedInteger> FindOversizedInteger(std::string_view text);

// Parses upstream's `converge_config` JSON object.
//
// Keys (unknown keys are ignored; an empty object `{}` is a valid, disabled
// config):
//   is_enabled         bool, default false.
//   converge_func      string, one of the names ParseConvergeFunction
//                      accepts.
//   timedelta          integer seconds.
//   max_timedelta      integer seconds, or null (= 0, not set).
//   count              integer, default 1.
//   condition          array of {"dimension": non-empty string,
//                      "value": array of scalars or arrays}, or null (= []).
//   need_biz_converge  bool, default true.
//   sub_converge_config  object with the same keys (parsed recursively with
//                      path "<path>.sub_converge_config"); null or {} mean
//                      none.
//   description        string, or null (= "").
//   context            any JSON; stored serialized (compact) in
//                      ConvergeConfig::context. null means "" (not set).
// When is_enabled is true, converge_func, timedelta and count are required.
// The other keys are checked for type whenever present, enabled or not
// (upstream's sub_converge_config usually carries no is_enabled).
// "Integer" accepts an integral float (60.0) but not 60.5 or "60".
//
// After the JSON checks the result goes through converge::ValidateConfig
// (negative numbers, ...); its error is returned with "json: " prepended.
absl::StatusOr<ConvergeConfig> ParseConvergeConfig(
    std::string_view text, std::string_view path = "converge_config");

// Writes `config` as a compact JSON object with every field;
// ParseConvergeConfig of the result gives back an equal config.
// sub_converge_config, description and context are written only when set.
// `context` is embedded as JSON when it holds valid JSON, otherwise as a JSON
// string.
std::string ConvergeConfigToJson(const ConvergeConfig& config);

// Parses one value: null, bool, integer (must fit int64), float, string, or
// an array of values. A JSON object is an error here ("expected a value, got
// object"); see ParseContext for how objects inside a context are mapped.
absl::StatusOr<Value> ParseValue(std::string_view text,
                                 std::string_view path = "value");

// Writes `v` as JSON. Floats are written so that they parse back to the same
// double (always as floats, e.g. 1.0 -> "1E0"); NaN and infinities, which
// JSON cannot hold, are written as null.
std::string ValueToJson(const Value& v);

// Parses a context map: a JSON object whose values become Values as in
// ParseValue, except that a JSON object (as a context value, or nested inside
// one) is also accepted and becomes a Value list of "key=value" strings,
// sorted by key, each value rendered with Value::PyStr(). For example
// {"dimensions": {"ip": "1.1.1.1", "bk_cloud_id": 0}} gives
// dimensions = ["bk_cloud_id=0", "ip=1.1.1.1"]. null gives an empty map.
absl::StatusOr<Context> ParseContext(std::string_view text,
                                     std::string_view path = "context");

// Parses an action object with the replay field names:
//   {"id": N, "time": T, "bk_biz_id": B, "strategy_id": S,
//    "signal": "abnormal", "alert_level": 1, "plugin_type": "notice",
//    "action_config_id": C, "alerts": ["a1"], "is_parent": false,
//    "shielded": false, "execute_timeout": 0, "context": {...}}
// Required: `id` (integer > 0) and `time` (Unix seconds, int or fractional,
// at most 9.2e12 from 1970 either way so that its microseconds fit int64,
// kept to the microsecond; it becomes Action::create_time).
// `bk_biz_id` may be an integer or a numeric string (upstream stores it as a
// string). `alerts` items may be strings or integers (integers become their
// decimal text). `context` is read as by ParseContext. Every other field is
// optional with the Action defaults; null also means "the default". Unknown
// keys are ignored, so a whole replay line (with "type", "converge_config",
// ...) parses too: callers that need several parts of one line call the
// parse functions they need on the same text.
absl::StatusOr<Action> ParseAction(std::string_view text,
                                   std::string_view path = "action");

// One replay input line: an action and the converge_config it is submitted
// with.
struct ActionEvent {
  Action action;
  ConvergeConfig config;
};

// Parses one replay input line (one JSON object, as written by
// scripts/gen_storm.py):
//   {"type": "action", "id": N, "time": T, ...the ParseAction fields...,
//    "converge_config": {...}}
// `type` is required and must be the string "action". The action fields are
// read as ParseAction reads them (errors name "<path>.id", ...).
// `converge_config` is required, must be an object, and is read with the
// rules of ParseConvergeConfig with path "<path>.converge_config" (including
// ValidateConfig). The text is parsed once.
absl::StatusOr<ActionEvent> ParseActionEvent(std::string_view line,
                                             std::string_view path = "line");

// Writes `action` as a compact JSON object with the field names ParseAction
// reads ("time" as an integer when it is whole seconds, else a float). Values
// of the context are written as ValueToJson writes them, so context objects
// that ParseContext turned into "key=value" lists come back as those lists.
std::string ActionToJson(const Action& action);

}  // namespace converge::json

#endif  // CONVERGE_JSON_JSON_H_
