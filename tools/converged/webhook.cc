#include "webhook.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "http_client.h"

namespace converge::service {

absl::StatusOr<std::unique_ptr<WebhookPusher>> WebhookPusher::Create(
    const WebhookConfig& config, OutputLog* log) {
  std::unique_ptr<WebhookPusher> p(new WebhookPusher(config, log));
  absl::Status st = ParseHttpUrl(config.url, &p->host_, &p->port_, &p->target_);
  if (!st.ok()) return st;
  // Where the last run stopped, with an output file.
  p->cursor_ = log->webhook_cursor();
  return p;
}

WebhookPusher::~WebhookPusher() { Stop(absl::ZeroDuration()); }

void WebhookPusher::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Run(); });
}

void WebhookPusher::Stop(absl::Duration flush_for) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    flush_deadline_ = absl::Now() + flush_for;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool WebhookPusher::PushOnce() {
  const int64_t after = cursor_.load();
  OutputPage page =
      log_->Read(after, static_cast<size_t>(config_.batch), nullptr);
  // Missed outputs are counted when the page is done with, so that a retry
  // does not count them again.
  if (page.items.empty()) {
    dropped_ += page.missed;
    cursor_ = page.next;
    log_->SetWebhookCursor(page.next);
    return true;
  }
  std::string body = "{\"outputs\":[";
  for (size_t i = 0; i < page.items.size(); ++i) {
    if (i > 0) body += ",";
    body += page.items[i].line;
  }
  body += "]}";
  // The timeout bounds the whole POST, so that a receiver that answers a
  // byte at a time cannot hold the pusher (and a shutdown waiting for it);
  // only the status matters, so a large answer is refused, not buffered.
  constexpr size_t kMaxAnswerBytes = 64 * 1024;
  absl::StatusOr<HttpResponse> r = HttpFetch(
      host_, port_, "POST", target_, body, config_.timeout, kMaxAnswerBytes);
  if (!r.ok() || r->status < 200 || r->status > 299) {
    ++failures_;
    return false;
  }
  dropped_ += page.missed;
  sent_ += static_cast<int64_t>(page.items.size());
  cursor_ = page.items.back().seq;
  log_->SetWebhookCursor(cursor_);
  return true;
}

void WebhookPusher::Run() {
  absl::Duration backoff = config_.backoff_min;
  for (;;) {
    bool stopping;
    absl::Time deadline;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping = stop_;
      deadline = flush_deadline_;
    }
    if (stopping && (absl::Now() >= deadline || cursor_ >= log_->last_seq())) {
      return;
    }
    if (cursor_ >= log_->last_seq()) {
      log_->WaitAfter(cursor_, absl::Milliseconds(200));
      continue;
    }
    if (PushOnce()) {
      backoff = config_.backoff_min;
      continue;
    }
    std::unique_lock<std::mutex> lock(mu_);
    absl::Duration wait = backoff;
    if (stop_)
      wait = std::min(
          wait, std::max(absl::ZeroDuration(), flush_deadline_ - absl::Now()));
    cv_.wait_for(lock,
                 std::chrono::microseconds(absl::ToInt64Microseconds(wait)),
                 [&] { return stop_ && absl::Now() >= flush_deadline_; });
    backoff = std::min(backoff * 2, config_.backoff_max);
  }
}

}  // namespace converge::service
