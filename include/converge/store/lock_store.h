// LockStore: token-owned leases, the serialization point of converge.
//
// Evaluation of one dimension D is serialized by a lease of capacity 1 on the
// key of template K5 (project-decisions.md, point 3). A lease has an owner
// token and an expiry; only the owner can release or extend it, so a holder
// that outlives its lease can never release another owner's lease. Redis
// backs this with SET NX PX plus a compare-and-delete script; SQL stores with
// a row and a conditional UPDATE.
//
// Thread safety: implementations are safe for concurrent use from many
// threads, and (for shared backends) from many processes.

#ifndef CONVERGE_STORE_LOCK_STORE_H_
#define CONVERGE_STORE_LOCK_STORE_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace converge {

// A held lease, as ListLeases reports it.
struct LeaseInfo {
  std::string key;
  std::string token;
  absl::Time expires_at;
};

class LockStore {
 public:
  virtual ~LockStore() = default;

  // Takes the lease `key` for `token` until now + `ttl`.
  // Returns true if the lease was free, had expired, or is already held by
  // `token` (then its expiry is pushed to now + ttl). Returns false if another
  // token holds an unexpired lease. Returns kInvalidArgument if key or token
  // is empty or ttl <= 0; kUnavailable if the backend cannot be reached.
  virtual absl::StatusOr<bool> TryAcquire(std::string_view key,
                                          std::string_view token,
                                          absl::Duration ttl) = 0;

  // Releases the lease `key` if `token` holds it (expired or not yet).
  // Returns true if this call released it; false if the lease is free or held
  // by another token (this caller's lease expired and was taken over).
  virtual absl::StatusOr<bool> Release(std::string_view key,
                                       std::string_view token) = 0;

  // Pushes the expiry of a lease `token` holds to now + `ttl`. Returns true
  // if extended; false if `token` does not hold an unexpired lease on `key`.
  virtual absl::StatusOr<bool> Extend(std::string_view key,
                                      std::string_view token,
                                      absl::Duration ttl) = 0;

  // Release of each (key, token) of `leases`. Returns how many this call
  // released; every lease is tried, and the first error, if any, is
  // returned after. The default releases one by one; a backend whose calls
  // each cost a round trip releases them together.
  virtual absl::StatusOr<size_t> ReleaseMany(
      absl::Span<const std::pair<std::string, std::string>> leases) {
    size_t released = 0;
    absl::Status first;
    for (const auto& [key, token] : leases) {
      absl::StatusOr<bool> r = Release(key, token);
      if (!r.ok()) {
        if (first.ok()) first = r.status();
      } else if (*r) {
        ++released;
      }
    }
    if (!first.ok()) return first;
    return released;
  }

  // True if a Release this thread makes now is part of the transaction of
  // its open repo batch (InstanceRepo::BeginBatch): the lease is then freed
  // when, and only if, that batch commits, so nobody can take it before
  // the batch's writes show. The manager then releases a lease the batch
  // took as soon as its evaluation ends, instead of after the batch. True
  // in any SQLite batch (whose releases the manager makes at once anyway:
  // the batch excludes other writers) and, on MySQL alone, in a Submit's
  // (MysqlOptions::one_transaction). Default false.
  virtual bool ReleasesWithRepoBatch() const { return false; }

  // The unexpired leases whose key starts with `prefix` ("" = every lease),
  // ordered by key, at most `limit` (0 = all). For operators (converged's
  // GET /v1/locks, troubleshooting), not for the decision path: a shared
  // backend reads every lease (Redis: SCAN over each server). The answer
  // is a snapshot; leases come and go while it is read.
  virtual absl::StatusOr<std::vector<LeaseInfo>> ListLeases(
      std::string_view prefix, size_t limit) = 0;
};

}  // namespace converge

#endif  // CONVERGE_STORE_LOCK_STORE_H_
