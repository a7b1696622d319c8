// WindowStore: the time-window index (upstream K2/K3 sorted sets).
//
// Each key is a set of members ("action_<id>", "converge_<id>") scored by
// their create time. One Apply call carries the whole hot path of a decision
// -- index the action, take the dimension lease, read the window -- so that a
// Redis backend does it in one round trip (one script), and the memory backend
// under one mutex.
//
// Thread safety: implementations are safe for concurrent use.

#ifndef CONVERGE_STORE_WINDOW_STORE_H_
#define CONVERGE_STORE_WINDOW_STORE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace converge {

struct WindowEntry {
  std::string key;
  std::string member;
  absl::Time score;
};

struct LeaseRequest {
  std::string key;
  std::string token;
  absl::Duration ttl;
};

struct WindowRequest {
  // Members to add (a member already present gets the new score). Every key
  // written gets its expiry pushed to now + key_ttl (0 = keys never expire),
  // and loses members scored before trim_before (InfinitePast = no trim).
  std::vector<WindowEntry> add;
  absl::Duration key_ttl = absl::ZeroDuration();
  absl::Time trim_before = absl::InfinitePast();
  // Taken after the adds and before the reads, with LockStore::TryAcquire's
  // semantics, on the lease state shared with the LockStore of the same
  // backend (a lease taken here is released through that LockStore).
  std::optional<LeaseRequest> lease;
  // Groups of keys to read. For each group the result holds the union of the
  // members of its keys scored within [start, end] (both inclusive).
  std::vector<std::vector<std::string>> read_groups;
  absl::Time start = absl::InfinitePast();
  absl::Time end = absl::InfiniteFuture();
  // A hint for a caller that only uses the intersection of the groups (the
  // members found in every group): the store may then answer with that one
  // group instead of one group per read group, so that it can read the
  // smallest group and probe the others, rather than every member of a key
  // that many dimensions share. A store that ignores the hint answers one
  // group per read group, which the caller intersects itself.
  bool intersect = false;
};

struct WindowResult {
  // False only when a lease was requested and another token holds it; then
  // `groups` is empty (the reads were skipped) but the adds were applied.
  bool lease_acquired = true;
  // One entry per read group, members deduplicated, in no particular order.
  // With request.intersect and more than one read group: either that, or
  // exactly one entry, the members present in every group.
  std::vector<std::vector<std::string>> groups;
};

class WindowStore {
 public:
  virtual ~WindowStore() = default;

  // Applies `request` atomically with respect to other Apply calls and to the
  // LockStore of the same backend. Returns kInvalidArgument for an empty key
  // or member, or a lease with an empty key/token or ttl <= 0 (or a value
  // longer than the backend holds: MySQL 255 bytes for members and tokens);
  // kUnavailable if the backend cannot be reached (then nothing may have
  // been applied, or all of it: adds are idempotent, so a retry is safe).
  // A backend that spreads keys over several servers (Redis `more_servers`)
  // is atomic per server only: each server's part, the lease's server last;
  // a failure can leave the earlier servers' adds applied (idempotent).
  // Scores are kept to the microsecond at least (Redis: microseconds, a
  // read's bounds rounded inward, a trim's bound up).
  virtual absl::StatusOr<WindowResult> Apply(const WindowRequest& request) = 0;

  // Apply of each of `requests`, as if called one after the other, with one
  // result per request; except that a backend may make every request's
  // adds before any request's lease and reads (MySQL: a few multi-row
  // statements in one transaction), so that a request may read members a
  // later request adds. A caller that needs the order passes requests
  // whose read keys no other request adds to. An error fails the call:
  // some requests may have been applied (their adds, their leases: release
  // the leases by token). The default applies one by one.
  virtual absl::StatusOr<std::vector<WindowResult>> ApplyMany(
      absl::Span<const WindowRequest> requests) {
    std::vector<WindowResult> out;
    out.reserve(requests.size());
    for (const WindowRequest& r : requests) {
      absl::StatusOr<WindowResult> result = Apply(r);
      if (!result.ok()) return result.status();
      out.push_back(*std::move(result));
    }
    return out;
  }

  // Removes `member` from `key`. Returns true if it was there.
  virtual absl::StatusOr<bool> Remove(std::string_view key,
                                      std::string_view member) = 0;

  // Number of members of `key` (0 for a missing or expired key, or a
  // counter key).
  virtual absl::StatusOr<int64_t> Size(std::string_view key) = 0;

  // The business counter (upstream K4, section 5.1): increments the counter
  // `key` (a missing or expired key counts from 0) and returns the new value.
  // When the new value is <= refresh_up_to the key's expiry is set to now +
  // ttl; above it the expiry is left as it was, so the counter still expires
  // ttl after the last increment at or under the threshold (upstream sets no
  // EXPIRE past the threshold). Counter keys and index keys share one key
  // space: incrementing an index key, or adding to a counter key in Apply,
  // is kFailedPrecondition (nothing of that Apply is applied); reading a
  // counter key in Apply finds no members. Returns kInvalidArgument for an
  // empty key or ttl <= 0.
  virtual absl::StatusOr<int64_t> Increment(std::string_view key,
                                            absl::Duration ttl,
                                            int64_t refresh_up_to) = 0;

  // The value of counter `key` (0 for a missing or expired key, or an index
  // key).
  virtual absl::StatusOr<int64_t> CounterValue(std::string_view key) = 0;

  // Deletes `key`, an index or a counter. Returns true if a live key was
  // deleted.
  virtual absl::StatusOr<bool> Delete(std::string_view key) = 0;
};

}  // namespace converge

#endif  // CONVERGE_STORE_WINDOW_STORE_H_
