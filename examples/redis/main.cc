// The Redis store: leases, the window index and the task queue on Redis,
// instances and decisions in SQLite. Every process that opens the same two
// stores shares them. Run it twice and the second run gets the first run's
// decisions back, stored.
#include <cstdio>

#include "converge/manager.h"
#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"

int main(int argc, char** argv) {
  auto redis_options = converge::redis::ParseRedisUri(
      argc > 1 ? argv[1] : "redis://127.0.0.1:6379/0");
  auto sqlite_options = converge::sqlite::ParseSqliteUri(
      argc > 2 ? argv[2] : "sqlite:converge-example.db");
  if (!redis_options.ok() || !sqlite_options.ok()) {
    std::fprintf(stderr, "usage: %s [redis://HOST:PORT/DB] [sqlite:PATH]\n",
                 argv[0]);
    return 2;
  }
  // Lease and key expiry follow the Redis server's clock (redis_options
  // ->clock left null); decisions are stamped by the host's clock.
  const converge::Clock* clock = converge::RealClock::Default();
  auto stores = converge::redis::OpenRedisStores(*redis_options);
  auto sql = converge::sqlite::OpenSqliteStores(*sqlite_options);
  if (!stores.ok() || !sql.ok()) {  // e.g. "redis: 127.0.0.1:6379: connect:
                                    // Connection refused"
    std::fprintf(
        stderr, "%s\n",
        (stores.ok() ? sql.status() : stores.status()).ToString().c_str());
    return 1;
  }
  stores->repo = std::move(sql->repo);  // instances and decisions: SQLite
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
