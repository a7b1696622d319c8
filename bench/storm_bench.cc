// Replays a synthetic alert storm through ConvergeManager on the memory
// store, on one thread, and prints decisions per second, peak RSS, and RSS
// per action held in the window index.
//
// Speed is reported as a ratio against a baseline measured in the same run
// (the machines are noisy): the baseline does, per action, what any
// implementation must at least do -- one hash-map update keyed by the
// action's dimension text and one SHA-1 of a canonical text of the same
// length as D's.
//
// Usage: converge_storm_bench [--actions N] [--dimensions N] [--seconds S]
// Defaults: 1,000,000 actions over 10,000 dimensions in a 600 s storm (all
// of it inside the window index), half `collect` (count 1, 300 s), half
// `skip_when_exceed` (count 3, 300 s).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "converge/dimension.h"
#include "converge/manager.h"
#include "converge/memory/memory_store.h"

namespace {

// Resident set size fields of /proc/self/status, in KiB.
long ProcStatusKiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::atol(line.c_str() + n + 1);
  }
  return -1;
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

long Flag(int argc, char** argv, const char* name, long def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  }
  return def;
}

}  // namespace

int main(int argc, char** argv) {
  const long actions = Flag(argc, argv, "--actions", 1000000);
  const long dimensions = Flag(argc, argv, "--dimensions", 10000);
  const long storm_seconds = Flag(argc, argv, "--seconds", 600);
  if (actions <= 0 || dimensions <= 0 || storm_seconds <= 0) {
    std::fprintf(stderr, "converge_storm_bench: flags must be > 0\n");
    return 2;
  }

  std::vector<std::string> groups;
  groups.reserve(dimensions);
  for (long d = 0; d < dimensions; ++d) {
    groups.push_back("1001_1_abnormal_" + std::to_string(1000000 + d));
  }

  // ---- baseline ----
  const auto b0 = std::chrono::steady_clock::now();
  {
    std::unordered_map<std::string, long> counts;
    std::string text;
    size_t sink = 0;
    for (long i = 0; i < actions; ++i) {
      const std::string& g = groups[i % dimensions];
      ++counts[g];
      text = "#skip_when_exceed|alert_info:" + g;
      sink += converge::Sha1Hex(text)[0];
    }
    if (sink == 42) std::printf(" ");
  }
  const double baseline_s = Seconds(std::chrono::steady_clock::now() - b0);

  // ---- converge ----
  const absl::Time start = absl::FromUnixSeconds(1700000000);
  converge::VirtualClock clock(start);
  auto stores = converge::memory::NewMemoryStores({&clock});
  if (!stores.ok()) {
    std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
    return 1;
  }
  auto manager = converge::ConvergeManager::Create(stores->view(), &clock);
  if (!manager.ok()) {
    std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
    return 1;
  }

  converge::ConvergeConfig collect;
  collect.is_enabled = true;
  collect.converge_func = converge::ConvergeFunction::kCollect;
  collect.timedelta = 300;
  collect.count = 1;
  collect.need_biz_converge = false;
  collect.condition = {{"alert_info", {"self"}}};
  converge::ConvergeConfig exceed = collect;
  exceed.converge_func = converge::ConvergeFunction::kSkipWhenExceed;
  exceed.count = 3;

  // One prepared action per dimension, as a host keeps its action objects;
  // each iteration only sets the id and the time, so the loop measures the
  // library, not building inputs.
  std::vector<converge::Action> prepared(dimensions);
  for (long d = 0; d < dimensions; ++d) {
    converge::Action& a = prepared[d];
    a.bk_biz_id = 2;
    a.strategy_id = 1001;
    a.signal = "abnormal";
    a.alert_level = 1;
    a.plugin_type = "webhook";
    a.action_config_id = 7;
    a.alerts = {"alert-" + std::to_string(d)};
    a.context["alert_info"] = groups[d];
  }

  const long rss_before = ProcStatusKiB("VmRSS:");
  long outcomes[5] = {0, 0, 0, 0, 0};
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < actions; ++i) {
    const long d = i % dimensions;
    converge::Action& a = prepared[d];
    a.id = i + 1;
    a.create_time =
        start + absl::Seconds(static_cast<double>(i) * storm_seconds / actions);
    clock.Set(a.create_time);
    absl::StatusOr<converge::Decision> r =
        manager.value()->Submit(a, d % 2 == 0 ? collect : exceed);
    if (!r.ok()) {
      std::fprintf(stderr, "action %ld: %s\n", i + 1,
                   r.status().ToString().c_str());
      return 1;
    }
    ++outcomes[static_cast<int>(r->outcome)];
  }
  const double converge_s = Seconds(std::chrono::steady_clock::now() - t0);
  const long rss_peak = ProcStatusKiB("VmHWM:");
  const long rss_after = ProcStatusKiB("VmRSS:");

  const double rate = actions / converge_s;
  const double baseline_rate = actions / baseline_s;
  std::printf("storm: %ld actions, %ld dimensions, %ld s of virtual time\n",
              actions, dimensions, storm_seconds);
  std::printf("outcomes: execute %ld, skip %ld, sleep %ld, approval %ld\n",
              outcomes[0], outcomes[1], outcomes[2], outcomes[3]);
  std::printf("open instances: %zu\n",
              stores->repo->ListOpen(0).value().size());
  std::printf("decisions/s (1 thread): %.0f\n", rate);
  std::printf("baseline ops/s (hash map + sha1): %.0f  ratio %.3f\n",
              baseline_rate, rate / baseline_rate);
  std::printf("peak RSS: %.1f MiB; RSS held after the storm: %.1f MiB\n",
              rss_peak / 1024.0, rss_after / 1024.0);
  // Every action of the storm is inside the index horizon, so all of them
  // are held in the window.
  std::printf("RSS per action held in the window: %.0f bytes\n",
              (rss_after - rss_before) * 1024.0 / actions);
  return 0;
}
