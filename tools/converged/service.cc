#include "service.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "alertmanager.h"
#include "converge/json/json.h"
#include "events.h"
#include "json_util.h"

namespace converge::service {
namespace {

namespace bj = boost::json;
using cli::Av;
using cli::InputError;
using cli::KindName;
using cli::ToStd;

// The statuses counted one by one on /metrics; others share the last slot.
// Dead letters GET /v1/queues shows (their count is in "dead").
constexpr size_t kDeadShown = 100;

constexpr std::array<int, 15> kTrackedStatuses = {
    200, 202, 400, 404, 405, 408, 409, 413, 429, 431, 500, 503, 504, 501, 415};

// `s` as a JSON string. Boost writes the bytes of `s` as they are, so text
// that is not UTF-8 (a %-decoded query value or a raw path echoed in an
// error message) would make the body invalid JSON: in such text each byte
// >= 0x80 is written as the four characters \xNN instead.
std::string JsonString(std::string_view s) {
  std::string out = bj::serialize(bj::string_view(s.data(), s.size()));
  const bool ascii = std::all_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x80;
  });
  boost::system::error_code ec;
  if (ascii || (bj::parse(out, ec), !ec)) return out;
  std::string shown;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      shown.push_back(c);
    } else {
      absl::StrAppend(&shown, "\\x", absl::Hex(b, absl::kZeroPad2));
    }
  }
  return bj::serialize(bj::string_view(shown.data(), shown.size()));
}

std::string CodeName(absl::StatusCode code) {
  std::string name = absl::StatusCodeToString(code);
  return absl::AsciiStrToLower(name);
}

HttpAnswer Json(int status, std::string body) {
  HttpAnswer a;
  a.status = status;
  a.body = std::move(body);
  return a;
}

// The field path of `e` under `prefix`, and the message naming it.
std::pair<std::string, std::string> InputErrorText(const InputError& e,
                                                   std::string_view prefix) {
  std::string field = e.field;
  if (!prefix.empty()) {
    field = field.empty()
                ? std::string(prefix)
                : (field.front() == '[' ? absl::StrCat(Av(prefix), field)
                                        : absl::StrCat(Av(prefix), ".", field));
  }
  std::string message = field.empty()
                            ? e.detail
                            : absl::StrCat("field \"", field, "\": ", e.detail);
  return {std::move(field), std::move(message)};
}

// The input error of item `i` of a request that `st` refused, its field
// path under "[i]".
InputError ItemInputError(const absl::Status& st, size_t i) {
  std::optional<InputError> e = cli::InputErrorFromStatus(st);
  InputError err = e ? *e : InputError{"", std::string(st.message())};
  err.field = err.field.empty() ? absl::StrCat("[", i, "]")
                                : absl::StrCat("[", i, "].", err.field);
  return err;
}

HttpAnswer BadInput(const InputError& e, std::string_view prefix = "") {
  auto [field, message] = InputErrorText(e, prefix);
  return ErrorAnswer(400, "invalid_argument", message, field);
}

// Query parameters ("a=1&b=x"), %-decoded. *repeated: the first name given
// more than once (the map keeps its last value), or empty.
std::map<std::string, std::string, std::less<>> ParseQuery(
    std::string_view q, std::string* repeated) {
  std::map<std::string, std::string, std::less<>> out;
  auto decode = [](std::string_view s) {
    std::string r;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') {
        r += ' ';
      } else if (s[i] == '%' && i + 2 < s.size() + 0 && i + 2 <= s.size() - 1) {
        int v = 0;
        if (absl::SimpleHexAtoi(Av(s.substr(i + 1, 2)), &v)) {
          r += static_cast<char>(v);
          i += 2;
        } else {
          r += s[i];
        }
      } else {
        r += s[i];
      }
    }
    return r;
  };
  for (absl::string_view a : absl::StrSplit(Av(q), '&', absl::SkipEmpty())) {
    const std::string_view part(a.data(), a.size());
    const size_t eq = part.find('=');
    std::string name = decode(part.substr(0, eq));
    if (out.count(name) != 0 && repeated->empty()) *repeated = name;
    out[std::move(name)] =
        eq == std::string_view::npos ? "" : decode(part.substr(eq + 1));
  }
  return out;
}

using Query = std::map<std::string, std::string, std::less<>>;

std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}
// The query parameters of `target` into *out, or a 400 answer naming a
// parameter the route does not take (not in `known`: a misspelt one would
// be ignored) or one given twice.
std::optional<HttpAnswer> QueryOf(std::string_view target,
                                  std::initializer_list<std::string_view> known,
                                  Query* out) {
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string repeated;
  *out = ParseQuery(target.substr(q + 1), &repeated);
  if (!repeated.empty()) {
    return ErrorAnswer(400, "invalid_argument",
                       absl::StrCat("query parameter \"", repeated,
                                    "\": given more than once"),
                       repeated);
  }
  for (const auto& [name, value] : *out) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string names;
    for (std::string_view k : known) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", Av(k));
    }
    return ErrorAnswer(
        400, "invalid_argument",
        absl::StrCat("unknown query parameter \"", name,
                     "\" (this route takes ",
                     known.size() == 0 ? std::string("none") : names, ")"),
        name);
  }
  return std::nullopt;
}

// An integer query parameter in [min, max], or `fallback` when absent.
std::optional<HttpAnswer> QueryInt(const Query& q, std::string_view name,
                                   int64_t min, int64_t max, int64_t* out) {
  auto it = q.find(name);
  if (it == q.end()) return std::nullopt;
  int64_t v = 0;
  if (!absl::SimpleAtoi(it->second, &v) || v < min || v > max) {
    return ErrorAnswer(400, "invalid_argument",
                       absl::StrCat("query parameter \"", Av(name),
                                    "\": expected an integer in [", min, ", ",
                                    max, "], got \"", it->second, "\""),
                       name);
  }
  *out = v;
  return std::nullopt;
}

// A route whose parameters are a cursor and a page size: `after` (>= 0)
// and `limit` (1 to max_limit) into *after and *limit when given.
std::optional<HttpAnswer> AfterLimit(std::string_view target, int64_t max_limit,
                                     int64_t* after, int64_t* limit) {
  Query q;
  if (auto bad = QueryOf(target, {"after", "limit"}, &q)) return bad;
  if (auto bad = QueryInt(q, "after", 0, INT64_MAX, after)) return bad;
  return QueryInt(q, "limit", 1, max_limit, limit);
}

std::optional<int64_t> ParseId(std::string_view s) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(Av(s), &v) || v <= 0) return std::nullopt;
  return v;
}

HttpAnswer BadId(std::string_view id) {
  return ErrorAnswer(
      400, "invalid_argument",
      absl::StrCat("path id \"", Av(id), "\": expected a positive integer"),
      "id");
}

// Parses a JSON object body; on failure sets *answer.
std::optional<bj::object> ObjectBody(std::string_view body,
                                     HttpAnswer* answer) {
  boost::system::error_code ec;
  bj::parse_options options;
  options.max_depth = json::kMaxDepth;
  bj::value v =
      bj::parse(bj::string_view(body.data(), body.size()), ec, {}, options);
  if (ec) {
    *answer = ErrorAnswer(400, "invalid_argument",
                          absl::StrCat("malformed JSON: ", ec.message()));
    return std::nullopt;
  }
  if (!v.is_object()) {
    *answer = ErrorAnswer(
        400, "invalid_argument",
        absl::StrCat("expected a JSON object, got ", Av(KindName(v))));
    return std::nullopt;
  }
  return std::move(v.get_object());
}

std::string TimeJson(absl::Time t) { return cli::TimeToJson(t); }

std::string DecisionJson(const Decision& d) {
  return absl::StrCat("{\"action_id\":", d.action_id, ",\"outcome\":\"",
                      Av(ToString(d.outcome)), "\",\"converge_id\":",
                      d.converge_id ? absl::StrCat(*d.converge_id) : "null",
                      ",\"primary\":", d.primary ? "true" : "false",
                      ",\"replayed\":", d.replayed ? "true" : "false",
                      ",\"reason\":", JsonString(d.reason),
                      ",\"time\":", TimeJson(d.decided_at), "}");
}

std::string ConditionJson(
    const std::map<std::string, std::vector<Value>, std::less<>>& cond) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, values] : cond) {
    if (!first) out += ",";
    first = false;
    absl::StrAppend(&out, JsonString(k), ":[");
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += ",";
      out += json::ValueToJson(values[i]);
    }
    out += "]";
  }
  return out + "}";
}

std::string InstanceJson(const ConvergeInstance& i) {
  return absl::StrCat(
      "{\"id\":", i.id, ",\"converge_type\":\"", Av(ToString(i.converge_type)),
      "\",\"converge_func\":\"", Av(ToString(i.converge_func)),
      "\",\"bk_biz_id\":", i.bk_biz_id,
      ",\"dimension\":", JsonString(i.dimension),
      ",\"description\":", JsonString(i.description),
      ",\"create_time\":", TimeJson(i.create_time),
      ",\"end_time\":", i.end_time ? TimeJson(*i.end_time) : "null",
      ",\"open\":", i.is_open() ? "true" : "false",
      ",\"is_visible\":", i.is_visible ? "true" : "false",
      ",\"window_seconds\":", i.window_seconds,
      ",\"converge_config\":", json::ConvergeConfigToJson(i.converge_config),
      ",\"converged_condition\":", ConditionJson(i.converged_condition), "}");
}

std::string RelationJson(const ConvergeRelation& r) {
  std::string alerts = "[";
  for (size_t i = 0; i < r.alerts.size(); ++i) {
    if (i > 0) alerts += ",";
    alerts += JsonString(r.alerts[i]);
  }
  alerts += "]";
  return absl::StrCat("{\"id\":", r.id, ",\"related_id\":", r.related_id,
                      ",\"related_type\":\"", Av(ToString(r.related_type)),
                      "\",\"is_primary\":", r.is_primary ? "true" : "false",
                      ",\"converge_status\":\"",
                      Av(ToString(r.converge_status)), "\",\"alerts\":", alerts,
                      "}");
}

std::string TaskJson(const Task& t) {
  return absl::StrCat(
      "{\"id\":", JsonString(t.id), ",\"kind\":", JsonString(t.kind),
      ",\"subject_id\":", t.subject_id, ",\"due\":", TimeJson(t.due),
      ",\"attempts\":", t.attempts,
      ",\"last_error\":", JsonString(t.last_error), "}");
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    case absl::StatusCode::kUnimplemented:
      return 501;
    default:
      return 500;
  }
}

std::string ErrorObject(std::string_view code, std::string_view message,
                        std::string_view field) {
  std::string o = absl::StrCat("{\"code\":", JsonString(code),
                               ",\"message\":", JsonString(message));
  if (!field.empty()) absl::StrAppend(&o, ",\"field\":", JsonString(field));
  return o + "}";
}

HttpAnswer ErrorAnswer(int http_status, std::string_view code,
                       std::string_view message, std::string_view field) {
  return Json(
      http_status,
      absl::StrCat("{\"error\":", ErrorObject(code, message, field), "}"));
}

HttpAnswer ErrorAnswer(const absl::Status& status, std::string_view field) {
  HttpAnswer a = ErrorAnswer(
      HttpStatusFor(status.code()), CodeName(status.code()),
      std::string_view(status.message().data(), status.message().size()),
      field);
  return a;
}

Service::Service(ServiceConfig config, const Clock* clock)
    : config_(std::move(config)),
      clock_(clock),
      leases_(clock),
      outputs_(config_.outputs.buffer) {}

Service::~Service() { Stop(absl::ZeroDuration()); }

absl::StatusOr<std::unique_ptr<Service>> Service::Create(ServiceConfig config,
                                                         const Clock* clock) {
  std::unique_ptr<Service> s(new Service(std::move(config), clock));
  absl::StatusOr<tools::OpenedStore> store = tools::OpenStore(
      s->config_.store, clock, tools::OpenMode::kCreate, s->config_.repo);
  if (!store.ok()) return store.status();
  s->store_ = *std::move(store);
  if (!s->config_.outputs.file.empty()) {
    // The output file's lock would lock the store's connections out.
    const std::string& uri = s->config_.store;
    if (uri.rfind("sqlite:", 0) == 0) {
      const std::string store_path = uri.substr(7, uri.find('?') - 7);
      std::error_code e1, e2;
      if (std::filesystem::weakly_canonical(store_path, e1) ==
              std::filesystem::weakly_canonical(s->config_.outputs.file, e2) &&
          !e1 && !e2) {
        return absl::InvalidArgumentError(absl::StrCat(
            "outputs.file ", s->config_.outputs.file, " is the store's file (",
            uri, "); give the outputs a file of their own"));
      }
    }
    if (absl::Status st = s->outputs_.Open(s->config_.outputs.file); !st.ok()) {
      return st;
    }
  }
  s->lock_ =
      std::make_unique<TrackingLockStore>(s->store_.stores.lock, &s->leases_);
  s->window_ = std::make_unique<TrackingWindowStore>(s->store_.stores.window,
                                                     &s->leases_);
  Stores stores = s->store_.stores;
  stores.lock = s->lock_.get();
  stores.window = s->window_.get();
  ManagerOptions mo;
  mo.rules.profile = s->config_.profile;
  mo.listener = &s->outputs_;
  mo.metrics = &s->metrics_;
  absl::StatusOr<std::unique_ptr<ConvergeManager>> manager =
      ConvergeManager::Create(stores, clock, mo);
  if (!manager.ok()) return manager.status();
  s->manager_ = *std::move(manager);
  absl::StatusOr<std::unique_ptr<Processor>> processor =
      Processor::Create(s->manager_.get(), s->config_.processor);
  if (!processor.ok()) return processor.status();
  s->processor_ = *std::move(processor);
  if (!s->config_.default_converge_config.empty()) {
    s->default_config_ =
        json::ParseConvergeConfig(s->config_.default_converge_config).value();
  }
  // The configured rules against the manager's limits, now rather than
  // as a 400 for every request that uses them.
  for (const auto& [key, config] :
       {std::pair<const char*, const ConvergeConfig*>{
            "alertmanager.converge_config",
            &s->config_.alertmanager.converge_config},
        {"default_converge_config",
         s->default_config_ ? &*s->default_config_ : nullptr}}) {
    if (config == nullptr) continue;
    if (absl::Status st = s->manager_->CheckConfig(*config); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("converged: config key \"", key, "\": ", st.message()));
    }
  }
  if (!s->config_.outputs.webhook.url.empty()) {
    absl::StatusOr<std::unique_ptr<WebhookPusher>> hook =
        WebhookPusher::Create(s->config_.outputs.webhook, &s->outputs_);
    if (!hook.ok()) return hook.status();
    s->webhook_ = *std::move(hook);
  }
  return s;
}

absl::Status Service::Start() {
  if (config_.workers > 0) {
    absl::Status st = processor_->Start();
    if (!st.ok() && !absl::IsFailedPrecondition(st)) return st;
  }
  if (webhook_) webhook_->Start();
  return absl::OkStatus();
}

void Service::Stop(absl::Duration flush_for) {
  if (processor_) processor_->Stop();
  if (webhook_) webhook_->Stop(flush_for);
  // What is not written yet, with the webhook's cursor.
  outputs_.Close();
}

bool Service::IsOperational(std::string_view target) {
  const std::string_view path = PathOf(target);
  return path == "/healthz" || path == "/readyz" || path == "/metrics";
}

void Service::RecordHttpStatus(int status) {
  for (size_t i = 0; i < kTrackedStatuses.size(); ++i) {
    if (kTrackedStatuses[i] == status) {
      http_status_[i].fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  http_status_.back().fetch_add(1, std::memory_order_relaxed);
}

struct Service::Route {
  std::string_view method;
  // Path segments; "*" matches an id.
  std::vector<std::string_view> pattern;
  HttpAnswer (Service::*handler)(const HttpRequest&, std::string_view);
  // The handler reads (and checks) its own query parameters; a route
  // without does not take any (a 400 names one given), except the
  // operational ones, which ignore them (probes may add their own).
  enum Query { kNone, kOwn, kIgnored } query = kNone;
};

HttpAnswer Service::Handle(const HttpRequest& request) {
  static const std::vector<Route> kRoutes = {
      {"GET", {"healthz"}, &Service::Healthz, Route::kIgnored},
      {"GET", {"readyz"}, &Service::Readyz, Route::kIgnored},
      {"GET", {"metrics"}, &Service::MetricsText, Route::kIgnored},
      {"POST", {"v1", "actions"}, &Service::PostActions, Route::kOwn},
      {"GET", {"v1", "actions", "*"}, &Service::GetAction},
      {"POST", {"v1", "actions", "*", "status"}, &Service::PostStatus},
      {"POST", {"v1", "actions", "*", "approval"}, &Service::PostApproval},
      {"GET", {"v1", "instances"}, &Service::ListInstances, Route::kOwn},
      {"GET", {"v1", "instances", "*"}, &Service::GetInstance, Route::kOwn},
      {"POST", {"v1", "instances", "*", "end"}, &Service::EndInstance},
      {"GET", {"v1", "decisions"}, &Service::Decisions, Route::kOwn},
      {"GET", {"v1", "summaries"}, &Service::Summaries, Route::kOwn},
      {"GET", {"v1", "outputs"}, &Service::Outputs, Route::kOwn},
      {"GET", {"v1", "queues"}, &Service::Queues},
      {"POST", {"v1", "dead-letters", "redrive"}, &Service::Redrive},
      {"GET", {"v1", "locks"}, &Service::Locks, Route::kOwn},
      {"POST", {"api", "v2", "alerts"}, &Service::AlertsV2},
      {"POST",
       {"v1", "alertmanager", "webhook"},
       &Service::AlertmanagerWebhook},
  };
  const std::string_view path = PathOf(request.target);
  std::vector<std::string_view> segs;
  for (absl::string_view a : absl::StrSplit(Av(path), '/', absl::SkipEmpty())) {
    segs.emplace_back(a.data(), a.size());
  }
  std::string allow;
  for (const Route& route : kRoutes) {
    if (route.pattern.size() != segs.size()) continue;
    std::string_view id;
    bool match = true;
    for (size_t i = 0; i < segs.size() && match; ++i) {
      if (route.pattern[i] == "*") {
        id = segs[i];
      } else {
        match = route.pattern[i] == segs[i];
      }
    }
    if (!match) continue;
    if (route.method != request.method &&
        !(route.method == "GET" && request.method == "HEAD")) {
      if (!allow.empty()) allow += ", ";
      allow += route.method;
      continue;
    }
    if (route.query == Route::kNone) {
      Query none;
      if (auto bad = QueryOf(request.target, {}, &none)) return *bad;
    }
    try {
      return (this->*route.handler)(request, id);
    } catch (const std::exception& e) {
      return ErrorAnswer(500, "internal",
                         absl::StrCat("converged: ", e.what()));
    }
  }
  if (!allow.empty()) {
    HttpAnswer a = ErrorAnswer(
        405, "method_not_allowed",
        absl::StrCat("method ", request.method, " is not allowed on ", Av(path),
                     " (allowed: ", allow, ")"));
    a.allow = allow;
    return a;
  }
  return ErrorAnswer(404, "not_found",
                     absl::StrCat("no route ", request.method, " ", Av(path),
                                  " (docs/http-api.md lists the routes)"));
}

HttpAnswer Service::Healthz(const HttpRequest&, std::string_view) {
  return Json(200, "{\"status\":\"ok\"}");
}

HttpAnswer Service::Readyz(const HttpRequest&, std::string_view) {
  if (draining_) {
    HttpAnswer a = ErrorAnswer(503, "unavailable", "draining (SIGTERM)");
    a.retry_after = config_.limits.retry_after_seconds;
    return a;
  }
  absl::StatusOr<QueueStats> stats =
      store_.stores.queue->Stats(manager_->options().task_queue);
  if (!stats.ok()) {
    return ErrorAnswer(503, "unavailable",
                       absl::StrCat("store ", store_.uri, " is not reachable: ",
                                    stats.status().message()));
  }
  absl::StatusOr<OpenCounts> open = store_.stores.repo->CountOpen();
  if (!open.ok()) {
    return ErrorAnswer(503, "unavailable",
                       absl::StrCat("store ", store_.uri, " is not reachable: ",
                                    open.status().message()));
  }
  return Json(200, absl::StrCat("{\"status\":\"ready\",\"store\":",
                                JsonString(store_.uri), "}"));
}

HttpAnswer Service::MetricsText(const HttpRequest&, std::string_view) {
  const std::string& queue = manager_->options().task_queue;
  if (absl::StatusOr<QueueStats> s = store_.stores.queue->Stats(queue);
      s.ok()) {
    metrics_.SetQueueLength(queue, s->pending, s->in_flight, s->dead);
  }
  if (absl::StatusOr<OpenCounts> c = store_.stores.repo->CountOpen(); c.ok()) {
    metrics_.SetOpenInstances(ConvergeType::kAction, c->action);
    metrics_.SetOpenInstances(ConvergeType::kConverge, c->converge);
  }
  std::string text = metrics_.RenderPrometheus();
  absl::StrAppend(
      &text,
      "# HELP converged_http_requests_total HTTP requests answered, by "
      "status code.\n# TYPE converged_http_requests_total counter\n");
  for (size_t i = 0; i < kTrackedStatuses.size(); ++i) {
    const int64_t n = http_status_[i].load(std::memory_order_relaxed);
    if (n > 0) {
      absl::StrAppend(&text, "converged_http_requests_total{code=\"",
                      kTrackedStatuses[i], "\"} ", n, "\n");
    }
  }
  absl::StrAppend(&text, "converged_http_requests_total{code=\"other\"} ",
                  http_status_.back().load(), "\n");
  absl::StrAppend(
      &text,
      "# HELP converged_http_inflight_requests Requests being read or "
      "answered (operational routes excluded).\n"
      "# TYPE converged_http_inflight_requests gauge\n"
      "converged_http_inflight_requests ",
      inflight_.load(), "\n",
      "# HELP converged_actions_received_total Actions received over HTTP "
      "(POST /v1/actions and the Alertmanager routes).\n"
      "# TYPE converged_actions_received_total counter\n"
      "converged_actions_received_total ",
      actions_received_.load(), "\n",
      "# HELP converged_alerts_received_total Alertmanager alerts "
      "received.\n# TYPE converged_alerts_received_total counter\n"
      "converged_alerts_received_total ",
      alerts_received_.load(), "\n",
      "# HELP converged_alerts_invalid_total Alerts of POST /api/v2/alerts "
      "refused one by one (the request's other alerts were taken).\n"
      "# TYPE converged_alerts_invalid_total counter\n"
      "converged_alerts_invalid_total ",
      alerts_invalid_.load(), "\n",
      "# HELP converged_outputs_total Outputs (decisions, instance events, "
      "summaries) recorded (with outputs.file: numbered since the file was "
      "created).\n# TYPE converged_outputs_total counter\n"
      "converged_outputs_total ",
      outputs_.last_seq(), "\n");
  if (outputs_.persistent()) {
    absl::StrAppend(
        &text,
        "# HELP converged_output_file_errors_total Failed writes of the "
        "output file (retried).\n# TYPE converged_output_file_errors_total "
        "counter\nconverged_output_file_errors_total ",
        outputs_.file_errors(), "\n",
        "# HELP converged_outputs_unsaved_total Outputs that left the buffer "
        "before the output file could keep them.\n# TYPE "
        "converged_outputs_unsaved_total counter\n"
        "converged_outputs_unsaved_total ",
        outputs_.unsaved(), "\n",
        "# HELP converged_outputs_unwritten Outputs recorded but not yet "
        "written to the output file (not readable yet).\n# TYPE "
        "converged_outputs_unwritten gauge\nconverged_outputs_unwritten ",
        outputs_.unwritten(), "\n");
  }
  if (webhook_) {
    absl::StrAppend(
        &text,
        "# HELP converged_webhook_outputs_sent_total Outputs delivered to the "
        "webhook.\n# TYPE converged_webhook_outputs_sent_total counter\n"
        "converged_webhook_outputs_sent_total ",
        webhook_->sent(), "\n",
        "# HELP converged_webhook_failures_total Webhook POSTs that failed "
        "(retried).\n# TYPE converged_webhook_failures_total counter\n"
        "converged_webhook_failures_total ",
        webhook_->failures(), "\n",
        "# HELP converged_webhook_outputs_dropped_total Outputs that left the "
        "buffer before the webhook took them.\n"
        "# TYPE converged_webhook_outputs_dropped_total counter\n"
        "converged_webhook_outputs_dropped_total ",
        webhook_->dropped(), "\n");
  }
  HttpAnswer a = Json(200, std::move(text));
  a.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return a;
}

std::optional<HttpAnswer> Service::QueueFull() {
  if (config_.limits.max_queue_length <= 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(queue_mu_);
  const absl::Time now = absl::Now();
  if (now - queue_checked_ > absl::Milliseconds(250)) {
    absl::StatusOr<QueueStats> s =
        store_.stores.queue->Stats(manager_->options().task_queue);
    if (!s.ok()) {
      HttpAnswer a = ErrorAnswer(s.status());
      a.retry_after = config_.limits.retry_after_seconds;
      return a;
    }
    queue_pending_ = s->pending;
    queue_checked_ = now;
  }
  if (queue_pending_ >= config_.limits.max_queue_length) {
    HttpAnswer a = ErrorAnswer(
        503, "unavailable",
        absl::StrCat("the task queue holds ", queue_pending_,
                     " pending tasks (limits.max_queue_length ",
                     config_.limits.max_queue_length, "); retry later"));
    a.retry_after = config_.limits.retry_after_seconds;
    return a;
  }
  return std::nullopt;
}

HttpAnswer Service::PostActions(const HttpRequest& r, std::string_view) {
  // Before Boost reads such an integer as a float (the items are checked
  // again as text, where it would no longer look like an integer).
  if (std::optional<json::OversizedInteger> big =
          json::FindOversizedInteger(r.body)) {
    return BadInput(
        InputError{big->path, absl::StrCat("integer ", Av(big->text),
                                           " is out of the 64-bit range")});
  }
  boost::system::error_code ec;
  bj::parse_options options;
  options.max_depth = json::kMaxDepth;
  bj::value doc =
      bj::parse(bj::string_view(r.body.data(), r.body.size()), ec, {}, options);
  if (ec) {
    return ErrorAnswer(400, "invalid_argument",
                       absl::StrCat("malformed JSON: ", ec.message()));
  }
  const bool single = doc.is_object();
  if (!single && !doc.is_array()) {
    return ErrorAnswer(400, "invalid_argument",
                       absl::StrCat("expected an action object or an array of "
                                    "them, got ",
                                    Av(KindName(doc))));
  }
  bj::array one;
  bj::array& list = single ? one : doc.get_array();
  if (single) one.push_back(std::move(doc));
  if (static_cast<int64_t>(list.size()) >
      config_.limits.max_actions_per_request) {
    return ErrorAnswer(413, "resource_exhausted",
                       absl::StrCat(list.size(),
                                    " actions in one request; "
                                    "limits.max_actions_per_request is ",
                                    config_.limits.max_actions_per_request));
  }
  const std::string default_config = config_.default_converge_config.empty()
                                         ? ""
                                         : config_.default_converge_config;
  const absl::Time now = clock_->Now();
  std::vector<Item> items;
  std::vector<std::unique_ptr<ConvergeConfig>> configs;
  items.reserve(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string prefix = single ? "" : absl::StrCat("[", i, "]");
    if (!list[i].is_object()) {
      return BadInput(InputError{"", absl::StrCat("expected an action object, "
                                                  "got ",
                                                  Av(KindName(list[i])))},
                      prefix);
    }
    bj::object& o = list[i].get_object();
    if (!o.contains("type")) o["type"] = "action";
    if (!o.contains("time")) {
      o["time"] = static_cast<double>(absl::ToUnixMicros(now)) / 1e6;
    }
    const std::string text = bj::serialize(o);
    InputError error;
    std::optional<cli::Event> event =
        cli::ParseEvent(text, default_config, &error);
    if (!event) return BadInput(error, prefix);
    if (event->type != cli::Event::Type::kAction) {
      return BadInput(InputError{"type",
                                 "expected \"action\" (POST "
                                 "/v1/actions/{id}/status and "
                                 "/approval take the others)"},
                      prefix);
    }
    absl::Status valid = manager_->Validate(event->action, event->config);
    if (!valid.ok()) {
      std::optional<InputError> e = cli::InputErrorFromStatus(valid);
      return BadInput(e ? *e : InputError{"", std::string(valid.message())},
                      prefix);
    }
    configs.push_back(
        std::make_unique<ConvergeConfig>(std::move(event->config)));
    items.push_back(
        Item{std::move(event->action), configs.back().get(), "", std::nullopt});
  }
  return SubmitItems(items, r);
}

HttpAnswer Service::SubmitItems(std::vector<Item>& items, const HttpRequest& r,
                                bool alerts) {
  actions_received_ += static_cast<int64_t>(items.size());
  Query q;
  if (auto bad = QueryOf(r.target, {"mode"}, &q)) return *bad;
  SubmitMode mode = config_.mode;
  if (auto it = q.find("mode"); it != q.end()) {
    if (it->second == "sync") {
      mode = SubmitMode::kSync;
    } else if (it->second == "queued") {
      mode = SubmitMode::kQueued;
    } else {
      return ErrorAnswer(400, "invalid_argument",
                         absl::StrCat("query parameter \"mode\": expected sync "
                                      "or queued, got \"",
                                      it->second, "\""),
                         "mode");
    }
  }
  std::vector<std::string> results(items.size());
  // Refused items: their result is their error; the answer a 400 that
  // names them all (the first ten) and also gives the others' results.
  std::vector<size_t> refused;
  auto refuse = [&](size_t i) {
    refused.push_back(i);
    auto [field, message] = InputErrorText(*items[i].refused, "");
    results[i] = absl::StrCat(
        "{",
        alerts ? "" : absl::StrCat("\"action_id\":", items[i].action.id, ","),
        "\"error\":", ErrorObject("invalid_argument", message, field), "}");
  };
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].refused) refuse(i);
  }
  auto finish = [&](int http_status) {
    std::string body = "{";
    if (!refused.empty()) {
      http_status = 400;
      std::sort(refused.begin(), refused.end());
      if (alerts) alerts_invalid_ += static_cast<int64_t>(refused.size());
      const InputError& first = *items[refused.front()].refused;
      std::string message =
          absl::StrCat(refused.size(), " of ", items.size(),
                       " refused (the others were taken: see results): ");
      constexpr size_t kNamed = 10;
      for (size_t k = 0; k < refused.size() && k < kNamed; ++k) {
        absl::StrAppend(&message, k > 0 ? "; " : "",
                        InputErrorText(*items[refused[k]].refused, "").second);
      }
      if (refused.size() > kNamed) {
        absl::StrAppend(&message, "; and ", refused.size() - kNamed, " more");
      }
      absl::StrAppend(&body, "\"error\":",
                      ErrorObject("invalid_argument", message, first.field),
                      ",");
    }
    body += "\"results\":[";
    for (size_t i = 0; i < results.size(); ++i) {
      if (i > 0) body += ",";
      body += results[i];
    }
    return Json(http_status, body + "]}");
  };
  auto queued_json = [&](size_t i, std::string_view state) {
    std::string s = absl::StrCat("{\"action_id\":", items[i].action.id,
                                 ",\"status\":\"", Av(state), "\"");
    if (!items[i].fingerprint.empty()) {
      absl::StrAppend(&s, ",\"fingerprint\":\"", items[i].fingerprint, "\"");
    }
    return s + "}";
  };
  // Queues items[i] for the processor; false (and *answer) on a store
  // error.
  auto enqueue = [&](size_t i) -> absl::Status {
    absl::Status st =
        processor_->SubmitAction(items[i].action, *items[i].config);
    if (st.ok() || absl::IsAlreadyExists(st)) {
      results[i] = queued_json(i, "queued");
      return absl::OkStatus();
    }
    return st;
  };
  auto enqueue_all = [&](const std::vector<size_t>& which) -> absl::Status {
    if (which.empty()) return absl::OkStatus();
    absl::StatusOr<std::unique_ptr<RepoBatch>> batch =
        store_.stores.repo->BeginBatch();
    if (!batch.ok()) return batch.status();
    for (size_t i : which) {
      absl::Status st = enqueue(i);
      if (!st.ok()) return st;
    }
    if (*batch) return (*batch)->Commit();
    return absl::OkStatus();
  };
  auto overloaded = [&](const absl::Status& st) {
    HttpAnswer a = ErrorAnswer(st);
    if (a.status == 503 || a.status == 429) {
      a.retry_after = config_.limits.retry_after_seconds;
    }
    return a;
  };

  if (mode == SubmitMode::kQueued) {
    if (std::optional<HttpAnswer> full = QueueFull()) return *full;
    std::vector<size_t> all;
    all.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].refused) all.push_back(i);
    }
    absl::Status st = enqueue_all(all);
    if (!st.ok()) return overloaded(st);
    return finish(202);
  }

  std::vector<ConvergeManager::BatchItem> batch;
  std::vector<size_t> index;  // batch position -> item
  batch.reserve(items.size());
  index.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].refused) continue;
    batch.push_back({&items[i].action, items[i].config});
    index.push_back(i);
  }
  std::vector<absl::StatusOr<Decision>> decided;
  if (!batch.empty()) decided = manager_->SubmitBatch(batch);
  std::vector<size_t> requeue;
  for (size_t b = 0; b < decided.size(); ++b) {
    const size_t i = index[b];
    if (decided[b].ok()) {
      std::string s = DecisionJson(*decided[b]);
      if (!items[i].fingerprint.empty()) {
        s.pop_back();
        absl::StrAppend(&s, ",\"fingerprint\":\"", items[i].fingerprint, "\"}");
      }
      results[i] = std::move(s);
      continue;
    }
    const absl::Status& st = decided[b].status();
    if (alerts && absl::IsInvalidArgument(st)) {
      // As a check made before submission: the alert is refused.
      items[i].refused = ItemInputError(st, i);
      refuse(i);
      continue;
    }
    if (absl::IsInvalidArgument(st)) {
      // Validate passed, so only what the manager checks late; reported per
      // item, nothing of it stored.
      results[i] = absl::StrCat(
          "{\"action_id\":", items[i].action.id, ",\"error\":",
          ErrorObject(
              CodeName(st.code()),
              std::string_view(st.message().data(), st.message().size())),
          "}");
      continue;
    }
    if (IsLeaseBusy(st) || absl::IsAborted(st)) {
      requeue.push_back(i);  // decided by a worker later
      continue;
    }
    // A store error fails the whole batch: nothing of it was stored.
    return overloaded(st);
  }
  if (absl::Status st = enqueue_all(requeue); !st.ok()) return overloaded(st);
  return finish(200);
}

HttpAnswer Service::GetAction(const HttpRequest&, std::string_view id) {
  std::optional<int64_t> action_id = ParseId(id);
  if (!action_id) return BadId(id);
  absl::StatusOr<std::optional<Decision>> d = manager_->GetDecision(*action_id);
  if (!d.ok()) return ErrorAnswer(d.status());
  if (!d->has_value()) {
    // Queued and not yet decided?
    return ErrorAnswer(404, "not_found",
                       absl::StrCat("action ", *action_id,
                                    " has no decision (unknown, or still "
                                    "queued: see GET /v1/queues)"));
  }
  return Json(200, absl::StrCat("{\"decision\":", DecisionJson(**d), "}"));
}

namespace {

// A 400 answer naming a key of body object `o` that is not in `known`.
std::optional<HttpAnswer> UnknownBodyKey(
    const bj::object& o, std::initializer_list<std::string_view> known) {
  for (const auto& member : o) {
    const std::string_view key = ToStd(member.key());
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string names;
    for (std::string_view k : known) {
      absl::StrAppend(&names, names.empty() ? "" : ", ", Av(k));
    }
    return BadInput(InputError{
        std::string(key), absl::StrCat("unknown key (known: ", names, ")")});
  }
  return std::nullopt;
}

// The action id of the path and member `key` of the JSON object body, of
// JSON kind `kind` (named `kind_name` in the error); nullopt and *answer
// when either is refused.
std::optional<std::pair<int64_t, bj::value>> IdAndMember(
    std::string_view id, std::string_view body, std::string_view key,
    bj::kind kind, std::string_view kind_name, HttpAnswer* answer) {
  std::optional<int64_t> action_id = ParseId(id);
  if (!action_id) {
    *answer = BadId(id);
    return std::nullopt;
  }
  std::optional<bj::object> o = ObjectBody(body, answer);
  if (!o) return std::nullopt;
  if (auto bad = UnknownBodyKey(*o, {key})) {
    *answer = *std::move(bad);
    return std::nullopt;
  }
  const bj::value* v = o->if_contains(bj::string_view(key.data(), key.size()));
  if (v == nullptr || v->kind() != kind) {
    *answer = BadInput(InputError{
        std::string(key), v == nullptr
                              ? std::string("missing required key")
                              : absl::StrCat("expected ", Av(kind_name),
                                             ", got ", Av(KindName(*v)))});
    return std::nullopt;
  }
  return std::make_pair(*action_id, *v);
}

}  // namespace

HttpAnswer Service::PostStatus(const HttpRequest& r, std::string_view id) {
  HttpAnswer bad;
  auto input =
      IdAndMember(id, r.body, "status", bj::kind::string, "a string", &bad);
  if (!input) return bad;
  const std::string_view text = ToStd(input->second.get_string());
  absl::StatusOr<ActionStatus> status = ParseActionStatus(text);
  if (!status.ok()) {
    return BadInput(InputError{
        "status", absl::StrCat("unknown action status \"", Av(text),
                               "\" (expected an upstream status such as "
                               "running, success, failure)")});
  }
  absl::Status st = manager_->ReportStatus(input->first, *status);
  if (!st.ok()) return ErrorAnswer(st);
  return Json(200,
              absl::StrCat("{\"action_id\":", input->first, ",\"status\":\"",
                           Av(ToString(*status)), "\"}"));
}

HttpAnswer Service::PostApproval(const HttpRequest& r, std::string_view id) {
  HttpAnswer bad;
  auto input =
      IdAndMember(id, r.body, "approved", bj::kind::bool_, "a bool", &bad);
  if (!input) return bad;
  absl::StatusOr<Decision> d = input->second.get_bool()
                                   ? manager_->Approve(input->first)
                                   : manager_->Reject(input->first);
  if (!d.ok()) return ErrorAnswer(d.status());
  return Json(200, absl::StrCat("{\"decision\":", DecisionJson(*d), "}"));
}

HttpAnswer Service::ListInstances(const HttpRequest& r, std::string_view) {
  Query q;
  if (auto bad = QueryOf(r.target, {"open", "level", "after", "limit"}, &q)) {
    return *bad;
  }
  bool open = true;
  if (auto it = q.find("open"); it != q.end()) {
    if (it->second != "true" && it->second != "false") {
      return ErrorAnswer(400, "invalid_argument",
                         absl::StrCat("query parameter \"open\": expected "
                                      "true or false, got \"",
                                      it->second, "\""),
                         "open");
    }
    open = it->second == "true";
  }
  std::optional<ConvergeType> level;
  if (auto it = q.find("level"); it != q.end()) {
    absl::StatusOr<ConvergeType> t = ParseConvergeType(it->second);
    if (!t.ok()) {
      return ErrorAnswer(400, "invalid_argument",
                         absl::StrCat("query parameter \"level\": expected "
                                      "action or converge, got \"",
                                      it->second, "\""),
                         "level");
    }
    level = *t;
  }
  int64_t after = 0;
  int64_t limit = 100;
  if (auto bad = QueryInt(q, "after", 0, INT64_MAX, &after)) return *bad;
  if (auto bad = QueryInt(q, "limit", 1, 10000, &limit)) return *bad;
  std::vector<ConvergeInstance> out;
  int64_t cursor = after;
  bool more = true;
  // With `level`, a page may need many instances read to fill: the scan
  // stops after limits.max_scan_per_request (or `limit`, if larger)
  // instances read and answers what it found with `next` set, so that one
  // request does not hold a server thread over the whole table.
  const int64_t budget =
      std::max<int64_t>(limit, config_.limits.max_scan_per_request);
  int64_t scanned = 0;
  while (more && static_cast<int64_t>(out.size()) < limit && scanned < budget) {
    absl::StatusOr<std::vector<ConvergeInstance>> page =
        open ? store_.stores.repo->ListOpenAfter(cursor,
                                                 static_cast<size_t>(limit))
             : store_.stores.repo->ListEndedAfter(cursor,
                                                  static_cast<size_t>(limit));
    if (!page.ok()) return ErrorAnswer(page.status());
    more = static_cast<int64_t>(page->size()) == limit;
    for (size_t k = 0; k < page->size(); ++k) {
      ConvergeInstance& i = (*page)[k];
      cursor = i.id;
      ++scanned;
      if (!level || i.converge_type == *level) out.push_back(std::move(i));
      if (static_cast<int64_t>(out.size()) == limit || scanned == budget) {
        // Stopped inside the page: what is left of it comes next time.
        more = more || k + 1 < page->size();
        break;
      }
    }
  }
  std::string body = "{\"instances\":[";
  for (size_t i = 0; i < out.size(); ++i) {
    if (i > 0) body += ",";
    body += InstanceJson(out[i]);
  }
  const bool full = static_cast<int64_t>(out.size()) == limit;
  absl::StrAppend(
      &body, "],\"next\":",
      full || (more && scanned >= budget) ? absl::StrCat(cursor) : "null", "}");
  return Json(200, body);
}

HttpAnswer Service::GetInstance(const HttpRequest& r, std::string_view id) {
  std::optional<int64_t> converge_id = ParseId(id);
  if (!converge_id) return BadId(id);
  // The relations a page at a time: an instance of a long storm has one
  // per action it skipped.
  int64_t after = 0;
  int64_t limit = 1000;
  if (auto bad = AfterLimit(r.target, 10000, &after, &limit)) return *bad;
  absl::StatusOr<ConvergeInstance> inst =
      store_.stores.repo->GetInstance(*converge_id);
  if (!inst.ok()) return ErrorAnswer(inst.status());
  absl::StatusOr<std::vector<ConvergeRelation>> rel =
      store_.stores.repo->RelationsAfter(*converge_id, after,
                                         static_cast<size_t>(limit));
  if (!rel.ok()) return ErrorAnswer(rel.status());
  std::string body = InstanceJson(*inst);
  body.pop_back();
  body += ",\"relations\":[";
  for (size_t i = 0; i < rel->size(); ++i) {
    if (i > 0) body += ",";
    body += RelationJson((*rel)[i]);
  }
  const bool full = static_cast<int64_t>(rel->size()) == limit;
  return Json(200,
              absl::StrCat("{\"instance\":", body, "],\"relations_next\":",
                           full ? absl::StrCat(rel->back().id) : "null", "}}"));
}

HttpAnswer Service::EndInstance(const HttpRequest&, std::string_view id) {
  std::optional<int64_t> converge_id = ParseId(id);
  if (!converge_id) return BadId(id);
  absl::StatusOr<bool> ended = manager_->EndInstance(*converge_id);
  if (!ended.ok()) return ErrorAnswer(ended.status());
  return Json(200, absl::StrCat("{\"converge_id\":", *converge_id,
                                ",\"ended\":", *ended ? "true" : "false", "}"));
}

HttpAnswer Service::PageOf(const HttpRequest& r, const OutputKind* only) {
  int64_t after = 0;
  int64_t limit = 1000;
  if (auto bad = AfterLimit(r.target, 100000, &after, &limit)) return *bad;
  OutputPage page = outputs_.Read(after, static_cast<size_t>(limit), only);
  std::string body = "{\"items\":[";
  for (size_t i = 0; i < page.items.size(); ++i) {
    if (i > 0) body += ",";
    // Each line with its cursor.
    std::string& line = page.items[i].line;
    absl::StrAppend(&body, "{\"cursor\":", page.items[i].seq, ",",
                    Av(std::string_view(line).substr(1)));
  }
  absl::StrAppend(&body, "],\"next\":", page.next, ",\"missed\":", page.missed,
                  ",\"epoch\":", outputs_.epoch(), "}");
  return Json(200, body);
}

HttpAnswer Service::Decisions(const HttpRequest& r, std::string_view) {
  static constexpr OutputKind kKind = OutputKind::kDecision;
  return PageOf(r, &kKind);
}
HttpAnswer Service::Summaries(const HttpRequest& r, std::string_view) {
  static constexpr OutputKind kKind = OutputKind::kSummary;
  return PageOf(r, &kKind);
}
HttpAnswer Service::Outputs(const HttpRequest& r, std::string_view) {
  return PageOf(r, nullptr);
}

HttpAnswer Service::Queues(const HttpRequest&, std::string_view) {
  const std::string& queue = manager_->options().task_queue;
  QueueStore* qs = store_.stores.queue;
  absl::StatusOr<QueueStats> stats = qs->Stats(queue);
  if (!stats.ok()) return ErrorAnswer(stats.status());
  absl::StatusOr<std::vector<Task>> oldest = qs->ListPending(queue, 1);
  if (!oldest.ok()) return ErrorAnswer(oldest.status());
  absl::StatusOr<std::vector<Task>> dead = qs->ListDead(queue, kDeadShown);
  if (!dead.ok()) return ErrorAnswer(dead.status());
  const ProcessorStats ps = processor_->stats();
  std::string body = absl::StrCat(
      "{\"queues\":[{\"name\":", JsonString(queue),
      ",\"pending\":", stats->pending, ",\"in_flight\":", stats->in_flight,
      ",\"dead\":", stats->dead,
      ",\"oldest_due\":", oldest->empty() ? "null" : TaskJson(oldest->front()),
      ",\"dead_letters\":[");
  for (size_t i = 0; i < dead->size(); ++i) {
    if (i > 0) body += ",";
    body += TaskJson((*dead)[i]);
  }
  absl::StrAppend(&body, "]}],\"processor\":{\"workers\":", config_.workers,
                  ",\"processed\":", ps.processed,
                  ",\"requeued\":", ps.requeued, ",\"retried\":", ps.retried,
                  ",\"dead\":", ps.dead, ",\"stale\":", ps.stale,
                  ",\"errors\":", ps.errors,
                  "},\"http\":{\"in_flight\":", inflight_.load(), "}}");
  return Json(200, body);
}

HttpAnswer Service::Redrive(const HttpRequest& r, std::string_view) {
  const std::string& queue = manager_->options().task_queue;
  std::vector<std::string> ids;
  bool all = true;
  if (!absl::StripAsciiWhitespace(r.body).empty()) {
    HttpAnswer bad;
    std::optional<bj::object> o = ObjectBody(r.body, &bad);
    if (!o) return bad;
    // An empty body, or {"all": true}, means every dead letter; a body
    // that names neither (a misspelt key, {}) must not.
    if (auto unknown = UnknownBodyKey(*o, {"ids", "all"})) return *unknown;
    const bj::value* every = o->if_contains("all");
    if (every != nullptr && !(every->is_bool() && every->get_bool())) {
      return BadInput(InputError{
          "all",
          absl::StrCat("expected true (or leave it out and give "
                       "\"ids\"), got ",
                       every->is_bool() ? "false" : Av(KindName(*every)))});
    }
    if ((every == nullptr) == (o->if_contains("ids") == nullptr)) {
      return BadInput(
          InputError{"",
                     "give either \"ids\" (an array of task ids) or \"all\": "
                     "true (an empty body redrives all too)"});
    }
    all = every != nullptr;
    if (const bj::value* v = o->if_contains("ids"); v != nullptr) {
      if (!v->is_array()) {
        return BadInput(InputError{
            "ids", absl::StrCat("expected an array of task ids, got ",
                                Av(KindName(*v)))});
      }
      all = false;
      for (size_t i = 0; i < v->get_array().size(); ++i) {
        const bj::value& id = v->get_array()[i];
        if (!id.is_string()) {
          return BadInput(InputError{
              absl::StrCat("ids[", i, "]"),
              absl::StrCat("expected a string, got ", Av(KindName(id)))});
        }
        ids.emplace_back(ToStd(id.get_string()));
      }
      if (static_cast<int64_t>(ids.size()) >
          config_.limits.max_scan_per_request) {
        return ErrorAnswer(413, "resource_exhausted",
                           absl::StrCat("ids: ", ids.size(),
                                        " task ids in one request; "
                                        "limits.max_scan_per_request is ",
                                        config_.limits.max_scan_per_request),
                           "ids");
      }
    }
  }
  // All: at most limits.max_scan_per_request a request (each is a store
  // call on a server thread); "more" says whether dead letters are left.
  bool more = false;
  if (all) {
    const size_t most =
        static_cast<size_t>(config_.limits.max_scan_per_request);
    absl::StatusOr<std::vector<Task>> dead =
        store_.stores.queue->ListDead(queue, most + 1);
    if (!dead.ok()) return ErrorAnswer(dead.status());
    more = dead->size() > most;
    if (more) dead->resize(most);
    for (const Task& t : *dead) ids.push_back(t.id);
  }
  std::string redriven = "[";
  std::string missing = "[";
  const absl::Time now = clock_->Now();
  for (const std::string& id : ids) {
    absl::Status st = store_.stores.queue->Redrive(queue, id, now);
    if (absl::IsNotFound(st)) {
      if (missing.size() > 1) missing += ",";
      missing += JsonString(id);
      continue;
    }
    if (!st.ok()) return ErrorAnswer(st);
    if (redriven.size() > 1) redriven += ",";
    redriven += JsonString(id);
  }
  return Json(
      200, absl::StrCat("{\"redriven\":", redriven, "],\"not_found\":", missing,
                        "],\"more\":", more ? "true" : "false", "}"));
}

HttpAnswer Service::Locks(const HttpRequest& r, std::string_view) {
  Query q;
  if (auto bad = QueryOf(r.target, {"prefix", "limit"}, &q)) return *bad;
  std::string prefix;
  if (auto it = q.find("prefix"); it != q.end()) prefix = it->second;
  int64_t limit = 1000;
  if (auto bad = QueryInt(q, "limit", 1, 10000, &limit)) return *bad;
  // Every lease of the store (every process sharing it); for the ones this
  // process holds, also when it took them.
  // One more than asked: whether there are more.
  absl::StatusOr<std::vector<LeaseInfo>> leases =
      store_.stores.lock->ListLeases(prefix, static_cast<size_t>(limit) + 1);
  if (!leases.ok()) return ErrorAnswer(leases.status());
  const bool truncated = static_cast<int64_t>(leases->size()) > limit;
  if (truncated) leases->resize(static_cast<size_t>(limit));
  std::map<std::string, HeldLease> mine;
  for (HeldLease& l : leases_.Held()) mine.emplace(l.key, std::move(l));
  const absl::Time now = clock_->Now();
  std::string body = "{\"scope\":\"store\",\"locks\":[";
  for (size_t i = 0; i < leases->size(); ++i) {
    const LeaseInfo& l = (*leases)[i];
    if (i > 0) body += ",";
    absl::StrAppend(
        &body, "{\"key\":", JsonString(l.key),
        ",\"token\":", JsonString(l.token),
        ",\"expires\":", TimeJson(l.expires_at),
        ",\"expires_in_seconds\":", absl::ToDoubleSeconds(l.expires_at - now));
    auto own = mine.find(l.key);
    if (own != mine.end() && own->second.token == l.token) {
      absl::StrAppend(&body, ",\"this_process\":true,\"acquired\":",
                      TimeJson(own->second.acquired), ",\"age_seconds\":",
                      absl::ToDoubleSeconds(now - own->second.acquired));
    } else {
      body += ",\"this_process\":false";
    }
    body += "}";
  }
  absl::StrAppend(&body, "],\"truncated\":", truncated ? "true" : "false", "}");
  return Json(200, body);
}

std::optional<HttpAnswer> Service::TooManyAlerts(size_t n) const {
  if (static_cast<int64_t>(n) <= config_.limits.max_actions_per_request) {
    return std::nullopt;
  }
  return ErrorAnswer(413, "resource_exhausted",
                     absl::StrCat(n,
                                  " alerts in one request; "
                                  "limits.max_actions_per_request is ",
                                  config_.limits.max_actions_per_request));
}

HttpAnswer Service::AlertsV2(const HttpRequest& r, std::string_view) {
  InputError error;
  std::optional<std::vector<Alert>> alerts = ParseAlertsV2(r.body, &error);
  if (!alerts) return BadInput(error);
  if (std::optional<HttpAnswer> big = TooManyAlerts(alerts->size())) {
    return *big;
  }
  alerts_received_ += static_cast<int64_t>(alerts->size());
  const absl::Time now = clock_->Now();
  std::vector<Item> items;
  items.reserve(alerts->size());
  // As Alertmanager: the valid alerts are taken, the invalid ones listed
  // in a 400.
  for (size_t i = 0; i < alerts->size(); ++i) {
    const Alert& a = (*alerts)[i];
    Item item{AlertToAction(a, now, config_.alertmanager.plugin_type),
              &config_.alertmanager.converge_config, "", std::nullopt};
    item.fingerprint = item.action.alerts.front();
    item.refused = a.invalid;
    if (!item.refused) {
      absl::Status valid = manager_->Validate(item.action, *item.config);
      if (!valid.ok()) item.refused = ItemInputError(valid, i);
    }
    items.push_back(std::move(item));
  }
  return SubmitItems(items, r, /*alerts=*/true);
}

HttpAnswer Service::AlertmanagerWebhook(const HttpRequest& r,
                                        std::string_view) {
  InputError error;
  std::optional<std::vector<Alert>> alerts =
      ParseAlertmanagerWebhook(r.body, &error);
  if (!alerts) return BadInput(error);
  if (std::optional<HttpAnswer> big = TooManyAlerts(alerts->size())) {
    return *big;
  }
  alerts_received_ += static_cast<int64_t>(alerts->size());
  const absl::Time now = clock_->Now();
  std::vector<Item> items;
  for (size_t i = 0; i < alerts->size(); ++i) {
    const Alert& a = (*alerts)[i];
    Item item{AlertToAction(a, now, config_.alertmanager.plugin_type),
              &config_.alertmanager.converge_config, "", std::nullopt};
    item.fingerprint = item.action.alerts.front();
    if (!a.fingerprint.empty() && a.fingerprint != item.fingerprint) {
      return BadInput(
          InputError{absl::StrCat("alerts[", i, "].fingerprint"),
                     absl::StrCat("\"", a.fingerprint,
                                  "\" is not the fingerprint of the alert's "
                                  "labels (",
                                  item.fingerprint, ")")});
    }
    absl::Status valid = manager_->Validate(item.action, *item.config);
    if (!valid.ok()) {
      std::optional<InputError> e = cli::InputErrorFromStatus(valid);
      return BadInput(e ? *e : InputError{"", std::string(valid.message())},
                      absl::StrCat("alerts[", i, "]"));
    }
    items.push_back(std::move(item));
  }
  return SubmitItems(items, r);
}

}  // namespace converge::service
