// OutputLog: what the manager does (decisions, instance events,
// summaries), kept in memory in the replay output format
// (docs/replay-format.md, section 5) and numbered, so that clients pull it
// by cursor (GET /v1/decisions?after=N) and the webhook pusher sends it.
//
// The cursor of an output is its sequence number: 1, 2, ... in the order
// the manager reported them. The log keeps the last `capacity` outputs; a
// client whose cursor fell behind sees the number it missed.
//
// In memory (the default), the numbering starts again when the process
// does, and the epoch (the process's start) tells clients so. With an
// output file (Open, `outputs.file`), outputs become readable only once a
// flusher thread has written them to the file (one transaction for every
// output of the moment, group-commit style), and a restart goes on from
// the file: the same epoch, the numbering where it stopped, the last
// `capacity` outputs, and the webhook's cursor. A crash loses only outputs
// that no reader has seen, so no number that was readable is ever given to
// another output.
//
// Thread safety: safe for concurrent use (a mutex), except Open and Close,
// which are called from one thread, before and after the manager runs.

#ifndef CONVERGE_TOOLS_CONVERGED_OUTPUT_LOG_H_
#define CONVERGE_TOOLS_CONVERGED_OUTPUT_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
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

class OutputFile;

class OutputLog : public ManagerListener {
 public:
  explicit OutputLog(int64_t capacity);
  ~OutputLog() override;  // Close()

  // Keeps the outputs in the file at `path` (output_file.h) from now on,
  // after loading what it holds; before the first output (else
  // kFailedPrecondition). Errors are OutputFile::Open's, or kUnimplemented
  // in a build without SQLite.
  absl::Status Open(const std::string& path);
  // Writes what is not written yet and stops the flusher; the log stays
  // readable. Outputs added afterwards are never readable (they would not
  // be in the file).
  void Close();

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

  // The number of the last output readers can see.
  int64_t last_seq() const;
  // Unix ns: when the numbering started (the process's start, or the
  // output file's creation).
  int64_t epoch() const;

  // The webhook pusher's cursor: read back from the output file at Open
  // (0 without one), and kept in it from then on.
  int64_t webhook_cursor() const { return webhook_cursor_.load(); }
  void SetWebhookCursor(int64_t cursor) { webhook_cursor_.store(cursor); }

  bool persistent() const;  // Open succeeded
  // Outputs added but not readable yet (not written to the output file).
  int64_t unwritten() const;
  // Failed writes of the output file (each retried), and outputs that left
  // the buffer before they could be written.
  int64_t file_errors() const { return file_errors_.load(); }
  int64_t unsaved() const { return unsaved_.load(); }

 private:
  void Add(OutputKind kind, std::string line);
  void FlushLoop();
  // Writes the outputs not written yet and the webhook's cursor.
  absl::Status Flush();

  const int64_t capacity_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;  // readers: visible_seq_ grew
  std::deque<Output> items_;
  int64_t last_seq_ = 0;     // the last output added
  int64_t visible_seq_ = 0;  // the last output readers see
  int64_t epoch_;

  // With an output file:
  std::unique_ptr<OutputFile> file_;
  std::thread flusher_;
  std::condition_variable flush_cv_;  // the flusher: work or stop
  bool stop_ = false;                 // guarded by mu_
  bool persisting_ = false;           // guarded by mu_; Open succeeded
  int64_t saved_seq_ = 0;             // guarded by mu_
  int64_t flushing_upto_ = 0;         // guarded by mu_: the write under way
  int64_t saved_cursor_ = 0;          // flusher thread only
  std::atomic<int64_t> webhook_cursor_{0};
  std::atomic<int64_t> file_errors_{0};
  std::atomic<int64_t> unsaved_{0};
};

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_OUTPUT_LOG_H_
