// docs/processor.md's example: a processor on a virtual clock. Notices are
// queued with due times; the host moves the clock from one due time to the
// next and drains what is due, so an hour of traffic replays at once, in
// the same order every time.
#include <cstdio>

#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "converge/processor.h"

using namespace converge;

struct Printer : ManagerListener {
  explicit Printer(absl::Time start) : start(start) {}
  long long At(absl::Time t) const {
    return static_cast<long long>(absl::ToInt64Seconds(t - start));
  }
  void OnDecision(const Decision& d) override {
    std::printf("t+%llds action %lld: %s\n", At(d.decided_at),
                static_cast<long long>(d.action_id),
                std::string(ToString(d.outcome)).c_str());
  }
  void OnSummary(const Summary& s) override {
    std::printf("t+%llds summary of instance %lld:", At(s.time),
                static_cast<long long>(s.converge_id));
    for (int64_t id : s.action_ids) {
      std::printf(" %lld", static_cast<long long>(id));
    }
    std::printf("\n");
  }
  absl::Time start;
};

int main() {
  const absl::Time start = absl::FromUnixSeconds(1700000000);
  VirtualClock clock(start);
  auto stores = memory::NewMemoryStores({&clock}).value();
  Printer printer(start);
  ManagerOptions options;
  options.listener = &printer;
  auto manager =
      ConvergeManager::Create(stores.view(), &clock, options).value();
  auto processor = Processor::Create(manager.get()).value();

  ConvergeConfig rule;     // collect: the first notice runs, a summary
  rule.is_enabled = true;  // reports the others
  rule.converge_func = ConvergeFunction::kCollect;
  rule.timedelta = 120;
  rule.count = 1;
  rule.condition = {{"alert_info", {Value("self")}}};

  // Four notices, 10 s apart, each queued to run at its own time.
  for (int64_t id = 1; id <= 4; ++id) {
    Action notice;
    notice.id = id;
    notice.create_time = start + absl::Seconds(10 * (id - 1));
    notice.plugin_type = "notice";
    notice.context["alert_info"] = "disk full on db-1";
    if (!processor->SubmitAction(notice, rule, notice.create_time).ok()) {
      return 1;
    }
  }

  // Five minutes of virtual time: jump to each due task and run it.
  const absl::Time end = start + absl::Minutes(5);
  for (;;) {
    std::optional<absl::Time> next = processor->NextDue().value();
    if (!next.has_value() || *next > end) break;
    clock.Set(*next);
    if (!processor->Drain().ok()) return 1;
  }
  const ProcessorStats stats = processor->stats();
  std::printf("tasks run: %lld, dead letters: %lld\n",
              static_cast<long long>(stats.processed),
              static_cast<long long>(stats.dead));
}
