// The memory store as the store under test (see test_stores.h).

#include "converge/memory/memory_store.h"
#include "test_stores.h"

namespace converge::testing {

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  absl::StatusOr<memory::MemoryStores> made = memory::NewMemoryStores({clock});
  if (!made.ok()) return made.status();
  TestStores stores;
  stores.lock = std::move(made->lock);
  stores.queue = std::move(made->queue);
  stores.repo = std::move(made->repo);
  stores.window = std::move(made->window);
  return stores;
}

std::string_view TestStoreName() { return "memory"; }

}  // namespace converge::testing
