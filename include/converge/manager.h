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

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/config.h"
#include "converge/keys.h"
#include "converge/model.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge {

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
  // from lease_backoff_min up to lease_backoff_max.
  int lease_attempts = 200;
  absl::Duration lease_backoff_min = absl::Microseconds(20);
  absl::Duration lease_backoff_max = absl::Milliseconds(5);
  // Window index entries are kept this long past their window, and index
  // keys expire this long after their last write. Default 1800 s (K2 TTL).
  absl::Duration index_retention = absl::Seconds(1800);
  // collect / collect_alarm: the summary task is due this long after the
  // instance is created. Default 60 s.
  absl::Duration summary_delay = absl::Seconds(60);
  // Queue that receives summary tasks (kind "summary", subject the instance
  // id, id "summary:<instance id>").
  std::string summary_queue = "converge.summary";
  // Largest accepted size in bytes of one string of an action (a context
  // value or key, an alert id, signal, plugin_type) and largest number of
  // items of a context list; larger input is kInvalidArgument. max_alerts
  // caps the number of alerts of one action.
  size_t max_value_bytes = 4096;
  size_t max_alerts = 10000;
  // Prefix of this manager's lease tokens (to tell holders apart when
  // reading a store). A random part always follows it, so managers never
  // share tokens. Default empty.
  std::string token_prefix;
};

class ConvergeManager {
 public:
  // Returns kInvalidArgument if a store or the clock is null, or an option is
  // out of range (lease_ttl <= 0, lease_attempts < 1, negative durations).
  static absl::StatusOr<std::unique_ptr<ConvergeManager>> Create(
      Stores stores, const Clock* clock, ManagerOptions options = {});

  // Decides `action` under `config` (the upstream converge_config of the
  // action's strategy relation).
  //
  // Returns the decision. An action that already has one gets it back with
  // replayed = true and nothing changes. Errors: kInvalidArgument (naming the
  // field path) for a bad action or config; kUnavailable when the dimension
  // lease stayed busy for lease_attempts tries, was lost during the
  // evaluation, or a store is unreachable (the caller retries later; nothing
  // was decided, except when a summary task could not be scheduled after the
  // decision was stored: the retry then replays the decision and schedules
  // it); kAborted when the dimension's instance kept changing under the
  // evaluation (retry); other store errors as returned by the store.
  //
  // The lease on D is taken unless the action joins an open instance whose
  // outcome is settled: its function only counts the executed set and the
  // count has reached the threshold (or the function ignores it), as
  // upstream's need_get_lock.
  absl::StatusOr<Decision> Submit(const Action& action,
                                  const ConvergeConfig& config);

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

  // The stored decision of an action, or nullopt.
  absl::StatusOr<std::optional<Decision>> GetDecision(int64_t action_id);

  // Ends an open instance now (see InstanceRepo::End). Returns true if this
  // call ended it, false if it had already ended; kNotFound if unknown.
  absl::StatusOr<bool> EndInstance(int64_t converge_id);

  // The key of the lease that serializes evaluation of dimension D (template
  // K5, hash-tagged by D itself: one lease per D, whatever the strategy).
  absl::StatusOr<std::string> LeaseKey(std::string_view dimension) const;

  const Clock& clock() const { return *clock_; }
  const KeySpace& key_space() const { return keys_; }
  const ManagerOptions& options() const { return options_; }

 private:
  ConvergeManager(Stores stores, const Clock* clock, ManagerOptions options);

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
  absl::Status EnsureSummary(const ConvergeInstance& instance);
  absl::StatusOr<bool> AcquireLease(const std::string& key,
                                    const std::string& token,
                                    WindowRequest* request,
                                    WindowResult* result);
  std::string NextToken(int64_t action_id);

  Stores stores_;
  const Clock* clock_;
  ManagerOptions options_;
  KeySpace keys_;
  std::string token_prefix_;
  std::atomic<uint64_t> token_seq_{0};
};

}  // namespace converge

#endif  // CONVERGE_MANAGER_H_
