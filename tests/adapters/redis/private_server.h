// A redis-server of a test's own (restarts, pauses, passwords), for the
// Redis adapter tests.

#ifndef CONVERGE_TESTS_ADAPTERS_REDIS_PRIVATE_SERVER_H_
#define CONVERGE_TESTS_ADAPTERS_REDIS_PRIVATE_SERVER_H_

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "converge/redis/redis_store.h"
#include "support/redis_server.h"
#include "support/redis_test_env.h"

namespace converge::testing {

// A redis-server of the test's own (for restarts, pauses, passwords), in a
// temporary directory; stopped and removed at the end of the test. "{dir}"
// in an extra argument stands for that directory.
struct PrivateServer {
  explicit PrivateServer(std::vector<std::string> extra = {}) {
    absl::StatusOr<std::string> d = MakeTestTempDir("converge-redis-own");
    REQUIRE(d.ok());
    dir = *d;
    for (std::string& a : extra) {
      if (size_t at = a.find("{dir}"); at != std::string::npos) {
        a.replace(at, 5, dir);
      }
    }
    absl::StatusOr<RedisServerInfo> started =
        StartRedisServer(dir, /*die_with_parent=*/true, 0, extra);
    INFO(started.status().ToString());
    REQUIRE(started.ok());
    info = *started;
    extra_args = std::move(extra);
  }
  ~PrivateServer() {
    if (info.pid > 0) (void)StopRedisServer(info.pid);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  void Stop() {
    REQUIRE(StopRedisServer(info.pid).ok());
    info.pid = 0;
  }
  void Start() {
    absl::StatusOr<RedisServerInfo> started =
        StartRedisServer(dir, true, info.port, extra_args);
    INFO(started.status().ToString());
    REQUIRE(started.ok());
    info = *started;
  }
  redis::RedisOptions Options(const Clock* clock = nullptr) const {
    redis::RedisOptions o;
    o.port = info.port;
    o.key_prefix = "own.";
    o.clock = clock;
    return o;
  }

  std::string dir;
  RedisServerInfo info;
  std::vector<std::string> extra_args;
};

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_ADAPTERS_REDIS_PRIVATE_SERVER_H_
