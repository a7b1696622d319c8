// The configuration of converged (docs/http-api.md, "Configuration").
//
// A JSON object; every key is optional and has the default written below,
// so `{}` and `{"listen":"127.0.0.1:9117","store":"sqlite:PATH"}` are
// complete configs. Unknown keys are refused (a typo must not silently fall
// back to a default); wrong types and values out of range are
// kInvalidArgument naming the key path ("config: limits.max_body_bytes:
// expected an integer, got string").
//
// Thread safety: plain value types and a free function.

#ifndef CONVERGE_TOOLS_CONVERGED_CONFIG_H_
#define CONVERGE_TOOLS_CONVERGED_CONFIG_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/config.h"
#include "converge/processor.h"

namespace converge::service {

// How POST /v1/actions answers.
enum class SubmitMode {
  kSync,    // decides the actions before it answers (200, the decisions)
  kQueued,  // queues them on the processor and answers 202 with their ids
};

struct LimitsConfig {
  // Largest request body; larger is 413. Default 4 MiB.
  int64_t max_body_bytes = 4 << 20;
  // Requests whose headers have arrived and that are not yet answered, over
  // every connection; one more is answered 429 with Retry-After. The
  // operational endpoints (/healthz, /readyz, /metrics) do not count and are
  // never refused. Default 256.
  int64_t max_inflight_requests = 256;
  // Pending tasks of the task queue at or above which new actions are
  // refused with 503 and Retry-After (queued mode, and the overflow of sync
  // mode). 0 = no limit. Default 1,000,000.
  int64_t max_queue_length = 1'000'000;
  // Actions (or alerts) in one request; more is 413. Default 10,000.
  int64_t max_actions_per_request = 10'000;
  // Open connections. A connection accepted while this many are open is
  // answered 503 with Retry-After and closed. Default 1,024.
  int64_t max_connections = 1024;
  // A client must send a request's headers within this time of the
  // connection opening (or of its previous response), and its body within
  // body_timeout of the headers, else the connection is closed (408 when
  // a request had begun). Defaults 10 s and 30 s.
  absl::Duration header_timeout = absl::Seconds(10);
  absl::Duration body_timeout = absl::Seconds(30);
  // An idle keep-alive connection is closed after this long. Default 60 s.
  absl::Duration idle_timeout = absl::Seconds(60);
  // The Retry-After of 429 and 503 answers, whole seconds. Default 1.
  int64_t retry_after_seconds = 1;
  // Rows one listing request may read from the store beyond what it
  // answers (GET /v1/instances with `level`): the scan stops there and the
  // answer's `next` says where to go on. Also the most dead letters one
  // redrive of all moves (the answer says whether more are left). At least
  // the request's `limit` is read. Default 10,000.
  int64_t max_scan_per_request = 10'000;
};

struct WebhookConfig {
  // "http://HOST:PORT/PATH" to POST every output (decision, instance event,
  // summary) to, in batches; empty = no push. Default empty.
  std::string url;
  // Outputs per POST (a JSON object {"outputs":[...]}). Default 100.
  int64_t batch = 100;
  // One POST's connect/read/write timeout. Default 5 s.
  absl::Duration timeout = absl::Seconds(5);
  // Retry backoff after a failed POST (a transport error or a non-2xx
  // answer): backoff_min doubling up to backoff_max; the batch is retried
  // until it is delivered or falls out of the output buffer (counted as
  // dropped). Defaults 100 ms .. 30 s.
  absl::Duration backoff_min = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(30);
};

struct OutputsConfig {
  // Outputs kept in memory for GET /v1/decisions and /v1/summaries and the
  // webhook (each list keeps this many, oldest dropped first). Default
  // 100,000.
  int64_t buffer = 100'000;
  // A file (SQLite, of its own) that keeps the outputs, their numbering
  // and the webhook's cursor across restarts; empty = in memory only.
  // Outputs become readable once written there. Default empty.
  std::string file;
  WebhookConfig webhook;
};

// How Alertmanager alerts become actions (docs/http-api.md, "Alertmanager
// compatibility").
struct AlertmanagerConfig {
  // The converge_config every alert's action is decided under, as upstream
  // stores it. Default: collect, 60 s window, count 1, grouped by
  // alertname:
  //   {"is_enabled":true,"converge_func":"collect","timedelta":60,
  //    "count":1,"condition":[{"dimension":"labels.alertname",
  //    "value":["self"]}]}
  std::string converge_config_json;
  ConvergeConfig converge_config;
  // The action's plugin_type. Default "notice".
  std::string plugin_type = "notice";
};

struct ServiceConfig {
  // "HOST:PORT" to listen on; port 0 picks a free port. Default
  // "127.0.0.1:9117".
  std::string listen = "127.0.0.1:9117";
  // Store URI (docs/cli.md): "sqlite:PATH", "redis://..." or "memory:". Default
  // "sqlite:converged.db" (in the working directory).
  std::string store = "sqlite:converged.db";
  // Where the instances and relations live when `store` has no repo
  // (redis://...: "repo":"sqlite:PATH"); empty (default) = in `store`.
  std::string repo;
  // "sync" (default) or "queued"; a request may override it with
  // ?mode=sync|queued.
  SubmitMode mode = SubmitMode::kSync;
  // Threads of the HTTP event loop (they also run sync decisions).
  // Default 2.
  int http_threads = 2;
  // "plain" (default) or "bkmonitor" (converge/config.h, Profile).
  Profile profile = Profile::kPlain;
  // converge_config of a POST /v1/actions action that carries none, as a
  // JSON object; empty (default) = such an action is a 400.
  std::string default_converge_config;
  // The processor: "queue": {"workers", "visibility_timeout_ms",
  // "max_attempts", "retry_backoff_min_ms", "retry_backoff_max_ms",
  // "contention_delay_ms", "sweep_interval_ms", "retention_interval_ms"}.
  // Defaults: ProcessorOptions' (converge/processor.h), workers 2.
  // workers 0 runs no worker: tasks wait for another process on the store.
  ProcessorOptions processor;
  int workers = 2;
  LimitsConfig limits;
  OutputsConfig outputs;
  AlertmanagerConfig alertmanager;
  // SIGTERM: how long answering the requests in flight may take before the
  // process exits anyway (what was queued stays in the store). Default
  // 10 s.
  absl::Duration drain_timeout = absl::Seconds(10);
};

// The default Alertmanager converge_config (see AlertmanagerConfig).
inline constexpr std::string_view kDefaultAlertConvergeConfig =
    R"({"is_enabled":true,"converge_func":"collect","timedelta":60,)"
    R"("count":1,"condition":[{"dimension":"labels.alertname",)"
    R"("value":["self"]}]})";

// The defaults (what `{}` gives).
ServiceConfig DefaultServiceConfig();

// Parses a config file's text. kInvalidArgument naming the key path.
absl::StatusOr<ServiceConfig> ParseServiceConfig(std::string_view text);

// Splits "HOST:PORT" ("[::1]:80" for IPv6). kInvalidArgument naming
// `field`.
absl::Status SplitHostPort(std::string_view address, std::string_view field,
                           std::string* host, uint16_t* port);

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_CONFIG_H_
