// Forwarding wrappers: each forwards every call to a target store, so that a
// subclass can decorate one method (metrics, retries, fault injection) and
// inherit the rest, as LevelDB's EnvWrapper does.
//
// The bulk calls (InstanceRepo::LookupOpenMany, GetActions, GetInstances,
// PrepareJoins; WindowStore::ApplyMany; LockStore::ReleaseMany;
// QueueStore::EnqueueMany) are not forwarded: their defaults make the
// single calls through the wrapper, so that an override of a single call
// sees every call. A wrapper that wants the target's bulk statements
// overrides them to call target().
//
// Thread safety: as the target's. The target must outlive the wrapper.

#ifndef CONVERGE_STORE_WRAPPERS_H_
#define CONVERGE_STORE_WRAPPERS_H_

#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge {

class LockStoreWrapper : public LockStore {
 public:
  explicit LockStoreWrapper(LockStore* target) : target_(target) {}
  LockStore* target() const { return target_; }
  absl::StatusOr<bool> TryAcquire(std::string_view key, std::string_view token,
                                  absl::Duration ttl) override {
    return target_->TryAcquire(key, token, ttl);
  }
  absl::StatusOr<bool> Release(std::string_view key,
                               std::string_view token) override {
    return target_->Release(key, token);
  }
  absl::StatusOr<bool> Extend(std::string_view key, std::string_view token,
                              absl::Duration ttl) override {
    return target_->Extend(key, token, ttl);
  }
  bool ReleasesWithRepoBatch() const override {
    return target_->ReleasesWithRepoBatch();
  }
  absl::StatusOr<std::vector<LeaseInfo>> ListLeases(std::string_view prefix,
                                                    size_t limit) override {
    return target_->ListLeases(prefix, limit);
  }

 private:
  LockStore* target_;
};

class WindowStoreWrapper : public WindowStore {
 public:
  explicit WindowStoreWrapper(WindowStore* target) : target_(target) {}
  WindowStore* target() const { return target_; }
  absl::StatusOr<WindowResult> Apply(const WindowRequest& request) override {
    return target_->Apply(request);
  }
  absl::StatusOr<bool> Remove(std::string_view key,
                              std::string_view member) override {
    return target_->Remove(key, member);
  }
  absl::StatusOr<int64_t> Size(std::string_view key) override {
    return target_->Size(key);
  }
  absl::StatusOr<int64_t> Increment(std::string_view key, absl::Duration ttl,
                                    int64_t refresh_up_to) override {
    return target_->Increment(key, ttl, refresh_up_to);
  }
  absl::StatusOr<int64_t> CounterValue(std::string_view key) override {
    return target_->CounterValue(key);
  }
  absl::StatusOr<bool> Delete(std::string_view key) override {
    return target_->Delete(key);
  }

 private:
  WindowStore* target_;
};

class InstanceRepoWrapper : public InstanceRepo {
 public:
  explicit InstanceRepoWrapper(InstanceRepo* target) : target_(target) {}
  InstanceRepo* target() const { return target_; }
  absl::StatusOr<std::optional<ActionRecord>> GetAction(
      int64_t action_id) override {
    return target_->GetAction(action_id);
  }
  absl::StatusOr<RecordResult> RecordDecision(
      const ActionRecord& record) override {
    return target_->RecordDecision(record);
  }
  absl::StatusOr<RecordResult> Join(const ActionRecord& record,
                                    const ConvergeRelation& relation) override {
    return target_->Join(record, relation);
  }
  absl::Status SetActionStatus(int64_t action_id, ActionStatus status,
                               absl::Time at) override {
    return target_->SetActionStatus(action_id, status, at);
  }
  absl::StatusOr<bool> UpdateDecision(int64_t action_id, Outcome expected,
                                      const Decision& decision) override {
    return target_->UpdateDecision(action_id, expected, decision);
  }
  absl::StatusOr<CreateResult> Create(const CreateRequest& request) override {
    return target_->Create(request);
  }
  absl::StatusOr<std::optional<ConvergeInstance>> FindOpen(
      std::string_view dimension) override {
    return target_->FindOpen(dimension);
  }
  absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view dimension) override {
    return target_->LookupOpen(dimension);
  }
  absl::StatusOr<ConvergeInstance> GetInstance(int64_t id) override {
    return target_->GetInstance(id);
  }
  absl::StatusOr<bool> End(int64_t id, absl::Time now) override {
    return target_->End(id, now);
  }
  absl::StatusOr<bool> EndVisible(int64_t id, absl::Time now) override {
    return target_->EndVisible(id, now);
  }
  absl::Status SetVisible(int64_t id, bool visible) override {
    return target_->SetVisible(id, visible);
  }
  absl::StatusOr<std::vector<ConvergeInstance>> ListOpen(
      size_t limit) override {
    return target_->ListOpen(limit);
  }
  absl::StatusOr<std::vector<ConvergeInstance>> ListOpenAfter(
      int64_t after_id, size_t limit) override {
    return target_->ListOpenAfter(after_id, limit);
  }
  absl::StatusOr<std::vector<ConvergeInstance>> ListEndedAfter(
      int64_t after_id, size_t limit) override {
    return target_->ListEndedAfter(after_id, limit);
  }
  absl::StatusOr<OpenCounts> CountOpen() override {
    return target_->CountOpen();
  }
  absl::StatusOr<PurgeResult> Purge(absl::Time before, size_t limit) override {
    return target_->Purge(before, limit);
  }
  absl::StatusOr<std::vector<ConvergeRelation>> Relations(
      int64_t converge_id) override {
    return target_->Relations(converge_id);
  }
  absl::StatusOr<std::vector<ConvergeRelation>> RelationsAfter(
      int64_t converge_id, int64_t after_id, size_t limit) override {
    return target_->RelationsAfter(converge_id, after_id, limit);
  }
  absl::StatusOr<std::optional<int64_t>> ConvergeOf(
      int64_t first_level_id) override {
    return target_->ConvergeOf(first_level_id);
  }
  absl::StatusOr<std::vector<ConvergeRelation>> Link(
      int64_t converge_id,
      absl::Span<const ConvergeRelation> relations) override {
    return target_->Link(converge_id, relations);
  }
  absl::StatusOr<std::vector<MemberStatus>> ExecutedMembers(
      int64_t converge_id) override {
    return target_->ExecutedMembers(converge_id);
  }
  absl::StatusOr<int64_t> CountExecuted(int64_t converge_id) override {
    return target_->CountExecuted(converge_id);
  }
  absl::StatusOr<std::vector<int64_t>> Unrelated(absl::Span<const int64_t> ids,
                                                 ConvergeType type) override {
    return target_->Unrelated(ids, type);
  }
  absl::StatusOr<std::unique_ptr<RepoBatch>> BeginBatch() override {
    return target_->BeginBatch();
  }

 private:
  InstanceRepo* target_;
};

class QueueStoreWrapper : public QueueStore {
 public:
  explicit QueueStoreWrapper(QueueStore* target) : target_(target) {}
  QueueStore* target() const { return target_; }
  absl::Status Enqueue(std::string_view queue, const Task& task) override {
    return target_->Enqueue(queue, task);
  }
  absl::StatusOr<std::optional<Delivery>> Dequeue(
      std::string_view queue, absl::Time now,
      absl::Duration visibility) override {
    return target_->Dequeue(queue, now, visibility);
  }
  absl::StatusOr<bool> Ack(std::string_view queue,
                           std::string_view receipt) override {
    return target_->Ack(queue, receipt);
  }
  absl::StatusOr<bool> Retry(std::string_view queue, std::string_view receipt,
                             absl::Time due, std::string_view error) override {
    return target_->Retry(queue, receipt, due, error);
  }
  absl::StatusOr<bool> Reschedule(std::string_view queue,
                                  std::string_view receipt,
                                  absl::Time due) override {
    return target_->Reschedule(queue, receipt, due);
  }
  absl::StatusOr<bool> Bury(std::string_view queue, std::string_view receipt,
                            std::string_view error) override {
    return target_->Bury(queue, receipt, error);
  }
  absl::StatusOr<std::vector<Task>> ListDead(std::string_view queue,
                                             size_t limit) override {
    return target_->ListDead(queue, limit);
  }
  absl::Status Redrive(std::string_view queue, std::string_view task_id,
                       absl::Time due) override {
    return target_->Redrive(queue, task_id, due);
  }
  absl::StatusOr<std::vector<Task>> ListPending(std::string_view queue,
                                                size_t limit) override {
    return target_->ListPending(queue, limit);
  }
  absl::StatusOr<QueueStats> Stats(std::string_view queue) override {
    return target_->Stats(queue);
  }

 private:
  QueueStore* target_;
};

}  // namespace converge

#endif  // CONVERGE_STORE_WRAPPERS_H_
