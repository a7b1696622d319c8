// Redis + SQLite as the store under test (see test_stores.h): the lock,
// window and queue stores on the test Redis server (redis_test_env.h) under
// a key prefix of their own, the repo on a fresh SQLite file in its own
// temporary directory, removed with the set.

#include "redis_test_env.h"
#include "test_stores.h"

namespace converge::testing {

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  return MakeRedisTestStores(clock, /*servers=*/1);
}

std::string_view TestStoreName() { return "redis"; }

// What differs from the defaults (see TestCapabilities): the lock, window
// and queue stores are on Redis, another backend than the repo's, so a
// repo batch does not take in their writes. Overrides the conformance
// suite's default (a weak definition).
TestCapabilities TestStoreCapabilities() {
  TestCapabilities c;
  c.batch_takes_other_stores = false;
  return c;
}

}  // namespace converge::testing
