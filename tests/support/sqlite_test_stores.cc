// The SQLite store as the store under test (see test_stores.h): each set is
// a fresh database file in its own temporary directory, removed with the
// set.

#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "converge/sqlite/sqlite_store.h"
#include "test_stores.h"

namespace converge::testing {
namespace {

struct TempDir {
  std::filesystem::path path;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

absl::StatusOr<TestStores> MakeTestStores(const Clock* clock) {
  const char* tmp = getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
      "/converge-sqlite-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError("mkdtemp failed for " + pattern);
  }
  auto dir = std::make_shared<TempDir>();
  dir->path = pattern;
  sqlite::SqliteOptions options;
  options.path = (dir->path / "converge.db").string();
  options.clock = clock;
  // The file does not outlive the test: no fsync. (The crash test runs the
  // default, FULL.)
  options.synchronous = sqlite::Synchronous::kOff;
  absl::StatusOr<sqlite::SqliteStores> made = sqlite::OpenSqliteStores(options);
  if (!made.ok()) return made.status();
  TestStores stores;
  stores.owner = dir;
  stores.lock = std::move(made->lock);
  stores.queue = std::move(made->queue);
  stores.repo = std::move(made->repo);
  stores.window = std::move(made->window);
  return stores;
}

std::string_view TestStoreName() { return "sqlite"; }

}  // namespace converge::testing
