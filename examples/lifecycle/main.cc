// Notices of one alert, end to end: the processor decides them from the
// queue, runs the instance's summary 60 s later, and reports every step.
#include <cstdio>

#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "converge/processor.h"

using namespace converge;

struct Printer : ManagerListener {
  void OnDecision(const Decision& d) override {
    std::printf("decision: action %lld %s\n", (long long)d.action_id,
                std::string(ToString(d.outcome)).c_str());
  }
  void OnInstance(const InstanceEvent& e) override {
    std::printf("instance %lld %s\n", (long long)e.converge_id,
                std::string(ToString(e.kind)).c_str());
  }
  void OnSummary(const Summary& s) override {
    std::printf("summary of instance %lld: %zu suppressed\n",
                (long long)s.converge_id, s.action_ids.size());
  }
};

int main() {
  VirtualClock clock(absl::FromUnixSeconds(1700000000));
  auto stores = memory::NewMemoryStores({&clock}).value();
  Printer printer;
  ManagerOptions options;
  options.listener = &printer;
  auto manager =
      ConvergeManager::Create(stores.view(), &clock, options).value();
  auto processor = Processor::Create(manager.get()).value();

  ConvergeConfig rule;     // collect: the first notice runs, the rest wait
  rule.is_enabled = true;  // for the summary
  rule.converge_func = ConvergeFunction::kCollect;
  rule.timedelta = 300;
  rule.count = 1;
  rule.condition = {{"alert_info", {Value("self")}}};

  for (int i = 1; i <= 3; ++i) {
    Action notice;
    notice.id = i;
    notice.create_time = clock.Now();
    notice.plugin_type = "notice";
    notice.context["alert_info"] = "cpu high on web-1";
    if (!processor->SubmitAction(notice, rule).ok()) return 1;
    if (!processor->Drain().ok()) return 1;
    clock.Advance(absl::Seconds(10));
  }
  clock.Advance(absl::Seconds(60));  // the summary task is due
  if (!processor->Drain().ok()) return 1;
  return 0;
}
