// A process of the creation race test (race_test.cc): opens the MySQL
// stores, waits until the test closes the pipe (every process is released
// at the same moment), then submits its action for every dimension and
// races a repo Create for every raw dimension. Writes the raw dimensions it
// created, one per line, to OUT_FILE.
//
//   converge_mysql_race_child SOCKET USER PASSWORD DATABASE INDEX GO_FD OUT

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "converge/manager.h"
#include "converge/mysql/mysql_store.h"
#include "race_common.h"

using namespace converge;

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr,
                 "usage: %s SOCKET USER PASSWORD DATABASE INDEX GO_FD OUT\n",
                 argv[0]);
    return 2;
  }
  const int index = std::atoi(argv[5]);
  VirtualClock clock(race::Moment());
  mysql::MysqlOptions o;
  o.unix_socket = argv[1];
  o.user = argv[2];
  o.password = argv[3];
  o.database = argv[4];
  o.clock = &clock;
  o.schema = mysql::SchemaMode::kCheck;  // the test migrated it
  auto stores = mysql::OpenMysqlStores(o);
  if (!stores.ok()) {
    std::fprintf(stderr, "child %d: %s\n", index,
                 stores.status().ToString().c_str());
    return 1;
  }
  auto manager = ConvergeManager::Create(stores->view(), &clock).value();
  // Released together: read() returns when the test closes the pipe.
  char c;
  while (read(std::atoi(argv[6]), &c, 1) > 0) {
  }
  const ConvergeConfig rule = race::Rule();
  int failures = 0;
  for (int d = 0; d < race::kDimensions; ++d) {
    const Action a = race::ActionOf(race::RaceId(index, d), d);
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<Decision> r = manager->Submit(a, rule);
      if (r.ok()) break;
      // A busy lease (another process evaluates d) or a deadlock that
      // outlived the store's retries: submit again, as a queue would.
      if (attempt >= 50) {
        std::fprintf(stderr, "child %d: action %lld: %s\n", index,
                     static_cast<long long>(a.id),
                     r.status().ToString().c_str());
        ++failures;
        break;
      }
      usleep(1000);
    }
  }
  std::ofstream out(argv[7]);
  for (int d = 0; d < race::kDimensions; ++d) {
    CreateRequest req;
    req.instance.converge_type = ConvergeType::kAction;
    req.instance.converge_func = ConvergeFunction::kSkipWhenExceed;
    req.instance.bk_biz_id = 2;
    req.instance.dimension = race::RawDimension(d);
    req.instance.create_time = race::Moment();
    req.instance.converge_config = rule;
    req.instance.window_seconds = 600;
    const int64_t creator = 100000 + d * race::kProcesses + index;
    req.primary.related_id = creator;
    req.primary.related_type = ConvergeType::kAction;
    req.primary.is_primary = true;
    req.primary.converge_status = ConvergeStatus::kExecuted;
    ActionRecord rec;
    rec.id = creator;
    rec.create_time = race::Moment();
    rec.status = ActionStatus::kConverged;
    rec.status_time = race::Moment();
    rec.decision.action_id = creator;
    rec.decision.decided_at = race::Moment();
    rec.decision.primary = true;
    req.creator = rec;
    absl::StatusOr<CreateResult> made = stores->repo->Create(req);
    if (made.ok()) {
      out << d << "\n";
    } else if (made.status().code() != absl::StatusCode::kAlreadyExists) {
      std::fprintf(stderr, "child %d: create %d: %s\n", index, d,
                   made.status().ToString().c_str());
      ++failures;
    }
  }
  return failures == 0 ? 0 : 1;
}
