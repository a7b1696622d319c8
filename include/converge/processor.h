// Processor: the worker that drives decisions from a queue without ever
// losing or doubling work (project-decisions.md, point 4).
//
// Every task lives in the manager's task queue (ManagerOptions::task_queue):
// the actions hosts hand in (kind "action"), and what the manager schedules
// itself (summaries, second-level processing, sleep re-polls, approval
// timeouts; see task_kinds), plus two perpetual jobs of the processor, the
// sweep ("sweep") and the retention purge ("retention"), one task each per
// queue, so that one run at a time happens across every process sharing the
// store.
//
// Delivery is at-least-once: a task is acknowledged only after its handler
// returned, so a task taken by a worker that dies is delivered again once its
// visibility timeout has passed, and the manager's idempotency (one decision
// per action) makes the second run a no-op. A busy dimension lease requeues
// the task after a bounded, jittered delay, without counting an attempt;
// errors retry with a doubling, jittered, bounded backoff; a task that
// fails max_attempts times goes to the dead-letter list, where it can be
// listed and re-driven (QueueStore::ListDead / Redrive). A task that can
// never succeed (an unknown kind, a payload that does not decode, or a
// handler's kInvalidArgument) is buried at once, with the reason as its
// last_error. A task delivered more than max_attempts times without ever
// settling (each run crashed its worker or outlasted visibility_timeout)
// is buried without running again. The perpetual jobs are never buried:
// after max_attempts failed runs (or a kInvalidArgument) they wait for
// their next period; a processor with a job off passes its task on, due
// again after the default period, for a processor that runs it; Create
// revives a buried perpetual job.
//
// Task kinds and what their handler does ("now" is the manager's clock):
//   action       ConvergeManager::Submit of the payload (converge/codec.h)
//   summary      RunSummary(subject)
//   subconverge  ProcessSubConverge(subject)
//   repoll       Reevaluate(subject); still sleep: due again at now +
//                the manager's repoll_interval
//   approval     ExpireApproval(subject); still waiting and not yet due:
//                due again at decided_at + the manager's approval_timeout
//   sweep        Sweep(sweep_limit), refreshes the queue-length and
//                open-instance gauges; due again at now + sweep_interval
//   retention    Purge(retention_limit); due again at now + retention_interval
// kNotFound for the subject of summary, subconverge, repoll or approval
// (deleted by retention meanwhile) acknowledges the task. docs/processor.md
// explains the whole cycle.
//
// Thread safety: a Processor is safe for concurrent use; Start runs
// `threads` workers, and RunOnce may be called from any number of threads.

#ifndef CONVERGE_PROCESSOR_H_
#define CONVERGE_PROCESSOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/manager.h"
#include "converge/store/queue_store.h"

namespace converge {

struct ProcessorOptions {
  // A delivered task is delivered again if it is not acknowledged within
  // this time. Default 60 s.
  absl::Duration visibility_timeout = absl::Seconds(60);
  // Deliveries that end in an error before the task is buried. Default 4
  // (upstream: one run and 3 retries).
  int max_attempts = 4;
  // Error backoff: retry_backoff_min * 2^(attempt-1), jittered to
  // [0.5, 1.0] of that, at most retry_backoff_max. Default 30 s .. 10 min.
  absl::Duration retry_backoff_min = absl::Seconds(30);
  absl::Duration retry_backoff_max = absl::Minutes(10);
  // A task whose dimension lease is busy is requeued after this delay,
  // jittered to [0.5, 1.0] of it (upstream 3 s); it does not count as an
  // attempt.
  absl::Duration contention_delay = absl::Seconds(3);
  // Period of the sweep and retention jobs; zero disables a job.
  absl::Duration sweep_interval = absl::Seconds(60);
  absl::Duration retention_interval = absl::Hours(1);
  // Largest number of instances one sweep run ends, and of rows of each
  // kind one retention run deletes (0 = no limit).
  size_t sweep_limit = 10000;
  size_t retention_limit = 10000;
  // Start(): number of worker threads, and how long (real time) an idle
  // worker waits before it polls the queue again.
  int threads = 1;
  absl::Duration idle_wait = absl::Milliseconds(50);
};

// Counts since the processor was made.
struct ProcessorStats {
  int64_t processed = 0;  // tasks handled and acknowledged (or, for the
                          // perpetual jobs, run and due again)
  int64_t requeued = 0;   // put back after lease contention or to re-poll
  int64_t retried = 0;    // put back after an error
  int64_t dead = 0;       // buried: max_attempts errors, bad input, or more
                          // than max_attempts deliveries that never settled
  int64_t stale = 0;      // acknowledgements refused (redelivered meanwhile)
  int64_t errors = 0;     // RunOnce calls that failed on a queue store error
                          // (a task taken is delivered again later)
};

class Processor {
 public:
  // A handler of a task kind of the host's own. It returns OK to
  // acknowledge, a status to retry (or bury when attempts are exhausted;
  // kInvalidArgument buries at once). A handler that throws fails as
  // kInternal; the exception goes no further.
  using Handler = std::function<absl::Status(const Task&)>;

  // `manager` must outlive the processor; its stores, clock, task queue
  // and metrics are used. Schedules the perpetual sweep and retention tasks
  // (ids "sweep" and "retention", first due one interval from now) if they
  // are missing. kInvalidArgument for a null manager, an option out of
  // range (negative or infinite durations; zero visibility_timeout,
  // contention_delay or idle_wait; max_attempts or threads < 1;
  // retry_backoff_max < retry_backoff_min) or a manager whose
  // repoll_interval is not > 0.
  static absl::StatusOr<std::unique_ptr<Processor>> Create(
      ConvergeManager* manager, ProcessorOptions options = {});

  ~Processor();  // stops the workers

  // Queues `action` to be decided under `config` (task "action:<id>",
  // due at `due`, default now). Returns kAlreadyExists if that action's
  // task is already queued (pending, in flight or dead), kInvalidArgument
  // for a bad action or config (id, create_time, ValidateConfig,
  // ValidateActionTask; what only the manager checks, such as sizes, fails
  // when the task runs and buries it).
  absl::Status SubmitAction(const Action& action, const ConvergeConfig& config,
                            std::optional<absl::Time> due = std::nullopt);

  // Adds a handler for a task kind of the host's own (not one of the
  // built-in kinds). Call before Start. kInvalidArgument for an empty or
  // built-in kind or an empty handler, kAlreadyExists for a kind that has
  // one.
  absl::Status RegisterHandler(std::string kind, Handler handler);

  // Takes one due task, runs it and settles it (ack, requeue, retry or
  // bury), on the calling thread. Returns false if nothing was due; a queue
  // store error if the task could not be taken or settled (a task taken is
  // then delivered again after its visibility timeout).
  absl::StatusOr<bool> RunOnce();

  // RunOnce until nothing is due. Returns the number of tasks run.
  absl::StatusOr<int64_t> Drain();

  // The earliest due time of a pending task, or nullopt if none is pending.
  // In-flight tasks are not pending: one whose worker died comes back when
  // its visibility timeout has passed.
  absl::StatusOr<std::optional<absl::Time>> NextDue();

  // Starts options.threads workers that RunOnce until Stop, waiting
  // idle_wait (real time) whenever nothing is due (SubmitAction wakes one
  // early). Errors of the store are counted and retried, never fatal.
  // kFailedPrecondition if the workers are running.
  absl::Status Start();
  // Stops the workers after their current task. Idempotent; Start may be
  // called again afterwards. Not from inside a handler.
  void Stop();

  ProcessorStats stats() const;
  const ProcessorOptions& options() const { return options_; }

 private:
  Processor(ConvergeManager* manager, ProcessorOptions options);
  struct Impl;
  ConvergeManager* manager_;
  ProcessorOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace converge

#endif  // CONVERGE_PROCESSOR_H_
