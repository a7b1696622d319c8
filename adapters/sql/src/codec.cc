#include "codec.h"

#include <boost/json.hpp>
#include <limits>
#include <utility>

#include "converge/json/json.h"

namespace converge::sql {
namespace {

using internal::AV;
using internal::StrCat;

boost::json::parse_options LenientJson() {
  boost::json::parse_options o;
  o.allow_invalid_utf8 = true;
  o.max_depth = 64;
  return o;
}

boost::json::value ToJson(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      return nullptr;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int();
    case Value::Kind::kDouble:
      return v.as_double();
    case Value::Kind::kString:
      return boost::json::string(v.as_string().data(), v.as_string().size());
    case Value::Kind::kList: {
      boost::json::array a;
      for (const Value& item : v.as_list()) a.push_back(ToJson(item));
      return a;
    }
  }
  return nullptr;
}

Value FromJson(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return Value();
    case boost::json::kind::bool_:
      return Value(v.get_bool());
    case boost::json::kind::int64:
      return Value(v.get_int64());
    case boost::json::kind::uint64:
      return Value(static_cast<double>(v.get_uint64()));
    case boost::json::kind::double_:
      return Value(v.get_double());
    case boost::json::kind::string:
      return Value(std::string(v.get_string().data(), v.get_string().size()));
    case boost::json::kind::array: {
      Value::List list;
      for (const boost::json::value& item : v.get_array()) {
        list.push_back(FromJson(item));
      }
      return Value(std::move(list));
    }
    case boost::json::kind::object:
      break;
  }
  return Value(boost::json::serialize(v));
}

}  // namespace

std::string AlertsJson(const std::vector<std::string>& alerts) {
  if (alerts.empty()) return "[]";
  boost::json::array a;
  a.reserve(alerts.size());
  for (const std::string& s : alerts) {
    a.emplace_back(boost::json::string_view(s.data(), s.size()));
  }
  return boost::json::serialize(a);
}

absl::StatusOr<std::vector<std::string>> ParseAlerts(std::string_view text) {
  std::vector<std::string> out;
  if (text == "[]" || text.empty()) return out;
  boost::json::error_code ec;
  boost::json::value v =
      boost::json::parse(boost::json::string_view(text.data(), text.size()), ec,
                         {}, LenientJson());
  if (ec || !v.is_array()) {
    return absl::DataLossError(StrCat("alerts is not a JSON array: ", text));
  }
  for (const boost::json::value& item : v.get_array()) {
    if (item.is_string()) {
      out.emplace_back(item.get_string().data(), item.get_string().size());
    } else {
      // Upstream may hold numeric alert ids.
      out.push_back(boost::json::serialize(item));
    }
  }
  return out;
}

// converge_config as upstream stores it: the effective config with the
// computed converged_condition map inside.
absl::StatusOr<std::string> ConfigJson(std::string_view store,
                                       const ConvergeInstance& inst) {
  std::string text = json::ConvergeConfigToJson(inst.converge_config);
  // It must read back: refuse now rather than fail every later read.
  if (absl::StatusOr<ConvergeConfig> back =
          json::ParseConvergeConfig(text, "converge_instance.converge_config");
      !back.ok()) {
    return absl::InvalidArgumentError(
        StrCat(store, ": the instance's converge_config cannot be stored: ",
               back.status().message()));
  }
  if (inst.converged_condition.empty()) return text;
  boost::json::object cc;
  for (const auto& [key, values] : inst.converged_condition) {
    boost::json::array a;
    for (const Value& v : values) a.push_back(ToJson(v));
    cc[boost::json::string_view(key.data(), key.size())] = std::move(a);
  }
  // text is a JSON object: "{...}".
  text.pop_back();
  if (text.size() > 1) text += ',';
  text += "\"converged_condition\":";
  text += boost::json::serialize(cc);
  text += '}';
  return text;
}

absl::Status ParseConfigColumn(std::string_view text, ConvergeInstance* inst) {
  inst->converged_condition.clear();
  std::string config_text;
  if (text.find("\"converged_condition\"") != std::string_view::npos) {
    // Take converged_condition out (its values may be any bytes) and give
    // the rest to the strict config parser.
    boost::json::error_code ec;
    boost::json::value v =
        boost::json::parse(boost::json::string_view(text.data(), text.size()),
                           ec, {}, LenientJson());
    if (ec || !v.is_object()) {
      return absl::DataLossError("converge_config is not a JSON object");
    }
    boost::json::object& obj = v.get_object();
    if (const boost::json::value* cc = obj.if_contains("converged_condition");
        cc != nullptr && !cc->is_null()) {
      if (!cc->is_object()) {
        return absl::DataLossError(
            "converge_config.converged_condition is not an object");
      }
      for (const auto& entry : cc->get_object()) {
        std::vector<Value>& values = inst->converged_condition[std::string(
            entry.key().data(), entry.key().size())];
        if (entry.value().is_array()) {
          for (const boost::json::value& item : entry.value().get_array()) {
            values.push_back(FromJson(item));
          }
        } else {
          values.push_back(FromJson(entry.value()));
        }
      }
    }
    obj.erase("converged_condition");
    config_text = boost::json::serialize(obj);
    text = config_text;
  }
  absl::StatusOr<ConvergeConfig> config =
      json::ParseConvergeConfig(text, "converge_instance.converge_config");
  if (!config.ok()) return absl::DataLossError(config.status().message());
  inst->converge_config = std::move(*config);
  return absl::OkStatus();
}

int64_t Nanos(absl::Time t) {
  if (t == absl::InfinitePast()) return std::numeric_limits<int64_t>::min();
  if (t == absl::InfiniteFuture()) return std::numeric_limits<int64_t>::max();
  // ToUnixNanos saturates outside the int64 range.
  return absl::ToUnixNanos(t);
}

absl::Time FromNanos(int64_t nanos) {
  if (nanos == std::numeric_limits<int64_t>::min()) return absl::InfinitePast();
  if (nanos == std::numeric_limits<int64_t>::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromUnixNanos(nanos);
}

std::string DateTime(absl::Time t, int digits) {
  if (t == absl::InfiniteFuture()) {
    return digits == 6 ? "9999-12-31 23:59:59.999999"
                       : "9999-12-31 23:59:59.999999999";
  }
  if (t == absl::InfinitePast()) {
    // MySQL's DATETIME starts at year 1000.
    return digits == 6 ? "1000-01-01 00:00:00.000000"
                       : "0000-01-01 00:00:00.000000000";
  }
  return absl::FormatTime(
      digits == 6 ? "%Y-%m-%d %H:%M:%E6S" : "%Y-%m-%d %H:%M:%E9S", t,
      absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseDateTime(std::string_view text) {
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%d %H:%M:%E*S", AV(text), absl::UTCTimeZone(), &t,
                       &err)) {
    return absl::DataLossError(StrCat("bad datetime \"", text, "\": ", err));
  }
  return t;
}

bool IsUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += len;
  }
  return true;
}

absl::Status CheckNotNewer(std::string_view prefix, int found, int supported,
                           std::string_view written_by) {
  if (found > supported) {
    return absl::FailedPreconditionError(
        StrCat(prefix, ": schema version ", found,
               " is newer than this library's schema version ", supported, " (",
               written_by, "); refusing to open it"));
  }
  return absl::OkStatus();
}

}  // namespace converge::sql
