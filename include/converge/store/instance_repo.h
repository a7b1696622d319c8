// InstanceRepo: converge instances, their relations, and the decision and
// reported status of every decided action (upstream's converge_instance and
// converge_relation tables, plus the converge part of action_instance).
//
// The repo is where "exactly one decision per action" and "one open instance
// per dimension" are enforced: every write that records a decision refuses to
// overwrite an existing one, and Create refuses a dimension that is open.
// Creation of an instance, its primary relation and the creator's decision is
// one atomic step (one SQL transaction in SQL backends).
//
// Thread safety: implementations are safe for concurrent use.

#ifndef CONVERGE_STORE_INSTANCE_REPO_H_
#define CONVERGE_STORE_INSTANCE_REPO_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "converge/model.h"

namespace converge {

struct CreateRequest {
  // The instance to insert; `id` is ignored (the repo assigns ids, counting
  // from 1 in a fresh store), `end_time` must be unset.
  ConvergeInstance instance;
  // The creator's own relation; converge_id is filled in by the repo.
  ConvergeRelation primary;
  // The creator's decision record when the creator is an action; its
  // decision.converge_id is filled in by the repo and its decision is
  // stored as primary.
  std::optional<ActionRecord> creator;
  // Other matched members. For an action instance: every candidate that has
  // a stored decision with outcome execute and no relation of type action is
  // attached as (executed, not primary, no alerts); the others are left
  // alone (they are undecided and will find the instance themselves).
  // For a converge (second-level) instance the candidates are first-level
  // instance ids: each one that is open and has no relation of type
  // converge is attached as (skipped, not primary) and hidden (is_visible =
  // false); the primary member is hidden too (section 3.6 steps 4 and 5).
  // The primary member of a converge instance must be an open first-level
  // instance. These checks are atomic with the insert (a member's own
  // summary that ends it concurrently comes entirely before or after).
  std::vector<int64_t> attach_candidates;
};

struct CreateResult {
  ConvergeInstance instance;  // as stored, with its id
  // The candidates that were attached, in the order of attach_candidates
  // (their relations are stored in that order too).
  std::vector<int64_t> attached;
};

struct OpenInstanceRef {
  int64_t id = 0;
  absl::Time create_time;
  // Size of the executed set at the time of the look-up, if the backend
  // can give it in the same query; -1 when it does not (callers then ask
  // CountExecuted).
  int64_t executed_count = -1;
};

struct OpenCounts {
  int64_t action = 0;    // first-level instances
  int64_t converge = 0;  // second-level instances
};

struct PurgeResult {
  int64_t instances = 0;  // instances deleted
  int64_t relations = 0;  // their relations deleted
  int64_t actions = 0;    // action records deleted
};

struct RecordResult {
  ActionRecord record;   // the stored record
  bool inserted = true;  // false: a decision existed and was returned as is
};

// A batch of writes (see InstanceRepo::BeginBatch).
class RepoBatch {
 public:
  virtual ~RepoBatch() = default;  // rolls back unless committed
  virtual absl::Status Commit() = 0;
  // True if, until it ends, the batch keeps every other writer of the repo
  // waiting (SQLite's write lock): then nobody can evaluate a dimension
  // before the batch's writes show, and a lease busy in another process
  // cannot be freed before the batch ends. False (MySQL's row locks): the
  // manager keeps the leases its batch took until the batch has ended, and
  // may wait for a busy one.
  virtual bool ExcludesWriters() const { return false; }
  // Called by a caller that runs the whole batch again when Commit (or a
  // call made in the batch) fails with an IsConflict error
  // (converge/store/errors.h), as the manager does for a batch of one, in a
  // batch not told so: call it only on a run that such a run follows (a
  // run told so may fail again for the same cause). The store may then
  // check a write's preconditions when it writes, at the latest at the
  // commit, instead of in the call: a Join's answer then holds only if the
  // batch commits, and a precondition found false then fails the batch
  // with IsConflict (MySQL: a batch's first join costs no statement of its
  // own; alone in its batch, its check, writes and commit take one round
  // trip). Default: no effect.
  virtual void RetriedOnConflict() {}
};

class InstanceRepo {
 public:
  virtual ~InstanceRepo() = default;

  // ---- decided actions ----

  // Returns the record of a decided action, or nullopt if it has none.
  virtual absl::StatusOr<std::optional<ActionRecord>> GetAction(
      int64_t action_id) = 0;

  // Stores the decision of an action that joins no instance (execute below
  // the threshold, illegal config, shield). If the action already has a
  // decision nothing is written and that record is returned (inserted=false).
  virtual absl::StatusOr<RecordResult> RecordDecision(
      const ActionRecord& record) = 0;

  // Atomically stores `record` and the action's relation `relation` to the
  // open instance relation.converge_id. If the action already has a decision
  // nothing is written and that record is returned (inserted=false).
  // Returns kNotFound if the instance does not exist, kFailedPrecondition if
  // it has ended (re-evaluate), kAlreadyExists if the action already has a
  // relation of that type without a decision (a broken invariant upstream
  // data can carry).
  virtual absl::StatusOr<RecordResult> Join(
      const ActionRecord& record, const ConvergeRelation& relation) = 0;

  // Sets the status the host reports for a decided action, at time `at`.
  // Returns kNotFound if the action has no decision.
  virtual absl::Status SetActionStatus(int64_t action_id, ActionStatus status,
                                       absl::Time at) = 0;

  // Replaces the decision of `action_id` if its stored outcome is still
  // `expected` (compare-and-set) and also sets the action status to the
  // new outcome's status. Returns true if replaced, false if the outcome had
  // changed; kNotFound if the action has no decision.
  virtual absl::StatusOr<bool> UpdateDecision(int64_t action_id,
                                              Outcome expected,
                                              const Decision& decision) = 0;

  // ---- instances ----

  // Atomically inserts the instance, the primary relation, the creator's
  // decision and the attachable candidates (see CreateRequest). Returns
  // kAlreadyExists (writing nothing) if an open instance already has
  // instance.dimension, or if the creator already has a decision;
  // kFailedPrecondition (writing nothing) if the primary member of a
  // converge instance is not an open first-level instance.
  virtual absl::StatusOr<CreateResult> Create(const CreateRequest& request) = 0;

  // The open instance with dimension `dimension`, or nullopt.
  virtual absl::StatusOr<std::optional<ConvergeInstance>> FindOpen(
      std::string_view dimension) = 0;

  // The id and create time of the open instance with `dimension`, or
  // nullopt: what the hot path needs. The default calls FindOpen; backends
  // override it with a cheaper query.
  virtual absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view dimension) {
    absl::StatusOr<std::optional<ConvergeInstance>> found = FindOpen(dimension);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return std::optional<OpenInstanceRef>();
    return std::optional<OpenInstanceRef>(
        OpenInstanceRef{(*found)->id, (*found)->create_time});
  }

  // The instance `id`; kNotFound if there is none.
  virtual absl::StatusOr<ConvergeInstance> GetInstance(int64_t id) = 0;

  // Ends instance `id` at `now` if it is open (compare-and-set on end_time
  // unset) and rewrites its dimension once to "D fixed at <unix_ts> #<id>",
  // which frees D. Returns true if this call ended it, false if it was
  // already ended; kNotFound if there is no such instance.
  virtual absl::StatusOr<bool> End(int64_t id, absl::Time now) = 0;

  // As End, but only while the instance is also visible (is_visible =
  // true), checked in the same atomic step: false if it has ended or has
  // been hidden (linked to a second-level instance, whose summary then
  // reports it). A first-level instance's own summary ends it so, so that a
  // Link that commits between the summary's read and its end is not
  // reported twice. kNotFound if there is no such instance.
  virtual absl::StatusOr<bool> EndVisible(int64_t id, absl::Time now) = 0;

  // Sets is_visible (the second level hides absorbed instances). Returns
  // kNotFound if there is no such instance.
  virtual absl::Status SetVisible(int64_t id, bool visible) = 0;

  // Open instances ordered by id, at most `limit` (0 = all).
  virtual absl::StatusOr<std::vector<ConvergeInstance>> ListOpen(
      size_t limit) = 0;

  // Open instances with id > after_id, ordered by id, at most `limit` (0 =
  // all): a cursor over ListOpen for sweeps of large tables.
  virtual absl::StatusOr<std::vector<ConvergeInstance>> ListOpenAfter(
      int64_t after_id, size_t limit) = 0;

  // Ended instances with id > after_id, ordered by id, at most `limit` (0 =
  // all): a cursor over the instances the retention job has not purged
  // yet (converged's GET /v1/instances?open=false).
  virtual absl::StatusOr<std::vector<ConvergeInstance>> ListEndedAfter(
      int64_t after_id, size_t limit) = 0;

  // Number of open instances of each type: {action, converge}.
  virtual absl::StatusOr<OpenCounts> CountOpen() = 0;

  // Retention: deletes at most `limit` (0 = all) instances that ended
  // before `before`, with all their relations, and at most `limit` action
  // records decided before `before` that belong to no instance still
  // stored (no relation, and the instance of their decision, if any, is
  // gone): their decision is then forgotten, and a redelivery is decided
  // anew. Open instances and their members are never deleted.
  virtual absl::StatusOr<PurgeResult> Purge(absl::Time before,
                                            size_t limit) = 0;

  // ---- relations ----

  // Relations of instance `converge_id`, ordered by relation id (empty if
  // there are none or the instance is unknown).
  virtual absl::StatusOr<std::vector<ConvergeRelation>> Relations(
      int64_t converge_id) = 0;

  // A page of Relations(converge_id): those with relation id > after_id,
  // ordered by relation id, at most `limit` (0 = all). An instance of a
  // long storm has as many relations as it skipped actions; this reads
  // them a page at a time (converged's GET /v1/instances/{id}).
  virtual absl::StatusOr<std::vector<ConvergeRelation>> RelationsAfter(
      int64_t converge_id, int64_t after_id, size_t limit) = 0;

  // The second-level instance that first-level instance `first_level_id`
  // is linked to (the instance holding its converge relation; the newest,
  // should there be several), or nullopt if it is linked to none (or is
  // unknown).
  virtual absl::StatusOr<std::optional<int64_t>> ConvergeOf(
      int64_t first_level_id) = 0;

  // The executed set: actions related to `converge_id` with status executed
  // and related_type action, with their reported status, ordered by id.
  virtual absl::StatusOr<std::vector<MemberStatus>> ExecutedMembers(
      int64_t converge_id) = 0;

  // Number of members of the executed set (ExecutedMembers().size()).
  virtual absl::StatusOr<int64_t> CountExecuted(int64_t converge_id) = 0;

  // Inserts relations of `converge_id` (a second-level instance) to
  // first-level instances, and hides each related instance (is_visible =
  // false), atomically. A member that is not an open first-level instance
  // (unknown, ended, or of the second level), or that already has a
  // relation of type converge, is left alone; the check is atomic with the
  // insert. Returns the relations inserted. kNotFound if the instance does
  // not exist, kFailedPrecondition if it has ended.
  virtual absl::StatusOr<std::vector<ConvergeRelation>> Link(
      int64_t converge_id, absl::Span<const ConvergeRelation> relations) = 0;

  // Of `ids`, those that have no relation with related_type `type`, in the
  // order given.
  virtual absl::StatusOr<std::vector<int64_t>> Unrelated(
      absl::Span<const int64_t> ids, ConvergeType type) = 0;

  // ---- bulk calls (a batch asks for all of its actions at once) ----

  // LookupOpen of each of `dimensions`: one answer per dimension, in order.
  // The default asks one by one; a backend whose calls each cost a round
  // trip (MySQL) answers in one statement.
  virtual absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>>
  LookupOpenMany(absl::Span<const std::string> dimensions) {
    std::vector<std::optional<OpenInstanceRef>> out;
    out.reserve(dimensions.size());
    for (const std::string& d : dimensions) {
      absl::StatusOr<std::optional<OpenInstanceRef>> r = LookupOpen(d);
      if (!r.ok()) return r.status();
      out.push_back(*std::move(r));
    }
    return out;
  }

  // GetAction of each of `action_ids`: one answer per id, in order. The
  // default asks one by one.
  virtual absl::StatusOr<std::vector<std::optional<ActionRecord>>> GetActions(
      absl::Span<const int64_t> action_ids) {
    std::vector<std::optional<ActionRecord>> out;
    out.reserve(action_ids.size());
    for (int64_t id : action_ids) {
      absl::StatusOr<std::optional<ActionRecord>> r = GetAction(id);
      if (!r.ok()) return r.status();
      out.push_back(*std::move(r));
    }
    return out;
  }

  // GetInstance of each of `ids`: one answer per id, in order (kNotFound
  // for an id without instance fails the call). The default asks one by
  // one.
  virtual absl::StatusOr<std::vector<ConvergeInstance>> GetInstances(
      absl::Span<const int64_t> ids) {
    std::vector<ConvergeInstance> out;
    out.reserve(ids.size());
    for (int64_t id : ids) {
      absl::StatusOr<ConvergeInstance> r = GetInstance(id);
      if (!r.ok()) return r.status();
      out.push_back(*std::move(r));
    }
    return out;
  }

  // A hint, inside a batch (BeginBatch), that this thread is about to Join
  // each action `joins[i].first` to the open instance `joins[i].second`:
  // a backend may check them all at once (MySQL: two statements instead of
  // one a join). It changes no answer of a later Join; an error is a store
  // error (the batch cannot be trusted). The default does nothing.
  virtual absl::Status PrepareJoins(
      absl::Span<const std::pair<int64_t, int64_t>> joins) {
    (void)joins;
    return absl::OkStatus();
  }

  // ---- batches ----

  // Starts a batch on the calling thread: until the returned scope is
  // committed or destroyed, every write this thread makes through this repo
  // is part of one transaction, committed by Commit() and rolled back by
  // destroying the scope without it; reads of this thread see the batch's
  // writes. Where the backend's transactions hold its whole write lock
  // (SQLite), the writes of its lock, window and queue stores join the
  // batch too; MySQL keeps them out, in short transactions of their own (a
  // lease or window key held as a row lock for a whole batch could deadlock
  // with other processes' batches): like a Redis store beside a SQL repo,
  // they outlive a batch that rolls back (window adds and enqueues are
  // idempotent, leases expire; the manager makes no other queue call inside
  // a batch).
  // Backends without transactions return null (the default): each call
  // then commits on its own.
  // A backend may check some writes of a batch only at its commit (MySQL
  // writes a batch's joins together, then): another process's decision of
  // the same action found then fails the batch with kAborted marked
  // IsConflict (converge/store/errors.h), nothing committed, rather than
  // the Join answering the stored record.
  // A call that is refused (kAlreadyExists, kFailedPrecondition,
  // kNotFound, kInvalidArgument) changes nothing and the batch goes on; a
  // call that fails after it changed data (a store error) fails the batch:
  // later calls and Commit() return that error, and nothing is committed.
  // Commit() a second time is kFailedPrecondition, and so is BeginBatch
  // while a batch is open on the thread. A batch holds the backend's write
  // lock (SQLite) for its duration, so keep it short.
  virtual absl::StatusOr<std::unique_ptr<RepoBatch>> BeginBatch() {
    return std::unique_ptr<RepoBatch>();
  }
};

}  // namespace converge

#endif  // CONVERGE_STORE_INSTANCE_REPO_H_
