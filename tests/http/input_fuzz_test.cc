// Robustness of converged's readers of external input on mutated and
// hostile input: Alertmanager's API v2 alerts and webhook payloads, the
// config file, whole HTTP requests (method, path, query and body, through
// Service::Handle on a memory store), and the store URIs of every adapter.
// Bad input must get an error naming what is wrong (a 4xx answer whose
// body is the documented JSON error), never a crash, an exception, a 500
// or a hang. Deterministic (fixed seeds); no network, no files.

#include <algorithm>
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "alertmanager.h"
#include "config.h"
#include "converge/clock.h"
#include "converge/json/json.h"
#include "service.h"
#include "store_uri.h"
#include "support/mutate.h"
#ifdef CONVERGE_TOOLS_WITH_SQLITE
#include "converge/sqlite/sqlite_store.h"
#endif
#ifdef CONVERGE_TOOLS_WITH_REDIS
#include "converge/redis/redis_store.h"
#endif
#ifdef CONVERGE_TOOLS_WITH_MYSQL
#include "converge/mysql/mysql_store.h"
#endif

namespace converge::service {
namespace {

namespace bj = boost::json;
using namespace ::converge::testing;  // NOLINT: the mutation helpers

constexpr const char* kAlertsV2 =
    R"([{"labels":{"alertname":"DiskFull","instance":"h1",)"
    R"("severity":"critical","bk_biz_id":"2","alert_level":"1"},)"
    R"("annotations":{"summary":"disk 95% full"},)"
    R"("startsAt":"2026-11-27T10:00:00Z",)"
    R"("endsAt":"2026-11-27T13:00:00.123456789+02:00",)"
    R"("generatorURL":"http://prometheus:9090/graph?g0.expr=up"},)"
    R"({"labels":{"alertname":"CpuHigh","strategy_id":"42",)"
    R"("severity":"warning"}}])";

constexpr const char* kWebhook =
    R"({"version":"4","groupKey":"{}:{alertname=\"DiskFull\"}",)"
    R"("truncatedAlerts":0,"status":"firing","receiver":"converged",)"
    R"("groupLabels":{"alertname":"DiskFull"},"commonLabels":{},)"
    R"("commonAnnotations":{},"externalURL":"http://am:9093",)"
    R"("alerts":[{"status":"firing","labels":{"alertname":"DiskFull",)"
    R"("instance":"h1"},"annotations":{},)"
    R"("startsAt":"2026-11-27T10:00:00.5Z",)"
    R"("endsAt":"0001-01-01T00:00:00Z","generatorURL":"",)"
    R"("fingerprint":"9f2a1c3b5d7e8f00"},)"
    R"({"status":"resolved","labels":{"alertname":"DiskFull",)"
    R"("instance":"h2"},"startsAt":"2026-11-27T09:00:00Z",)"
    R"("endsAt":"2026-11-27T09:30:00Z"}]})";

// The alerts' actions write and read back as replay actions.
void CheckAlerts(const std::vector<Alert>& alerts, std::string_view input) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  for (const Alert& alert : alerts) {
    INFO("input: " << Shown(input));
    if (alert.invalid.has_value()) {
      REQUIRE(absl::StartsWith(alert.invalid->field, "["));
      REQUIRE(!alert.invalid->detail.empty());
    }
    const Action action = AlertToAction(alert, now, "notice");
    REQUIRE(action.id > 0);
    REQUIRE(action.alert_level >= 1);
    REQUIRE(action.alert_level <= 3);
    const std::string json = json::ActionToJson(action);
    absl::StatusOr<Action> again = json::ParseAction(json);
    INFO("written: " << Shown(json) << "\nstatus: " << again.status());
    REQUIRE(again.ok());
    REQUIRE(again->context == action.context);
    REQUIRE(json::ActionToJson(*again) == json);
  }
}

void ParseAlerts(std::string_view input) {
  TraceInput("alerts", input);
  const ExactCopy copy(input);
  const std::string_view body = copy.view();
  for (bool webhook : {false, true}) {
    cli::InputError error;
    std::optional<std::vector<Alert>> alerts =
        webhook ? ParseAlertmanagerWebhook(body, &error)
                : ParseAlertsV2(body, &error);
    if (alerts.has_value()) {
      CheckAlerts(*alerts, body);
    } else {
      INFO("input: " << Shown(body));
      REQUIRE(!error.detail.empty());
    }
  }
}

TEST_CASE("converged fuzz: mutated Alertmanager payloads", "[http][fuzz]") {
  const std::vector<std::string> seeds = {kAlertsV2, kWebhook};
  cli::InputError error;
  CHECK(ParseAlertsV2(kAlertsV2, &error).has_value());
  CHECK(ParseAlertmanagerWebhook(kWebhook, &error).has_value());
  INFO(error.ToString());
  Mutator mutator(5);
  for (int i = 0; i < 5000; ++i) ParseAlerts(mutator.MutateOne(seeds));
  for (const std::string& text : HostileJson()) ParseAlerts(text);
  // Times at and beyond the ends of absl::Time's civil range.
  for (const char* t :
       {"9999-12-31T23:59:59Z", "99999999999-01-01T00:00:00Z",
        "-99999999999-01-01T00:00:00Z", "infinite-future", "infinite-past",
        "2026-11-27T10:00:00+99:99", "2026-02-30T00:00:00Z",
        "2026-11-27T10:00:00.99999999999999999999Z"}) {
    const std::string body =
        absl::StrCat(R"([{"labels":{"a":"b"},"startsAt":")", t,
                     R"(","endsAt":")", t, R"("}])");
    ParseAlerts(body);
    ParseAlerts(absl::StrCat(R"({"alerts":)", body, "}"));
  }
  // What is not an RFC 3339 time refuses the request, naming the field.
  for (const char* t :
       {"infinite-future", "infinite-past", "99999999999-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z"}) {
    cli::InputError bad;
    CHECK(!ParseAlertsV2(
               absl::StrCat(R"([{"labels":{"a":"b"},"startsAt":")", t, "\"}]"),
               &bad)
               .has_value());
    CHECK(bad.field == "[0].startsAt");
    CHECK(absl::StrContains(bad.detail, t));
  }
  // A time an action id cannot tell apart (Unix nanoseconds saturate after
  // 2262) makes the alert invalid.
  for (const char* t : {"2300-01-01T00:00:00Z", "9999-12-31T23:59:59Z"}) {
    cli::InputError bad;
    std::optional<std::vector<Alert>> alerts = ParseAlertsV2(
        absl::StrCat(R"([{"labels":{"a":"b"},"startsAt":")", t, "\"}]"), &bad);
    REQUIRE(alerts.has_value());
    REQUIRE(alerts->front().invalid.has_value());
    CHECK(alerts->front().invalid->field == "[0].startsAt");
    CHECK(absl::StrContains(alerts->front().invalid->detail, t));
  }
}

void ParseConfig(std::string_view text) {
  TraceInput("config", text);
  absl::StatusOr<ServiceConfig> config =
      ParseServiceConfig(ExactCopy(text).view());
  if (config.ok()) return;
  INFO("input: " << Shown(text) << "\nstatus: " << config.status());
  REQUIRE(config.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(absl::StartsWith(config.status().message(), "config: "));
  REQUIRE(config.status().message().size() > 8);
}

TEST_CASE("converged fuzz: mutated config files", "[http][fuzz]") {
  const std::vector<std::string> seeds = {
      // docs/http-api.md's example
      R"({"listen": "0.0.0.0:9117", "store": "sqlite:/var/lib/converged/c.db?synchronous=normal",
 "mode": "sync", "queue": {"workers": 4},
 "limits": {"max_inflight_requests": 64},
 "outputs": {"webhook": {"url": "http://127.0.0.1:8080/converge"}},
 "alertmanager": {"converge_config": {"is_enabled": true, "converge_func": "collect",
   "timedelta": 300, "count": 3,
   "condition": [{"dimension": "labels.alertname", "value": ["self"]},
                 {"dimension": "labels.cluster", "value": ["self"]}]}}})",
      // every key
      R"({"listen":"[::1]:0","store":"memory:","repo":"","mode":"queued",)"
      R"("http_threads":4,"profile":"bkmonitor","default_converge_config":)"
      R"({"is_enabled":true,"converge_func":"collect","timedelta":60,)"
      R"("count":1},"drain_timeout_ms":5000,"queue":{"workers":0,)"
      R"("visibility_timeout_ms":30000,"max_attempts":5,)"
      R"("retry_backoff_min_ms":100,"retry_backoff_max_ms":1000,)"
      R"("contention_delay_ms":10,"sweep_interval_ms":60000,)"
      R"("retention_interval_ms":3600000,"idle_wait_ms":50},)"
      R"("limits":{"max_body_bytes":1048576,"max_inflight_requests":8,)"
      R"("max_queue_length":0,"max_actions_per_request":100,)"
      R"("max_connections":16,"header_timeout_ms":1000,)"
      R"("body_timeout_ms":2000,"idle_timeout_ms":3000,)"
      R"("retry_after_seconds":2},"outputs":{"buffer":10,"webhook":)"
      R"({"url":"http://127.0.0.1:1/x","batch":5,"timeout_ms":100,)"
      R"("backoff_min_ms":10,"backoff_max_ms":20}},"alertmanager":)"
      R"({"plugin_type":"notice","converge_config":{"is_enabled":false}}})",
      "{}",
  };
  for (const std::string& seed : seeds) {
    absl::StatusOr<ServiceConfig> c = ParseServiceConfig(seed);
    INFO(seed << "\n" << c.status());
    REQUIRE(c.ok());
  }
  Mutator mutator(17);
  for (int i = 0; i < 4000; ++i) ParseConfig(mutator.MutateOne(seeds));
  for (const std::string& text : HostileJson()) ParseConfig(text);
  // Durations and counts at the ends of int64.
  for (const char* key :
       {R"("drain_timeout_ms")", R"("limits":{"header_timeout_ms")",
        R"("limits":{"max_body_bytes")", R"("queue":{"idle_wait_ms")",
        R"("queue":{"max_attempts")", R"("outputs":{"webhook":{"timeout_ms")",
        R"("outputs":{"buffer")", R"("http_threads")"}) {
    for (const char* n : {"9223372036854775807", "9223372036854775808",
                          "-9223372036854775808", "1e300", "0"}) {
      std::string text = absl::StrCat("{", key, ":", n);
      for (const char* c = key; *c != '\0'; ++c) {
        if (*c == '{') text += "}";
      }
      ParseConfig(text + "}");
    }
  }
  // Durations the server's timers cannot add to the steady clock.
  absl::StatusOr<ServiceConfig> huge = ParseServiceConfig(
      R"({"limits":{"header_timeout_ms":9223372036854775807}})");
  CHECK(absl::StrContains(huge.status().message(),
                          "config: limits.header_timeout_ms: must be <= "));
  CHECK(ParseServiceConfig(R"({"drain_timeout_ms":1000000000000})").ok());
  for (const char* listen : {":", "x:", ":1", "[::1]:99999", "h:-1",
                             "h:18446744073709551616", "[]:1", "h: 1"}) {
    ParseConfig(absl::StrCat(R"({"listen":")", listen, R"("})"));
  }
}

// Every answer: a status from 200 to 599 but never 500, and a JSON body
// (an error object for 4xx).
void CheckAnswer(const HttpRequest& request, const HttpAnswer& answer) {
  INFO(request.method << " " << Shown(request.target) << "\nbody: "
                      << Shown(request.body) << "\nanswer: " << answer.status
                      << " " << Shown(answer.body));
  REQUIRE(answer.status >= 200);
  REQUIRE(answer.status < 600);
  REQUIRE(answer.status != 500);
  if (answer.content_type != "application/json") return;
  boost::system::error_code ec;
  bj::value v = bj::parse(answer.body, ec);
  REQUIRE(!ec);
  if (answer.status >= 400) {
    REQUIRE(v.is_object());
    const bj::value* error = v.get_object().if_contains("error");
    REQUIRE(error != nullptr);
    REQUIRE(error->is_object());
    const bj::value* message = error->get_object().if_contains("message");
    REQUIRE(message != nullptr);
    REQUIRE(message->is_string());
    REQUIRE(!message->get_string().empty());
  }
}

TEST_CASE("converged fuzz: mutated HTTP requests", "[http][fuzz]") {
  absl::StatusOr<ServiceConfig> config =
      ParseServiceConfig(R"({"store":"memory:","queue":{"workers":0},)"
                         R"("limits":{"max_actions_per_request":50}})");
  REQUIRE(config.ok());
  VirtualClock clock(absl::FromUnixSeconds(1'700'000'000));
  absl::StatusOr<std::unique_ptr<Service>> service =
      Service::Create(*config, &clock);
  REQUIRE(service.ok());

  const std::vector<std::string> targets = {
      "/v1/actions",
      "/v1/actions?mode=sync",
      "/v1/actions?mode=queued",
      "/v1/actions/1",
      "/v1/actions/2/status",
      "/v1/actions/3/approval",
      "/v1/instances?open=true&level=action&after=0&limit=10",
      "/v1/instances?open=false&limit=10000",
      "/v1/instances/1",
      "/v1/instances/1/end",
      "/v1/decisions?after=0&limit=5",
      "/v1/summaries?after=1&limit=100000",
      "/v1/outputs?after=%31&limit=%32",
      "/v1/queues",
      "/v1/dead-letters/redrive",
      "/v1/locks?prefix=fta_action.converge.&limit=50",
      "/api/v2/alerts",
      "/v1/alertmanager/webhook",
      "/healthz",
      "/readyz",
  };
  const std::vector<std::string> bodies = {
      R"({"id":1,"time":1700000000,"context":{"alert_name":"cpu"},)"
      R"("converge_config":{"is_enabled":true,"converge_func":"collect",)"
      R"("timedelta":60,"count":1,"condition":[{"dimension":"alert_name",)"
      R"("value":["self"]}]}})",
      R"([{"id":2,"context":{"alert_name":"cpu","dimensions":{"ip":"1.1.1.1"}},)"
      R"("converge_config":{"is_enabled":true,"converge_func":)"
      R"("skip_when_exceed","timedelta":300,"count":2,"condition":)"
      R"([{"dimension":"alert_name","value":["self"]}]}},{"id":3,)"
      R"("signal":"recovered","alert_level":2,"alerts":["a",7],)"
      R"("converge_config":{"is_enabled":false}}])",
      R"({"status":"success"})",
      R"({"approved":true})",
      R"({"ids":["t1","t2"]})",
      kAlertsV2,
      kWebhook,
      "",
  };
  const std::vector<std::string> methods = {"GET",    "POST", "HEAD", "PUT",
                                            "DELETE", "",     "get"};
  Mutator mutator(9117);
  for (int i = 0; i < 3000; ++i) {
    HttpRequest request;
    request.method =
        methods[mutator.Below(3) == 0 ? mutator.Below(methods.size())
                                      : (mutator.Below(2) == 0 ? 0 : 1)];
    request.target = targets[mutator.Below(targets.size())];
    if (mutator.Below(2) == 0) request.target = mutator.Mutate(request.target);
    request.body = bodies[mutator.Below(bodies.size())];
    if (mutator.Below(4) != 0) request.body = mutator.Mutate(request.body);
    TraceInput("target", request.target);
    TraceInput("body", request.body);
    CheckAnswer(request, (*service)->Handle(request));
    if (i % 100 == 0) clock.Advance(absl::Seconds(61));
  }
  for (const std::string& body : HostileJson()) {
    for (const char* target :
         {"/v1/actions", "/v1/actions/1/status", "/v1/actions/1/approval",
          "/api/v2/alerts", "/v1/alertmanager/webhook",
          "/v1/dead-letters/redrive"}) {
      HttpRequest request{"POST", target, body};
      CheckAnswer(request, (*service)->Handle(request));
    }
  }
  for (const std::string& target :
       {std::string("/v1/actions/99999999999999999999999"),
        std::string("/v1/instances/-1"), std::string("/v1/instances/0/end"),
        std::string("/v1/instances?limit=-9223372036854775808"),
        std::string("/v1/outputs?after=9223372036854775807&limit=100000"),
        std::string("/v1/locks?limit=10000&prefix=%ff%fe"),
        std::string("/v1/instances?level=%ff"), std::string("/%ff/%00"),
        std::string("/v1/actions/\xff"), std::string("/v1/\xed\xa0\x80"),
        std::string(100000, '/'), "/" + std::string(3 << 20, 'a'),
        "/v1/decisions?" + std::string(1 << 20, '&'),
        std::string("/v1/decisions?after=%"),
        std::string("/v1/decisions?after=%4")}) {
    for (const char* method : {"GET", "POST", "\xff"}) {
      HttpRequest request{method, target, ""};
      CheckAnswer(request, (*service)->Handle(request));
    }
  }
}

// A store URI parser's refusal: kInvalidArgument with a message.
template <typename T>
void CheckUri(const absl::StatusOr<T>& parsed, std::string_view uri) {
  if (parsed.ok()) return;
  INFO("uri: " << Shown(uri) << "\nstatus: " << parsed.status());
  REQUIRE(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(!parsed.status().message().empty());
}

TEST_CASE("converged fuzz: mutated store URIs", "[http][fuzz]") {
  const std::vector<std::string> seeds = {
      "memory:",
      "sqlite:converge.db",
      "sqlite:///var/lib/c.db?busy_timeout_ms=100&synchronous=normal&"
      "cache_kib=1024&checkpoint_pages=0&check_on_open=1",
      "redis://127.0.0.1:6379/0",
      "redis://u:p%40ss@[::1]:6380,h2:6381,h3/2?key_prefix=x.&pool_size=4&"
      "connect_timeout_ms=100&command_timeout_ms=0&gc_grace_ms=-1",
      "unix:///run/redis.sock?db=3",
      "mysql://converge:s%2Fecret@127.0.0.1:3306/db?pool_size=2&"
      "max_retries=1&schema=check&connect_timeout_ms=5&read_timeout_ms=5&"
      "write_timeout_ms=5&lock_wait_timeout_ms=5",
      "mysql://u@/db?socket=/run/mysqld.sock",
      "nosuch://u:secret@h/x",
  };
  Mutator mutator(6379);
  VirtualClock clock;
  for (int i = 0; i < 6000; ++i) {
    const std::string uri = i < static_cast<int>(seeds.size())
                                ? seeds[i]
                                : mutator.MutateOne(seeds);
    TraceInput("uri", uri);
    const ExactCopy exact(uri);
#ifdef CONVERGE_TOOLS_WITH_SQLITE
    CheckUri(sqlite::ParseSqliteUri(exact.view()), uri);
#endif
#ifdef CONVERGE_TOOLS_WITH_REDIS
    CheckUri(redis::ParseRedisUri(exact.view()), uri);
#endif
#ifdef CONVERGE_TOOLS_WITH_MYSQL
    CheckUri(mysql::ParseMysqlUri(exact.view()), uri);
#endif
    const std::string redacted = tools::Redacted(exact.view());
    INFO("uri: " << Shown(uri));
    REQUIRE(redacted.size() <= uri.size() + 3);
    // OpenStore itself only where it opens nothing (no file, no server).
    const std::string_view scheme =
        std::string_view(uri).substr(0, std::min(uri.find(':'), uri.size()));
    if (scheme == "sqlite" || scheme == "redis" || scheme == "unix" ||
        scheme == "mysql") {
      continue;
    }
    absl::StatusOr<tools::OpenedStore> opened = tools::OpenStore(uri, &clock);
    if (!opened.ok()) {
      INFO("status: " << opened.status());
      REQUIRE(absl::IsInvalidArgument(opened.status()));
      REQUIRE(!opened.status().message().empty());
    }
  }
}

}  // namespace
}  // namespace converge::service
