// Crash safety: a child (crash_child.cc) submits actions to a SQLite file
// and is killed with SIGKILL at a random point, 20 times over one file,
// with synchronous FULL (the default) and again over another file with
// NORMAL (no fsync: a commit is in the log file, which a killed process
// cannot lose; with the store's coalesced log writes, the commit's frames
// are written before the commit shows).
// After each kill PRAGMA integrity_check must be ok, and every decision the
// child printed as returned must be in the file with the same outcome ("a
// decision that has been returned is committed").
//
// The kill point is random (seeded; the seed is printed, and
// CONVERGE_CRASH_SEED=<n> replays a run): the parent kills the child as soon
// as it has read a random number of decisions, so the child dies somewhere
// inside its next Submit.

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "converge/sqlite/sqlite_store.h"

#ifndef CONVERGE_CRASH_CHILD
#error "CONVERGE_CRASH_CHILD must name the child executable"
#endif

namespace converge::sqlite {
namespace {

namespace fs = std::filesystem;

struct Child {
  pid_t pid = -1;
  int out = -1;  // read end of the child's stdout
};

Child Spawn(const std::vector<std::string>& args) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  return Child{pid, fds[0]};
}

// Reads whole lines from the child until `want` of them arrived or the
// child's stdout closed.
std::vector<std::string> ReadLines(int fd, size_t want, std::string* partial) {
  std::vector<std::string> lines;
  char buf[4096];
  while (lines.size() < want) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    partial->append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = partial->find('\n')) != std::string::npos;) {
      lines.push_back(partial->substr(0, nl));
      partial->erase(0, nl + 1);
    }
  }
  return lines;
}

std::string IntegrityCheck(const std::string& path) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) ==
          SQLITE_OK);
  sqlite3_stmt* s = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, nullptr) ==
          SQLITE_OK);
  std::string out;
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (!out.empty()) out += "; ";
    out += reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

TEST_CASE("a child killed at random points loses no returned decision",
          "[sqlite][crash]") {
  uint64_t seed = std::random_device()();
  if (const char* env = std::getenv("CONVERGE_CRASH_SEED")) {
    REQUIRE(absl::SimpleAtoi(env, &seed));
  }
  WARN("crash test seed: " << seed << " (CONVERGE_CRASH_SEED=" << seed
                           << " replays it)");
  std::mt19937_64 rng(seed);

  std::string dir = (fs::temp_directory_path() / "converge-crash-XXXXXX");
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  for (const std::string sync : {"full", "normal"}) {
    INFO("synchronous " << sync);
    const std::string path = dir + "/crash-" + sync + ".db";

    constexpr int kRuns = 20;
    std::vector<std::pair<int64_t, std::string>> decided;  // over all runs
    for (int run = 0; run < kRuns; ++run) {
      INFO("run " << run << ", seed " << seed);
      const size_t kill_after = 1 + rng() % 40;
      const int64_t first_id = int64_t{run + 1} * 1000000;
      Child child = Spawn({CONVERGE_CRASH_CHILD, path, std::to_string(rng()),
                           std::to_string(first_id),
                           std::to_string(1700000000 + run * 3600), sync});
      std::string partial;
      std::vector<std::string> lines =
          ReadLines(child.out, kill_after, &partial);
      kill(child.pid, SIGKILL);
      int status = 0;
      REQUIRE(waitpid(child.pid, &status, 0) == child.pid);
      // Lines written before the kill landed are decisions too.
      std::vector<std::string> rest = ReadLines(child.out, SIZE_MAX, &partial);
      close(child.out);
      lines.insert(lines.end(), rest.begin(), rest.end());
      // It died by our signal, not by an error of its own.
      REQUIRE(WIFSIGNALED(status));
      REQUIRE(lines.size() >= kill_after);
      for (const std::string& line : lines) {
        std::vector<std::string> f = absl::StrSplit(line, ' ');
        REQUIRE(f.size() == 3);
        REQUIRE(f[0] == "decided");
        int64_t id;
        REQUIRE(absl::SimpleAtoi(f[1], &id));
        decided.emplace_back(id, f[2]);
      }

      CHECK(IntegrityCheck(path) == "ok");
      SqliteOptions options;
      options.path = path;
      absl::StatusOr<SqliteStores> stores = OpenSqliteStores(options);
      INFO(stores.status().ToString());
      REQUIRE(stores.ok());
      for (const auto& [id, outcome] : decided) {
        INFO("action " << id);
        absl::StatusOr<std::optional<ActionRecord>> rec =
            stores->repo->GetAction(id);
        REQUIRE(rec.ok());
        REQUIRE(rec->has_value());
        CHECK(ToString((*rec)->decision.outcome) == outcome);
      }
    }
    // The runs did converge: some actions were skipped into instances.
    int skipped = 0;
    for (const auto& d : decided) skipped += d.second == "skip" ? 1 : 0;
    CHECK(skipped > 0);
  }
}

}  // namespace
}  // namespace converge::sqlite
