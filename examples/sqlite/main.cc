// The SQLite store: decisions outlive the process. Run it twice on the same
// file and the second run gets the first run's decisions back, stored.
#include <cstdio>
#include <vector>

#include "converge/manager.h"
#include "converge/sqlite/sqlite_store.h"

int main(int argc, char** argv) {
  auto options = converge::sqlite::ParseSqliteUri(
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

  auto notice = [&](int64_t id) {
    converge::Action a{.id = id,
                       .create_time = clock.Now(),
                       .strategy_id = 42,
                       .signal = "abnormal",
                       .plugin_type = "notice"};
    a.context = {{"notice_way", "mail"}, {"notice_receiver", "alice"}};
    return a;
  };
  auto print = [](int64_t id, const absl::StatusOr<converge::Decision>& d) {
    if (!d.ok()) {
      std::fprintf(stderr, "%s\n", d.status().ToString().c_str());
      return false;
    }
    std::printf("action %lld: %s%s\n", static_cast<long long>(id),
                std::string(converge::ToString(d->outcome)).c_str(),
                d->replayed ? " (stored)" : "");
    return true;
  };

  // One by one: each decision is one transaction, committed on return.
  for (int64_t id = 1; id <= 3; ++id) {
    if (!print(id, manager->Submit(notice(id), rule))) return 1;
    clock.Advance(absl::Seconds(10));
  }
  // A batch: the same decisions, one transaction and one commit for all.
  std::vector<converge::Action> batch = {notice(4), notice(5), notice(6)};
  std::vector<converge::ConvergeManager::BatchItem> items;
  for (const converge::Action& a : batch) items.push_back({&a, &rule});
  std::vector<absl::StatusOr<converge::Decision>> decided =
      manager->SubmitBatch(items);
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!print(batch[i].id, decided[i])) return 1;
  }
}
