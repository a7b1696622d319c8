// The replay driver: applies input events (events.h) to a ConvergeManager
// and its Processor on a virtual clock, and reports what the manager does
// as output lines (docs/replay-format.md, "Driver semantics").
//
// For each event at time T, in input order:
//   1. every task due at or before T runs, in due order (ties in the order
//      they were queued), with the virtual clock set to the task's due time
//      (never backwards);
//   2. the clock is set to T and the event is applied: an action is queued
//      on the processor due at T; a status report, an approval or a
//      rejection goes to the manager; a tick does nothing more;
//   3. every task due at or before T runs again: the action's own decision
//      task, and what it made due at once (second-level processing of an
//      instance it created).
// At end of input nothing further runs.
//
// With workers > 1, the tasks due at one instant run on that many threads
// at once, and consecutive action events with the same time are queued
// together before their tasks run; the order of their output lines is then
// not deterministic, the decisions themselves are (one evaluator per
// dimension at a time).
//
// Thread safety: a Replayer is used from one thread; the sink is called
// under a lock, possibly from worker threads.

#ifndef CONVERGE_TOOLS_CONVERGE_REPLAY_H_
#define CONVERGE_TOOLS_CONVERGE_REPLAY_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/config.h"
#include "converge/manager.h"
#include "converge/processor.h"
#include "events.h"
#include "store_uri.h"

namespace converge::cli {

struct ReplayOptions {
  // Where the state lives; a fresh memory store by default (the command
  // line passes tools::DefaultStoreUri()).
  std::string store_uri = std::string(tools::kMemoryStoreUri);
  // Where instances and relations live when not in the store (a Redis
  // store has none). Empty: the store's own.
  std::string repo_uri;
  Profile profile = Profile::kPlain;
  // Threads that run the tasks due at one instant. 1 = serial and
  // deterministic.
  int workers = 1;
  // With one worker, the writes of this many consecutive events are
  // committed together, in one transaction of a store that has them
  // (SQLite; InstanceRepo::BeginBatch), and their output lines are written
  // after the commit. The same calls run in the same order as with 1 (each
  // event committed on its own), so the output is the same. >= 1.
  int batch_events = 1000;
};

// Receives each output line, without its newline, in the order things
// happen.
using LineSink = std::function<void(std::string_view line)>;

class Replayer {
 public:
  // Opens the store. kInvalidArgument for a bad store URI or workers < 1.
  static absl::StatusOr<std::unique_ptr<Replayer>> Create(ReplayOptions options,
                                                          LineSink sink);
  ~Replayer();

  // The error for an event whose time goes back, or jumps too far ahead
  // (CheckEventTime), or nullopt.
  std::optional<InputError> CheckOrder(const Event& event) const;

  // Applies one event (see the file comment). kInvalidArgument (see
  // InputErrorFromStatus) when the manager rejects the action; nothing of
  // the event is applied then. Other errors come from the stores or a task
  // that failed.
  absl::Status Apply(const Event& event);

  // Ends the input: runs what is still due at the time of the last event
  // (queued actions of a batch), and commits what ran. Nothing later runs.
  // Call it after an error too: what was applied before is kept.
  absl::Status Finish();

  // Commits the writes of the events applied so far and writes their
  // output lines (a no-op when nothing is held).
  absl::Status Commit();

  // Actions of this run whose first decision line was a stored decision:
  // decided before this run, on a store that keeps state.
  int64_t resumed() const;
  // The store's URIs as given, passwords redacted, for messages.
  const std::string& store_label() const { return store_.uri; }

 private:
  class Listener;
  class OuterBatchRepo;
  Replayer(ReplayOptions options, LineSink sink);
  // True when events are applied in store batches (batch_events): one
  // worker, batch_events > 1, and a store whose batch takes in every write
  // and keeps other writers out (SQLite alone; decided in Start).
  bool Batching() const;
  absl::Status Start(absl::Time t);
  absl::Status ApplyEvent(const Event& event);
  // Runs every task due at or before `t` (step 1 / 3), then sets the clock
  // to `t`.
  absl::Status RunDue(absl::Time t);
  absl::Status RunInstant();
  absl::Status CheckFailures();

  ReplayOptions options_;
  VirtualClock clock_;
  tools::OpenedStore store_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<ConvergeManager> manager_;
  std::unique_ptr<Processor> processor_;
  std::optional<absl::Time> last_time_;
  // workers > 1: action events of one instant are queued, then run.
  bool batch_pending_ = false;
  absl::Time batch_time_;
  int64_t failures_seen_ = 0;
  // The store batch the events are applied in (batch_events), and how many
  // events it holds.
  std::unique_ptr<RepoBatch> store_batch_;
  // The repo the manager is given while Batching().
  std::unique_ptr<OuterBatchRepo> outer_batch_repo_;
  int store_batch_events_ = 0;
  bool batches_supported_ = true;
};

// `converge replay`: reads events from `path` ("-" = stdin), writes output
// lines to stdout and errors to stderr. Returns the exit status: 0, or 1
// on a bad input line (stderr names the line and the field) or a failure.
int RunReplay(const ReplayOptions& options, const std::string& path);

}  // namespace converge::cli

#endif  // CONVERGE_TOOLS_CONVERGE_REPLAY_H_
