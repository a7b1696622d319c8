// OutputLog: what the manager does (decisions, instance events,
// summaries), kept in memory in the replay output format
// (docs/replay-format.md, section 5) and numbered, so that clients pull it
// by cursor (GET /v1/decisions?after=N) and the webhook pusher sends it.
//
// The cursor of an output is its sequence number: 1, 2, ... in the order
// the manager reported them since the process started. The log keeps the
// last `capacity` outputs; a client whose cursor fell behind sees the
// number it missed. A restart starts the numbering again (the response
// carries the process's epoch, so a client can tell); the decisions
// themselves are in the store (GET /v1/actions/{id}).
//
// Thread safety: safe for concurrent use (a mutex).

#ifndef CONVERGE_TOOLS_CONVERGED_OUTPUT_LOG_H_
#define CONVERGE_TOOLS_CONVERGED_OUTPUT_LOG_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "converge/manager.h"

namespace converge::service {

enum class OutputKind { kDecision, kInstance, kSummary };

struct Output {
  int64_t seq = 0;
  OutputKind kind = OutputKind::kDecision;
  std::string line;  // one JSON object (replay output format)
};

struct OutputPage {
  std::vector<Output> items;
  int64_t next = 0;    // the cursor to pass as `after` next time
  int64_t missed = 0;  // outputs after `after` that fell out of the buffer
};

class OutputLog : public ManagerListener {
 public:
  explicit OutputLog(int64_t capacity) : capacity_(capacity) {}

  void OnDecision(const Decision& decision) override;
  void OnInstance(const InstanceEvent& event) override;
  void OnSummary(const Summary& summary) override;

  // Outputs with seq > after, of `kind` only when `only` is set, at most
  // `limit`.
  OutputPage Read(int64_t after, size_t limit, const OutputKind* only) const;

  // Waits until an output with seq > after exists or `timeout` passes.
  void WaitAfter(int64_t after, absl::Duration timeout) const;
  // Wakes WaitAfter callers.
  void Notify();

  int64_t last_seq() const;

 private:
  void Add(OutputKind kind, std::string line);

  const int64_t capacity_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<Output> items_;
  int64_t last_seq_ = 0;
};

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_OUTPUT_LOG_H_
