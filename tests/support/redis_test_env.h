// The Redis server the Redis tests run against (tests/support/
// redis_test_stores.cc): the one the CTest fixture started, or one started
// for this process when the executable runs outside CTest.

#ifndef CONVERGE_TESTS_SUPPORT_REDIS_TEST_ENV_H_
#define CONVERGE_TESTS_SUPPORT_REDIS_TEST_ENV_H_

#include <string>

#include "absl/status/statusor.h"
#include "converge/clock.h"
#include "converge/redis/redis_store.h"
#include "temp_dir.h"
#include "test_stores.h"

namespace converge::testing {

// Options for the test server with a key prefix no other call (in this or
// any other process) gets: every call is an isolated key space.
//
// The server is, in order: $CONVERGE_TEST_REDIS_URI; the URI in the file
// $CONVERGE_TEST_REDIS_URI_FILE (written by the CTest fixture,
// converge_test_redis_server); else a redis-server started on first use for
// this process and stopped at its exit. When none can be had (no
// redis-server installed) the process exits with 77, which CTest reports as
// skipped (house-style.md, "Conformance suite").
absl::StatusOr<redis::RedisOptions> TestRedisOptions();

// The data directory and PID of the server this process started (for tests
// that restart it), or pid 0 when the server is not this process's.
struct OwnServer {
  int pid = 0;
  int port = 0;
  std::string dir;
};
OwnServer TestRedisOwnServer();

// Redis (lock, window, queue) on the test server with TestRedisOptions()
// + SQLite (repo, a fresh file in its own temporary directory, removed with
// the set). servers > 1: databases db, db+1, ... of the test server as
// RedisOptions::more_servers (keys spread by hash tag).
absl::StatusOr<TestStores> MakeRedisTestStores(const Clock* clock, int servers);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_REDIS_TEST_ENV_H_
