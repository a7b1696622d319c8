// The creation race on MySQL (race_common.h): 8 processes submit the
// threshold-crossing actions of 100 dimensions at the same moment; each
// dimension gets exactly one open instance with exactly one primary
// relation, and every action exactly one decision. The same processes race
// repo Create calls with no lease at all: the unique key on the open
// dimension lets exactly one through per dimension.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "converge/manager.h"
#include "converge/mysql/mysql_store.h"
#include "race_common.h"
#include "support/mysql_server.h"
#include "support/mysql_test_env.h"
#include "support/temp_dir.h"

namespace converge::testing {
namespace {

TEST_CASE(
    "race: 8 processes cross the threshold of 100 dimensions at once, one "
    "open instance with one primary relation per dimension",
    "[mysql][race]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  VirtualClock clock(race::Moment());
  mysql::MysqlOptions o = db->options;
  o.clock = &clock;
  absl::StatusOr<mysql::MysqlStores> stores = mysql::OpenMysqlStores(o);
  REQUIRE(stores.ok());
  auto manager = ConvergeManager::Create(stores->view(), &clock).value();
  // The seeds: one action per dimension, below the threshold.
  for (int d = 0; d < race::kDimensions; ++d) {
    absl::StatusOr<Decision> r =
        manager->Submit(race::ActionOf(race::SeedId(d), d), race::Rule());
    REQUIRE(r.ok());
    REQUIRE(r->outcome == Outcome::kExecute);
    REQUIRE_FALSE(r->converge_id.has_value());
  }

  absl::StatusOr<std::string> dir = MakeTestTempDir("converge-mysql-race");
  REQUIRE(dir.ok());
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{*dir};
  int go[2];
  REQUIRE(pipe(go) == 0);
  std::vector<pid_t> children;
  struct Reaper {
    std::vector<pid_t>* pids;
    ~Reaper() {
      for (pid_t p : *pids) {
        if (p > 0 && kill(p, SIGKILL) == 0) waitpid(p, nullptr, 0);
      }
    }
  } reaper{&children};
  std::vector<std::string> outs;
  for (int p = 0; p < race::kProcesses; ++p) {
    outs.push_back(*dir + "/child" + std::to_string(p) + ".txt");
    const std::string index = std::to_string(p);
    const std::string fd = std::to_string(go[0]);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(go[1]);
      execl(CONVERGE_RACE_CHILD, CONVERGE_RACE_CHILD, o.unix_socket.c_str(),
            o.user.c_str(), o.password.c_str(), o.database.c_str(),
            index.c_str(), fd.c_str(), outs.back().c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    children.push_back(pid);
  }
  close(go[0]);
  // Let every child connect and wait at the pipe, then release them.
  usleep(500 * 1000);
  close(go[1]);
  for (pid_t& p : children) {
    int status = 0;
    REQUIRE(waitpid(p, &status, 0) == p);
    p = 0;
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  InstanceRepo& repo = *stores->repo;
  std::vector<ConvergeInstance> open = repo.ListOpen(0).value();
  std::map<std::string, int> open_per_dimension;
  for (const ConvergeInstance& inst : open)
    ++open_per_dimension[inst.dimension];
  CHECK(open.size() == 2 * race::kDimensions);
  for (const auto& [dimension, n] : open_per_dimension) {
    INFO(dimension);
    CHECK(n == 1);
  }

  // Through the manager: every action decided once, all of a dimension's
  // actions in its one instance, which has one primary relation.
  std::map<int64_t, std::set<int64_t>> members;  // instance -> actions
  for (int d = 0; d < race::kDimensions; ++d) {
    std::set<int64_t> instances;
    for (int p = 0; p < race::kProcesses; ++p) {
      const int64_t id = race::RaceId(p, d);
      std::optional<ActionRecord> rec = repo.GetAction(id).value();
      INFO("action " << id);
      REQUIRE(rec.has_value());
      REQUIRE(rec->decision.converge_id.has_value());
      instances.insert(*rec->decision.converge_id);
    }
    INFO("dimension " << d);
    REQUIRE(instances.size() == 1);
    const int64_t id = *instances.begin();
    std::vector<ConvergeRelation> rels = repo.Relations(id).value();
    int primaries = 0;
    std::set<int64_t> related;
    for (const ConvergeRelation& r : rels) {
      primaries += r.is_primary ? 1 : 0;
      related.insert(r.related_id);
    }
    CHECK(primaries == 1);
    // The 8 racers and the seed (attached when the instance was created).
    CHECK(related.size() == race::kProcesses + 1);
    CHECK(rels.size() == race::kProcesses + 1);
    CHECK(related.count(race::SeedId(d)) == 1);
    CHECK(repo.GetInstance(id).value().is_open());
  }

  // Through the repo alone: exactly one Create won per raw dimension.
  std::map<int, int> wins;
  for (const std::string& out : outs) {
    std::ifstream in(out);
    REQUIRE(in.good());
    int d;
    while (in >> d) ++wins[d];
  }
  for (int d = 0; d < race::kDimensions; ++d) {
    INFO("raw dimension " << d);
    CHECK(wins[d] == 1);
    std::optional<ConvergeInstance> inst =
        repo.FindOpen(race::RawDimension(d)).value();
    REQUIRE(inst.has_value());
    std::vector<ConvergeRelation> rels = repo.Relations(inst->id).value();
    REQUIRE(rels.size() == 1);
    CHECK(rels[0].is_primary);
  }
}

}  // namespace
}  // namespace converge::testing
