// The test Redis server (see redis_test_env.h).

#include "redis_test_env.h"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"
#include "redis_server.h"

namespace converge::testing {
namespace {

struct TempDir {
  std::filesystem::path path;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// A server started by this process, stopped (by PID) at exit.
struct OwnedServer {
  RedisServerInfo info;
  TempDir dir;
  ~OwnedServer() {
    if (info.pid > 0) (void)StopRedisServer(info.pid);
  }
};

std::mutex server_mu;
std::string server_uri;
OwnedServer* owned = nullptr;  // leaked on purpose: stopped by atexit

void StopOwned() {
  if (owned != nullptr && owned->info.pid > 0) {
    (void)StopRedisServer(owned->info.pid);
    owned->info.pid = 0;
    std::error_code ec;
    std::filesystem::remove_all(owned->dir.path, ec);
  }
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The URI of the test server; exits with 77 when there is none.
const std::string& ServerUri() {
  std::lock_guard<std::mutex> lock(server_mu);
  if (!server_uri.empty()) return server_uri;
  if (const char* env = getenv("CONVERGE_TEST_REDIS_URI");
      env != nullptr && *env != '\0') {
    server_uri = env;
    return server_uri;
  }
  if (const char* file = getenv("CONVERGE_TEST_REDIS_URI_FILE");
      file != nullptr && *file != '\0') {
    std::ifstream in(file);
    std::string uri;
    std::getline(in, uri);
    uri = Trim(uri);
    if (uri.empty()) {
      std::fprintf(stderr,
                   "redis tests: %s is missing or empty (did the CTest "
                   "fixture redis.server.start run?)\n",
                   file);
      std::exit(1);
    }
    server_uri = uri;
    return server_uri;
  }
  if (FindRedisServer().empty()) {
    std::fprintf(stderr,
                 "redis tests: no server configured and no redis-server "
                 "installed: skipped\n");
    std::exit(77);
  }
  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-redis");
  if (!dir.ok()) {
    std::fprintf(stderr, "redis tests: %s\n", dir.status().ToString().c_str());
    std::exit(1);
  }
  owned = new OwnedServer;
  owned->dir.path = *dir;
  absl::StatusOr<RedisServerInfo> info =
      StartRedisServer(*dir, /*die_with_parent=*/true);
  if (!info.ok()) {
    std::fprintf(stderr, "redis tests: %s\n", info.status().ToString().c_str());
    std::exit(1);
  }
  owned->info = *info;
  std::atexit(StopOwned);
  server_uri = absl::StrCat("redis://127.0.0.1:", info->port);
  return server_uri;
}

}  // namespace

absl::StatusOr<redis::RedisOptions> TestRedisOptions() {
  absl::StatusOr<redis::RedisOptions> options =
      redis::ParseRedisUri(ServerUri());
  if (!options.ok()) return options.status();
  static std::atomic<int64_t> next{0};
  static const int64_t start = absl::ToUnixMicros(absl::Now());
  options->key_prefix =
      absl::StrCat("test.", getpid(), ".", start, ".", ++next, ".");
  options->command_timeout = absl::Seconds(30);
  return options;
}

OwnServer TestRedisOwnServer() {
  (void)ServerUri();
  std::lock_guard<std::mutex> lock(server_mu);
  if (owned == nullptr) return {};
  return OwnServer{owned->info.pid, owned->info.port, owned->info.dir};
}

absl::StatusOr<TestStores> MakeRedisTestStores(const Clock* clock,
                                               int servers) {
  absl::StatusOr<redis::RedisOptions> options = TestRedisOptions();
  if (!options.ok()) return options.status();
  options->clock = clock;
  for (int i = 1; i < servers; ++i) {
    redis::RedisServer more;
    more.host = options->host;
    more.port = options->port;
    more.unix_socket = options->unix_socket;
    more.db = options->db + i;
    options->more_servers.push_back(more);
  }
  absl::StatusOr<redis::RedisStores> made = redis::OpenRedisStores(*options);
  if (!made.ok()) return made.status();

  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-sqlite");
  if (!dir.ok()) return dir.status();
  auto owner = std::make_shared<TempDir>();
  owner->path = *dir;
  sqlite::SqliteOptions sql;
  sql.path = (owner->path / "converge.db").string();
  sql.clock = clock;
  // The file does not outlive the test: no fsync.
  sql.synchronous = sqlite::Synchronous::kOff;
  absl::StatusOr<sqlite::SqliteStores> repo = sqlite::OpenSqliteStores(sql);
  if (!repo.ok()) return repo.status();

  TestStores stores;
  stores.owner = owner;
  stores.lock = std::move(made->lock);
  stores.queue = std::move(made->queue);
  stores.window = std::move(made->window);
  stores.repo = std::move(repo->repo);
  return stores;
}

}  // namespace converge::testing
