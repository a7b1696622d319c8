// The in-memory store: every store interface, kept in process memory.
//
// It is the reference backend: simple and obviously right, and what rule unit
// tests and embedders use. The lock and window stores of one MemoryStores
// share their state and one mutex (the window store's leases are the lock
// store's leases); the repo and the queue have a mutex each. Every call is
// atomic. The injected clock drives lease and key expiry; the times the repo
// stores are the ones its callers pass in.
//
// Thread safety: every store is safe for concurrent use.

#ifndef CONVERGE_MEMORY_MEMORY_STORE_H_
#define CONVERGE_MEMORY_MEMORY_STORE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "converge/clock.h"
#include "converge/manager.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge::memory {

struct MemoryOptions {
  // Time source for lease and key expiry. Null: the real clock. Not owned;
  // must outlive the stores.
  const Clock* clock = nullptr;
};

// A set of memory stores sharing one state. Owns the stores.
struct MemoryStores {
  std::unique_ptr<LockStore> lock;
  std::unique_ptr<QueueStore> queue;
  std::unique_ptr<InstanceRepo> repo;
  std::unique_ptr<WindowStore> window;

  // Non-owning view for ConvergeManager::Create.
  Stores view() const {
    return Stores{lock.get(), queue.get(), repo.get(), window.get()};
  }
};

// Makes a fresh, empty set of memory stores.
absl::StatusOr<MemoryStores> NewMemoryStores(const MemoryOptions& options = {});

}  // namespace converge::memory

#endif  // CONVERGE_MEMORY_MEMORY_STORE_H_
