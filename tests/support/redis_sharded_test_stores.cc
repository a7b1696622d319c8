// Redis + SQLite over three "servers" as the store under test (see
// test_stores.h): databases 0, 1 and 2 of the test server, listed as
// RedisOptions::more_servers, so that keys are spread by their hash tag
// and a WindowStore::Apply whose lease and index keys live apart runs as
// several scripts. The repo on a fresh SQLite file, as for "redis".

#include "redis_test_env.h"
#include "test_stores.h"

namespace converge::testing {

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  return MakeRedisTestStores(clock, /*servers=*/3);
}

std::string_view TestStoreName() { return "redis_sharded"; }

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
