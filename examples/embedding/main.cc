// The README's embedding example: three notices for one alert within two
// minutes; the first runs, the rest are collected into a summary.
#include <cstdio>

#include "converge/manager.h"
#include "converge/memory/memory_store.h"

int main() {
  converge::VirtualClock clock(absl::FromUnixSeconds(1700000000));
  auto stores = converge::memory::NewMemoryStores({&clock}).value();
  auto manager =
      converge::ConvergeManager::Create(stores.view(), &clock).value();

  converge::ConvergeConfig rule;  // upstream's converge_config, typed
  rule.is_enabled = true;
  rule.converge_func = converge::ConvergeFunction::kCollect;
  rule.timedelta = 120;
  rule.count = 1;
  rule.condition = {{"notice_info", {"self"}}};

  for (int64_t id = 1; id <= 3; ++id) {
    converge::Action notice{.id = id,
                            .create_time = clock.Now(),
                            .strategy_id = 42,
                            .signal = "abnormal",
                            .plugin_type = "notice"};
    notice.context = {{"notice_way", "mail"}, {"notice_receiver", "alice"}};
    converge::Decision d = manager->Submit(notice, rule).value();
    std::printf("action %lld: %s\n", static_cast<long long>(id),
                std::string(converge::ToString(d.outcome)).c_str());
    clock.Advance(absl::Seconds(10));
  }
}
