// Shared fixtures for the unit tests: a manager on the store under test
// (tests/support/test_stores.h: the memory store, or SQLite in the
// scenarios_sqlite executable) and a virtual clock, and builders for actions
// and configs.

#ifndef CONVERGE_TESTS_UNIT_TEST_UTIL_H_
#define CONVERGE_TESTS_UNIT_TEST_UTIL_H_

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "support/test_stores.h"
#include "unit/builders.h"

namespace converge::testing {

// True if `repo` has transactions (InstanceRepo::BeginBatch): then every
// Submit is one transaction, all or nothing, and the threads of a process
// take turns on the store's write lock instead of contending for leases.
inline bool RepoHasBatches(InstanceRepo& repo) {
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = repo.BeginBatch();
  return batch.ok() && *batch != nullptr;  // rolled back at once
}

struct Env {
  explicit Env(ManagerOptions options = {}) : clock(T(0)), options_(options) {
    absl::StatusOr<TestStores> made = MakeTestStores(&clock);
    INFO(made.status().ToString());
    REQUIRE(made.ok());
    stores = std::move(*made);
    manager = ConvergeManager::Create(stores.view(), &clock, options).value();
  }

  // Makes the manager again over a modified view of the stores, for tests
  // that decorate one store with a wrapper (which must outlive the manager).
  template <typename Edit>
  void Rewire(Edit edit) {
    Stores view = stores.view();
    edit(&view);
    manager = ConvergeManager::Create(view, &clock, options_).value();
  }

  // Submits `a` at its create time (the clock moves there first, unless it
  // is already later: late processing).
  Decision Submit(const Action& a, const ConvergeConfig& c) {
    if (clock.Now() < a.create_time) clock.Set(a.create_time);
    absl::StatusOr<Decision> d = manager->Submit(a, c);
    INFO(d.status().ToString());
    REQUIRE(d.ok());
    return *d;
  }

  // The window-index key of alert_info value `group` for Act()'s strategy.
  std::string WindowKey(const std::string& group) {
    return manager->key_space()
        .Render(keys::kConvergeDimension,
                {{"strategy_id", "10"},
                 {"dimension", "alert_info"},
                 {"value", group}},
                "s10")
        .value();
  }

  std::vector<ConvergeRelation> Relations(int64_t cid) {
    return stores.repo->Relations(cid).value();
  }
  const ConvergeRelation* RelationOf(int64_t cid, int64_t action_id) {
    rels_ = Relations(cid);
    for (const auto& r : rels_) {
      if (r.related_id == action_id) return &r;
    }
    return nullptr;
  }
  ConvergeInstance Instance(int64_t cid) {
    return stores.repo->GetInstance(cid).value();
  }
  void Report(int64_t id, ActionStatus s) {
    REQUIRE(manager->ReportStatus(id, s).ok());
  }

  VirtualClock clock;
  TestStores stores;
  std::unique_ptr<ConvergeManager> manager;

 private:
  ManagerOptions options_;
  std::vector<ConvergeRelation> rels_;
};

// Asserts relation (instance, member) has the given primary flag and status.
#define CHECK_RELATION(env, cid, member, primary, status) \
  do {                                                    \
    const ::converge::ConvergeRelation* rel_ =            \
        (env).RelationOf((cid), (member));                \
    REQUIRE(rel_ != nullptr);                             \
    CHECK(rel_->is_primary == (primary));                 \
    CHECK(rel_->converge_status == (status));             \
  } while (0)

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_UNIT_TEST_UTIL_H_
