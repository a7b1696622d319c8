// WebhookPusher: sends the outputs of an OutputLog (decisions, instance
// events, summaries) to a webhook URL, in order, in batches of
// {"outputs":[...]} POSTs, retrying a failed POST (transport error or
// non-2xx) with a doubling backoff until it succeeds. Outputs that fall out
// of the log's buffer before they were sent are counted as dropped.
// Delivery is at-least-once: a POST whose answer was lost is sent again.
// With an output file (`outputs.file`) the pusher starts from the cursor
// the last run reached, so what was not delivered before a restart is
// delivered after it.
//
// Thread safety: Start and Stop from one thread; the counters from any.

#ifndef CONVERGE_TOOLS_CONVERGED_WEBHOOK_H_
#define CONVERGE_TOOLS_CONVERGED_WEBHOOK_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "config.h"
#include "output_log.h"

namespace converge::service {

class WebhookPusher {
 public:
  // kInvalidArgument for a URL that is not http://HOST[:PORT][/PATH].
  static absl::StatusOr<std::unique_ptr<WebhookPusher>> Create(
      const WebhookConfig& config, OutputLog* log);
  ~WebhookPusher();

  void Start();
  // Stops after trying, for at most `flush_for`, to deliver what is
  // already in the log.
  void Stop(absl::Duration flush_for);

  int64_t sent() const { return sent_.load(); }          // outputs
  int64_t failures() const { return failures_.load(); }  // failed POSTs
  int64_t dropped() const { return dropped_.load(); }    // outputs
  int64_t cursor() const { return cursor_.load(); }

 private:
  WebhookPusher(const WebhookConfig& config, OutputLog* log)
      : config_(config), log_(log) {}
  void Run();
  // One POST of the next batch; true when it was delivered (or nothing was
  // to send).
  bool PushOnce();

  WebhookConfig config_;
  OutputLog* log_;
  std::string host_;
  uint16_t port_ = 0;
  std::string target_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  absl::Time flush_deadline_ = absl::InfiniteFuture();
  std::atomic<int64_t> cursor_{0};
  std::atomic<int64_t> sent_{0};
  std::atomic<int64_t> failures_{0};
  std::atomic<int64_t> dropped_{0};
};

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_WEBHOOK_H_
