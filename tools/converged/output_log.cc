#include "output_log.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "events.h"

namespace converge::service {

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
  {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(Output{++last_seq_, kind, std::move(line)});
    while (static_cast<int64_t>(items_.size()) > capacity_) items_.pop_front();
  }
  cv_.notify_all();
}

OutputPage OutputLog::Read(int64_t after, size_t limit,
                           const OutputKind* only) const {
  OutputPage page;
  std::lock_guard<std::mutex> lock(mu_);
  page.next = std::max(after, int64_t{0});
  if (items_.empty()) {
    page.missed = std::max<int64_t>(0, last_seq_ - page.next);
    page.next = std::max(page.next, last_seq_);
    return page;
  }
  const int64_t first = items_.front().seq;
  if (page.next < first - 1) page.missed = first - 1 - page.next;
  // Sequence numbers are consecutive, so the start is an index. first >= 1
  // and page.next >= 0: page.next - (first - 1) cannot overflow (page.next
  // + 1 would for after = INT64_MAX, which the API accepts).
  size_t i =
      page.next >= first - 1 ? static_cast<size_t>(page.next - (first - 1)) : 0;
  for (; i < items_.size() && page.items.size() < limit; ++i) {
    page.next = items_[i].seq;
    if (only == nullptr || items_[i].kind == *only) {
      page.items.push_back(items_[i]);
    }
  }
  if (i == items_.size()) page.next = std::max(page.next, last_seq_);
  return page;
}

void OutputLog::WaitAfter(int64_t after, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock,
               std::chrono::microseconds(absl::ToInt64Microseconds(timeout)),
               [&] { return last_seq_ > after; });
}

void OutputLog::Notify() { cv_.notify_all(); }

int64_t OutputLog::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_seq_;
}

}  // namespace converge::service
