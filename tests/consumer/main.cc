// Decides one action through an installed or vendored converge.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "converge/json/json.h"
#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "converge/redis/redis_store.h"
#include "converge/sqlite/sqlite_store.h"

int main() {
  converge::VirtualClock clock(absl::FromUnixSeconds(1700000000));
  auto stores = converge::memory::NewMemoryStores({&clock});
  if (!stores.ok()) return 1;
  auto manager = converge::ConvergeManager::Create(stores->view(), &clock);
  if (!manager.ok()) return 1;
  auto rule = converge::json::ParseConvergeConfig(
      R"({"is_enabled":true,"converge_func":"collect","timedelta":60,)"
      R"("count":1,"condition":[{"dimension":"alert_info","value":["self"]}]})");
  if (!rule.ok()) return 1;
  converge::Action action;
  action.id = 1;
  action.create_time = clock.Now();
  action.context["alert_info"] = "a";
  auto decision = (*manager)->Submit(action, *rule);
  if (!decision.ok() || decision->outcome != converge::Outcome::kExecute) {
    return 1;
  }

  // The same decision on a SQLite file.
  char dir[] = "/tmp/converge-consumer-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  converge::sqlite::SqliteOptions options;
  options.path = std::string(dir) + "/consumer.db";
  options.clock = &clock;
  bool ok = false;
  {
    auto sqlite = converge::sqlite::OpenSqliteStores(options);
    if (sqlite.ok()) {
      auto m = converge::ConvergeManager::Create(sqlite->view(), &clock);
      if (m.ok()) {
        auto d = (*m)->Submit(action, *rule);
        ok = d.ok() && d->outcome == converge::Outcome::kExecute;
      }
    }
  }
  std::filesystem::remove_all(dir);
  if (!ok) return 1;

  // The Redis store links (no server needed to parse its URI).
  auto redis = converge::redis::ParseRedisUri("redis://127.0.0.1:6379/0");
  if (!redis.ok() || redis->port != 6379) return 1;
  std::puts("consumer: ok");
  return 0;
}
