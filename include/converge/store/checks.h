// Argument checks every store makes the same way, with the store's name as
// the prefix of the message ("sqlite: empty lease key"), so that each
// adapter refuses bad input with the same words (kInvalidArgument).
//
// Thread safety: plain functions.

#ifndef CONVERGE_STORE_CHECKS_H_
#define CONVERGE_STORE_CHECKS_H_

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "converge/model.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge::store {

// A lease needs a key and a token, and a ttl > 0 when one is given.
absl::Status CheckLeaseArgs(std::string_view store, std::string_view key,
                            std::string_view token,
                            std::optional<absl::Duration> ttl);

// LockStore::ListLeases's answer from what a store collected: ordered by
// key, cut to `limit` (0 = all). Shared, so every store orders alike.
std::vector<LeaseInfo> SortAndLimitLeases(std::vector<LeaseInfo> leases,
                                          size_t limit);

// WindowStore::Apply's request: no empty key or member to add, no empty
// key to read, and a valid lease. `key_check`, if given, is run on every
// key added or read after the emptiness checks (Redis refuses its reserved
// prefix).
absl::Status CheckWindowRequest(
    std::string_view store, const WindowRequest& req,
    absl::Status (*key_check)(std::string_view key) = nullptr);

// WindowStore::Increment: a key and a ttl > 0.
absl::Status CheckCounterArgs(std::string_view store, std::string_view key,
                              absl::Duration ttl);

// QueueStore::Enqueue: a queue name and a task id.
absl::Status CheckEnqueue(std::string_view store, std::string_view queue,
                          const Task& task);

// QueueStore::Dequeue: a visibility > 0.
absl::Status CheckVisibility(std::string_view store, absl::Duration visibility);

// InstanceRepo: a record's id and its decision's action_id are equal and
// > 0.
absl::Status CheckRecord(std::string_view store, const ActionRecord& record);

// InstanceRepo::Join: the relation is the action's own, of type action.
absl::Status CheckJoin(std::string_view store, const ActionRecord& record,
                       const ConvergeRelation& relation);

// InstanceRepo::Create: a dimension, no end_time, a valid creator record.
absl::Status CheckCreate(std::string_view store, const CreateRequest& req);

// InstanceRepo::Link: relations of type converge to the instance named.
absl::Status CheckLink(std::string_view store, int64_t converge_id,
                       absl::Span<const ConvergeRelation> relations);

}  // namespace converge::store

#endif  // CONVERGE_STORE_CHECKS_H_
