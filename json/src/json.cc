// Boost.JSON based implementation of converge/json/json.h.
//
// Boost types never leave this file. Boost.JSON reports parse errors through
// error codes (used here) and may throw std::bad_alloc or system_error from a
// few accessors; every public function catches at the boundary.

#include "converge/json/json.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "converge/errors.h"
#include "converge/types.h"

namespace converge::json {

std::optional<OversizedInteger> FindOversizedInteger(std::string_view text) {
  // A scan of the tokens that keeps the path to the current value: an
  // object's last key, an array's index.
  struct Level {
    bool object;
    std::string_view key;  // as written, escapes kept
    size_t index = 0;
    bool want_key = true;
  };
  std::vector<Level> levels;
  auto path = [&] {
    std::string out;
    for (const Level& l : levels) {
      if (l.object) {
        if (!out.empty()) out += '.';
        out.append(l.key);
      } else {
        absl::StrAppend(&out, "[", l.index, "]");
      }
    }
    return out;
  };
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const char c = text[i];
    if (c == '"') {
      const size_t start = ++i;
      for (; i < n && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      if (!levels.empty() && levels.back().object && levels.back().want_key) {
        levels.back().key = text.substr(start, std::min(i, n) - start);
        levels.back().want_key = false;
      }
      ++i;
      continue;
    }
    if (c == '{' || c == '[') {
      // Deeper than the parsers take: theirs to refuse, without this scan
      // holding a level per byte.
      if (levels.size() > static_cast<size_t>(kMaxDepth)) return std::nullopt;
      levels.push_back(Level{c == '{', {}, 0, true});
      ++i;
      continue;
    }
    if (c == '}' || c == ']') {
      if (!levels.empty()) levels.pop_back();
      ++i;
      continue;
    }
    if (c == ',') {
      if (!levels.empty()) {
        if (levels.back().object) {
          levels.back().want_key = true;
        } else {
          ++levels.back().index;
        }
      }
      ++i;
      continue;
    }
    if (c != '-' && (c < '0' || c > '9')) {
      ++i;
      continue;
    }
    const size_t start = i;
    const bool negative = c == '-';
    if (negative) ++i;
    const size_t digits = i;
    while (i < n && text[i] >= '0' && text[i] <= '9') ++i;
    const std::string_view magnitude = text.substr(digits, i - digits);
    bool integer = true;
    while (i < n && (text[i] == '.' || text[i] == 'e' || text[i] == 'E' ||
                     text[i] == '+' || text[i] == '-' ||
                     (text[i] >= '0' && text[i] <= '9'))) {
      integer = false;
      ++i;
    }
    if (!integer) continue;
    // Past 2^64 - 1 (20 digits), or below -2^63 (19 digits): equal lengths
    // compare as numbers. (JSON has no leading zeros; malformed text is
    // the parser's to refuse.)
    const std::string_view limit =
        negative ? std::string_view("9223372036854775808")
                 : std::string_view("18446744073709551615");
    if (magnitude.size() > limit.size() ||
        (magnitude.size() == limit.size() && magnitude > limit)) {
      return OversizedInteger{text.substr(start, i - start), start, path()};
    }
  }
  return std::nullopt;
}

namespace {

namespace bj = boost::json;

std::string_view ToStd(bj::string_view s) { return {s.data(), s.size()}; }

// Debian's abseil is built with its own absl::string_view (not an alias of
// std::string_view), so StrCat and friends need an explicit conversion.
absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

// A field path, built on the stack while descending and rendered only when an
// error names it (so that parsing a large context allocates no path strings).
class Path {
 public:
  explicit Path(std::string_view root) : root_(root) {}

  Path Key(std::string_view key) const { return Path(this, key, 0, false); }
  Path Index(std::size_t index) const { return Path(this, {}, index, true); }

  std::string Str() const {
    if (parent_ == nullptr) return std::string(root_);
    std::string s = parent_->Str();
    if (is_index_) {
      absl::StrAppend(&s, "[", index_, "]");
    } else {
      absl::StrAppend(&s, ".", Av(root_));
    }
    return s;
  }

 private:
  Path(const Path* parent, std::string_view key, std::size_t index,
       bool is_index)
      : root_(key), parent_(parent), index_(index), is_index_(is_index) {}

  std::string_view root_;  // the root path, or this level's key
  const Path* parent_ = nullptr;
  std::size_t index_ = 0;
  bool is_index_ = false;
};

absl::Status Error(const Path& path, std::string_view detail) {
  return FieldError(path.Str(), detail, "json: ");
}

std::string_view KindName(const bj::value& v) {
  switch (v.kind()) {
    case bj::kind::null:
      return "null";
    case bj::kind::bool_:
      return "bool";
    case bj::kind::int64:
    case bj::kind::uint64:
      return "integer";
    case bj::kind::double_:
      return "float";
    case bj::kind::string:
      return "string";
    case bj::kind::array:
      return "array";
    case bj::kind::object:
      return "object";
  }
  return "unknown";
}

absl::Status TypeError(const Path& path, std::string_view expected,
                       const bj::value& v) {
  return Error(
      path, absl::StrCat("expected ", Av(expected), ", got ", Av(KindName(v))));
}

absl::Status MissingKey(const Path& path) {
  return Error(path, "missing required key");
}

// ---------------------------------------------------------------------------
// Reading text.

absl::StatusOr<bj::value> ParseText(std::string_view text, const Path& path,
                                    bj::storage_ptr sp) {
  if (text.size() > kMaxInputBytes) {
    return Error(path, absl::StrCat("input of ", text.size(), " bytes exceeds ",
                                    kMaxInputBytes, " bytes"));
  }
  if (std::optional<OversizedInteger> big = FindOversizedInteger(text)) {
    std::string at = path.Str();
    if (!big->path.empty()) {
      absl::StrAppend(&at, big->path.front() == '[' ? "" : ".", big->path);
    }
    return FieldError(
        at,
        absl::StrCat("integer ", Av(big->text), " is out of the 64-bit range"),
        "json: ");
  }
  bj::parse_options options;
  options.max_depth = kMaxDepth;
  bj::parser parser(bj::storage_ptr(), options);
  parser.reset(std::move(sp));
  boost::system::error_code ec;
  std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (ec == bj::error::too_deep) {
    return Error(path, absl::StrCat("nesting deeper than ", kMaxDepth,
                                    " levels at offset ", consumed));
  }
  if (ec) {
    return Error(path, absl::StrCat("malformed JSON at offset ", consumed, ": ",
                                    ec.message()));
  }
  return parser.release();
}

// ---------------------------------------------------------------------------
// Writing text. Boost's serializer writes 1.0 as "1E0"; this writer uses the
// shortest round-trip form with a ".0" kept on integral floats ("1.0", as
// Python's json.dumps writes it), so that a float stays a float.

void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {
    out->append("null");  // JSON has no NaN or infinity
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), d);
  std::string_view s(buf, ec == std::errc() ? end - buf : 0);
  out->append(s);
  if (s.find_first_of(".eE") == std::string_view::npos) out->append(".0");
}

void AppendString(std::string_view s, std::string* out) {
  out->append(bj::serialize(bj::string_view(s.data(), s.size())));
}

void Write(const bj::value& v, std::string* out) {
  switch (v.kind()) {
    case bj::kind::null:
      out->append("null");
      return;
    case bj::kind::bool_:
      out->append(v.get_bool() ? "true" : "false");
      return;
    case bj::kind::int64:
      absl::StrAppend(out, v.get_int64());
      return;
    case bj::kind::uint64:
      absl::StrAppend(out, v.get_uint64());
      return;
    case bj::kind::double_:
      AppendDouble(v.get_double(), out);
      return;
    case bj::kind::string:
      AppendString(ToStd(v.get_string()), out);
      return;
    case bj::kind::array: {
      out->push_back('[');
      bool first = true;
      for (const bj::value& item : v.get_array()) {
        if (!first) out->push_back(',');
        first = false;
        Write(item, out);
      }
      out->push_back(']');
      return;
    }
    case bj::kind::object: {
      out->push_back('{');
      bool first = true;
      for (const bj::key_value_pair& kv : v.get_object()) {
        if (!first) out->push_back(',');
        first = false;
        AppendString(ToStd(kv.key()), out);
        out->push_back(':');
        Write(kv.value(), out);
      }
      out->push_back('}');
      return;
    }
  }
}

std::string WriteToString(const bj::value& v) {
  std::string out;
  Write(v, &out);
  return out;
}

// ---------------------------------------------------------------------------
// Scalars.

constexpr double kTwoPow63 = 9223372036854775808.0;

absl::StatusOr<int64_t> ToInt(const bj::value& v, const Path& path) {
  switch (v.kind()) {
    case bj::kind::int64:
      return v.get_int64();
    case bj::kind::uint64:
      if (v.get_uint64() >
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(path, absl::StrCat("integer ", v.get_uint64(),
                                        " does not fit in int64"));
      }
      return static_cast<int64_t>(v.get_uint64());
    case bj::kind::double_: {
      // An integral float is taken as its integer up to 2^53, where floats
      // stop being exact: 9007199254740993.0 reads as ...992.
      constexpr double kTwoPow53 = 9007199254740992.0;
      double d = v.get_double();
      // 2^53 itself is where 2^53 + 1 lands too: not exact.
      if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < kTwoPow53) {
        return static_cast<int64_t>(d);
      }
      if (std::isfinite(d) && std::trunc(d) == d && d >= -kTwoPow63 &&
          d < kTwoPow63) {
        return Error(path, absl::StrCat("float ", d,
                                        " is beyond 2^53, where a float is "
                                        "not an exact integer: write it "
                                        "without a fraction or exponent"));
      }
      return Error(path, absl::StrCat("expected an integer, got float ", d));
    }
    default:
      return TypeError(path, "an integer", v);
  }
}

absl::StatusOr<bool> ToBool(const bj::value& v, const Path& path) {
  if (const bool* b = v.if_bool()) return *b;
  return TypeError(path, "a bool", v);
}

absl::StatusOr<std::string> GetString(const bj::value& v, const Path& path) {
  if (const bj::string* s = v.if_string()) return std::string(ToStd(*s));
  return TypeError(path, "a string", v);
}

// How a JSON object is treated when converting to a Value.
enum class ObjectMode {
  kReject,   // an error naming `what`
  kAsPairs,  // a list of "key=value" strings sorted by key (contexts)
};

absl::StatusOr<Value> ToValue(const bj::value& v, const Path& path,
                              ObjectMode mode, std::string_view what) {
  switch (v.kind()) {
    case bj::kind::null:
      return Value();
    case bj::kind::bool_:
      return Value(v.get_bool());
    case bj::kind::int64:
      return Value(v.get_int64());
    case bj::kind::uint64: {
      absl::StatusOr<int64_t> i = ToInt(v, path);
      if (!i.ok()) return i.status();
      return Value(*i);
    }
    case bj::kind::double_:
      // Boost.JSON reads an overflowing literal such as 1e400 as infinity,
      // which JSON cannot write back.
      if (!std::isfinite(v.get_double())) {
        return Error(path, "number out of range");
      }
      return Value(v.get_double());
    case bj::kind::string:
      return Value(ToStd(v.get_string()));
    case bj::kind::array: {
      const bj::array& array = v.get_array();
      Value::List list;
      list.reserve(array.size());
      for (std::size_t i = 0; i < array.size(); ++i) {
        absl::StatusOr<Value> item =
            ToValue(array[i], path.Index(i), mode, what);
        if (!item.ok()) return item.status();
        list.push_back(*std::move(item));
      }
      return Value(std::move(list));
    }
    case bj::kind::object: {
      if (mode == ObjectMode::kReject) return TypeError(path, what, v);
      std::vector<std::pair<std::string_view, std::string>> pairs;
      pairs.reserve(v.get_object().size());
      for (const bj::key_value_pair& kv : v.get_object()) {
        std::string_view key = ToStd(kv.key());
        absl::StatusOr<Value> item =
            ToValue(kv.value(), path.Key(key), mode, what);
        if (!item.ok()) return item.status();
        pairs.emplace_back(key, item->PyStr());
      }
      std::stable_sort(
          pairs.begin(), pairs.end(),
          [](const auto& a, const auto& b) { return a.first < b.first; });
      Value::List list;
      list.reserve(pairs.size());
      for (const auto& [key, text] : pairs) {
        list.emplace_back(absl::StrCat(Av(key), "=", text));
      }
      return Value(std::move(list));
    }
  }
  return Error(path, "unknown JSON kind");
}

bj::value FromValue(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      return nullptr;
    case Value::Kind::kBool:
      return v.as_bool();
    case Value::Kind::kInt:
      return v.as_int();
    case Value::Kind::kDouble:
      return v.as_double();  // the writer turns NaN/inf into null
    case Value::Kind::kString:
      return bj::string(v.as_string());
    case Value::Kind::kList: {
      bj::array array;
      array.reserve(v.as_list().size());
      for (const Value& item : v.as_list()) array.push_back(FromValue(item));
      return array;
    }
  }
  return nullptr;
}

absl::StatusOr<Context> ToContext(const bj::value& v, const Path& path) {
  Context context;
  if (v.is_null()) return context;
  const bj::object* object = v.if_object();
  if (object == nullptr) return TypeError(path, "an object", v);
  for (const bj::key_value_pair& kv : *object) {
    std::string_view key = ToStd(kv.key());
    absl::StatusOr<Value> value =
        ToValue(kv.value(), path.Key(key), ObjectMode::kAsPairs, "");
    if (!value.ok()) return value.status();
    context.insert_or_assign(std::string(key), *std::move(value));
  }
  return context;
}

// ---------------------------------------------------------------------------
// converge_config.

absl::Status ParseCondition(const bj::value& v, const Path& path,
                            std::vector<Condition>* out) {
  out->clear();
  if (v.is_null()) return absl::OkStatus();
  const bj::array* array = v.if_array();
  if (array == nullptr) return TypeError(path, "an array", v);
  out->reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    Path item_path = path.Index(i);
    const bj::object* item = (*array)[i].if_object();
    if (item == nullptr) return TypeError(item_path, "an object", (*array)[i]);
    Condition condition;

    Path dimension_path = item_path.Key("dimension");
    const bj::value* dimension = item->if_contains("dimension");
    if (dimension == nullptr) return MissingKey(dimension_path);
    absl::StatusOr<std::string> name = GetString(*dimension, dimension_path);
    if (!name.ok()) return name.status();
    if (name->empty()) return Error(dimension_path, "must not be empty");
    condition.dimension = *std::move(name);

    Path value_path = item_path.Key("value");
    const bj::value* value = item->if_contains("value");
    if (value == nullptr) return MissingKey(value_path);
    const bj::array* values = value->if_array();
    if (values == nullptr) return TypeError(value_path, "an array", *value);
    condition.value.reserve(values->size());
    for (std::size_t j = 0; j < values->size(); ++j) {
      absl::StatusOr<Value> literal =
          ToValue((*values)[j], value_path.Index(j), ObjectMode::kReject,
                  "a scalar or an array");
      if (!literal.ok()) return literal.status();
      condition.value.push_back(*std::move(literal));
    }
    out->push_back(std::move(condition));
  }
  return absl::OkStatus();
}

absl::Status ParseConfigObject(const bj::object& o, const Path& path,
                               ConvergeConfig* out) {
  *out = ConvergeConfig();
  // A key given as null is as if left out: the default, or "missing" where
  // the key is required (replay-format.md, section 1).
  auto field = [&o](std::string_view key) -> const bj::value* {
    const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
    return v != nullptr && v->is_null() ? nullptr : v;
  };

  if (const bj::value* v = field("is_enabled")) {
    absl::StatusOr<bool> b = ToBool(*v, path.Key("is_enabled"));
    if (!b.ok()) return b.status();
    out->is_enabled = *b;
  }

  {
    Path p = path.Key("converge_func");
    if (const bj::value* v = field("converge_func")) {
      absl::StatusOr<std::string> name = GetString(*v, p);
      if (!name.ok()) return name.status();
      absl::StatusOr<ConvergeFunction> func = ParseConvergeFunction(*name);
      if (!func.ok()) {
        return Error(p, absl::StrCat("unknown converge function \"",
                                     absl::CHexEscape(*name), "\""));
      }
      out->converge_func = *func;
    } else if (out->is_enabled) {
      return MissingKey(p);
    }
  }

  struct IntField {
    std::string_view key;
    int64_t* field;
    bool required_when_enabled;
  };
  for (const IntField& f :
       {IntField{"timedelta", &out->timedelta, true},
        IntField{"max_timedelta", &out->max_timedelta, false},
        IntField{"count", &out->count, true}}) {
    Path p = path.Key(f.key);
    const bj::value* v = field(f.key);
    if (v == nullptr) {
      if (f.required_when_enabled && out->is_enabled) return MissingKey(p);
      continue;
    }
    absl::StatusOr<int64_t> i = ToInt(*v, p);
    if (!i.ok()) return i.status();
    *f.field = *i;
  }

  if (const bj::value* v = o.if_contains("condition")) {
    absl::Status s = ParseCondition(*v, path.Key("condition"), &out->condition);
    if (!s.ok()) return s;
  }

  if (const bj::value* v = field("need_biz_converge")) {
    absl::StatusOr<bool> b = ToBool(*v, path.Key("need_biz_converge"));
    if (!b.ok()) return b.status();
    out->need_biz_converge = *b;
  }

  if (const bj::value* v = o.if_contains("sub_converge_config")) {
    Path p = path.Key("sub_converge_config");
    if (const bj::object* sub = v->if_object()) {
      if (!sub->empty()) {
        auto config = std::make_shared<ConvergeConfig>();
        absl::Status s = ParseConfigObject(*sub, p, config.get());
        if (!s.ok()) return s;
        out->sub_converge_config = std::move(config);
      }
    } else if (!v->is_null()) {
      return TypeError(p, "an object", *v);
    }
  }

  if (const bj::value* v = o.if_contains("description")) {
    if (!v->is_null()) {
      absl::StatusOr<std::string> s = GetString(*v, path.Key("description"));
      if (!s.ok()) return s.status();
      out->description = *std::move(s);
    }
  }

  if (const bj::value* v = o.if_contains("context")) {
    if (!v->is_null()) out->context = WriteToString(*v);
  }
  return absl::OkStatus();
}

bj::object ConfigToObject(const ConvergeConfig& config) {
  bj::object o;
  o["is_enabled"] = config.is_enabled;
  o["converge_func"] = bj::string(ToString(config.converge_func));
  o["timedelta"] = config.timedelta;
  o["max_timedelta"] = config.max_timedelta;
  o["count"] = config.count;
  bj::array conditions;
  conditions.reserve(config.condition.size());
  for (const Condition& c : config.condition) {
    bj::array values;
    values.reserve(c.value.size());
    for (const Value& v : c.value) values.push_back(FromValue(v));
    bj::object item;
    item["dimension"] = bj::string(c.dimension);
    item["value"] = std::move(values);
    conditions.push_back(std::move(item));
  }
  o["condition"] = std::move(conditions);
  o["need_biz_converge"] = config.need_biz_converge;
  if (config.sub_converge_config != nullptr) {
    o["sub_converge_config"] = ConfigToObject(*config.sub_converge_config);
  }
  if (!config.description.empty()) {
    o["description"] = bj::string(config.description);
  }
  if (!config.context.empty()) {
    // Embedded as JSON when it is JSON (it always is after a parse), else
    // kept as a string so that nothing is lost.
    boost::system::error_code ec;
    bj::parse_options options;
    options.max_depth = kMaxDepth;
    bj::value context =
        bj::parse(bj::string_view(config.context.data(), config.context.size()),
                  ec, bj::storage_ptr(), options);
    if (ec) {
      o["context"] = bj::string(config.context);
    } else {
      o["context"] = std::move(context);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------
// Actions.

absl::StatusOr<absl::Time> ToTime(const bj::value& v, const Path& path) {
  // Microseconds must fit int64 (about +-292,000 years), integers and
  // floats alike, so that ActionToJson can write the time back.
  constexpr int64_t kMaxSeconds = 9'200'000'000'000;
  switch (v.kind()) {
    case bj::kind::int64:
    case bj::kind::uint64: {
      absl::StatusOr<int64_t> seconds = ToInt(v, path);
      if (!seconds.ok()) return seconds.status();
      if (*seconds > kMaxSeconds || *seconds < -kMaxSeconds) {
        return Error(path, absl::StrCat("time ", *seconds, " is out of range"));
      }
      return absl::FromUnixSeconds(*seconds);
    }
    case bj::kind::double_: {
      double d = v.get_double();
      if (!std::isfinite(d) || d > kMaxSeconds || d < -kMaxSeconds) {
        return Error(path, absl::StrCat("time ", d, " is out of range"));
      }
      return absl::FromUnixMicros(std::llround(d * 1e6));
    }
    default:
      return TypeError(path, "a number of seconds", v);
  }
}

absl::StatusOr<int64_t> ToBizId(const bj::value& v, const Path& path) {
  if (const bj::string* s = v.if_string()) {
    // Digits, with an optional '-': not " 42" nor "+42", which SimpleAtoi
    // reads and upstream's Python int() would not all take alike.
    const std::string_view text = ToStd(*s);
    const std::string_view digits =
        text.empty() || text.front() != '-' ? text : text.substr(1);
    int64_t id = 0;
    if (digits.empty() ||
        digits.find_first_not_of("0123456789") != std::string_view::npos ||
        !absl::SimpleAtoi(Av(text), &id)) {
      return Error(
          path, absl::StrCat("expected an integer or a numeric string, got \"",
                             absl::CHexEscape(Av(ToStd(*s))), "\""));
    }
    return id;
  }
  if (v.is_number()) return ToInt(v, path);
  return TypeError(path, "an integer or a numeric string", v);
}

absl::StatusOr<std::vector<std::string>> ToAlerts(const bj::value& v,
                                                  const Path& path) {
  const bj::array* array = v.if_array();
  if (array == nullptr) return TypeError(path, "an array", v);
  std::vector<std::string> alerts;
  alerts.reserve(array->size());
  for (std::size_t i = 0; i < array->size(); ++i) {
    const bj::value& item = (*array)[i];
    if (const bj::string* s = item.if_string()) {
      if (s->empty()) return Error(path.Index(i), "empty alert id");
      alerts.emplace_back(ToStd(*s));
    } else if (item.is_int64() || item.is_uint64()) {
      absl::StatusOr<int64_t> id = ToInt(item, path.Index(i));
      if (!id.ok()) return id.status();
      alerts.push_back(absl::StrCat(*id));
    } else {
      return TypeError(path.Index(i), "a string or an integer", item);
    }
  }
  return alerts;
}

absl::Status ParseActionObject(const bj::object& o, const Path& path,
                               Action* out) {
  *out = Action();

  {
    Path p = path.Key("id");
    const bj::value* v = o.if_contains("id");
    if (v == nullptr) return MissingKey(p);
    absl::StatusOr<int64_t> id = ToInt(*v, p);
    if (!id.ok()) return id.status();
    if (*id <= 0) return Error(p, absl::StrCat("must be > 0, got ", *id));
    out->id = *id;
  }
  {
    Path p = path.Key("time");
    const bj::value* v = o.if_contains("time");
    if (v == nullptr) return MissingKey(p);
    absl::StatusOr<absl::Time> time = ToTime(*v, p);
    if (!time.ok()) return time.status();
    out->create_time = *time;
  }

  // Optional fields: absent or null keeps the Action default.
  auto get = [&o](std::string_view key) -> const bj::value* {
    const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
    return v == nullptr || v->is_null() ? nullptr : v;
  };

  if (const bj::value* v = get("bk_biz_id")) {
    absl::StatusOr<int64_t> id = ToBizId(*v, path.Key("bk_biz_id"));
    if (!id.ok()) return id.status();
    out->bk_biz_id = *id;
  }
  for (auto [key, field] :
       {std::pair<std::string_view, int64_t*>{"strategy_id", &out->strategy_id},
        {"action_config_id", &out->action_config_id},
        {"execute_timeout", &out->execute_timeout}}) {
    if (const bj::value* v = get(key)) {
      absl::StatusOr<int64_t> i = ToInt(*v, path.Key(key));
      if (!i.ok()) return i.status();
      *field = *i;
    }
  }
  if (const bj::value* v = get("alert_level")) {
    Path p = path.Key("alert_level");
    absl::StatusOr<int64_t> level = ToInt(*v, p);
    if (!level.ok()) return level.status();
    if (*level < std::numeric_limits<int>::min() ||
        *level > std::numeric_limits<int>::max()) {
      return Error(p, absl::StrCat("alert level ", *level, " is out of range"));
    }
    out->alert_level = static_cast<int>(*level);
  }
  for (auto [key, field] :
       {std::pair<std::string_view, std::string*>{"signal", &out->signal},
        {"plugin_type", &out->plugin_type}}) {
    if (const bj::value* v = get(key)) {
      absl::StatusOr<std::string> s = GetString(*v, path.Key(key));
      if (!s.ok()) return s.status();
      *field = *std::move(s);
    }
  }
  if (const bj::value* v = get("alerts")) {
    absl::StatusOr<std::vector<std::string>> alerts =
        ToAlerts(*v, path.Key("alerts"));
    if (!alerts.ok()) return alerts.status();
    out->alerts = *std::move(alerts);
  }
  for (auto [key, field] :
       {std::pair<std::string_view, bool*>{"is_parent", &out->is_parent},
        {"shielded", &out->shielded}}) {
    if (const bj::value* v = get(key)) {
      absl::StatusOr<bool> b = ToBool(*v, path.Key(key));
      if (!b.ok()) return b.status();
      *field = *b;
    }
  }
  if (const bj::value* v = get("context")) {
    absl::StatusOr<Context> context = ToContext(*v, path.Key("context"));
    if (!context.ok()) return context.status();
    out->context = *std::move(context);
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// The exception boundary.

template <typename F>
auto Guard(std::string_view path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("json: ", Av(path), ": out of memory"));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("json: ", Av(path), ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<ConvergeConfig> ParseConvergeConfig(std::string_view text,
                                                   std::string_view path) {
  return Guard(path, [&]() -> absl::StatusOr<ConvergeConfig> {
    Path root(path);
    bj::monotonic_resource resource;
    absl::StatusOr<bj::value> doc = ParseText(text, root, &resource);
    if (!doc.ok()) return doc.status();
    const bj::object* object = doc->if_object();
    if (object == nullptr) return TypeError(root, "an object", *doc);
    ConvergeConfig config;
    absl::Status s = ParseConfigObject(*object, root, &config);
    if (!s.ok()) return s;
    s = ValidateConfig(config, path);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("json: ", s.message()));
    }
    return config;
  });
}

std::string ConvergeConfigToJson(const ConvergeConfig& config) {
  return WriteToString(ConfigToObject(config));
}

absl::StatusOr<Value> ParseValue(std::string_view text, std::string_view path) {
  return Guard(path, [&]() -> absl::StatusOr<Value> {
    Path root(path);
    bj::monotonic_resource resource;
    absl::StatusOr<bj::value> doc = ParseText(text, root, &resource);
    if (!doc.ok()) return doc.status();
    return ToValue(*doc, root, ObjectMode::kReject, "a value");
  });
}

std::string ValueToJson(const Value& v) { return WriteToString(FromValue(v)); }

absl::StatusOr<Context> ParseContext(std::string_view text,
                                     std::string_view path) {
  return Guard(path, [&]() -> absl::StatusOr<Context> {
    Path root(path);
    bj::monotonic_resource resource;
    absl::StatusOr<bj::value> doc = ParseText(text, root, &resource);
    if (!doc.ok()) return doc.status();
    return ToContext(*doc, root);
  });
}

absl::StatusOr<Action> ParseAction(std::string_view text,
                                   std::string_view path) {
  return Guard(path, [&]() -> absl::StatusOr<Action> {
    Path root(path);
    bj::monotonic_resource resource;
    absl::StatusOr<bj::value> doc = ParseText(text, root, &resource);
    if (!doc.ok()) return doc.status();
    const bj::object* object = doc->if_object();
    if (object == nullptr) return TypeError(root, "an object", *doc);
    Action action;
    absl::Status s = ParseActionObject(*object, root, &action);
    if (!s.ok()) return s;
    return action;
  });
}

absl::StatusOr<ActionEvent> ParseActionEvent(std::string_view line,
                                             std::string_view path) {
  return Guard(path, [&]() -> absl::StatusOr<ActionEvent> {
    Path root(path);
    bj::monotonic_resource resource;
    absl::StatusOr<bj::value> doc = ParseText(line, root, &resource);
    if (!doc.ok()) return doc.status();
    const bj::object* object = doc->if_object();
    if (object == nullptr) return TypeError(root, "an object", *doc);

    {
      Path p = root.Key("type");
      const bj::value* v = object->if_contains("type");
      if (v == nullptr) return MissingKey(p);
      absl::StatusOr<std::string> type = GetString(*v, p);
      if (!type.ok()) return type.status();
      if (*type != "action") {
        return Error(p, absl::StrCat("expected \"action\", got \"",
                                     absl::CHexEscape(*type), "\""));
      }
    }

    ActionEvent event;
    absl::Status s = ParseActionObject(*object, root, &event.action);
    if (!s.ok()) return s;

    Path config_path = root.Key("converge_config");
    const bj::value* v = object->if_contains("converge_config");
    if (v == nullptr) return MissingKey(config_path);
    const bj::object* config = v->if_object();
    if (config == nullptr) return TypeError(config_path, "an object", *v);
    s = ParseConfigObject(*config, config_path, &event.config);
    if (!s.ok()) return s;
    s = ValidateConfig(event.config, config_path.Str());
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("json: ", s.message()));
    }
    return event;
  });
}

std::string ActionToJson(const Action& action) {
  bj::object o;
  o["id"] = action.id;
  int64_t micros = absl::ToUnixMicros(action.create_time);
  if (micros % 1000000 == 0) {
    o["time"] = micros / 1000000;
  } else {
    o["time"] = static_cast<double>(micros) / 1e6;
  }
  o["bk_biz_id"] = action.bk_biz_id;
  o["strategy_id"] = action.strategy_id;
  o["signal"] = bj::string(action.signal);
  o["alert_level"] = action.alert_level;
  o["plugin_type"] = bj::string(action.plugin_type);
  o["action_config_id"] = action.action_config_id;
  bj::array alerts;
  alerts.reserve(action.alerts.size());
  for (const std::string& a : action.alerts) alerts.emplace_back(bj::string(a));
  o["alerts"] = std::move(alerts);
  o["is_parent"] = action.is_parent;
  o["shielded"] = action.shielded;
  o["execute_timeout"] = action.execute_timeout;
  bj::object context;
  for (const auto& [key, value] : action.context) {
    context[bj::string_view(key.data(), key.size())] = FromValue(value);
  }
  o["context"] = std::move(context);
  return WriteToString(o);
}

}  // namespace converge::json
