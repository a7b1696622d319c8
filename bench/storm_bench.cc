// Replays a synthetic alert storm through ConvergeManager on the memory
// store, on one thread, and prints decisions per second, peak RSS, and RSS
// per action held in the window index.
//
// Speed is reported as a ratio against a baseline measured in the same
// process right before each storm (the machines are noisy): the baseline
// does, per action, what any implementation must at least do -- one hash-map
// update keyed by the action's dimension text and one SHA-1 of a canonical
// text of the same length as D's. The storm is repeated (fresh stores each
// time) and the median is reported with every run.
//
// Usage: converge_storm_bench [--actions N] [--dimensions N] [--seconds S]
//                             [--repeat R]
// Defaults: 1,000,000 actions over 10,000 dimensions in a 600 s storm (all
// of it inside the window index), half `collect` (count 1, 300 s), half
// `skip_when_exceed` (count 3, 300 s); 3 repeats.

#include <chrono>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "converge/dimension.h"
#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "storm.h"

namespace {

using converge::bench::Flag;
using converge::bench::Median;
using converge::bench::ProcStatusKiB;
using converge::bench::Seconds;
using converge::bench::Storm;

struct StormResult {
  double seconds = 0;
  long outcomes[5] = {0, 0, 0, 0, 0};
  size_t open_instances = 0;
  long rss_delta_kib = 0;  // RSS held by the stores after the storm
};

double RunBaseline(const std::vector<std::string>& groups, long actions) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unordered_map<std::string, long> counts;
  std::string text;
  size_t sink = 0;
  for (long i = 0; i < actions; ++i) {
    const std::string& g = groups[i % groups.size()];
    ++counts[g];
    text = "#skip_when_exceed|alert_info:" + g;
    sink += converge::Sha1Hex(text)[0];
  }
  if (sink == 42) std::printf(" ");
  return Seconds(std::chrono::steady_clock::now() - t0);
}

bool RunStorm(Storm& storm, StormResult* out) {
  converge::VirtualClock clock(Storm::Start());
  const long rss_before = ProcStatusKiB("VmRSS:");
  auto stores = converge::memory::NewMemoryStores({&clock});
  if (!stores.ok()) {
    std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
    return false;
  }
  auto manager = converge::ConvergeManager::Create(stores->view(), &clock);
  if (!manager.ok()) {
    std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
    return false;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (!converge::bench::DriveStorm(storm, **manager, clock, storm.actions(), 1,
                                   out->outcomes)) {
    return false;
  }
  out->seconds = Seconds(std::chrono::steady_clock::now() - t0);
  out->rss_delta_kib = ProcStatusKiB("VmRSS:") - rss_before;
  out->open_instances = stores->repo->ListOpen(0).value().size();
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const long actions = Flag(argc, argv, "--actions", 1000000);
  const long dimensions = Flag(argc, argv, "--dimensions", 10000);
  const long storm_seconds = Flag(argc, argv, "--seconds", 600);
  const long repeat = Flag(argc, argv, "--repeat", 3);
  if (actions <= 0 || dimensions <= 0 || storm_seconds <= 0 || repeat <= 0) {
    std::fprintf(stderr, "converge_storm_bench: flags must be > 0\n");
    return 2;
  }

  Storm storm(actions, dimensions, storm_seconds);
  const std::vector<std::string>& groups = storm.groups();

  std::printf("storm: %ld actions, %ld dimensions, %ld s of virtual time\n",
              actions, dimensions, storm_seconds);
  std::vector<double> rates, ratios;
  StormResult first;
  for (long r = 0; r < repeat; ++r) {
    const double baseline_s = RunBaseline(groups, actions);
    StormResult result;
    if (!RunStorm(storm, &result)) return 1;
    if (r == 0) first = result;
    const double rate = actions / result.seconds;
    const double baseline_rate = actions / baseline_s;
    rates.push_back(rate);
    ratios.push_back(rate / baseline_rate);
    std::printf("run %ld: decisions/s %.0f, baseline ops/s %.0f, ratio %.3f\n",
                r + 1, rate, baseline_rate, rate / baseline_rate);
  }
  std::printf("outcomes: execute %ld, skip %ld, sleep %ld, approval %ld\n",
              first.outcomes[0], first.outcomes[1], first.outcomes[2],
              first.outcomes[3]);
  std::printf("open instances: %zu\n", first.open_instances);
  std::printf("decisions/s (1 thread, median of %ld): %.0f\n", repeat,
              Median(rates));
  std::printf("ratio to baseline (median): %.3f\n", Median(ratios));
  std::printf("peak RSS: %.1f MiB\n", ProcStatusKiB("VmHWM:") / 1024.0);
  // Every action of the storm is inside the index horizon, so all of them
  // are held in the window.
  std::printf("RSS per action held in the window: %.0f bytes\n",
              first.rss_delta_kib * 1024.0 / actions);
  return 0;
}
