#include "alertmanager.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "converge/json/json.h"
#include "json_util.h"

namespace converge::service {
namespace {

namespace bj = boost::json;
using cli::Av;
using cli::InputError;
using cli::KindName;
using cli::ToStd;

constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
constexpr uint64_t kFnvPrime = 1099511628211ULL;

uint64_t FnvAdd(uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}
uint64_t FnvAddByte(uint64_t h, unsigned char c) {
  h ^= c;
  h *= kFnvPrime;
  return h;
}

bool Fail(InputError* error, std::string field, std::string detail) {
  error->field = std::move(field);
  error->detail = std::move(detail);
  return false;
}

bool ValidLabelName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Type errors fail the request (*error); an invalid label name makes the
// alert invalid (*invalid, the first such error), as Alertmanager's
// Alert.Validate does, and the name is skipped.
bool ReadLabels(const bj::value& v, const std::string& field, Labels* out,
                std::optional<InputError>* invalid, InputError* error) {
  if (!v.is_object()) {
    return Fail(error, field,
                absl::StrCat("expected an object, got ", Av(KindName(v))));
  }
  for (const auto& kv : v.get_object()) {
    const std::string_view name = ToStd(kv.key());
    if (!kv.value().is_string()) {
      return Fail(
          error, absl::StrCat(field, ".", Av(name)),
          absl::StrCat("expected a string, got ", Av(KindName(kv.value()))));
    }
    // As Alertmanager: empty labels are removed first, then the names of
    // the others are checked.
    const std::string_view value = ToStd(kv.value().get_string());
    if (value.empty()) continue;
    if (!ValidLabelName(name)) {
      if (!invalid->has_value()) {
        *invalid =
            InputError{absl::StrCat(field, ".", Av(name)),
                       "invalid label name (expected [a-zA-Z_][a-zA-Z0-9_]*)"};
      }
      continue;
    }
    out->emplace_back(std::string(name), std::string(value));
  }
  std::sort(out->begin(), out->end());
  return true;
}

// An RFC 3339 time; Go's zero time ("0001-01-01T00:00:00Z"), and the Unix
// epoch, are "not set"; any other time before 1970 makes the alert invalid
// (*invalid). What is not an RFC 3339 time fails the request (*error).
bool ReadTime(const bj::object& o, std::string_view key,
              const std::string& path, std::optional<absl::Time>* out,
              std::optional<InputError>* invalid, InputError* error) {
  const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) return true;
  const std::string field = absl::StrCat(path, ".", Av(key));
  if (!v->is_string()) {
    return Fail(
        error, field,
        absl::StrCat("expected an RFC 3339 string, got ", Av(KindName(*v))));
  }
  const std::string_view text = ToStd(v->get_string());
  if (text.empty()) return true;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, Av(text), &t, &err)) {
    return Fail(error, field,
                absl::StrCat("expected an RFC 3339 time, got \"", Av(text),
                             "\" (", err, ")"));
  }
  // absl also reads "infinite-future" and "infinite-past", and years far
  // beyond RFC 3339's (and Go's) four digits: not times Alertmanager
  // reads, so the request is refused.
  static const absl::Time kYear10000 = absl::FromCivil(
      absl::CivilSecond(10000, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast() ||
      t >= kYear10000) {
    return Fail(
        error, field,
        absl::StrCat("expected an RFC 3339 time, got \"", Av(text), "\""));
  }
  // The action id hashes the time's Unix nanoseconds, which must not
  // saturate (two such alerts would get one id): a valid time that this
  // alert cannot have.
  if (t > absl::FromUnixNanos(std::numeric_limits<int64_t>::max())) {
    if (!invalid->has_value()) {
      *invalid = InputError{
          field,
          absl::StrCat("expected a time up to 2262, got \"", Av(text), "\"")};
    }
    return true;
  }
  static const absl::Time kGoZero =
      absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0), absl::UTCTimeZone());
  if (t == kGoZero || t == absl::UnixEpoch()) return true;  // not set
  if (t < absl::UnixEpoch()) {
    if (!invalid->has_value()) {
      *invalid = InputError{
          field, absl::StrCat("expected a time after 1970 (or Go's zero time "
                              "for none), got \"",
                              Av(text), "\"")};
    }
    return true;
  }
  *out = t;
  return true;
}

bool ReadAlert(const bj::value& v, const std::string& path, bool webhook,
               Alert* alert, InputError* error) {
  if (!v.is_object()) {
    return Fail(error, path,
                absl::StrCat("expected an object, got ", Av(KindName(v))));
  }
  const bj::object& o = v.get_object();
  const bj::value* labels = o.if_contains("labels");
  if (labels == nullptr) {
    return Fail(error, absl::StrCat(path, ".labels"), "missing required key");
  }
  std::optional<InputError>& invalid = alert->invalid;
  if (!ReadLabels(*labels, absl::StrCat(path, ".labels"), &alert->labels,
                  &invalid, error)) {
    return false;
  }
  if (alert->labels.empty() && !invalid.has_value()) {
    invalid =
        InputError{absl::StrCat(path, ".labels"),
                   "at least one label with a non-empty value is required"};
  }
  if (const bj::value* a = o.if_contains("annotations");
      a != nullptr && !a->is_null()) {
    // As Alertmanager: string values (its schema), valid names (its
    // Alert.Validate). Annotations are not used otherwise.
    const std::string field = absl::StrCat(path, ".annotations");
    if (!a->is_object()) {
      return Fail(error, field,
                  absl::StrCat("expected an object, got ", Av(KindName(*a))));
    }
    for (const auto& kv : a->get_object()) {
      const std::string_view name = ToStd(kv.key());
      if (!kv.value().is_string()) {
        return Fail(
            error, absl::StrCat(field, ".", Av(name)),
            absl::StrCat("expected a string, got ", Av(KindName(kv.value()))));
      }
      if (!ValidLabelName(name) && !invalid.has_value()) {
        invalid = InputError{
            absl::StrCat(field, ".", Av(name)),
            "invalid annotation name (expected [a-zA-Z_][a-zA-Z0-9_]*)"};
      }
    }
  }
  if (!ReadTime(o, "startsAt", path, &alert->starts_at, &invalid, error) ||
      !ReadTime(o, "endsAt", path, &alert->ends_at, &invalid, error)) {
    return false;
  }
  // As Alertmanager: an alert without a start starts at its end, if it
  // has one (its id then tells its occurrences apart).
  if (!alert->starts_at && alert->ends_at) alert->starts_at = alert->ends_at;
  if (alert->starts_at && alert->ends_at &&
      *alert->ends_at < *alert->starts_at && !invalid.has_value()) {
    invalid = InputError{absl::StrCat(path, ".endsAt"),
                         "end time must not be before start time"};
  }
  if (webhook) {
    if (const bj::value* s = o.if_contains("status"); s != nullptr) {
      if (!s->is_string()) {
        return Fail(error, absl::StrCat(path, ".status"),
                    absl::StrCat("expected a string, got ", Av(KindName(*s))));
      }
      alert->status = std::string(ToStd(s->get_string()));
      if (alert->status != "firing" && alert->status != "resolved") {
        return Fail(error, absl::StrCat(path, ".status"),
                    absl::StrCat("expected \"firing\" or \"resolved\", got \"",
                                 alert->status, "\""));
      }
    }
    if (const bj::value* f = o.if_contains("fingerprint");
        f != nullptr && f->is_string()) {
      alert->fingerprint = std::string(ToStd(f->get_string()));
    }
  }
  return true;
}

std::optional<bj::value> ParseJson(std::string_view body, InputError* error) {
  bj::parse_options options;
  options.max_depth = json::kMaxDepth;
  boost::system::error_code ec;
  bj::value doc =
      bj::parse(bj::string_view(body.data(), body.size()), ec, {}, options);
  if (ec) {
    Fail(error, "", absl::StrCat("malformed JSON: ", ec.message()));
    return std::nullopt;
  }
  return doc;
}

std::optional<std::vector<Alert>> ParseAlertArray(const bj::value& v,
                                                  std::string_view prefix,
                                                  bool webhook,
                                                  InputError* error) {
  if (!v.is_array()) {
    Fail(error, std::string(prefix),
         absl::StrCat("expected an array of alerts, got ", Av(KindName(v))));
    return std::nullopt;
  }
  std::vector<Alert> alerts;
  alerts.reserve(v.get_array().size());
  size_t i = 0;
  for (const bj::value& item : v.get_array()) {
    Alert alert;
    if (!ReadAlert(item, absl::StrCat(Av(prefix), "[", i, "]"), webhook, &alert,
                   error)) {
      return std::nullopt;
    }
    if (webhook && alert.invalid.has_value()) {
      // Alertmanager sent it, so it passed Alertmanager's checks: the
      // sender is not Alertmanager, or is broken. Nothing is taken.
      *error = *std::move(alert.invalid);
      return std::nullopt;
    }
    alerts.push_back(std::move(alert));
    ++i;
  }
  return alerts;
}

// A label's integer value, else `fallback`.
int64_t IntLabel(const Labels& labels, std::string_view name,
                 int64_t fallback) {
  for (const auto& [k, v] : labels) {
    int64_t n = 0;
    if (k == name && absl::SimpleAtoi(v, &n)) return n;
  }
  return fallback;
}

const std::string* FindLabel(const Labels& labels, std::string_view name) {
  for (const auto& kv : labels) {
    if (kv.first == name) return &kv.second;
  }
  return nullptr;
}

}  // namespace

uint64_t Fingerprint(const Labels& labels) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(labels.size());
  for (const auto& kv : labels) sorted.push_back(&kv);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  uint64_t h = kFnvOffset;
  for (const auto* kv : sorted) {
    h = FnvAdd(h, kv->first);
    h = FnvAddByte(h, 0xff);
    h = FnvAdd(h, kv->second);
    h = FnvAddByte(h, 0xff);
  }
  return h;
}

std::string FingerprintHex(uint64_t fingerprint) {
  return absl::StrFormat("%016x", fingerprint);
}

std::optional<std::vector<Alert>> ParseAlertsV2(std::string_view body,
                                                InputError* error) {
  try {
    std::optional<bj::value> doc = ParseJson(body, error);
    if (!doc) return std::nullopt;
    return ParseAlertArray(*doc, "", false, error);
  } catch (const std::exception& e) {
    Fail(error, "", absl::StrCat("cannot read the alerts: ", e.what()));
    return std::nullopt;
  }
}

std::optional<std::vector<Alert>> ParseAlertmanagerWebhook(
    std::string_view body, InputError* error) {
  try {
    std::optional<bj::value> doc = ParseJson(body, error);
    if (!doc) return std::nullopt;
    if (!doc->is_object()) {
      Fail(error, "",
           absl::StrCat("expected an Alertmanager webhook object, got ",
                        Av(KindName(*doc))));
      return std::nullopt;
    }
    const bj::value* alerts = doc->get_object().if_contains("alerts");
    if (alerts == nullptr) {
      Fail(error, "alerts", "missing required key");
      return std::nullopt;
    }
    return ParseAlertArray(*alerts, "alerts", true, error);
  } catch (const std::exception& e) {
    Fail(error, "", absl::StrCat("cannot read the webhook: ", e.what()));
    return std::nullopt;
  }
}

bool IsResolved(const Alert& alert, absl::Time now) {
  if (!alert.status.empty()) return alert.status == "resolved";
  return alert.ends_at.has_value() && *alert.ends_at <= now;
}

Action AlertToAction(const Alert& alert, absl::Time now,
                     std::string_view plugin_type) {
  const uint64_t fp = Fingerprint(alert.labels);
  const bool resolved = IsResolved(alert, now);
  Action a;
  uint64_t id = kFnvOffset;
  for (int i = 0; i < 8; ++i) id = FnvAddByte(id, (fp >> (8 * i)) & 0xff);
  const int64_t starts =
      alert.starts_at ? absl::ToUnixNanos(*alert.starts_at) : 0;
  for (int i = 0; i < 8; ++i) {
    id = FnvAddByte(id, (static_cast<uint64_t>(starts) >> (8 * i)) & 0xff);
  }
  id = FnvAddByte(id, resolved ? 1 : 0);
  a.id = static_cast<int64_t>(id & 0x7fffffffffffffffULL);
  if (a.id == 0) a.id = 1;
  a.create_time = now;
  const std::string hex = FingerprintHex(fp);
  a.alerts.push_back(hex);
  a.signal = resolved ? "recovered" : "abnormal";
  a.alert_level = 3;
  if (const std::string* sev = FindLabel(alert.labels, "severity")) {
    const std::string s = absl::AsciiStrToLower(*sev);
    if (s == "critical" || s == "fatal" || s == "page" || s == "error") {
      a.alert_level = 1;
    } else if (s == "warning" || s == "warn") {
      a.alert_level = 2;
    }
  }
  const int64_t level = IntLabel(alert.labels, "alert_level", 0);
  if (level >= 1 && level <= 3) a.alert_level = static_cast<int>(level);
  a.bk_biz_id = IntLabel(alert.labels, "bk_biz_id", 0);
  a.strategy_id = IntLabel(alert.labels, "strategy_id", 0);
  a.plugin_type = std::string(plugin_type);
  Value::List dims;
  dims.reserve(alert.labels.size());
  for (const auto& [k, v] : alert.labels) {
    a.context.emplace(absl::StrCat("labels.", k), Value(v));
    dims.emplace_back(absl::StrCat(k, "=", v));
  }
  a.context.emplace("dimensions", Value(std::move(dims)));
  if (const std::string* name = FindLabel(alert.labels, "alertname")) {
    a.context.emplace("alert_name", Value(*name));
  }
  a.context.emplace("fingerprint", Value(hex));
  return a;
}

}  // namespace converge::service
