#include "output_log.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <utility>

#include "events.h"
#include "output_file.h"

namespace converge::service {

OutputLog::OutputLog(int64_t capacity)
    : capacity_(capacity), epoch_(absl::ToUnixNanos(absl::Now())) {}

OutputLog::~OutputLog() { Close(); }

absl::Status OutputLog::Open(const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (persisting_ || last_seq_ != 0) {
      return absl::FailedPreconditionError(
          "outputs.file: the output log was opened already, or has outputs");
    }
  }
  OutputFile::State state;
  absl::StatusOr<std::unique_ptr<OutputFile>> file =
      OutputFile::Open(path, capacity_, epoch_, &state);
  if (!file.ok()) return file.status();
  std::lock_guard<std::mutex> lock(mu_);
  file_ = *std::move(file);
  epoch_ = state.epoch;
  items_.clear();
  for (StoredOutput& o : state.outputs) {
    items_.push_back(
        Output{o.seq, static_cast<OutputKind>(o.kind), std::move(o.line)});
  }
  last_seq_ = visible_seq_ = saved_seq_ = state.last_seq;
  webhook_cursor_ = saved_cursor_ = state.webhook_cursor;
  stop_ = false;
  persisting_ = true;
  flusher_ = std::thread([this] { FlushLoop(); });
  return absl::OkStatus();
}

void OutputLog::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!flusher_.joinable()) return;
    stop_ = true;
  }
  flush_cv_.notify_all();
  flusher_.join();
  std::unique_ptr<OutputFile> file;
  {
    std::lock_guard<std::mutex> lock(mu_);
    file = std::move(file_);
  }
  // Outputs added from now on stay unreadable: they would be numbered
  // above what the file holds, and a restart would number others alike.
}

bool OutputLog::persistent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return persisting_;
}

int64_t OutputLog::unwritten() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_ - visible_seq_;
}

int64_t OutputLog::epoch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return epoch_;
}

void OutputLog::FlushLoop() {
  constexpr absl::Duration kMinBackoff = absl::Milliseconds(10);
  constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
  // An idle flusher still writes a moved webhook cursor this often.
  constexpr auto kIdle = std::chrono::seconds(1);
  absl::Duration backoff = kMinBackoff;
  bool failing = false;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (failing) {
      flush_cv_.wait_for(
          lock, std::chrono::microseconds(absl::ToInt64Microseconds(backoff)),
          [&] { return stop_; });
    } else {
      flush_cv_.wait_for(lock, kIdle,
                         [&] { return stop_ || last_seq_ > saved_seq_; });
    }
    const bool stopping = stop_;
    lock.unlock();
    const absl::Status st = Flush();
    lock.lock();
    if (st.ok()) {
      if (failing) {
        std::fprintf(stderr, "converged: outputs.file: writes work again\n");
      }
      failing = false;
      backoff = kMinBackoff;
    } else {
      ++file_errors_;
      if (!failing || stopping) {
        std::fprintf(stderr, "converged: %s\n", st.ToString().c_str());
      }
      failing = true;
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    if (stopping) return;
  }
}

absl::Status OutputLog::Flush() {
  std::vector<StoredOutput> batch;
  int64_t upto;
  {
    std::lock_guard<std::mutex> lock(mu_);
    upto = flushing_upto_ = last_seq_;
    auto it = std::upper_bound(
        items_.begin(), items_.end(), saved_seq_,
        [](int64_t seq, const Output& o) { return seq < o.seq; });
    batch.reserve(static_cast<size_t>(items_.end() - it));
    for (; it != items_.end(); ++it) {
      batch.push_back(
          StoredOutput{it->seq, static_cast<int>(it->kind), it->line});
    }
  }
  // The pusher reads visible outputs only, so its cursor is never past
  // what the file holds.
  const int64_t cursor = std::min(webhook_cursor_.load(), upto);
  if (upto == saved_seq_ && cursor == saved_cursor_) return absl::OkStatus();
  absl::Status st = file_->Write(batch, upto, cursor, capacity_);
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    flushing_upto_ = saved_seq_;
    return st;
  }
  saved_cursor_ = cursor;
  {
    std::lock_guard<std::mutex> lock(mu_);
    saved_seq_ = visible_seq_ = upto;
  }
  cv_.notify_all();
  return absl::OkStatus();
}

void OutputLog::OnDecision(const Decision& decision) {
  Add(OutputKind::kDecision, cli::DecisionLine(decision));
}
void OutputLog::OnInstance(const InstanceEvent& event) {
  Add(OutputKind::kInstance, cli::InstanceLine(event));
}
void OutputLog::OnSummary(const Summary& summary) {
  Add(OutputKind::kSummary, cli::SummaryLine(summary));
}

void OutputLog::Add(OutputKind kind, std::string line) {
  bool persisting;
  {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(Output{++last_seq_, kind, std::move(line)});
    while (static_cast<int64_t>(items_.size()) > capacity_) {
      // Not written, nor in a write under way.
      if (persisting_ && items_.front().seq > flushing_upto_) ++unsaved_;
      items_.pop_front();
    }
    persisting = persisting_;
    if (!persisting) visible_seq_ = last_seq_;
  }
  if (persisting) {
    flush_cv_.notify_one();
  } else {
    cv_.notify_all();
  }
}

OutputPage OutputLog::Read(int64_t after, size_t limit,
                           const OutputKind* only) const {
  OutputPage page;
  std::lock_guard<std::mutex> lock(mu_);
  page.next = std::max(after, int64_t{0});
  // Also keeps expected below from overflowing (after = INT64_MAX).
  if (page.next >= visible_seq_) return page;
  auto it = std::upper_bound(
      items_.begin(), items_.end(), page.next,
      [](int64_t seq, const Output& o) { return seq < o.seq; });
  // Numbers after `after` with no output in the buffer are missed: those
  // that left it, and those an output file could not keep.
  int64_t expected = page.next + 1;
  for (; it != items_.end() && it->seq <= visible_seq_ &&
         page.items.size() < limit;
       ++it) {
    page.missed += it->seq - expected;
    expected = it->seq + 1;
    page.next = it->seq;
    if (only == nullptr || it->kind == *only) page.items.push_back(*it);
  }
  if (it == items_.end() || it->seq > visible_seq_) {
    page.missed += visible_seq_ - (expected - 1);
    page.next = visible_seq_;
  }
  return page;
}

void OutputLog::WaitAfter(int64_t after, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock,
               std::chrono::microseconds(absl::ToInt64Microseconds(timeout)),
               [&] { return visible_seq_ > after; });
}

void OutputLog::Notify() { cv_.notify_all(); }

int64_t OutputLog::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return visible_seq_;
}

}  // namespace converge::service
