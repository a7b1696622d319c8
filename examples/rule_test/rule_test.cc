// A rule unit test, as a host would write one for its own converge rules:
// Catch2 on the memory store, with a virtual clock, so an hour of alerts
// runs in microseconds and the same way every time. (Catch2's main is in
// main.cc, a file of its own, as Catch2 recommends: it is compiled once.)
#include <catch2/catch.hpp>

#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "converge/processor.h"

using namespace converge;

namespace {

// The rule under test: a webhook may fire at most 3 times per alert in 5
// minutes; later calls are skipped.
ConvergeConfig WebhookRule() {
  ConvergeConfig rule;
  rule.is_enabled = true;
  rule.converge_func = ConvergeFunction::kSkipWhenExceed;
  rule.timedelta = 300;
  rule.count = 3;
  rule.condition = {{"alert_info", {Value("self")}}};
  return rule;
}

struct Harness {
  Harness() : clock(absl::FromUnixSeconds(1700000000)) {
    stores = memory::NewMemoryStores({&clock}).value();
    manager = ConvergeManager::Create(stores.view(), &clock).value();
    processor = Processor::Create(manager.get()).value();
  }

  // Fires the webhook of `alert` `seconds` from the start; returns its
  // outcome.
  Outcome Fire(int64_t id, double seconds, const std::string& alert) {
    const absl::Time at =
        absl::FromUnixSeconds(1700000000) + absl::Seconds(seconds);
    if (clock.Now() < at) clock.Set(at);
    Action webhook;
    webhook.id = id;
    webhook.create_time = at;
    webhook.plugin_type = "webhook";
    webhook.context["alert_info"] = alert;
    REQUIRE(processor->SubmitAction(webhook, WebhookRule()).ok());
    REQUIRE(processor->Drain().ok());
    return manager->GetDecision(id).value()->outcome;
  }

  VirtualClock clock;
  memory::MemoryStores stores;
  std::unique_ptr<ConvergeManager> manager;
  std::unique_ptr<Processor> processor;
};

}  // namespace

TEST_CASE("the webhook fires at most 3 times per alert in 5 minutes") {
  Harness h;
  CHECK(h.Fire(1, 0, "disk full on db-1") == Outcome::kExecute);
  CHECK(h.Fire(2, 60, "disk full on db-1") == Outcome::kExecute);
  CHECK(h.Fire(3, 120, "disk full on db-1") == Outcome::kExecute);
  CHECK(h.Fire(4, 180, "disk full on db-1") == Outcome::kSkip);
  // Another alert is counted on its own.
  CHECK(h.Fire(5, 190, "disk full on db-2") == Outcome::kExecute);
}

TEST_CASE("after the window the webhook fires again") {
  Harness h;
  for (int i = 1; i <= 4; ++i) h.Fire(i, i * 10, "cpu high on web-1");
  // 10 minutes later the instance has expired (the sweep ends it, and the
  // next firing would end it anyway): the count starts over.
  CHECK(h.Fire(5, 700, "cpu high on web-1") == Outcome::kExecute);
}
