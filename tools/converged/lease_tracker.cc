#include "lease_tracker.h"

namespace converge::service {

std::vector<HeldLease> LeaseTracker::Held() const {
  const absl::Time now = clock_->Now();
  std::vector<HeldLease> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, lease] : held_) {
    if (lease.expires > now) out.push_back(lease);
  }
  return out;
}

void LeaseTracker::Taken(std::string_view key, std::string_view token,
                         absl::Duration ttl) {
  const absl::Time now = clock_->Now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(key);
  if (it == held_.end()) {
    held_.emplace(
        std::string(key),
        HeldLease{std::string(key), std::string(token), now, now + ttl});
    return;
  }
  if (it->second.token != token || it->second.expires <= now) {
    it->second.token = std::string(token);
    it->second.acquired = now;
  }
  it->second.expires = now + ttl;
}

void LeaseTracker::Extended(std::string_view key, std::string_view token,
                            absl::Duration ttl) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(key);
  if (it != held_.end() && it->second.token == token) {
    it->second.expires = clock_->Now() + ttl;
  }
}

void LeaseTracker::Released(std::string_view key, std::string_view token) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(key);
  if (it != held_.end() && it->second.token == token) held_.erase(it);
}

absl::StatusOr<bool> TrackingLockStore::TryAcquire(std::string_view key,
                                                   std::string_view token,
                                                   absl::Duration ttl) {
  absl::StatusOr<bool> taken = LockStoreWrapper::TryAcquire(key, token, ttl);
  if (taken.ok() && *taken) tracker_->Taken(key, token, ttl);
  return taken;
}

absl::StatusOr<bool> TrackingLockStore::Release(std::string_view key,
                                                std::string_view token) {
  absl::StatusOr<bool> released = LockStoreWrapper::Release(key, token);
  // Forgotten even when the store failed: an unreachable lease expires.
  tracker_->Released(key, token);
  return released;
}

absl::StatusOr<bool> TrackingLockStore::Extend(std::string_view key,
                                               std::string_view token,
                                               absl::Duration ttl) {
  absl::StatusOr<bool> extended = LockStoreWrapper::Extend(key, token, ttl);
  if (extended.ok() && *extended) tracker_->Extended(key, token, ttl);
  return extended;
}

absl::StatusOr<WindowResult> TrackingWindowStore::Apply(
    const WindowRequest& request) {
  absl::StatusOr<WindowResult> result = WindowStoreWrapper::Apply(request);
  if (result.ok() && request.lease.has_value() && result->lease_acquired) {
    tracker_->Taken(request.lease->key, request.lease->token,
                    request.lease->ttl);
  }
  return result;
}

}  // namespace converge::service
