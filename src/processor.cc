#include "converge/processor.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "converge/codec.h"
#include "converge/metrics.h"
#include "internal/strings.h"

namespace converge {
namespace {

// The processor's own kinds: the host's actions and the two perpetual jobs
// (one task each per queue, with these ids).
constexpr std::string_view kActionKind = "action";
constexpr std::string_view kSweepKind = "sweep";
constexpr std::string_view kRetentionKind = "retention";

bool IsBuiltinKind(std::string_view kind) {
  return kind == kActionKind || kind == kSweepKind || kind == kRetentionKind ||
         kind == task_kinds::kSummary || kind == task_kinds::kSubConverge ||
         kind == task_kinds::kRepoll || kind == task_kinds::kApproval;
}

bool IsPerpetual(std::string_view kind) {
  return kind == kSweepKind || kind == kRetentionKind;
}

// The period of perpetual job `kind` in a processor with `options`; one
// that has the job off (zero) passes the task on after the default period,
// for a processor that runs it.
// The interval `options` gives perpetual job `kind` (zero: off).
absl::Duration IntervalOf(std::string_view kind,
                          const ProcessorOptions& options) {
  return kind == kSweepKind ? options.sweep_interval
                            : options.retention_interval;
}

absl::Duration PeriodOf(std::string_view kind,
                        const ProcessorOptions& options) {
  const absl::Duration period = IntervalOf(kind, options);
  return period > absl::ZeroDuration() ? period
                                       : IntervalOf(kind, ProcessorOptions());
}

absl::Status CheckDuration(std::string_view name, absl::Duration d,
                           bool allow_zero) {
  if (d == absl::InfiniteDuration() || d < absl::ZeroDuration() ||
      (!allow_zero && d == absl::ZeroDuration())) {
    return absl::InvalidArgumentError(internal::StrCat(
        "processor: options.", name, ": must be finite and ",
        allow_zero ? ">= 0" : "> 0", ", got ", absl::FormatDuration(d)));
  }
  return absl::OkStatus();
}

// What running a task asks for.
struct Verdict {
  enum Kind {
    kAck,      // done: remove it
    kNext,     // done, and due again at `due` (a perpetual job's period)
    kRequeue,  // not done yet: due again at `due`, no attempt counted
    kError,    // failed: requeue, retry or bury, by the status
    kBury,     // cannot ever succeed: bury at once
  } kind = kAck;
  absl::Time due;
  absl::Status status;
};

// The text recorded as a task's last_error: code and message, without the
// payloads ToString would add.
std::string ErrorText(const absl::Status& st) {
  return internal::StrCat(absl::StatusCodeToString(st.code()), ": ",
                          st.message());
}

Verdict Ack() { return Verdict{}; }
Verdict Next(absl::Time due) { return Verdict{Verdict::kNext, due, {}}; }
Verdict Requeue(absl::Time due) { return Verdict{Verdict::kRequeue, due, {}}; }
Verdict Error(absl::Status st) {
  return Verdict{Verdict::kError, absl::Time(), std::move(st)};
}
Verdict Bury(absl::Status st) {
  return Verdict{Verdict::kBury, absl::Time(), std::move(st)};
}

}  // namespace

struct Processor::Impl {
  ConvergeManager* manager = nullptr;
  QueueStore* queue = nullptr;
  std::string queue_name;

  // Host handlers. Registered before Start in the normal case; the lock
  // keeps a late registration safe anyway.
  mutable std::shared_mutex handlers_mu;
  absl::flat_hash_map<std::string, Handler> handlers;

  std::mutex rng_mu;
  absl::BitGen rng;

  std::atomic<int64_t> processed{0}, requeued{0}, retried{0}, dead{0}, stale{0},
      errors{0};

  // Workers. `lifecycle_mu` serializes Start and Stop; `mu` guards the idle
  // wait (stop flag changes and kicks are made under it, so no wake-up is
  // lost).
  std::mutex lifecycle_mu;
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> stop{false};
  uint64_t kicks = 0;  // guarded by mu

  // A duration jittered to [0.5, 1.0] of `d`, in whole microseconds.
  absl::Duration Jitter(absl::Duration d) {
    if (d <= absl::ZeroDuration()) return absl::ZeroDuration();
    double f;
    {
      std::lock_guard<std::mutex> lock(rng_mu);
      f = absl::Uniform(absl::IntervalClosedClosed, rng, 0.5, 1.0);
    }
    // Whole microseconds: a due time that clocks and stores keep exactly
    // (absl::Time has quarter nanoseconds, a VirtualClock whole ones).
    return absl::Trunc(d * f, absl::Microseconds(1));
  }

  void Kick() {
    {
      std::lock_guard<std::mutex> lock(mu);
      ++kicks;
    }
    cv.notify_one();
  }
};

Processor::Processor(ConvergeManager* manager, ProcessorOptions options)
    : manager_(manager),
      options_(std::move(options)),
      impl_(std::make_unique<Impl>()) {
  impl_->manager = manager;
  impl_->queue = manager->stores().queue;
  impl_->queue_name = manager->options().task_queue;
}

Processor::~Processor() { Stop(); }

absl::StatusOr<std::unique_ptr<Processor>> Processor::Create(
    ConvergeManager* manager, ProcessorOptions options) {
  if (manager == nullptr) {
    return absl::InvalidArgumentError("processor: a manager is required");
  }
  struct {
    std::string_view name;
    absl::Duration value;
    bool allow_zero;
  } const durations[] = {
      {"visibility_timeout", options.visibility_timeout, false},
      {"retry_backoff_min", options.retry_backoff_min, true},
      {"retry_backoff_max", options.retry_backoff_max, true},
      {"contention_delay", options.contention_delay, false},
      {"sweep_interval", options.sweep_interval, true},
      {"retention_interval", options.retention_interval, true},
      {"idle_wait", options.idle_wait, false},
  };
  for (const auto& d : durations) {
    if (absl::Status st = CheckDuration(d.name, d.value, d.allow_zero);
        !st.ok()) {
      return st;
    }
  }
  if (options.retry_backoff_max < options.retry_backoff_min) {
    return absl::InvalidArgumentError(
        "processor: options.retry_backoff_max: must be >= retry_backoff_min");
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        internal::StrCat("processor: options.max_attempts: must be >= 1, got ",
                         options.max_attempts));
  }
  if (options.threads < 1) {
    return absl::InvalidArgumentError(internal::StrCat(
        "processor: options.threads: must be >= 1, got ", options.threads));
  }
  // A zero re-poll interval would make a sleeping action due again at once,
  // forever (Drain would never return on a virtual clock).
  if (manager->options().repoll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "processor: the manager's options.repoll_interval must be > 0");
  }
  std::unique_ptr<Processor> p(new Processor(manager, std::move(options)));

  // The perpetual jobs: one task each per queue, shared by every process.
  // An existing task (another process made it, or an earlier run) is fine.
  const absl::Time now = manager->clock().Now();
  const std::pair<std::string_view, absl::Duration> jobs[] = {
      {kSweepKind, p->options_.sweep_interval},
      {kRetentionKind, p->options_.retention_interval},
  };
  for (const auto& [kind, interval] : jobs) {
    if (interval == absl::ZeroDuration()) continue;
    Task task;
    task.id = std::string(kind);
    task.kind = std::string(kind);
    task.due = now + interval;
    absl::Status st = p->impl_->queue->Enqueue(p->impl_->queue_name, task);
    if (st.code() == absl::StatusCode::kAlreadyExists) {
      // It exists, pending, in flight or dead. A dead one (buried by an
      // older version, or re-driven by hand and buried again) would never
      // run again: it is revived here. Redrive answers kNotFound for one
      // that is not dead.
      st = p->impl_->queue->Redrive(p->impl_->queue_name, task.id, task.due);
      if (st.code() == absl::StatusCode::kNotFound) st = absl::OkStatus();
    }
    if (!st.ok()) return st;
  }
  return p;
}

absl::Status Processor::SubmitAction(const Action& action,
                                     const ConvergeConfig& config,
                                     std::optional<absl::Time> due) {
  // Everything Submit would refuse as bad input is refused here, before
  // it is queued.
  if (absl::Status st = manager_->Validate(action, config); !st.ok()) {
    return st;
  }
  if (absl::Status st = ValidateActionTask(action, config); !st.ok()) {
    return st;
  }
  Task task;
  task.id = internal::StrCat(kActionKind, ":", action.id);
  task.kind = std::string(kActionKind);
  task.subject_id = action.id;
  task.payload = EncodeActionTask(action, config);
  task.due = due.value_or(manager_->clock().Now());
  if (absl::Status st = impl_->queue->Enqueue(impl_->queue_name, task);
      !st.ok()) {
    return st;
  }
  impl_->Kick();
  return absl::OkStatus();
}

absl::Status Processor::RegisterHandler(std::string kind, Handler handler) {
  if (kind.empty()) {
    return absl::InvalidArgumentError("processor: task kind must not be empty");
  }
  if (IsBuiltinKind(kind)) {
    return absl::InvalidArgumentError(
        internal::StrCat("processor: task kind \"", kind, "\" is built in"));
  }
  if (!handler) {
    return absl::InvalidArgumentError(internal::StrCat(
        "processor: the handler of task kind \"", kind, "\" is empty"));
  }
  std::unique_lock<std::shared_mutex> lock(impl_->handlers_mu);
  if (!impl_->handlers.emplace(kind, std::move(handler)).second) {
    return absl::AlreadyExistsError(internal::StrCat(
        "processor: task kind \"", kind, "\" already has a handler"));
  }
  return absl::OkStatus();
}

namespace {

// Runs one task of a built-in or registered kind. `label` receives the
// kind's metrics label.
Verdict RunTask(ConvergeManager* manager, const ProcessorOptions& options,
                const std::string& queue_name, const Task& task,
                const Processor::Handler* handler, std::string_view* label) {
  const std::string_view kind = task.kind;
  const int64_t id = task.subject_id;
  auto gone = [](const absl::Status& st) {
    return st.code() == absl::StatusCode::kNotFound;
  };
  if (kind == kActionKind) {
    absl::StatusOr<ActionTask> payload = DecodeActionTask(task.payload);
    if (!payload.ok()) return Bury(payload.status());
    if (payload->action.id != id) {
      return Bury(absl::InvalidArgumentError(
          internal::StrCat("processor: task ", task.id, " carries action ",
                           payload->action.id)));
    }
    absl::StatusOr<Decision> d =
        manager->Submit(payload->action, payload->config);
    return d.ok() ? Ack() : Error(d.status());
  }
  if (kind == task_kinds::kSummary) {
    absl::StatusOr<Summary> s = manager->RunSummary(id);
    return s.ok() || gone(s.status()) ? Ack() : Error(s.status());
  }
  if (kind == task_kinds::kSubConverge) {
    absl::Status st = manager->ProcessSubConverge(id);
    return st.ok() || gone(st) ? Ack() : Error(st);
  }
  if (kind == task_kinds::kRepoll) {
    absl::StatusOr<Decision> d = manager->Reevaluate(id);
    if (!d.ok()) return gone(d.status()) ? Ack() : Error(d.status());
    if (d->outcome != Outcome::kSleep) return Ack();
    return Requeue(manager->clock().Now() + manager->options().repoll_interval);
  }
  if (kind == task_kinds::kApproval) {
    absl::StatusOr<Decision> d = manager->ExpireApproval(id);
    if (!d.ok()) return gone(d.status()) ? Ack() : Error(d.status());
    if (d->outcome != Outcome::kApproval) return Ack();
    const absl::Time due = d->decided_at + manager->options().approval_timeout;
    if (due > manager->clock().Now()) return Requeue(due);
    // The clock passed the due time after ExpireApproval read it: once more.
    d = manager->ExpireApproval(id);
    if (!d.ok()) return gone(d.status()) ? Ack() : Error(d.status());
    if (d->outcome != Outcome::kApproval) return Ack();
    return Error(absl::InternalError(internal::StrCat(
        "processor: action ", id, " still waits for approval after its ",
        absl::FormatDuration(manager->options().approval_timeout),
        " timeout")));
  }
  if (IsPerpetual(kind) && IntervalOf(kind, options) == absl::ZeroDuration()) {
    // This processor has the job off: it leaves it, due again later, to a
    // processor sharing the store that runs it (acknowledging it would
    // delete the job for all of them). Not a run: counted as requeued.
    return Requeue(manager->clock().Now() + PeriodOf(kind, options));
  }
  if (kind == kSweepKind) {
    absl::StatusOr<SweepResult> r = manager->Sweep(options.sweep_limit);
    if (!r.ok()) return Error(r.status());
    if (Metrics* m = manager->options().metrics; m != nullptr) {
      // Gauges are best effort: a store that cannot answer now is asked
      // again at the next sweep.
      absl::StatusOr<QueueStats> qs =
          manager->stores().queue->Stats(queue_name);
      if (qs.ok()) {
        m->SetQueueLength(queue_name, qs->pending, qs->in_flight, qs->dead);
      }
      absl::StatusOr<OpenCounts> open = manager->stores().repo->CountOpen();
      if (open.ok()) {
        m->SetOpenInstances(ConvergeType::kAction, open->action);
        m->SetOpenInstances(ConvergeType::kConverge, open->converge);
      }
    }
    return Next(manager->clock().Now() + options.sweep_interval);
  }
  if (kind == kRetentionKind) {
    absl::StatusOr<PurgeResult> r = manager->Purge(options.retention_limit);
    if (!r.ok()) return Error(r.status());
    return Next(manager->clock().Now() + options.retention_interval);
  }
  if (handler == nullptr) {
    // Unknown kinds share one label, so that stray tasks cannot grow the
    // metrics without bound.
    *label = "unknown";
    return Bury(absl::InvalidArgumentError(
        internal::StrCat("processor: no handler for task kind \"", kind,
                         "\" (task ", task.id, ")")));
  }
  // A host handler that throws must not take the worker down (no
  // exception crosses converge's boundaries): it fails like an error.
  absl::Status st;
  try {
    st = (*handler)(task);
  } catch (const std::exception& e) {
    st = absl::InternalError(
        internal::StrCat("processor: the handler of task kind \"", kind,
                         "\" threw: ", e.what()));
  } catch (...) {
    st = absl::InternalError(internal::StrCat(
        "processor: the handler of task kind \"", kind, "\" threw"));
  }
  return st.ok() ? Ack() : Error(std::move(st));
}

}  // namespace

absl::StatusOr<bool> Processor::RunOnce() {
  Impl& impl = *impl_;
  absl::StatusOr<std::optional<Delivery>> delivery = impl.queue->Dequeue(
      impl.queue_name, manager_->clock().Now(), options_.visibility_timeout);
  if (!delivery.ok()) {
    ++impl.errors;
    return delivery.status();
  }
  if (!delivery->has_value()) return false;
  const Task& task = (*delivery)->task;
  const std::string& receipt = (*delivery)->receipt;

  Handler handler;
  if (!IsBuiltinKind(task.kind)) {
    std::shared_lock<std::shared_mutex> lock(impl.handlers_mu);
    auto it = impl.handlers.find(task.kind);
    if (it != impl.handlers.end()) handler = it->second;
  }
  std::string_view label = task.kind;
  const absl::Time started = absl::Now();  // real time: processing cost
  Verdict v;
  if (task.attempts > options_.max_attempts) {
    // Delivered more often than it may fail, yet never settled: each run
    // took its worker down (a crash) or outlasted visibility_timeout. It is
    // not run again.
    if (!IsBuiltinKind(task.kind) && !handler) label = "unknown";
    const absl::Status why = absl::DeadlineExceededError(internal::StrCat(
        "processor: task ", task.id, " was delivered ", task.attempts,
        " times (max_attempts ", options_.max_attempts,
        ") and its last run never settled: it crashed its worker or "
        "outlasted visibility_timeout (",
        absl::FormatDuration(options_.visibility_timeout), ")"));
    v = IsPerpetual(task.kind)
            ? Verdict{Verdict::kNext,
                      manager_->clock().Now() + PeriodOf(task.kind, options_),
                      why}
            : Bury(why);
  } else {
    v = RunTask(manager_, options_, impl.queue_name, task,
                handler ? &handler : nullptr, &label);
  }
  const absl::Duration took = absl::Now() - started;

  // Errors become a requeue (lease busy), a retry, or a burial.
  bool contention = false;
  if (v.kind == Verdict::kError) {
    const absl::Time now = manager_->clock().Now();
    if (IsLeaseBusy(v.status)) {
      v.kind = Verdict::kRequeue;
      v.due = now + impl.Jitter(options_.contention_delay);
      contention = true;
    } else if (IsPerpetual(task.kind) &&
               (task.attempts >= options_.max_attempts ||
                v.status.code() == absl::StatusCode::kInvalidArgument)) {
      // A periodic job is never buried: it waits for its next period, and
      // counts its attempts afresh from there.
      v.kind = Verdict::kNext;
      v.due = now + PeriodOf(task.kind, options_);
    } else if (v.status.code() == absl::StatusCode::kInvalidArgument) {
      v.kind = Verdict::kBury;  // bad input never gets better
    } else if (task.attempts >= options_.max_attempts) {
      v.kind = Verdict::kBury;
    } else {
      absl::Duration backoff = options_.retry_backoff_min;
      for (int i = 1; i < task.attempts && backoff < options_.retry_backoff_max;
           ++i) {
        backoff *= 2;
      }
      v.due = now + impl.Jitter(std::min(backoff, options_.retry_backoff_max));
    }
  }

  Metrics* metrics = manager_->options().metrics;
  if (metrics != nullptr) {
    metrics->ObserveProcessing(label, took, v.status.ok());
  }

  absl::StatusOr<bool> settled = false;
  std::atomic<int64_t>* counter = nullptr;
  switch (v.kind) {
    case Verdict::kAck:
      settled = impl.queue->Ack(impl.queue_name, receipt);
      counter = &impl.processed;
      break;
    case Verdict::kNext:
      settled = impl.queue->Reschedule(impl.queue_name, receipt, v.due);
      counter = v.status.ok() ? &impl.processed : &impl.retried;
      break;
    case Verdict::kRequeue:
      settled = impl.queue->Reschedule(impl.queue_name, receipt, v.due);
      counter = &impl.requeued;
      break;
    case Verdict::kError:
      settled = impl.queue->Retry(impl.queue_name, receipt, v.due,
                                  ErrorText(v.status));
      counter = &impl.retried;
      break;
    case Verdict::kBury:
      settled = impl.queue->Bury(impl.queue_name, receipt, ErrorText(v.status));
      counter = &impl.dead;
      break;
  }
  if (!settled.ok()) {
    // The delivery stays in flight and comes back after its visibility
    // timeout.
    ++impl.errors;
    return settled.status();
  }
  if (!*settled) {
    ++impl.stale;  // redelivered meanwhile: that delivery settles it
    return true;
  }
  ++*counter;
  if (metrics != nullptr) {
    if (counter == &impl.retried) metrics->RecordRetry(label);
    if (counter == &impl.dead) metrics->RecordDeadLetter(label);
    if (contention) metrics->RecordRequeue(label);
  }
  return true;
}

absl::StatusOr<int64_t> Processor::Drain() {
  int64_t n = 0;
  while (true) {
    absl::StatusOr<bool> ran = RunOnce();
    if (!ran.ok()) return ran.status();
    if (!*ran) return n;
    ++n;
  }
}

absl::StatusOr<std::optional<absl::Time>> Processor::NextDue() {
  absl::StatusOr<std::vector<Task>> pending =
      impl_->queue->ListPending(impl_->queue_name, 1);
  if (!pending.ok()) return pending.status();
  if (pending->empty()) return std::optional<absl::Time>();
  return std::optional<absl::Time>(pending->front().due);
}

absl::Status Processor::Start() {
  std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mu);
  if (!impl_->workers.empty()) {
    return absl::FailedPreconditionError("processor: already started");
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop.store(false);
  }
  for (int i = 0; i < options_.threads; ++i) {
    impl_->workers.emplace_back([this] {
      Impl& impl = *impl_;
      const auto idle = absl::ToChronoNanoseconds(options_.idle_wait);
      while (!impl.stop.load(std::memory_order_acquire)) {
        uint64_t seen;
        {
          std::lock_guard<std::mutex> lock(impl.mu);
          seen = impl.kicks;
        }
        // A store error is counted by RunOnce; the worker waits as if idle
        // and tries again.
        absl::StatusOr<bool> ran = RunOnce();
        if (ran.ok() && *ran) continue;
        std::unique_lock<std::mutex> lock(impl.mu);
        impl.cv.wait_for(lock, idle, [&] {
          return impl.stop.load(std::memory_order_acquire) ||
                 impl.kicks != seen;
        });
      }
    });
  }
  return absl::OkStatus();
}

void Processor::Stop() {
  std::lock_guard<std::mutex> lifecycle(impl_->lifecycle_mu);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop.store(true, std::memory_order_release);
  }
  impl_->cv.notify_all();
  for (std::thread& t : impl_->workers) t.join();
  impl_->workers.clear();
}

ProcessorStats Processor::stats() const {
  ProcessorStats s;
  s.processed = impl_->processed.load();
  s.requeued = impl_->requeued.load();
  s.retried = impl_->retried.load();
  s.dead = impl_->dead.load();
  s.stale = impl_->stale.load();
  s.errors = impl_->errors.load();
  return s;
}

}  // namespace converge
