// Real clients: Debian's prometheus evaluates an always-firing rule and
// sends its alerts to converged as its Alertmanager (POST /api/v2/alerts);
// Debian's prometheus-alertmanager sends its webhook to converged. Both are
// started on free loopback ports in temporary directories and stopped by
// PID.

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "alertmanager.h"
#include "http_test_util.h"

namespace converge::service::testing {
namespace {

namespace bj = boost::json;

// Decisions converged took, with the fingerprint of each action's alert.
struct Seen {
  std::map<std::string, std::string> outcome_by_fingerprint;
  std::set<int64_t> converge_ids;
};

bj::array DecisionItems(InProcess& s) {
  const bj::value v = Json(s.Get("/v1/decisions?limit=1000").body);
  return v.at("items").as_array();
}

TEST_CASE("prometheus sends its alerts to converged, and they converge",
          "[http][real][prometheus]") {
  InProcess s(R"({"store":"memory:"})");
  TempDir dir;
  WriteFile(dir.File("rules.yml"), R"(groups:
- name: converge
  interval: 1s
  rules:
  - alert: AlwaysFiring
    expr: vector(1)
    labels: {severity: critical, instance: a}
  - alert: AlwaysFiring
    expr: vector(1)
    labels: {severity: critical, instance: b}
)");
  WriteFile(
      dir.File("prometheus.yml"),
      absl::StrCat("global:\n  evaluation_interval: 1s\n  scrape_interval: 1h\n"
                   "rule_files: ['",
                   dir.File("rules.yml"),
                   "']\nalerting:\n  alertmanagers:\n  - api_version: v2\n"
                   "    static_configs:\n    - targets: ['127.0.0.1:",
                   s.port, "']\n"));
  Child prometheus(
      {PROMETHEUS_BIN, "--config.file=" + dir.File("prometheus.yml"),
       "--storage.tsdb.path=" + dir.File("data"),
       absl::StrCat("--web.listen-address=127.0.0.1:", FreePort()),
       // Alerts sent before the notifier has discovered
       // converged (its discovery updates every 5 s) are
       // dropped; resend every second, not every minute.
       "--rules.alert.resend-delay=1s", "--log.level=warn"},
      dir.File("prometheus.log"));
  // Prometheus re-sends firing alerts every second: count each action
  // (alert) once.
  std::map<int64_t, std::string> by_action;
  std::set<int64_t> instances;
  // Usually 5 to 10 s (Prometheus starts, its notifier discovers converged
  // within 5 s); a loaded CI machine took more than 20 s once. Within the
  // test's 60 s timeout.
  const bool arrived = PollUntil(absl::Seconds(45), [&] {
    for (const bj::value& d : DecisionItems(s)) {
      by_action[d.at("action_id").as_int64()] =
          std::string(d.at("outcome").as_string());
      instances.insert(d.at("converge_id").as_int64());
    }
    return by_action.size() >= 2;
  });
  prometheus.Stop();
  INFO(ReadFile(dir.File("prometheus.log")));
  REQUIRE(arrived);
  // Both alerts of the rule group share alertname: one instance, the first
  // executes, the second is converged.
  std::map<std::string, int> outcomes;
  for (const auto& [id, outcome] : by_action) ++outcomes[outcome];
  CHECK(by_action.size() == 2);
  CHECK(outcomes["execute"] == 1);
  CHECK(outcomes["skip"] == 1);
  CHECK(instances.size() == 1);
  const bj::value inst =
      Json(s.Get(absl::StrCat("/v1/instances/", *instances.begin())).body);
  CHECK(inst.at("instance")
            .at("converged_condition")
            .at("labels.alertname")
            .at(0) == "AlwaysFiring");
  const std::string metrics = s.Get("/metrics").body;
  CHECK(metrics.find("converged_alerts_received_total 0") == std::string::npos);
}

TEST_CASE(
    "prometheus-alertmanager sends its webhook to converged, fingerprints "
    "match",
    "[http][real][alertmanager]") {
  InProcess s(R"({"store":"memory:"})");
  TempDir dir;
  WriteFile(
      dir.File("am.yml"),
      absl::StrCat(
          "route:\n  receiver: converged\n  group_by: ['alertname']\n"
          "  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n"
          "receivers:\n- name: converged\n  webhook_configs:\n"
          "  - url: http://127.0.0.1:",
          s.port, "/v1/alertmanager/webhook\n    send_resolved: true\n"));
  const uint16_t am_port = FreePort();
  Child am({ALERTMANAGER_BIN, "--config.file=" + dir.File("am.yml"),
            "--storage.path=" + dir.File("data"),
            absl::StrCat("--web.listen-address=127.0.0.1:", am_port),
            "--cluster.listen-address=", "--log.level=warn"},
           dir.File("am.log"));
  INFO(ReadFile(dir.File("am.log")));
  // Waits within the test's 60 s timeout, longer than the usual few
  // seconds (a loaded machine).
  REQUIRE(PollUntil(absl::Seconds(20), [&] {
    absl::StatusOr<HttpResponse> r = HttpFetch(
        "127.0.0.1", am_port, "GET", "/-/ready", "", absl::Seconds(2));
    return r.ok() && r->status == 200;
  }));
  const std::string alerts =
      R"([{"labels":{"alertname":"DiskFull","instance":"h1","severity":"warning"}},)"
      R"({"labels":{"alertname":"DiskFull","instance":"h2","severity":"warning"}},)"
      R"({"labels":{"alertname":"DiskFull","instance":"h3","severity":"warning"}}])";
  absl::StatusOr<HttpResponse> posted = HttpFetch(
      "127.0.0.1", am_port, "POST", "/api/v2/alerts", alerts, absl::Seconds(5));
  REQUIRE(posted.ok());
  REQUIRE(posted->status == 200);
  // The decisions of the three actions, by action id. Alertmanager may
  // send the group more than once (first with the alerts it had, then with
  // all three): a re-sent alert is a redelivery, and the feed shows its
  // stored decision again.
  std::map<int64_t, bj::value> decisions;
  const bool arrived = PollUntil(absl::Seconds(35), [&] {
    for (const bj::value& d : DecisionItems(s)) {
      decisions[d.at("action_id").as_int64()] = d;
    }
    return decisions.size() >= 3;
  });
  // Alertmanager's own view of the alerts, with its fingerprints.
  absl::StatusOr<HttpResponse> listed = HttpFetch(
      "127.0.0.1", am_port, "GET", "/api/v2/alerts", "", absl::Seconds(5));
  am.Stop();
  INFO(ReadFile(dir.File("am.log")));
  REQUIRE(arrived);
  REQUIRE(listed.ok());
  const bj::value am_alerts = Json(listed->body);
  REQUIRE(am_alerts.as_array().size() == 3);
  std::set<std::string> am_fingerprints;
  for (const bj::value& a : am_alerts.as_array()) {
    Labels labels;
    for (const auto& kv : a.at("labels").as_object()) {
      labels.emplace_back(std::string(kv.key()),
                          std::string(kv.value().as_string()));
    }
    const std::string fp(a.at("fingerprint").as_string());
    CHECK(FingerprintHex(Fingerprint(labels)) == fp);
    am_fingerprints.insert(fp);
  }
  // The actions converged decided carry the same fingerprints (the webhook
  // receiver refuses a payload whose fingerprints do not match its own).
  std::set<std::string> ours;
  std::map<std::string, int> outcomes;
  REQUIRE(decisions.size() == 3);
  for (const auto& [id, d] : decisions) {
    const bj::value got = Json(
        s.Get(absl::StrCat("/v1/instances/", d.at("converge_id").as_int64()))
            .body);
    for (const bj::value& rel : got.at("instance").at("relations").as_array()) {
      for (const bj::value& fp : rel.at("alerts").as_array())
        ours.insert(std::string(fp.as_string()));
    }
    ++outcomes[std::string(d.at("outcome").as_string())];
  }
  CHECK(ours == am_fingerprints);
  CHECK(outcomes["execute"] == 1);
  CHECK(outcomes["skip"] == 2);
}

}  // namespace
}  // namespace converge::service::testing
