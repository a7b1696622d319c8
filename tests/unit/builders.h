// Builders of actions and configs for tests, with no store behind them
// (test_util.h adds a manager on the store under test).

#ifndef CONVERGE_TESTS_UNIT_BUILDERS_H_
#define CONVERGE_TESTS_UNIT_BUILDERS_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "converge/config.h"
#include "converge/model.h"

namespace converge::testing {

inline absl::Time T(double seconds) {
  return absl::UnixEpoch() + absl::Seconds(seconds);
}

inline ConvergeConfig Rule(ConvergeFunction func, int64_t count,
                           int64_t timedelta,
                           std::string dimension = "alert_info") {
  ConvergeConfig c;
  c.is_enabled = true;
  c.converge_func = func;
  c.count = count;
  c.timedelta = timedelta;
  c.condition = {Condition{std::move(dimension), {Value("self")}}};
  return c;
}

// An action whose alert_info is `group` (so actions of one group share D).
inline Action Act(int64_t id, double at, std::string group = "g1") {
  Action a;
  a.id = id;
  a.create_time = T(at);
  a.bk_biz_id = 2;
  a.strategy_id = 10;
  a.signal = "abnormal";
  a.alert_level = 1;
  a.plugin_type = "webhook";
  a.action_config_id = 7;
  a.alerts = {"alert-" + std::to_string(id)};
  a.context["alert_info"] = group;
  return a;
}

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_UNIT_BUILDERS_H_
