// What the creation race test (race_test.cc) and its children
// (race_child.cc) agree on.
//
// 100 dimensions, each with one action already decided below the threshold
// (count 2: one action in the window). Then 8 processes, released at the
// same moment, each submit one more action for every dimension: each of
// those 800 actions crosses the threshold, and without a guard each would
// create an instance. The same 8 processes also race repo Create calls
// directly (no lease), on 100 other dimensions, so that the unique key on
// the open dimension is the only guard.

#ifndef CONVERGE_TESTS_ADAPTERS_MYSQL_RACE_COMMON_H_
#define CONVERGE_TESTS_ADAPTERS_MYSQL_RACE_COMMON_H_

#include <string>

#include "absl/time/time.h"
#include "converge/manager.h"
#include "unit/builders.h"

namespace converge::race {

inline constexpr int kProcesses = 8;
inline constexpr int kDimensions = 100;

inline absl::Time Moment() { return absl::FromUnixSeconds(1700000000); }

inline ConvergeConfig Rule() {
  ConvergeConfig c;
  c.is_enabled = true;
  c.converge_func = ConvergeFunction::kSkipWhenExceed;
  c.count = 2;
  c.timedelta = 600;
  c.condition = {Condition{"alert_info", {Value("self")}}};
  return c;
}

// The seed action of dimension d (id 1..100), and process p's action for
// it (ids above 1000).
inline int64_t SeedId(int d) { return d + 1; }
inline int64_t RaceId(int p, int d) { return 1000 + d * kProcesses + p; }

inline Action ActionOf(int64_t id, int d) {
  Action a = testing::Act(id, 0, "race-" + std::to_string(d));
  a.create_time = Moment();
  return a;
}

// The dimensions of the direct Create race.
inline std::string RawDimension(int d) { return "raw-" + std::to_string(d); }

}  // namespace converge::race

#endif  // CONVERGE_TESTS_ADAPTERS_MYSQL_RACE_COMMON_H_
