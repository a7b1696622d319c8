#include "events.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "converge/errors.h"
#include "converge/json/json.h"
#include "json_util.h"

namespace converge::cli {
namespace {

namespace bj = boost::json;

std::optional<Event> Fail(InputError* error, std::string field,
                          std::string detail) {
  error->field = std::move(field);
  error->detail = std::move(detail);
  return std::nullopt;
}

std::string Expected(std::string_view what, const bj::value& v) {
  return absl::StrCat("expected ", Av(what), ", got ", Av(KindName(v)));
}

// Why `v` is not an integer, worded as converge::json words it.
std::string NotAnInteger(const bj::value& v) {
  if (v.is_uint64()) {
    return absl::StrCat("integer ", v.get_uint64(), " does not fit in int64");
  }
  if (v.is_double()) {
    return absl::StrCat("expected an integer, got float ", v.get_double());
  }
  return Expected("an integer", v);
}

// An integer: int64, a uint64 that fits, or an integral float (60.0), as
// the converge::json layer reads integers.
std::optional<int64_t> ToInt(const bj::value& v) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() >
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v.get_uint64());
  }
  if (v.is_double()) {
    // Below 2^53, where floats stop being exact integers.
    const double d = v.get_double();
    if (std::isfinite(d) && std::trunc(d) == d &&
        std::fabs(d) < 9007199254740992.0) {
      return static_cast<int64_t>(d);
    }
  }
  return std::nullopt;
}

// "time": integer or fractional Unix seconds, kept to the microsecond (as
// converge::json::ParseAction reads an action's time).
std::optional<absl::Time> ToTime(const bj::value& v, std::string* detail) {
  if (v.is_int64() || v.is_uint64()) {
    std::optional<int64_t> s = ToInt(v);
    if (!s.has_value()) {
      *detail = NotAnInteger(v);
      return std::nullopt;
    }
    return absl::FromUnixSeconds(*s);
  }
  if (v.is_double()) {
    const double d = v.get_double();
    constexpr double kMaxSeconds = 9.2e12;  // microseconds must fit int64
    if (!std::isfinite(d) || d > kMaxSeconds || d < -kMaxSeconds) {
      *detail = absl::StrCat("time ", d, " is out of range");
      return std::nullopt;
    }
    return absl::FromUnixMicros(std::llround(d * 1e6));
  }
  *detail = Expected("a number of seconds", v);
  return std::nullopt;
}

// Required key `key` of `o`; sets the error when missing.
const bj::value* Require(const bj::object& o, std::string_view key,
                         InputError* error) {
  const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
  if (v == nullptr) {
    error->field = std::string(key);
    error->detail = "missing required key";
  }
  return v;
}

bool ReadId(const bj::object& o, Event* event, InputError* error) {
  const bj::value* v = Require(o, "id", error);
  if (v == nullptr) return false;
  std::optional<int64_t> id = ToInt(*v);
  if (!id.has_value()) {
    Fail(error, "id", NotAnInteger(*v));
    return false;
  }
  if (*id <= 0) {
    Fail(error, "id", absl::StrCat("must be > 0, got ", *id));
    return false;
  }
  event->id = *id;
  return true;
}

bool ReadTime(const bj::object& o, Event* event, InputError* error) {
  const bj::value* v = Require(o, "time", error);
  if (v == nullptr) return false;
  std::string detail;
  std::optional<absl::Time> t = ToTime(*v, &detail);
  if (!t.has_value()) {
    Fail(error, "time", std::move(detail));
    return false;
  }
  event->time = *t;
  return true;
}

// converge::json reports "json: <path>: <detail>"; the events are parsed
// with the root path "$", so the field is what follows "$.".
InputError FromJsonStatus(const absl::Status& status) {
  std::string_view message(status.message().data(), status.message().size());
  if (absl::StartsWith(Av(message), "json: ")) message.remove_prefix(6);
  InputError error;
  if (std::optional<std::string> path = FieldPathOf(status);
      path.has_value() && absl::StartsWith(Av(message), Av(*path)) &&
      message.substr(path->size(), 2) == ": ") {
    // The path as the reader made it (a key may hold ": ").
    error.detail = std::string(message.substr(path->size() + 2));
    std::string_view field = *path;
    if (field == "$") field = "";
    if (absl::StartsWith(Av(field), "$.")) field.remove_prefix(2);
    error.field = std::string(field);
    return error;
  }
  if (absl::StartsWith(Av(message), "$: ")) {
    error.detail = std::string(message.substr(3));
    return error;
  }
  if (absl::StartsWith(Av(message), "$.")) message.remove_prefix(2);
  const size_t colon = message.find(": ");
  if (colon == std::string_view::npos) {
    error.detail = std::string(message);
    return error;
  }
  error.field = std::string(message.substr(0, colon));
  error.detail = std::string(message.substr(colon + 2));
  return error;
}

std::optional<Event> ParseAction(bj::object& o, std::string_view text,
                                 std::string_view default_config_json,
                                 InputError* error) {
  std::string with_default;
  if (!o.contains("converge_config") && !default_config_json.empty()) {
    boost::system::error_code ec;
    bj::value config = bj::parse(
        bj::string_view(default_config_json.data(), default_config_json.size()),
        ec);
    if (ec) {
      return Fail(error, "converge_config",
                  absl::StrCat("the default converge_config is not JSON: ",
                               ec.message()));
    }
    o["converge_config"] = std::move(config);
    with_default = bj::serialize(o);
    text = with_default;
  }
  absl::StatusOr<json::ActionEvent> parsed = json::ParseActionEvent(text, "$");
  if (!parsed.ok()) {
    *error = FromJsonStatus(parsed.status());
    return std::nullopt;
  }
  Event event;
  event.type = Event::Type::kAction;
  event.time = parsed->action.create_time;
  event.id = parsed->action.id;
  event.action = std::move(parsed->action);
  event.config = std::move(parsed->config);
  return event;
}

std::optional<Event> ParseObject(bj::object& o, std::string_view text,
                                 std::string_view default_config_json,
                                 InputError* error) {
  const bj::value* type = Require(o, "type", error);
  if (type == nullptr) return std::nullopt;
  if (!type->is_string()) {
    return Fail(error, "type", Expected("a string", *type));
  }
  const std::string_view name = ToStd(type->get_string());
  if (name == "action") {
    return ParseAction(o, text, default_config_json, error);
  }

  Event event;
  if (name == "status") {
    event.type = Event::Type::kStatus;
  } else if (name == "approval") {
    event.type = Event::Type::kApproval;
  } else if (name == "tick") {
    event.type = Event::Type::kTick;
  } else {
    return Fail(
        error, "type",
        absl::StrCat("unknown event type \"", absl::CHexEscape(Av(name)),
                     "\" (expected action, status, approval or tick)"));
  }
  if (event.type != Event::Type::kTick && !ReadId(o, &event, error)) {
    return std::nullopt;
  }
  if (!ReadTime(o, &event, error)) return std::nullopt;
  if (event.type == Event::Type::kStatus) {
    const bj::value* v = Require(o, "status", error);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) return Fail(error, "status", Expected("a string", *v));
    absl::StatusOr<ActionStatus> status =
        ParseActionStatus(ToStd(v->get_string()));
    if (!status.ok()) {
      return Fail(error, "status",
                  absl::StrCat("unknown action status \"",
                               absl::CHexEscape(Av(ToStd(v->get_string()))),
                               "\" (expected an upstream status such as "
                               "running, success, failure)"));
    }
    event.status = *status;
  } else if (event.type == Event::Type::kApproval) {
    const bj::value* v = Require(o, "approved", error);
    if (v == nullptr) return std::nullopt;
    if (!v->is_bool()) return Fail(error, "approved", Expected("a bool", *v));
    event.approved = v->get_bool();
  }
  return event;
}

}  // namespace

std::string InputError::ToString() const {
  if (field.empty()) return detail;
  return absl::StrCat("field \"", field, "\": ", detail);
}

bool IsSkippedLine(std::string_view line) {
  const size_t first = line.find_first_not_of(" \t\r");
  return first == std::string_view::npos || line[first] == '#';
}

std::optional<Event> ParseEvent(std::string_view text,
                                std::string_view default_config_json,
                                InputError* error) {
  try {
    if (text.size() > json::kMaxInputBytes) {
      return Fail(error, "",
                  absl::StrCat("line of ", text.size(), " bytes exceeds ",
                               json::kMaxInputBytes, " bytes"));
    }
    if (std::optional<json::OversizedInteger> big =
            json::FindOversizedInteger(text)) {
      return Fail(error, big->path,
                  absl::StrCat("integer ", Av(big->text),
                               " is out of the 64-bit range"));
    }
    bj::monotonic_resource resource;
    bj::parse_options options;
    options.max_depth = json::kMaxDepth;
    bj::parser parser(bj::storage_ptr(), options);
    parser.reset(&resource);
    boost::system::error_code ec;
    const size_t consumed = parser.write(text.data(), text.size(), ec);
    if (ec) {
      return Fail(error, "",
                  absl::StrCat("malformed JSON at column ", consumed + 1, ": ",
                               ec.message()));
    }
    bj::value doc = parser.release();
    if (!doc.is_object()) {
      return Fail(error, "", Expected("a JSON object", doc));
    }
    std::optional<Event> event =
        ParseObject(doc.get_object(), text, default_config_json, error);
    // The virtual clock counts nanoseconds in an int64 (about +-292 years
    // around 1970); leave room for the tasks due after the last event.
    constexpr int64_t kMaxSeconds = 9'000'000'000;
    if (event.has_value() &&
        (event->time > absl::FromUnixSeconds(kMaxSeconds) ||
         event->time < absl::FromUnixSeconds(-kMaxSeconds))) {
      return Fail(error, "time",
                  absl::StrCat("time ", absl::ToUnixSeconds(event->time),
                               " is out of range (times are Unix seconds, at "
                               "most 9000000000 from 1970 either way)"));
    }
    return event;
  } catch (const std::exception& e) {
    return Fail(error, "", absl::StrCat("cannot read the event: ", e.what()));
  }
}

std::optional<InputError> CheckEventTime(absl::Time time, absl::Time previous) {
  if (time < previous) {
    return InputError{
        "time",
        absl::StrCat(TimeToJson(time),
                     " is before the time of the previous event, ",
                     TimeToJson(previous), " (times must not decrease)")};
  }
  if (time - previous > kMaxTimeJump) {
    return InputError{
        "time",
        absl::StrCat(TimeToJson(time),
                     " is more than 366 days after the "
                     "previous event's time, ",
                     TimeToJson(previous),
                     " (the replay would run the periodic jobs, such as the "
                     "sweep, for every minute between)")};
  }
  return std::nullopt;
}

std::optional<InputError> InputErrorFromStatus(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) return std::nullopt;
  std::string_view message(status.message().data(), status.message().size());
  // The path as the check made it (a key may hold ": "), else the text
  // before the first ": ".
  size_t colon = message.find(": ");
  if (std::optional<std::string> path = FieldPathOf(status);
      path.has_value() && absl::StartsWith(Av(message), Av(*path)) &&
      message.substr(path->size(), 2) == ": ") {
    colon = path->size();
  }
  if (colon == std::string_view::npos) {
    return InputError{"", std::string(message)};
  }
  std::string_view field = message.substr(0, colon);
  std::string detail(message.substr(colon + 2));
  if (absl::StartsWith(Av(field), "action.")) {
    field.remove_prefix(7);
    if (field == "create_time") field = "time";
  } else if (!absl::StartsWith(Av(field), "converge_config")) {
    return InputError{"", std::string(message)};
  }
  return InputError{std::string(field), std::move(detail)};
}

std::string TimeToJson(absl::Time t) {
  const int64_t micros = absl::ToUnixMicros(t);
  // |INT64_MIN| does not fit: such times are rejected on input anyway.
  const bool negative = micros < 0;
  const uint64_t magnitude = negative ? static_cast<uint64_t>(-(micros + 1)) + 1
                                      : static_cast<uint64_t>(micros);
  std::string out = negative ? "-" : "";
  absl::StrAppend(&out, magnitude / 1000000);
  uint64_t fraction = magnitude % 1000000;
  if (fraction != 0) {
    std::string digits = absl::StrCat(fraction);
    digits.insert(0, 6 - digits.size(), '0');
    digits.erase(digits.find_last_not_of('0') + 1);
    absl::StrAppend(&out, ".", digits);
  }
  return out;
}

std::string DecisionLine(const Decision& d) {
  return absl::StrCat(
      "{\"type\":\"decision\",\"time\":", TimeToJson(d.decided_at),
      ",\"action_id\":", d.action_id, ",\"outcome\":\"",
      Av(ToString(d.outcome)), "\",\"converge_id\":",
      d.converge_id.has_value() ? absl::StrCat(*d.converge_id) : "null",
      ",\"primary\":", d.primary ? "true" : "false", "}");
}

std::string InstanceLine(const InstanceEvent& e) {
  return absl::StrCat("{\"type\":\"instance\",\"time\":", TimeToJson(e.time),
                      ",\"event\":\"", Av(ToString(e.kind)),
                      "\",\"converge_id\":", e.converge_id,
                      ",\"converge_type\":\"", Av(ToString(e.converge_type)),
                      "\",\"func\":\"", Av(ToString(e.converge_func)), "\"}");
}

std::string SummaryLine(const Summary& s) {
  std::vector<int64_t> ids = s.action_ids;
  std::sort(ids.begin(), ids.end());
  return absl::StrCat("{\"type\":\"summary\",\"time\":", TimeToJson(s.time),
                      ",\"converge_id\":", s.converge_id,
                      ",\"converge_type\":\"", Av(ToString(s.converge_type)),
                      "\",\"action_ids\":[", absl::StrJoin(ids, ","), "]}");
}

}  // namespace converge::cli
