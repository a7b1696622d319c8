// What the fault test (fault_test.cc) and its workers (fault_worker.cc)
// agree on: the actions, their rules, and the manager's and processor's
// options (short leases, visibility and backoffs, so that a restart of the
// server is ridden out in seconds).

#ifndef CONVERGE_TESTS_ADAPTERS_REDIS_FAULT_COMMON_H_
#define CONVERGE_TESTS_ADAPTERS_REDIS_FAULT_COMMON_H_

#include <string>

#include "converge/manager.h"
#include "converge/processor.h"

namespace converge::fault {

inline constexpr int64_t kActions = 20000;
inline constexpr int kWorkers = 4;
inline constexpr int64_t kDimensions = 400;

inline int64_t DimensionOf(int64_t id) { return id % kDimensions; }

// Even dimensions: skip_when_exceed, 3 run; odd: collect, 2 run and a
// summary task (due 2 s after the instance is created) ends the instance.
inline ConvergeConfig RuleOf(int64_t id) {
  ConvergeConfig c;
  c.is_enabled = true;
  const bool even = DimensionOf(id) % 2 == 0;
  c.converge_func =
      even ? ConvergeFunction::kSkipWhenExceed : ConvergeFunction::kCollect;
  c.count = even ? 3 : 2;
  c.timedelta = 3600;
  c.condition = {Condition{"alert_info", {Value("self")}}};
  return c;
}

inline Action ActionOf(int64_t id, absl::Time create_time) {
  Action a;
  a.id = id;
  a.create_time = create_time;
  a.bk_biz_id = 2;
  a.strategy_id = 10 + DimensionOf(id) % 7;
  a.signal = "abnormal";
  a.alert_level = 1;
  a.plugin_type = "webhook";
  a.action_config_id = 7;
  a.alerts = {"alert-" + std::to_string(id)};
  a.context["alert_info"] = "g" + std::to_string(DimensionOf(id));
  return a;
}

inline ManagerOptions FaultManagerOptions() {
  ManagerOptions o;
  o.lease_ttl = absl::Seconds(5);  // a lease stranded by the restart
  o.summary_delay = absl::Seconds(2);
  return o;
}

inline ProcessorOptions FaultProcessorOptions() {
  ProcessorOptions o;
  o.visibility_timeout = absl::Seconds(3);
  o.max_attempts = 50;  // errors while the server is down are retried
  o.retry_backoff_min = absl::Milliseconds(50);
  o.retry_backoff_max = absl::Milliseconds(500);
  o.contention_delay = absl::Milliseconds(20);
  o.sweep_interval = absl::ZeroDuration();      // no perpetual jobs: the queue
  o.retention_interval = absl::ZeroDuration();  // drains to empty
  o.threads = 2;
  o.idle_wait = absl::Milliseconds(20);
  return o;
}

}  // namespace converge::fault

#endif  // CONVERGE_TESTS_ADAPTERS_REDIS_FAULT_COMMON_H_
