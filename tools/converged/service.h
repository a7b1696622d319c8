// Service: converged's API without the transport. It owns the store, the
// ConvergeManager, the Processor, the output log and the webhook pusher,
// and answers one parsed HTTP request at a time (Handle); http_server.h
// puts it on the network. docs/http-api.md documents every route.
//
// Thread safety: Handle may be called from any number of threads at once.
// Start and Stop from one thread.

#ifndef CONVERGE_TOOLS_CONVERGED_SERVICE_H_
#define CONVERGE_TOOLS_CONVERGED_SERVICE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "config.h"
#include "converge/clock.h"
#include "converge/manager.h"
#include "converge/metrics.h"
#include "converge/processor.h"
#include "events.h"
#include "lease_tracker.h"
#include "output_log.h"
#include "store_uri.h"
#include "webhook.h"

namespace converge::service {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query: "/v1/instances?open=true"
  std::string body;
};

struct HttpAnswer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Seconds for a Retry-After header; < 0 = none.
  int64_t retry_after = -1;
  // For 405: the methods the route takes.
  std::string allow;
};

// The error body: {"error":{"code":"invalid_argument","message":"...",
// "field":"..."}} (field only when known), with the HTTP status for the
// absl code (400, 404, 409, 429, 500, 503, 504).
HttpAnswer ErrorAnswer(const absl::Status& status, std::string_view field = "");
HttpAnswer ErrorAnswer(int http_status, std::string_view code,
                       std::string_view message, std::string_view field = "");
// The object inside: {"code":...,"message":...,"field":...}, as a batch's
// per-item results carry it ({"action_id":N,"error":{...}}).
std::string ErrorObject(std::string_view code, std::string_view message,
                        std::string_view field = "");
int HttpStatusFor(absl::StatusCode code);

class Service {
 public:
  // Opens the store and makes the manager and the processor (not yet
  // running). `clock` must outlive the service.
  static absl::StatusOr<std::unique_ptr<Service>> Create(ServiceConfig config,
                                                         const Clock* clock);
  ~Service();

  // Starts the processor's workers (unless workers is 0) and the webhook
  // pusher.
  absl::Status Start();
  // Stops the workers after their current task (what is queued stays in
  // the store) and gives the webhook up to `flush_for` to deliver what is
  // in the log.
  void Stop(absl::Duration flush_for);

  HttpAnswer Handle(const HttpRequest& request);

  // True for routes that are never refused for load or drain (health,
  // readiness, metrics).
  static bool IsOperational(std::string_view target);

  // SIGTERM: /readyz answers 503 from now on.
  void BeginDrain() { draining_ = true; }
  bool draining() const { return draining_.load(); }

  // Transport counters, rendered on /metrics.
  void RecordHttpStatus(int status);
  std::atomic<int64_t>& inflight() { return inflight_; }

  const ServiceConfig& config() const { return config_; }
  ConvergeManager* manager() { return manager_.get(); }
  Processor* processor() { return processor_.get(); }
  OutputLog* outputs() { return &outputs_; }

 private:
  struct Route;
  Service(ServiceConfig config, const Clock* clock);

  HttpAnswer Healthz(const HttpRequest& r, std::string_view id);
  HttpAnswer Readyz(const HttpRequest& r, std::string_view id);
  HttpAnswer MetricsText(const HttpRequest& r, std::string_view id);
  HttpAnswer PostActions(const HttpRequest& r, std::string_view id);
  HttpAnswer GetAction(const HttpRequest& r, std::string_view id);
  HttpAnswer PostStatus(const HttpRequest& r, std::string_view id);
  HttpAnswer PostApproval(const HttpRequest& r, std::string_view id);
  HttpAnswer ListInstances(const HttpRequest& r, std::string_view id);
  HttpAnswer GetInstance(const HttpRequest& r, std::string_view id);
  HttpAnswer EndInstance(const HttpRequest& r, std::string_view id);
  HttpAnswer Decisions(const HttpRequest& r, std::string_view id);
  HttpAnswer Summaries(const HttpRequest& r, std::string_view id);
  HttpAnswer Outputs(const HttpRequest& r, std::string_view id);
  HttpAnswer Queues(const HttpRequest& r, std::string_view id);
  HttpAnswer Redrive(const HttpRequest& r, std::string_view id);
  HttpAnswer Locks(const HttpRequest& r, std::string_view id);
  // 413 when an Alertmanager payload has more than
  // limits.max_actions_per_request alerts.
  std::optional<HttpAnswer> TooManyAlerts(size_t n) const;
  HttpAnswer AlertsV2(const HttpRequest& r, std::string_view id);
  HttpAnswer AlertmanagerWebhook(const HttpRequest& r, std::string_view id);

  // One action to submit, and where it came from (an alert's fingerprint).
  struct Item {
    Action action;
    const ConvergeConfig* config = nullptr;
    std::string fingerprint;
    // Set: refused before submission (POST /api/v2/alerts takes a batch's
    // valid alerts, as Alertmanager does); its result is this error.
    std::optional<cli::InputError> refused;
  };
  // Decides (sync) or queues the items; the answer lists one result per
  // item in order. With a refused item it is a 400 whose body also has
  // the results of the others. `alerts` (POST /api/v2/alerts): an item
  // refused while it is decided (kInvalidArgument) counts as refused too,
  // a refused item's result has no action_id (the id of an alert whose
  // invalid labels were dropped can be another alert's), and refused
  // items count in converged_alerts_invalid_total.
  HttpAnswer SubmitItems(std::vector<Item>& items, const HttpRequest& r,
                         bool alerts = false);
  HttpAnswer PageOf(const HttpRequest& r, const OutputKind* only);
  // 503 when the task queue is at max_queue_length (cached for 250 ms).
  std::optional<HttpAnswer> QueueFull();

  ServiceConfig config_;
  const Clock* clock_;
  tools::OpenedStore store_;
  LeaseTracker leases_;
  std::unique_ptr<TrackingLockStore> lock_;
  std::unique_ptr<TrackingWindowStore> window_;
  Metrics metrics_;
  OutputLog outputs_;
  std::unique_ptr<ConvergeManager> manager_;
  std::unique_ptr<Processor> processor_;
  std::unique_ptr<WebhookPusher> webhook_;
  std::optional<ConvergeConfig> default_config_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> inflight_{0};
  std::atomic<int64_t> alerts_received_{0};
  std::atomic<int64_t> alerts_invalid_{0};
  std::atomic<int64_t> actions_received_{0};
  // Requests answered, by status (index into kTrackedStatuses; the last
  // slot counts the others).
  std::array<std::atomic<int64_t>, 16> http_status_{};
  std::mutex queue_mu_;
  absl::Time queue_checked_ = absl::InfinitePast();
  int64_t queue_pending_ = 0;
};

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_SERVICE_H_
