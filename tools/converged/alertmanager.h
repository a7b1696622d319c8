// Alertmanager compatibility: the alert fingerprint, Alertmanager's API v2
// alerts payload (POST /api/v2/alerts, what Prometheus sends) and its
// webhook payload (what an Alertmanager receiver sends), and the mapping of
// an alert to a converge action (docs/http-api.md, "Alertmanager
// compatibility").
//
// Thread safety: free functions without shared state.

#ifndef CONVERGE_TOOLS_CONVERGED_ALERTMANAGER_H_
#define CONVERGE_TOOLS_CONVERGED_ALERTMANAGER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "converge/model.h"
#include "events.h"

namespace converge::service {

using Labels = std::vector<std::pair<std::string, std::string>>;

// Alertmanager's fingerprint of a label set (prometheus/common
// model.LabelSet.Fingerprint): FNV-1a 64 over the labels sorted by name,
// each written as name, 0xff, value, 0xff. `labels` need not be sorted.
uint64_t Fingerprint(const Labels& labels);
// As Alertmanager prints it: 16 lowercase hex digits.
std::string FingerprintHex(uint64_t fingerprint);

struct Alert {
  Labels labels;  // sorted by name, empty values removed
  std::optional<absl::Time> starts_at;
  std::optional<absl::Time> ends_at;
  // Webhook payloads only: "firing" or "resolved", and the fingerprint the
  // sender computed ("" when absent).
  std::string status;
  std::string fingerprint;
  // Set when the alert breaks one of Alertmanager's per-alert rules (its
  // Alert.Validate: a label name, no label, endsAt before startsAt; ours:
  // a time before 1970). POST /api/v2/alerts takes the request's other
  // alerts, as Alertmanager does; field paths as "[i].labels.x".
  std::optional<cli::InputError> invalid;
};

// Parses the body of POST /api/v2/alerts: a JSON array of
// {"labels":{...} (required, at least one non-empty value), "annotations",
// "startsAt", "endsAt", "generatorURL"}; times are RFC 3339. Label names
// must match [a-zA-Z_][a-zA-Z0-9_]*. nullopt and *error (field "[i].labels")
// when the body is not such an array (malformed JSON, a wrong type, a
// time that is not RFC 3339): the whole request is refused, none of it
// applied. An alert that only breaks a per-alert rule comes back with
// `invalid` set instead.
std::optional<std::vector<Alert>> ParseAlertsV2(std::string_view body,
                                                cli::InputError* error);

// Parses an Alertmanager webhook body ({"version":"4","status",
// "receiver","groupKey","alerts":[{"status","labels","annotations",
// "startsAt","endsAt","fingerprint",...}],...}). Any bad alert refuses the
// whole body (nullopt and *error): Alertmanager checked them before it
// sent them.
std::optional<std::vector<Alert>> ParseAlertmanagerWebhook(
    std::string_view body, cli::InputError* error);

// True when the alert is resolved at `now`: status "resolved", or an
// endsAt at or before now.
bool IsResolved(const Alert& alert, absl::Time now);

// The action of one alert (the documented mapping):
//   id            FNV-1a 64 of (fingerprint, startsAt, signal), 63 bits,
//                 so a re-sent alert is a redelivery of the same action
//   create_time   now (the receipt)
//   alerts        [fingerprint hex]
//   signal        "abnormal", or "recovered" when resolved
//   alert_level   label alert_level (1..3), else severity: critical, fatal,
//                 page, error -> 1; warning, warn -> 2; otherwise 3
//   bk_biz_id, strategy_id  the labels of those names when numeric, else 0
//   plugin_type   `plugin_type`
//   context       "labels.<name>" for every label, "alert_name" (the
//                 alertname label), "fingerprint", and "dimensions" (the
//                 labels as a sorted "name=value" list)
Action AlertToAction(const Alert& alert, absl::Time now,
                     std::string_view plugin_type);

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_ALERTMANAGER_H_
