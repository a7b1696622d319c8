// LeaseTracker: when this process took the dimension leases it holds, for
// GET /v1/locks.
//
// The store lists every lease with its owner token and expiry
// (LockStore::ListLeases), but not when it was taken. converged wraps its
// LockStore and WindowStore and notes every lease its manager takes
// (WindowStore::Apply with a lease, LockStore::TryAcquire), extends and
// releases, so that GET /v1/locks can give the age of this process's own
// leases; another process sharing the store has its own tracker.
//
// Thread safety: safe for concurrent use (a mutex); the wrapped stores are
// as thread-safe as their targets.

#ifndef CONVERGE_TOOLS_CONVERGED_LEASE_TRACKER_H_
#define CONVERGE_TOOLS_CONVERGED_LEASE_TRACKER_H_

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/store/wrappers.h"

namespace converge::service {

struct HeldLease {
  std::string key;
  std::string token;
  absl::Time acquired;  // when this token took it
  absl::Time expires;   // its expiry, as of the last take or extend
};

class LeaseTracker {
 public:
  explicit LeaseTracker(const Clock* clock) : clock_(clock) {}

  // Leases taken and neither released nor expired, by key.
  std::vector<HeldLease> Held() const;

  void Taken(std::string_view key, std::string_view token, absl::Duration ttl);
  void Extended(std::string_view key, std::string_view token,
                absl::Duration ttl);
  void Released(std::string_view key, std::string_view token);

 private:
  const Clock* clock_;
  mutable std::mutex mu_;
  std::map<std::string, HeldLease, std::less<>> held_;
};

class TrackingLockStore : public LockStoreWrapper {
 public:
  TrackingLockStore(LockStore* target, LeaseTracker* tracker)
      : LockStoreWrapper(target), tracker_(tracker) {}
  absl::StatusOr<bool> TryAcquire(std::string_view key, std::string_view token,
                                  absl::Duration ttl) override;
  absl::StatusOr<bool> Release(std::string_view key,
                               std::string_view token) override;
  absl::StatusOr<bool> Extend(std::string_view key, std::string_view token,
                              absl::Duration ttl) override;

 private:
  LeaseTracker* tracker_;
};

class TrackingWindowStore : public WindowStoreWrapper {
 public:
  TrackingWindowStore(WindowStore* target, LeaseTracker* tracker)
      : WindowStoreWrapper(target), tracker_(tracker) {}
  absl::StatusOr<WindowResult> Apply(const WindowRequest& request) override;

 private:
  LeaseTracker* tracker_;
};

}  // namespace converge::service

#endif  // CONVERGE_TOOLS_CONVERGED_LEASE_TRACKER_H_
