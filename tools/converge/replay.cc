#include "replay.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "converge/codec.h"
#include "converge/json/json.h"
#include "converge/store/wrappers.h"

namespace converge::cli {

// Turns the manager's notifications into output lines, one at a time.
// While a store batch is open the lines are held, and written once the
// batch is committed: a line never describes a write that is not stored.
class Replayer::Listener : public ManagerListener {
 public:
  explicit Listener(LineSink sink) : sink_(std::move(sink)) {}

  void OnDecision(const Decision& decision) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The first decision of an action in this run came from the store:
      // it was decided before this run.
      if (decided_.insert(decision.action_id).second && decision.replayed) {
        ++resumed_;
      }
    }
    Emit(DecisionLine(decision));
  }
  void OnInstance(const InstanceEvent& event) override {
    Emit(InstanceLine(event));
  }
  void OnSummary(const Summary& summary) override {
    Emit(SummaryLine(summary));
  }

  // Holds lines from now on.
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    hold_ = true;
  }
  // Writes the held lines (their batch is committed) and stops holding.
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    for (const std::string& line : held_) sink_(line);
    held_.clear();
    hold_ = false;
  }
  // Drops the held lines (their batch was not committed).
  void Discard() {
    std::lock_guard<std::mutex> lock(mu_);
    held_.clear();
    hold_ = false;
  }
  int64_t resumed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return resumed_;
  }

 private:
  void Emit(std::string line) {
    std::lock_guard<std::mutex> lock(mu_);
    if (hold_) {
      held_.push_back(std::move(line));
    } else {
      sink_(line);
    }
  }

  mutable std::mutex mu_;
  LineSink sink_;
  bool hold_ = false;
  std::vector<std::string> held_;
  absl::flat_hash_set<int64_t> decided_;
  int64_t resumed_ = 0;
};

// The repo as the manager sees it while the replay commits in its own
// batches: without transactions. The manager makes each Submit one
// transaction of its own where the repo has them, and a second batch cannot
// open inside the replay's; seeing none, it makes its calls one by one, and
// they join the replay's open batch.
class Replayer::OuterBatchRepo final : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  absl::StatusOr<std::unique_ptr<RepoBatch>> BeginBatch() override {
    return std::unique_ptr<RepoBatch>();
  }
};

Replayer::Replayer(ReplayOptions options, LineSink sink)
    : options_(std::move(options)),
      listener_(std::make_unique<Listener>(std::move(sink))) {}

Replayer::~Replayer() {
  // An open batch is rolled back: its lines were never written.
  store_batch_.reset();
  // The processor and the manager use the stores and the clock.
  processor_.reset();
  manager_.reset();
  outer_batch_repo_.reset();
}

absl::StatusOr<std::unique_ptr<Replayer>> Replayer::Create(
    ReplayOptions options, LineSink sink) {
  if (options.workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("workers: must be >= 1, got ", options.workers));
  }
  if (options.batch_events < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_events: must be >= 1, got ", options.batch_events));
  }
  std::unique_ptr<Replayer> replayer(
      new Replayer(std::move(options), std::move(sink)));
  absl::StatusOr<tools::OpenedStore> store =
      tools::OpenStore(replayer->options_.store_uri, &replayer->clock_,
                       tools::OpenMode::kCreate, replayer->options_.repo_uri);
  if (!store.ok()) return store.status();
  replayer->store_ = *std::move(store);
  return replayer;
}

// The manager and the processor are made at the time of the first event,
// so that the processor's periodic jobs (the sweep every minute) start
// there and not at the Unix epoch.
absl::Status Replayer::Start(absl::Time t) {
  clock_.Set(t);
  // A store that keeps state may hold tasks of an earlier run, due long
  // before this run's first event: the replay would run them, and the
  // periodic jobs every minute, across the whole gap. Checked before
  // anything is written.
  absl::StatusOr<std::vector<Task>> first =
      store_.stores.queue->ListPending(ManagerOptions().task_queue, 1);
  if (!first.ok()) return first.status();
  if (!first->empty() && first->front().due + kMaxTimeJump < t) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the store ", store_.uri, " holds tasks due from ",
        TimeToJson(first->front().due),
        ", more than 366 days before the first event's time, ", TimeToJson(t),
        " (the replay would run the periodic jobs, such as the sweep, for "
        "every minute between): replay onto another store, or go on with "
        "events near the stored ones"));
  }
  // Batches of events only where one transaction takes in every write of
  // an event and keeps other writers out (SQLite alone): MySQL keeps
  // leases, windows and queue writes out of a batch, and a repo on another
  // store than the queue cannot take the queue's writes in, so a batch
  // rolled back there would leave tasks that its decisions never made.
  if (options_.workers == 1 && options_.batch_events > 1 &&
      options_.repo_uri.empty()) {
    absl::StatusOr<std::unique_ptr<RepoBatch>> probe =
        store_.stores.repo->BeginBatch();
    if (!probe.ok()) return probe.status();
    batches_supported_ = *probe != nullptr && (*probe)->ExcludesWriters();
  } else {
    batches_supported_ = false;
  }  // the probe's transaction ends here, empty
  ManagerOptions manager_options;
  manager_options.rules.profile = options_.profile;
  manager_options.listener = listener_.get();
  Stores stores = store_.stores;
  if (Batching()) {
    outer_batch_repo_ = std::make_unique<OuterBatchRepo>(stores.repo);
    stores.repo = outer_batch_repo_.get();
  }
  absl::StatusOr<std::unique_ptr<ConvergeManager>> manager =
      ConvergeManager::Create(stores, &clock_, manager_options);
  if (!manager.ok()) return manager.status();
  manager_ = *std::move(manager);
  absl::StatusOr<std::unique_ptr<Processor>> processor =
      Processor::Create(manager_.get(), ProcessorOptions());
  if (!processor.ok()) return processor.status();
  processor_ = *std::move(processor);
  return absl::OkStatus();
}

std::optional<InputError> Replayer::CheckOrder(const Event& event) const {
  if (!last_time_.has_value()) return std::nullopt;
  return CheckEventTime(event.time, *last_time_);
}

// A task that failed is retried after a jittered backoff or buried: either
// way the replay would no longer say what happened, so it stops.
absl::Status Replayer::CheckFailures() {
  const ProcessorStats stats = processor_->stats();
  const int64_t failures = stats.retried + stats.dead;
  if (failures == failures_seen_) return absl::OkStatus();
  failures_seen_ = failures;
  const std::string& queue = manager_->options().task_queue;
  std::string what = "a task failed";
  absl::StatusOr<std::vector<Task>> dead =
      store_.stores.queue->ListDead(queue, 0);
  if (dead.ok() && !dead->empty()) {
    // An action the manager refused as bad input (sizes are checked when
    // its task runs): report it as the input error it is.
    constexpr std::string_view kInvalid = "INVALID_ARGUMENT: ";
    const Task& last = dead->back();
    if (last.kind == "action" &&
        std::string_view(last.last_error).substr(0, kInvalid.size()) ==
            kInvalid) {
      return absl::InvalidArgumentError(
          last.last_error.substr(kInvalid.size()));
    }
    what = absl::StrCat(
        "task ", dead->back().id,
        " failed and went to the dead-letter list: ", dead->back().last_error);
  } else {
    absl::StatusOr<std::vector<Task>> pending =
        store_.stores.queue->ListPending(queue, 0);
    if (pending.ok()) {
      for (const Task& task : *pending) {
        if (!task.last_error.empty()) {
          what = absl::StrCat("task ", task.id, " failed (attempt ",
                              task.attempts, "): ", task.last_error);
        }
      }
    }
  }
  return absl::InternalError(what);
}

// Runs the tasks due at the clock's instant: serially, or on `workers`
// threads until none is left.
absl::Status Replayer::RunInstant() {
  if (options_.workers == 1) {
    absl::StatusOr<bool> ran = processor_->RunOnce();
    if (!ran.ok()) return ran.status();
    if (!*ran) {
      return absl::InternalError(absl::StrCat(
          "a task due at ", TimeToJson(clock_.Now()), " was not delivered"));
    }
    return CheckFailures();
  }
  std::mutex mu;
  absl::Status first_error;
  auto work = [&] {
    for (;;) {
      absl::StatusOr<bool> ran = processor_->RunOnce();
      if (!ran.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = ran.status();
        return;
      }
      if (!*ran) return;
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(options_.workers - 1);
  for (int i = 1; i < options_.workers; ++i) threads.emplace_back(work);
  work();
  for (std::thread& t : threads) t.join();
  if (!first_error.ok()) return first_error;
  return CheckFailures();
}

absl::Status Replayer::RunDue(absl::Time t) {
  for (;;) {
    absl::StatusOr<std::optional<absl::Time>> next = processor_->NextDue();
    if (!next.ok()) return next.status();
    if (!next->has_value() || **next > t) break;
    if (**next > clock_.Now()) clock_.Set(**next);
    if (absl::Status st = RunInstant(); !st.ok()) return st;
  }
  if (clock_.Now() < t) clock_.Set(t);
  return absl::OkStatus();
}

int64_t Replayer::resumed() const { return listener_->resumed(); }

// One transaction for the writes of batch_events consecutive events
// (InstanceRepo::BeginBatch): the same calls in the same order, committed
// together. Only with one worker: a batch holds the store's write lock for
// its thread, and other workers would wait for it.
bool Replayer::Batching() const {
  return options_.workers == 1 && options_.batch_events > 1 &&
         batches_supported_;
}

absl::Status Replayer::Apply(const Event& event) {
  // Start decides whether the store takes batches.
  if (manager_ == nullptr) {
    if (absl::Status st = Start(event.time); !st.ok()) return st;
  }
  if (event.type == Event::Type::kAction) {
    // Bad input changes nothing: checked before the tasks due by its time
    // run (replay-format.md: nothing at or after a bad line is applied).
    if (absl::Status st = manager_->Validate(event.action, event.config);
        !st.ok()) {
      return st;
    }
    if (absl::Status st = ValidateActionTask(event.action, event.config);
        !st.ok()) {
      return st;
    }
  }
  if (store_batch_ == nullptr && Batching()) {
    absl::StatusOr<std::unique_ptr<RepoBatch>> batch =
        store_.stores.repo->BeginBatch();
    if (!batch.ok()) return batch.status();
    if (*batch == nullptr) {
      return absl::InternalError("replay: the store stopped taking batches");
    }
    store_batch_ = *std::move(batch);
    store_batch_events_ = 0;
    listener_->Hold();
  }
  absl::Status st = ApplyEvent(event);
  if (store_batch_ != nullptr &&
      ++store_batch_events_ >= options_.batch_events) {
    if (absl::Status commit = Commit(); st.ok()) st = commit;
  }
  return st;
}

absl::Status Replayer::Commit() {
  if (store_batch_ == nullptr) return absl::OkStatus();
  std::unique_ptr<RepoBatch> batch = std::move(store_batch_);
  if (absl::Status st = batch->Commit(); !st.ok()) {
    listener_->Discard();
    return st;
  }
  listener_->Release();
  return absl::OkStatus();
}

absl::Status Replayer::ApplyEvent(const Event& event) {
  if (manager_ == nullptr) {
    if (absl::Status st = Start(event.time); !st.ok()) return st;
  }
  const bool batchable =
      options_.workers > 1 && event.type == Event::Type::kAction;
  if (batch_pending_ && !(batchable && event.time == batch_time_)) {
    batch_pending_ = false;
    if (absl::Status st = RunDue(batch_time_); !st.ok()) return st;
  }
  if (!batch_pending_) {
    if (absl::Status st = RunDue(event.time); !st.ok()) return st;
  }
  last_time_ = event.time;

  switch (event.type) {
    case Event::Type::kAction: {
      absl::Status st =
          processor_->SubmitAction(event.action, event.config, event.time);
      if (st.code() == absl::StatusCode::kAlreadyExists) {
        // The same action again while its first task is still queued (a
        // batch): let that one run first, then deliver it again.
        batch_pending_ = false;
        if (st = RunDue(event.time); !st.ok()) return st;
        st = processor_->SubmitAction(event.action, event.config, event.time);
        // Still queued: with several workers, its first delivery lost the
        // dimension lease too often and was requeued for later; that
        // delivery then stands for both. With one worker nothing is left
        // to contend: a task still queued is one that failed and waits for
        // its retry, and its line would be missing here.
        if (st.code() == absl::StatusCode::kAlreadyExists) {
          st = options_.workers > 1
                   ? absl::OkStatus()
                   : absl::FailedPreconditionError(absl::StrCat(
                         "action ", event.action.id,
                         ": its task of an earlier delivery is still queued "
                         "(it failed and waits for its retry, or was put "
                         "back after lease contention), so its decision "
                         "cannot be written here: ",
                         st.message()));
        }
      }
      if (!st.ok()) return st;
      if (batchable) {
        batch_pending_ = true;
        batch_time_ = event.time;
        return absl::OkStatus();
      }
      return RunDue(event.time);
    }
    case Event::Type::kStatus: {
      // A report for an action without a decision changes nothing.
      absl::Status st = manager_->ReportStatus(event.id, event.status);
      if (st.code() == absl::StatusCode::kNotFound) return absl::OkStatus();
      if (!st.ok()) return st;
      return RunDue(event.time);
    }
    case Event::Type::kApproval: {
      // Approving or rejecting an action that does not wait for approval
      // (unknown, already approved, rejected or timed out) is a no-op.
      absl::StatusOr<Decision> d = event.approved ? manager_->Approve(event.id)
                                                  : manager_->Reject(event.id);
      if (!d.ok() && d.status().code() != absl::StatusCode::kNotFound &&
          d.status().code() != absl::StatusCode::kFailedPrecondition) {
        return d.status();
      }
      return RunDue(event.time);
    }
    case Event::Type::kTick:
      return absl::OkStatus();
  }
  return absl::OkStatus();
}

absl::Status Replayer::Finish() {
  absl::Status st;
  if (batch_pending_) {
    batch_pending_ = false;
    st = RunDue(batch_time_);
  }
  // What ran is committed, even after an error.
  if (absl::Status commit = Commit(); st.ok()) st = commit;
  return st;
}

namespace {

// Reads one line (without its '\n') into *line, keeping at most `max` + 1
// of its bytes: a longer line is read to its end and dropped, so that
// input without newlines cannot fill the memory. *length is the line's
// whole length. False at the end of the input, with nothing read.
bool ReadLine(std::istream& in, std::string* line, size_t max, size_t* length) {
  line->clear();
  *length = 0;
  std::streambuf* buf = in.rdbuf();
  bool any = false;
  while (true) {
    const int c = buf->sbumpc();
    if (c == std::char_traits<char>::eof()) {
      in.setstate(std::ios::eofbit);
      return any;
    }
    any = true;
    if (c == '\n') return true;
    ++*length;
    if (line->size() <= max) line->push_back(static_cast<char>(c));
  }
}

// Writes output lines to stdout as they come.
void WriteLine(std::string_view line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
}

}  // namespace

int RunReplay(const ReplayOptions& options, const std::string& path) {
  const std::string name = path == "-" ? "<stdin>" : path;
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::cerr << "converge replay: " << name << ": cannot open\n";
      return 1;
    }
    in = &file;
  }
  ReplayOptions effective = options;
  // A stream may pause between lines: each line's output is written before
  // the next is read.
  if (path == "-") effective.batch_events = 1;
  absl::StatusOr<std::unique_ptr<Replayer>> replayer =
      Replayer::Create(effective, WriteLine);
  if (!replayer.ok()) {
    std::cerr << "converge replay: " << replayer.status().message() << "\n";
    return 1;
  }
  // On a store that keeps state, says how many actions were decided before
  // this run (their lines are the stored decisions).
  auto note_resumed = [&] {
    if (const int64_t n = (*replayer)->resumed(); n > 0) {
      std::cerr << "converge replay: " << n
                << (n == 1 ? " action was" : " actions were")
                << " decided before this run in " << (*replayer)->store_label()
                << "; their stored decisions were replayed, not taken again\n";
    }
  };
  auto fail = [&](int64_t line_no, const std::string& what) {
    // What came before the bad line is applied in full.
    absl::Status st = (*replayer)->Finish();
    std::fflush(stdout);
    std::cerr << "converge replay: " << name << ", line " << line_no << ": "
              << what << "\n";
    if (!st.ok()) std::cerr << "converge replay: " << st.message() << "\n";
    note_resumed();
    return 1;
  };

  std::string line;
  int64_t line_no = 0;
  size_t length = 0;
  while (ReadLine(*in, &line, json::kMaxInputBytes, &length)) {
    ++line_no;
    if (length > json::kMaxInputBytes) {
      return fail(line_no, absl::StrCat("line of ", length, " bytes exceeds ",
                                        json::kMaxInputBytes, " bytes"));
    }
    if (IsSkippedLine(line)) continue;
    InputError error;
    std::optional<Event> event = ParseEvent(line, "", &error);
    if (!event.has_value()) return fail(line_no, error.ToString());
    if (std::optional<InputError> order = (*replayer)->CheckOrder(*event)) {
      return fail(line_no, order->ToString());
    }
    absl::Status st = (*replayer)->Apply(*event);
    if (!st.ok()) {
      std::optional<InputError> input = InputErrorFromStatus(st);
      return fail(line_no, input.has_value()
                               ? input->ToString()
                               : absl::StrCat("replay failed: ",
                                              std::string(st.message())));
    }
  }
  if (in->bad()) {
    absl::Status st = (*replayer)->Commit();
    std::fflush(stdout);
    std::cerr << "converge replay: " << name << ": read error after line "
              << line_no << "\n";
    if (!st.ok()) std::cerr << "converge replay: " << st.message() << "\n";
    note_resumed();
    return 1;
  }
  if (absl::Status st = (*replayer)->Finish(); !st.ok()) {
    std::fflush(stdout);
    std::cerr << "converge replay: replay failed: " << st.message() << "\n";
    note_resumed();
    return 1;
  }
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::cerr << "converge replay: cannot write the output\n";
    return 1;
  }
  note_resumed();
  return 0;
}

}  // namespace converge::cli
