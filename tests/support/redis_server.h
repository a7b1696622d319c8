// A redis-server for tests: started on 127.0.0.1 on a free port, in its own
// directory, with append-only persistence ("--appendonly yes --save ''
// --daemonize no"), and stopped by its PID. Used by the CTest fixture
// (converge_test_redis_server start|stop DIR) and, when a test executable
// runs outside CTest, by the harness itself (tests/support/
// redis_test_stores.cc).

#ifndef CONVERGE_TESTS_SUPPORT_REDIS_SERVER_H_
#define CONVERGE_TESTS_SUPPORT_REDIS_SERVER_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace converge::testing {

struct RedisServerInfo {
  pid_t pid = 0;
  int port = 0;
  std::string dir;  // working directory: appendonly files, redis.log
};

// The redis-server program: $CONVERGE_REDIS_SERVER, else "redis-server" on
// PATH, else /usr/bin/redis-server. Empty if none is found.
std::string FindRedisServer();

// Starts redis-server in `dir` (created if missing) on a free loopback port
// (or on `port` if > 0: a restart on the same data) and waits until it
// answers PING (at most 10 s). With `die_with_parent` the server gets
// SIGKILL when the calling thread's process exits (PR_SET_PDEATHSIG), so a
// crashed test cannot leave it behind.
// `extra_args` are appended to the command line ("--requirepass", "x", ...).
absl::StatusOr<RedisServerInfo> StartRedisServer(
    const std::string& dir, bool die_with_parent, int port = 0,
    const std::vector<std::string>& extra_args = {});

// Stops the server by PID: SIGTERM (Redis then writes its AOF and exits),
// then SIGKILL after 10 s. Reaps it if it is our child.
absl::Status StopRedisServer(pid_t pid);

// True if something answers PING on 127.0.0.1:port.
bool RedisAnswers(int port);

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_REDIS_SERVER_H_
