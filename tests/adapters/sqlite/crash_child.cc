// The child of the crash test (crash_test.cc, "[crash]"): opens a
// SQLite file with the default options (synchronous FULL, or NORMAL when
// the optional last argument is "normal"), makes a
// ConvergeManager and submits actions until it is killed, printing
// "decided <id> <outcome>" on stdout after each Submit has returned.
//
//   converge_sqlite_crash_child PATH SEED FIRST_ID START_UNIX_SECONDS
//                               [full|normal]
//
// Actions get ids FIRST_ID, FIRST_ID+1, ... and fall into a few dimensions
// chosen by a generator seeded with SEED; a virtual clock starts at
// START_UNIX_SECONDS and moves one second per action, so that each run has
// its own stretch of time (leases a killed run left behind have expired).

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "converge/manager.h"
#include "converge/sqlite/sqlite_store.h"

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr,
                 "usage: %s PATH SEED FIRST_ID START_UNIX_SECONDS "
                 "[full|normal]\n",
                 argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  std::mt19937_64 rng(std::strtoull(argv[2], nullptr, 10));
  const int64_t first_id = std::strtoll(argv[3], nullptr, 10);
  converge::VirtualClock clock(
      absl::FromUnixSeconds(std::strtoll(argv[4], nullptr, 10)));

  converge::sqlite::SqliteOptions options;
  options.path = path;
  options.clock = &clock;
  if (argc == 6 && std::string(argv[5]) == "normal") {
    options.synchronous = converge::sqlite::Synchronous::kNormal;
  }
  absl::StatusOr<converge::sqlite::SqliteStores> stores =
      converge::sqlite::OpenSqliteStores(options);
  if (!stores.ok()) {
    std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
    return 1;
  }
  auto manager = converge::ConvergeManager::Create(stores->view(), &clock);
  if (!manager.ok()) {
    std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
    return 1;
  }
  converge::ConvergeConfig rule;
  rule.is_enabled = true;
  rule.converge_func = converge::ConvergeFunction::kCollect;
  rule.timedelta = 120;
  rule.count = 2;
  rule.condition = {{"alert_info", {converge::Value("self")}}};

  for (int64_t id = first_id;; ++id) {
    converge::Action a;
    a.id = id;
    a.create_time = clock.Now();
    a.strategy_id = 42;
    a.signal = "abnormal";
    a.plugin_type = "webhook";
    a.alerts = {"alert-" + std::to_string(id)};
    a.context["alert_info"] = "group-" + std::to_string(rng() % 4);
    absl::StatusOr<converge::Decision> d = (*manager)->Submit(a, rule);
    if (!d.ok()) {
      std::fprintf(stderr, "action %lld: %s\n", static_cast<long long>(id),
                   d.status().ToString().c_str());
      return 1;
    }
    // One write(2) per line: the parent sees whole lines, and a line means
    // Submit had returned.
    const std::string line = "decided " + std::to_string(id) + " " +
                             std::string(converge::ToString(d->outcome)) + "\n";
    if (write(STDOUT_FILENO, line.data(), line.size()) !=
        static_cast<ssize_t>(line.size())) {
      return 1;
    }
    clock.Advance(absl::Seconds(1));
  }
}
