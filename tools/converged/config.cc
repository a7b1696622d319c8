#include "config.h"

#include <boost/json.hpp>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "converge/json/json.h"
#include "json_util.h"

namespace converge::service {
namespace {

namespace bj = boost::json;
using cli::Av;
using cli::KindName;
using cli::ToStd;

absl::Status Bad(std::string_view path, std::string_view detail) {
  return absl::InvalidArgumentError(
      absl::StrCat("config: ", Av(path), ": ", Av(detail)));
}

std::string Join(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(Av(parent), ".", Av(key));
}

// Refuses keys of `o` not in `known`.
absl::Status CheckKeys(const bj::object& o, std::string_view path,
                       std::initializer_list<std::string_view> known) {
  for (const auto& kv : o) {
    const std::string_view key = ToStd(kv.key());
    bool found = false;
    for (std::string_view k : known) found = found || k == key;
    if (!found) {
      std::string names;
      for (std::string_view k : known) {
        absl::StrAppend(&names, names.empty() ? "" : ", ", Av(k));
      }
      return Bad(Join(path, key),
                 absl::StrCat("unknown key (known: ", names, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status ReadInt(const bj::object& o, std::string_view path,
                     std::string_view key, int64_t min, int64_t* out) {
  const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  const std::string field = Join(path, key);
  int64_t n = 0;
  if (v->is_int64()) {
    n = v->get_int64();
  } else if (v->is_uint64() && v->get_uint64() <= INT64_MAX) {
    n = static_cast<int64_t>(v->get_uint64());
  } else {
    return Bad(field,
               absl::StrCat("expected an integer, got ", Av(KindName(*v))));
  }
  if (n < min) return Bad(field, absl::StrCat("must be >= ", min, ", got ", n));
  *out = n;
  return absl::OkStatus();
}

absl::Status ReadInt(const bj::object& o, std::string_view path,
                     std::string_view key, int64_t min, int* out) {
  int64_t n = *out;
  absl::Status st = ReadInt(o, path, key, min, &n);
  if (!st.ok()) return st;
  if (n > 1'000'000) {
    return Bad(Join(path, key), absl::StrCat("must be <= 1000000, got ", n));
  }
  *out = static_cast<int>(n);
  return absl::OkStatus();
}

// Milliseconds, at most kMaxMs (about 31 years): the server's timers and
// waits add them to the steady clock's nanoseconds, which must not
// overflow.
constexpr int64_t kMaxMs = 1'000'000'000'000;
absl::Status ReadMs(const bj::object& o, std::string_view path,
                    std::string_view key, int64_t min, absl::Duration* out) {
  int64_t ms = absl::ToInt64Milliseconds(*out);
  absl::Status st = ReadInt(o, path, key, min, &ms);
  if (!st.ok()) return st;
  if (ms > kMaxMs) {
    return Bad(Join(path, key), absl::StrCat("must be <= ", kMaxMs,
                                             " (milliseconds), got ", ms));
  }
  *out = absl::Milliseconds(ms);
  return absl::OkStatus();
}

absl::Status ReadString(const bj::object& o, std::string_view path,
                        std::string_view key, std::string* out) {
  const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  if (!v->is_string()) {
    return Bad(Join(path, key),
               absl::StrCat("expected a string, got ", Av(KindName(*v))));
  }
  *out = std::string(ToStd(v->get_string()));
  return absl::OkStatus();
}

// An object member, or null when absent; a non-object is an error.
absl::StatusOr<const bj::object*> ReadObject(const bj::object& o,
                                             std::string_view path,
                                             std::string_view key) {
  const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) return nullptr;
  if (!v->is_object()) {
    return Bad(Join(path, key),
               absl::StrCat("expected an object, got ", Av(KindName(*v))));
  }
  return &v->get_object();
}

#define CONVERGED_RETURN_IF_ERROR(expr) \
  do {                                  \
    absl::Status _st = (expr);          \
    if (!_st.ok()) return _st;          \
  } while (0)

absl::Status ReadLimits(const bj::object& o, LimitsConfig* l) {
  constexpr std::string_view p = "limits";
  CONVERGED_RETURN_IF_ERROR(
      CheckKeys(o, p,
                {"max_body_bytes", "max_inflight_requests", "max_queue_length",
                 "max_actions_per_request", "max_connections",
                 "header_timeout_ms", "body_timeout_ms", "idle_timeout_ms",
                 "retry_after_seconds", "max_scan_per_request"}));
  CONVERGED_RETURN_IF_ERROR(
      ReadInt(o, p, "max_body_bytes", 1, &l->max_body_bytes));
  CONVERGED_RETURN_IF_ERROR(
      ReadInt(o, p, "max_inflight_requests", 1, &l->max_inflight_requests));
  CONVERGED_RETURN_IF_ERROR(
      ReadInt(o, p, "max_queue_length", 0, &l->max_queue_length));
  CONVERGED_RETURN_IF_ERROR(
      ReadInt(o, p, "max_actions_per_request", 1, &l->max_actions_per_request));
  CONVERGED_RETURN_IF_ERROR(
      ReadInt(o, p, "max_connections", 1, &l->max_connections));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "header_timeout_ms", 1, &l->header_timeout));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "body_timeout_ms", 1, &l->body_timeout));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "idle_timeout_ms", 1, &l->idle_timeout));
  CONVERGED_RETURN_IF_ERROR(
      ReadInt(o, p, "max_scan_per_request", 1, &l->max_scan_per_request));
  return ReadInt(o, p, "retry_after_seconds", 0, &l->retry_after_seconds);
}

absl::Status ReadQueue(const bj::object& o, ServiceConfig* c) {
  constexpr std::string_view p = "queue";
  CONVERGED_RETURN_IF_ERROR(CheckKeys(
      o, p,
      {"workers", "visibility_timeout_ms", "max_attempts",
       "retry_backoff_min_ms", "retry_backoff_max_ms", "contention_delay_ms",
       "sweep_interval_ms", "retention_interval_ms", "idle_wait_ms"}));
  ProcessorOptions& q = c->processor;
  CONVERGED_RETURN_IF_ERROR(ReadInt(o, p, "workers", 0, &c->workers));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "visibility_timeout_ms", 1, &q.visibility_timeout));
  CONVERGED_RETURN_IF_ERROR(ReadInt(o, p, "max_attempts", 1, &q.max_attempts));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "retry_backoff_min_ms", 0, &q.retry_backoff_min));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "retry_backoff_max_ms", 0, &q.retry_backoff_max));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "contention_delay_ms", 1, &q.contention_delay));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "sweep_interval_ms", 0, &q.sweep_interval));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, p, "retention_interval_ms", 0, &q.retention_interval));
  CONVERGED_RETURN_IF_ERROR(ReadMs(o, p, "idle_wait_ms", 1, &q.idle_wait));
  if (q.retry_backoff_max < q.retry_backoff_min) {
    return Bad("queue.retry_backoff_max_ms",
               "must be >= queue.retry_backoff_min_ms");
  }
  return absl::OkStatus();
}

absl::Status ReadOutputs(const bj::object& o, OutputsConfig* out) {
  CONVERGED_RETURN_IF_ERROR(
      CheckKeys(o, "outputs", {"buffer", "file", "webhook"}));
  CONVERGED_RETURN_IF_ERROR(ReadInt(o, "outputs", "buffer", 1, &out->buffer));
  CONVERGED_RETURN_IF_ERROR(ReadString(o, "outputs", "file", &out->file));
  absl::StatusOr<const bj::object*> hook = ReadObject(o, "outputs", "webhook");
  if (!hook.ok()) return hook.status();
  if (*hook == nullptr) return absl::OkStatus();
  constexpr std::string_view p = "outputs.webhook";
  WebhookConfig& w = out->webhook;
  CONVERGED_RETURN_IF_ERROR(CheckKeys(
      **hook, p,
      {"url", "batch", "timeout_ms", "backoff_min_ms", "backoff_max_ms"}));
  CONVERGED_RETURN_IF_ERROR(ReadString(**hook, p, "url", &w.url));
  CONVERGED_RETURN_IF_ERROR(ReadInt(**hook, p, "batch", 1, &w.batch));
  CONVERGED_RETURN_IF_ERROR(ReadMs(**hook, p, "timeout_ms", 1, &w.timeout));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(**hook, p, "backoff_min_ms", 1, &w.backoff_min));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(**hook, p, "backoff_max_ms", 1, &w.backoff_max));
  if (w.backoff_max < w.backoff_min) {
    return Bad("outputs.webhook.backoff_max_ms",
               "must be >= outputs.webhook.backoff_min_ms");
  }
  if (!w.url.empty() && w.url.rfind("http://", 0) != 0) {
    return Bad("outputs.webhook.url",
               absl::StrCat("expected an http:// URL, got \"", w.url, "\""));
  }
  return absl::OkStatus();
}

// A converge_config member, kept as compact JSON text after it parsed.
absl::Status ReadConvergeConfig(const bj::object& o, std::string_view path,
                                std::string_view key, std::string* text,
                                ConvergeConfig* parsed) {
  const bj::value* v = o.if_contains(bj::string_view(key.data(), key.size()));
  if (v == nullptr || v->is_null()) return absl::OkStatus();
  const std::string field = Join(path, key);
  if (!v->is_object()) {
    return Bad(field,
               absl::StrCat("expected an object, got ", Av(KindName(*v))));
  }
  *text = bj::serialize(*v);
  absl::StatusOr<ConvergeConfig> config =
      json::ParseConvergeConfig(*text, field);
  if (!config.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: ", config.status().message()));
  }
  if (parsed != nullptr) *parsed = *std::move(config);
  return absl::OkStatus();
}

}  // namespace

ServiceConfig DefaultServiceConfig() {
  ServiceConfig c;
  c.alertmanager.converge_config_json =
      std::string(kDefaultAlertConvergeConfig);
  c.alertmanager.converge_config =
      json::ParseConvergeConfig(kDefaultAlertConvergeConfig).value();
  return c;
}

absl::StatusOr<ServiceConfig> ParseServiceConfig(std::string_view text) {
  ServiceConfig c = DefaultServiceConfig();
  boost::system::error_code ec;
  bj::value doc = bj::parse(bj::string_view(text.data(), text.size()), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("config: malformed JSON: ", ec.message()));
  }
  if (!doc.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config: expected a JSON object, got ", Av(KindName(doc))));
  }
  const bj::object& o = doc.get_object();
  CONVERGED_RETURN_IF_ERROR(
      CheckKeys(o, "",
                {"listen", "store", "repo", "mode", "http_threads", "profile",
                 "default_converge_config", "queue", "limits", "outputs",
                 "alertmanager", "drain_timeout_ms"}));
  CONVERGED_RETURN_IF_ERROR(ReadString(o, "", "listen", &c.listen));
  std::string host;
  uint16_t port = 0;
  CONVERGED_RETURN_IF_ERROR(SplitHostPort(c.listen, "listen", &host, &port));
  CONVERGED_RETURN_IF_ERROR(ReadString(o, "", "store", &c.store));
  CONVERGED_RETURN_IF_ERROR(ReadString(o, "", "repo", &c.repo));
  std::string mode = "sync";
  CONVERGED_RETURN_IF_ERROR(ReadString(o, "", "mode", &mode));
  if (mode == "sync") {
    c.mode = SubmitMode::kSync;
  } else if (mode == "queued") {
    c.mode = SubmitMode::kQueued;
  } else {
    return Bad("mode", absl::StrCat("expected \"sync\" or \"queued\", got \"",
                                    mode, "\""));
  }
  CONVERGED_RETURN_IF_ERROR(ReadInt(o, "", "http_threads", 1, &c.http_threads));
  std::string profile = "plain";
  CONVERGED_RETURN_IF_ERROR(ReadString(o, "", "profile", &profile));
  if (profile == "plain") {
    c.profile = Profile::kPlain;
  } else if (profile == "bkmonitor") {
    c.profile = Profile::kBkmonitor;
  } else {
    return Bad("profile", absl::StrCat("expected \"plain\" or \"bkmonitor\", "
                                       "got \"",
                                       profile, "\""));
  }
  CONVERGED_RETURN_IF_ERROR(ReadConvergeConfig(
      o, "", "default_converge_config", &c.default_converge_config, nullptr));
  CONVERGED_RETURN_IF_ERROR(
      ReadMs(o, "", "drain_timeout_ms", 0, &c.drain_timeout));

  absl::StatusOr<const bj::object*> sub = ReadObject(o, "", "queue");
  if (!sub.ok()) return sub.status();
  if (*sub != nullptr) CONVERGED_RETURN_IF_ERROR(ReadQueue(**sub, &c));
  sub = ReadObject(o, "", "limits");
  if (!sub.ok()) return sub.status();
  if (*sub != nullptr) CONVERGED_RETURN_IF_ERROR(ReadLimits(**sub, &c.limits));
  sub = ReadObject(o, "", "outputs");
  if (!sub.ok()) return sub.status();
  if (*sub != nullptr)
    CONVERGED_RETURN_IF_ERROR(ReadOutputs(**sub, &c.outputs));
  sub = ReadObject(o, "", "alertmanager");
  if (!sub.ok()) return sub.status();
  if (*sub != nullptr) {
    CONVERGED_RETURN_IF_ERROR(
        CheckKeys(**sub, "alertmanager", {"converge_config", "plugin_type"}));
    CONVERGED_RETURN_IF_ERROR(ReadConvergeConfig(
        **sub, "alertmanager", "converge_config",
        &c.alertmanager.converge_config_json, &c.alertmanager.converge_config));
    CONVERGED_RETURN_IF_ERROR(ReadString(**sub, "alertmanager", "plugin_type",
                                         &c.alertmanager.plugin_type));
  }
  c.processor.threads = c.workers > 0 ? c.workers : 1;
  return c;
}

absl::Status SplitHostPort(std::string_view address, std::string_view field,
                           std::string* host, uint16_t* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Bad(field,
               absl::StrCat("expected HOST:PORT, got \"", Av(address), "\""));
  }
  std::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  uint32_t p = 0;
  if (!absl::SimpleAtoi(Av(address.substr(colon + 1)), &p) || p > 65535) {
    return Bad(field, absl::StrCat("bad port in \"", Av(address), "\""));
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(p);
  return absl::OkStatus();
}

}  // namespace converge::service
