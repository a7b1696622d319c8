// The SQLite store: decisions outlive the process. Run it twice on the same
// file and the second run gets the first run's decisions back, stored.
#include <cstdio>

#include "converge/manager.h"
#include "converge/sqlite/sqlite_store.h"

int main(int argc, char** argv) {
  auto options = converge::sqlite::ParseStoreUri(
      argc > 1 ? argv[1] : "sqlite:converge-example.db");
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n", options.status().ToString().c_str());
    return 2;
  }
  converge::VirtualClock clock(absl::FromUnixSeconds(1700000000));
  options->clock = &clock;  // lease and key expiry follow this clock
  auto stores = converge::sqlite::OpenSqliteStores(*options);
  if (!stores.ok()) {  // e.g. "sqlite: x.db: not a SQLite database ..."
    std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
    return 1;
  }
  auto manager =
      converge::ConvergeManager::Create(stores->view(), &clock).value();

  converge::ConvergeConfig rule;
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
    auto d = manager->Submit(notice, rule);
    if (!d.ok()) {
      std::fprintf(stderr, "%s\n", d.status().ToString().c_str());
      return 1;
    }
    std::printf("action %lld: %s%s\n", static_cast<long long>(id),
                std::string(converge::ToString(d->outcome)).c_str(),
                d->replayed ? " (stored)" : "");
    clock.Advance(absl::Seconds(10));
  }
}
