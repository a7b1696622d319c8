// ConvergeManager: decides, for every action, whether it runs, is skipped,
// sleeps, or goes to approval, by grouping it with related actions in a time
// window (first-level convergence; section 3 of converge-semantics.md).
//
// The manager owns no state of its own: everything lives in the stores it is
// given, so any number of managers (threads, processes, machines) may share
// one set of stores. Decisions are idempotent on the action id: submitting an
// already-decided action returns the stored decision and changes nothing.
//
// Thread safety: a ConvergeManager is safe for concurrent use; the stores and
// the clock must outlive it.

#ifndef CONVERGE_MANAGER_H_
#define CONVERGE_MANAGER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "converge/clock.h"
#include "converge/config.h"
#include "converge/keys.h"
#include "converge/model.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge {

class Metrics;

// An instance was created, hidden (absorbed by a second-level instance) or
// ended (section 6.1).
struct InstanceEvent {
  enum class Kind { kCreated, kHidden, kEnded };
  Kind kind = Kind::kCreated;
  absl::Time time;
  int64_t converge_id = 0;
  ConvergeType converge_type = ConvergeType::kAction;
  ConvergeFunction converge_func = ConvergeFunction::kSkipWhenExceed;
};

// "created", "hidden", "ended".
std::string_view ToString(InstanceEvent::Kind kind);

// What running an instance's summary task produced (section 5.6).
struct Summary {
  int64_t converge_id = 0;
  ConvergeType converge_type = ConvergeType::kAction;  // the level
  ConvergeFunction converge_func = ConvergeFunction::kCollect;
  int64_t bk_biz_id = 0;
  absl::Time time;
  // True when a summary is to be sent: the instance was open and visible
  // and had related skipped actions, and this run ended it. False: the
  // summary action ends as skipped (nothing to report, already ended, or
  // hidden by a second-level instance whose summary reports its actions).
  bool sent = false;
  // The template to render: the instance's converge_type when more than
  // one action is related, else action.
  ConvergeType template_type = ConvergeType::kAction;
  // The related actions whose status is skipped, ascending. For a
  // second-level instance: those of its hidden first-level instances.
  std::vector<int64_t> action_ids;
  // The instance's converged condition (who the summary goes to).
  std::map<std::string, std::vector<Value>, std::less<>> converged_condition;
};

// Receives what the manager does, as it happens, on the thread that does
// it (so possibly from several threads at once: implementations must be
// thread-safe). Calls are made after the state they report is stored.
// A callback may call back into the manager, or into another one (Submit,
// RunSummary, ...): a Submit made from a callback is decided alone, in a
// transaction of its own, instead of queueing for a group commit (a
// callback may run on a group's leader thread, for another caller's
// decision, so queued it could wait for itself). Some callbacks run while
// a dimension's lease is held: on every store the OnDecision of a sleep
// re-poll (Reevaluate) and the kCreated / kHidden events of the business
// summary task; on a store without transactions (memory) also a Submit's
// kCreated and the kEnded of an instance it found expired. A Submit of
// that dimension from such a callback finds the lease busy until
// lease_attempts run out; hand such work to another thread (a queue)
// instead. Callbacks should be quick in any case: a group's other callers
// wait for them. A callback should not throw: the exception leaves the
// call of the thread that ran it, after what the callback reports was
// stored; under group commit the other callers of that group get
// kInternal (their decisions may be stored too: a second Submit reads
// them) and the manager goes on.
class ManagerListener {
 public:
  virtual ~ManagerListener() = default;
  // A decision Submit returned (new or replayed), or a stored decision that
  // changed (a sleep re-poll, an approval, a timeout).
  virtual void OnDecision(const Decision& decision) {}
  virtual void OnInstance(const InstanceEvent& event) {}
  // A summary run that sent a summary (Summary::sent).
  virtual void OnSummary(const Summary& summary) {}
};

// Task kinds the manager schedules on its task queue (subject_id in
// parentheses). Task ids are "<kind>:<subject_id>".
namespace task_kinds {
inline constexpr std::string_view kSummary = "summary";          // instance
inline constexpr std::string_view kSubConverge = "subconverge";  // instance
inline constexpr std::string_view kRepoll = "repoll";            // action
inline constexpr std::string_view kApproval = "approval";        // action
}  // namespace task_kinds

// What a sweep did.
struct SweepResult {
  int64_t scanned = 0;    // open instances looked at
  int64_t ended = 0;      // instances ended (not counting recursive ends)
  int64_t summaries = 0;  // summary-function instances whose summary ran
};

// The stores a manager works on; not owned. All four are required. Stores
// made by one backend factory share state as their contracts require (the
// window store's lease is the lock store's lease).
struct Stores {
  LockStore* lock = nullptr;
  QueueStore* queue = nullptr;
  InstanceRepo* repo = nullptr;
  WindowStore* window = nullptr;
};

struct ManagerOptions {
  // Profile and window granularity.
  RuleOptions rules;
  // Key prefix and hash tags.
  KeySpaceOptions keys;
  // Lease on a dimension while it is evaluated. Default 60 s (upstream K5).
  absl::Duration lease_ttl = absl::Seconds(60);
  // How often Submit tries to take a busy lease before it returns
  // kUnavailable ("lease busy"; the caller requeues). Default 200; 1 = no
  // waiting. Between attempts it waits a jittered, doubling real-time delay
  // from lease_backoff_min (default 20 µs) up to lease_backoff_max
  // (default 5 ms).
  int lease_attempts = 200;
  absl::Duration lease_backoff_min = absl::Microseconds(20);
  absl::Duration lease_backoff_max = absl::Milliseconds(5);
  // Window index entries are kept this long past their window, and index
  // keys expire this long plus the window after their last write. Default
  // 1800 s (K2 TTL).
  absl::Duration index_retention = absl::Seconds(1800);
  // collect / collect_alarm: the summary task is due this long after the
  // instance is created. Default 60 s.
  absl::Duration summary_delay = absl::Seconds(60);
  // A sleeping action is re-evaluated this often (upstream 30 s).
  absl::Duration repoll_interval = absl::Seconds(30);
  // An approval that never comes turns the action to skip after this long
  // (upstream's ITSM ticket timeout, 30 min).
  absl::Duration approval_timeout = absl::Minutes(30);
  // The business counter (K4) expires this long after its last increment
  // at or under the threshold (upstream MULTI_STRATEGY_COLLECT_WINDOW).
  absl::Duration business_counter_ttl = absl::Seconds(120);
  // Sweep: an open instance is ended once its window has passed by this
  // much (create_time + W + sweep_grace < now); a summary-function
  // instance once create_time + max(W, summary_delay) + sweep_grace < now,
  // by running its summary.
  absl::Duration sweep_grace = absl::Seconds(60);
  // Purge: ended instances, their relations and old action records are
  // deleted this long after they ended or were decided. Default 7 days.
  absl::Duration retention = absl::Hours(24 * 7);
  // Queue that receives the tasks the manager schedules (see task_kinds):
  // summaries, second-level processing, sleep re-polls, approval timeouts.
  // Default "converge"; not empty.
  std::string task_queue = "converge";
  // Told about decisions, instance events and summaries. Not owned; may be
  // null; must outlive the manager.
  ManagerListener* listener = nullptr;
  // Counters the manager updates. Not owned; may be null; must outlive the
  // manager.
  Metrics* metrics = nullptr;
  // Largest accepted size in bytes of one string of an action (a context
  // value or key, an alert id, signal, plugin_type) and largest number of
  // items of a context list (default 4096; lists nest at most 8 deep);
  // larger input is kInvalidArgument. max_alerts caps the number of alerts
  // of one action (default 10,000). 0 for either refuses every non-empty
  // value.
  size_t max_value_bytes = 4096;
  size_t max_alerts = 10000;
  // Largest number of values of a config's conditions, all conditions
  // together (a condition without values counts one), and the same for its
  // sub_converge_config. A condition's dimension name and each of its
  // values are bounded by max_value_bytes too. Upstream's configs have a
  // handful; the bound keeps an action's keys and dimension text small.
  // Default 256.
  size_t max_condition_values = 256;
  // Prefix of this manager's lease tokens (to tell holders apart when
  // reading a store). A random part always follows it, so managers never
  // share tokens. Default empty.
  std::string token_prefix;
  // Group commit, on a repo with transactions (InstanceRepo::BeginBatch;
  // SQLite): Submit calls made at the same time from several threads are
  // decided together by one of them, in their order of arrival, as one
  // SubmitBatch of up to this many actions: one transaction and one commit
  // for all of them. Each call still returns its own decision once that is
  // committed, and gets the same result it would get alone (a store error
  // of the shared transaction makes each of its actions run again in a
  // transaction of its own). Where transactions take turns (one writer at a
  // time, as SQLite's), this multiplies the decisions a second that several
  // submitting threads (Processor workers) get. Default 256; 1 = off (every
  // Submit is its own transaction). Must be >= 1.
  int group_commit_max = 256;
  // Bulk reads in a batch (SubmitBatch, group commit): before deciding its
  // items in order, a batch asks the stores at once what each item's
  // decision will first need: the open instances of their dimensions
  // (InstanceRepo::LookupOpenMany), the joins it will make (PrepareJoins),
  // the stored decisions of the items that take the slow path
  // (GetActions), and their leases with their index writes and window
  // reads (WindowStore::ApplyMany, in one transaction on MySQL). The
  // decisions are the same (the prefetched answers are checked under the
  // leases as the item's own would be); where every call is a round trip
  // (MySQL) a batch then costs a few statements instead of several per
  // item. kAuto: on where the batch leaves other writers free (MySQL's row
  // locks; RepoBatch::ExcludesWriters false), off where it holds the
  // store's only write lock and calls are in-process (SQLite).
  enum class BatchPrefetch { kAuto, kOn, kOff };
  BatchPrefetch batch_prefetch = BatchPrefetch::kAuto;
};

// True for the kUnavailable status of an evaluation that found its
// dimension lease busy (or lost it): the work is fine and should be
// requeued after a short delay, unlike a store that cannot be reached.
bool IsLeaseBusy(const absl::Status& status);

class ConvergeManager {
 public:
  // Returns kInvalidArgument if a store or the clock is null, or an option is
  // out of range (lease_ttl <= 0, lease_attempts < 1, negative durations).
  static absl::StatusOr<std::unique_ptr<ConvergeManager>> Create(
      Stores stores, const Clock* clock, ManagerOptions options = {});
  ~ConvergeManager();

  // Decides `action` under `config` (the upstream converge_config of the
  // action's strategy relation).
  //
  // Returns the decision. An action that already has one gets it back with
  // replayed = true and nothing changes. Errors: kInvalidArgument (naming the
  // field path) for a bad action or config; kUnavailable when the dimension
  // lease stayed busy for lease_attempts tries, was lost during the
  // evaluation, or a store is unreachable (the caller retries later; nothing
  // was decided, except, on a repo without transactions, when a summary task
  // could not be scheduled after the decision was stored: the retry then
  // replays the decision and schedules it); kAborted when the dimension's
  // instance kept changing under the evaluation (retry), or, marked
  // IsConflict (converge/store/errors.h), when its transaction met another
  // writer's work on its last run too (it is run again once; retry); other
  // store errors as returned by the store.
  //
  // The lease on D is taken unless the action joins an open instance whose
  // outcome is settled: its function only counts the executed set and the
  // count has reached the threshold (or the function ignores it), as
  // upstream's need_get_lock.
  //
  // Where the repo has transactions (InstanceRepo::BeginBatch; SQLite) the
  // whole decision is one transaction, as a SubmitBatch of one (or of the
  // Submit calls of other threads at the same time: group_commit_max): its
  // index entries, lease, decision and follow-up tasks are committed
  // together before this returns. The transaction holds the store's write lock,
  // so a lease held by another process is not waited for: Submit returns the
  // lease-busy kUnavailable at once.
  absl::StatusOr<Decision> Submit(const Action& action,
                                  const ConvergeConfig& config);

  // The checks Submit makes on a config: ValidateConfig, and the sizes of
  // its conditions (max_condition_values, max_value_bytes). For a host
  // that checks its configs once, at start. kInvalidArgument naming the
  // field path.
  absl::Status CheckConfig(const ConvergeConfig& config) const;

  // The checks Submit makes on its input before anything else: the
  // action's fields and sizes (max_value_bytes, max_alerts) and the config
  // (CheckConfig). kInvalidArgument naming the field path.
  absl::Status Validate(const Action& action,
                        const ConvergeConfig& config) const;

  // One action of a batch, and its config (not owned).
  struct BatchItem {
    const Action* action = nullptr;
    const ConvergeConfig* config = nullptr;
  };

  // Submits `items` in order, as Submit would one by one (the same
  // decisions), in one transaction of the repo where it has them
  // (InstanceRepo::BeginBatch; SQLite): one commit for the whole batch,
  // made before this returns, so every returned decision is durable.
  // Returns one result per item. A per-item error (bad input, a busy
  // lease) is that item's result and the others go on; an error of the
  // store fails the whole batch (every item gets it, nothing of the batch
  // is stored, and the listener hears nothing). A commit of several items
  // that fails on one item's bad value (kInvalidArgument: MySQL writes a
  // batch's joins at its commit) fails every item with kAborted instead,
  // since it is not theirs: submit them again (one by one finds the bad
  // one). A batch of one action rolled back because it met another
  // writer's work (an IsConflict error, converge/store/errors.h) is run
  // once more before that error is returned; a larger one returns it (the
  // window index writes of a first run would show in the second).
  // Listener calls are made after the commit.
  std::vector<absl::StatusOr<Decision>> SubmitBatch(
      absl::Span<const BatchItem> items);

  // Records the status the host reports for a decided action (running,
  // success, failure, ...). The result-aware functions (skip_when_success,
  // skip_when_proceed, wait_when_proceed, approve_when_failed) read it.
  // Returns kNotFound if the action has no decision.
  absl::Status ReportStatus(int64_t action_id, ActionStatus status);

  // Re-evaluates an action whose stored outcome is sleep (upstream's 30 s
  // re-poll): skipped once create_time + max(execute_timeout,
  // max_timedelta) has passed (upstream's rule; the window W when both
  // are 0);
  // execute if its instance has ended; otherwise its function is evaluated
  // again on the instance's executed set. The stored decision is replaced
  // only when the outcome changes (its relation keeps status skipped, as
  // upstream). An action that is not sleeping gets its stored decision back
  // unchanged. Returns kNotFound if the action has no decision.
  absl::StatusOr<Decision> Reevaluate(int64_t action_id);

  // Approves (Approve) or rejects (Reject) an action whose outcome is
  // approval: its decision becomes execute, or skip. Returns the new
  // decision; kFailedPrecondition if its outcome is not approval (already
  // approved, rejected or timed out), kNotFound if it has no decision.
  absl::StatusOr<Decision> Approve(int64_t action_id);
  absl::StatusOr<Decision> Reject(int64_t action_id);

  // The approval timeout task: an action still waiting for approval
  // approval_timeout after its decision becomes skip. Otherwise (decided,
  // or not yet due) the stored decision is returned unchanged.
  absl::StatusOr<Decision> ExpireApproval(int64_t action_id);

  // Runs the summary of instance `converge_id` (the task a collect or
  // collect_alarm instance schedules at creation; section 5.6): deletes
  // the business counter of a second-level instance, gathers the related
  // skipped actions, and ends the instance (recursively for a second-level
  // one) when it is visible. Running it again, or on an ended instance,
  // returns sent = false and changes nothing. kNotFound if unknown.
  absl::StatusOr<Summary> RunSummary(int64_t converge_id);

  // Second-level processing of first-level instance `first_level_id`
  // (section 5.3): finds or creates the business-summary instance of its
  // business dimension and links (and hides) the first-level instance. A
  // no-op if the instance has ended (S18), is already linked, or its config
  // has no second level. kUnavailable when the lease stayed busy.
  absl::Status ProcessSubConverge(int64_t first_level_id);

  // Ends open instances whose window has passed (see sweep_grace), at
  // most `limit` of them (0 = all). A hidden instance is left to its
  // second-level instance, unless that has ended (or gone) without it;
  // such an orphan is ended without a summary (it was hidden when its
  // second level reported). An instance whose end or summary fails does
  // not stop the others: the first such error is returned after the pass
  // (also when `limit` was reached).
  absl::StatusOr<SweepResult> Sweep(size_t limit = 0);

  // Deletes what the retention option says is old enough, at most `limit`
  // rows of each kind (0 = all).
  absl::StatusOr<PurgeResult> Purge(size_t limit = 0);

  // The stored decision of an action, or nullopt.
  absl::StatusOr<std::optional<Decision>> GetDecision(int64_t action_id);

  // Ends an open instance now (see InstanceRepo::End), and for a
  // second-level instance every first-level instance linked to it
  // (section 5.5). Returns true if this call ended it, false if it had
  // already ended; kNotFound if unknown.
  absl::StatusOr<bool> EndInstance(int64_t converge_id);

  // The key of the lease that serializes evaluation of dimension D (template
  // K5, hash-tagged by D itself: one lease per D, whatever the strategy).
  absl::StatusOr<std::string> LeaseKey(std::string_view dimension) const;

  const Clock& clock() const { return *clock_; }
  const Stores& stores() const { return stores_; }
  const KeySpace& key_space() const { return keys_; }
  const ManagerOptions& options() const { return options_; }

 private:
  ConvergeManager(Stores stores, const Clock* clock, ManagerOptions options);
  // Submit through group commit (ManagerOptions::group_commit_max).
  absl::StatusOr<Decision> SubmitGrouped(const Action& action,
                                         const ConvergeConfig& config);

  struct Plan;  // one evaluation's computed inputs
  absl::StatusOr<Decision> Record(const ActionRecord& record);
  // A stored decision handed back (re-scheduling a lost summary task).
  absl::StatusOr<Decision> Replay(const ActionRecord& record);
  // The stored decision of an action that must have one.
  absl::StatusOr<Decision> StoredDecision(int64_t action_id);
  // Evaluates the function for a joiner of open instance `converge_id` and
  // stores decision and relation. nullopt: the instance ended meanwhile.
  absl::StatusOr<std::optional<Decision>> JoinOpen(
      const Action& action, const ConvergeConfig& eff, int64_t window_seconds,
      int64_t converge_id, int64_t executed_count,
      const std::vector<MemberStatus>* executed, ActionRecord* record);
  // What a batch fetched for one of its items before deciding it (see
  // PrefetchBatch in manager.cc).
  struct Prefetch;
  // SubmitBatch without its second run after a conflict; `runs_again`:
  // there will be one (RepoBatch::RetriedOnConflict).
  std::vector<absl::StatusOr<Decision>> SubmitBatchOnce(
      absl::Span<const BatchItem> items, bool runs_again);
  absl::StatusOr<Decision> SubmitOne(const Action& action,
                                     const ConvergeConfig& config,
                                     Prefetch* prefetch = nullptr);
  // True while a repo batch of this manager runs on the calling thread.
  bool InRepoBatch() const;
  // Inside a batch with PrefetchBatch: keeps `task` to be enqueued with the
  // batch's other tasks before its commit, and returns true.
  bool DeferEnqueue(const Task& task);
  absl::StatusOr<Decision> SubmitImpl(const Action& action,
                                      const ConvergeConfig& config,
                                      Prefetch* prefetch);
  // Fills `prefetch` (one per item) with what the items will ask the stores
  // first, asked for all of them at once. A store error is returned.
  absl::Status PrefetchBatch(absl::Span<const BatchItem> items,
                             std::vector<Prefetch>& prefetch);
  absl::Status EnsureSummary(const ConvergeInstance& instance);
  // Indexes a first-level instance in the business index (K3) and
  // schedules its second-level processing, if its config has a second
  // level (idempotent).
  absl::Status EnsureSubConverge(const ConvergeInstance& instance);
  // Schedules the re-poll of a sleeping action or the timeout of an
  // approval (idempotent; nothing for other outcomes).
  absl::Status EnsureFollowUp(const Decision& decision);
  // Enqueues task "<kind>:<subject>" due at `due`; an existing one is fine.
  absl::Status EnqueueOnce(std::string_view kind, int64_t subject,
                           absl::Time due);
  // Ends `id` and, for a second-level instance, its linked first-level
  // instances (section 5.5), reporting each end. *committed (if given) is
  // set once the end of `id` itself is stored, also when a later step
  // fails and an error is returned. `visible_only`: `id` ends only while it
  // is visible (InstanceRepo::EndVisible), as its summary ends it.
  // `known`: the instance `id` as read by the caller (its type and
  // function), or null to read it.
  absl::StatusOr<bool> EndRecursive(int64_t id, absl::Time now, int depth,
                                    bool* committed = nullptr,
                                    bool visible_only = false,
                                    const ConvergeInstance* known = nullptr);
  // Ends an instance found expired by a decision at `now` (lazy expiry,
  // section 3.5.1): a visible instance of a summary function gets its
  // summary then, as the sweep gives it, since its summary task would find
  // it ended and report nothing. True if this call ended it.
  // `known`: the instance as read by the caller, or null to read it.
  absl::StatusOr<bool> EndExpired(int64_t id, absl::Time now,
                                  const ConvergeInstance* known = nullptr);
  // The summary of `inst` as of `now` (RunSummary's work). *ended (if
  // given): whether this call ended the instance. `reset_counter`: a
  // second-level instance's business counter starts over (its summary
  // task); lazy expiry keeps it, since the first-level instance that found
  // the instance expired has counted already.
  absl::StatusOr<Summary> Summarize(const ConvergeInstance& inst,
                                    absl::Time now, bool* ended,
                                    bool reset_counter);
  // Compare-and-set of an approval outcome.
  absl::StatusOr<Decision> SettleApproval(int64_t action_id, Outcome next,
                                          std::string reason, bool timeout);
  // Runs `note` (a listener call, a metrics update) now, or, inside
  // SubmitBatch on this thread, after the batch commits.
  void Emit(std::function<void()> note);
  void NotifyInstance(InstanceEvent::Kind kind,
                      const ConvergeInstance& instance, absl::Time at);
  void NotifyDecisionChanged(const Decision& decision,
                             std::optional<ConvergeFunction> func);
  static bool HasSecondLevel(const ConvergeConfig& config);
  // The five business fields of a converged condition (bk_biz_id, signal,
  // notice_way, notice_receiver, alert_level), or nullopt if one is
  // missing: such an instance takes no part in the second level.
  static std::optional<std::array<std::string, 5>> BusinessFields(
      const std::map<std::string, std::vector<Value>, std::less<>>& cond);
  absl::StatusOr<std::string> BusinessKey(
      const KeyTemplate& tpl, const std::array<std::string, 5>& fields) const;
  // Takes the lease `key` for `token` (with `request` applied, if given),
  // in up to ManagerOptions::lease_attempts attempts, `tried` of them made
  // already.
  absl::StatusOr<bool> AcquireLease(const std::string& key,
                                    const std::string& token,
                                    WindowRequest* request,
                                    WindowResult* result, int tried = 0);
  std::string NextToken(int64_t action_id);

  Stores stores_;
  const Clock* clock_;
  ManagerOptions options_;
  KeySpace keys_;
  std::string token_prefix_;
  std::atomic<uint64_t> token_seq_{0};
  // Whether the repo has transactions: -1 not known yet (no batch begun), 0
  // no, 1 yes. Set by SubmitBatch.
  std::atomic<int> repo_batches_{-1};
  // The Submit calls waiting to be decided together (group commit).
  struct GroupCommit;
  std::unique_ptr<GroupCommit> group_;
  // Decides a group of queued calls as one SubmitBatch; if its shared
  // transaction fails, each of them again alone.
  std::vector<absl::StatusOr<Decision>> RunGroup(
      absl::Span<const BatchItem> items);
};

}  // namespace converge

#endif  // CONVERGE_MANAGER_H_
