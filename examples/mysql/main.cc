// The MySQL store: leases, the window index, the task queue, instances and
// decisions in one MySQL (or MariaDB) database that processes on many hosts
// share. Run it twice and the second run gets the first run's decisions
// back, stored.
#include <cstdio>

#include "converge/manager.h"
#include "converge/mysql/mysql_store.h"

int main(int argc, char** argv) {
  auto options = converge::mysql::ParseMysqlUri(
      argc > 1 ? argv[1] : "mysql://converge:secret@127.0.0.1:3306/converge");
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n", options.status().ToString().c_str());
    return 2;
  }
  // Lease and key expiry follow this clock (options->clock left null: the
  // real one); every process sharing the database must run on the same time.
  const converge::Clock* clock = converge::RealClock::Default();
  auto stores = converge::mysql::OpenMysqlStores(*options);
  if (!stores.ok()) {  // e.g. "mysql: converge@127.0.0.1:3306/converge:
                       // cannot connect: ... (errno 2002)"
    std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
    return 1;
  }
  auto manager =
      converge::ConvergeManager::Create(stores->view(), clock).value();

  converge::ConvergeConfig rule;
  rule.is_enabled = true;
  rule.converge_func = converge::ConvergeFunction::kCollect;
  rule.timedelta = 120;
  rule.count = 1;
  rule.condition = {{"notice_info", {"self"}}};

  for (int64_t id = 1; id <= 3; ++id) {
    converge::Action notice{.id = id,
                            .create_time = clock->Now(),
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
  }
}
