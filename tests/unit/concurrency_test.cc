// Many threads deciding actions of the same dimensions at once, on one
// memory store: the lease and the repo's checks keep the invariants.

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <thread>
#include <vector>

#include "test_util.h"

namespace converge::testing {
namespace {

// 8 threads submit kActions actions over 50 dimensions under `rule`
// (skip_when_exceed, count 3, one window for the whole run), at once; then
// the invariants are checked.
void SubmitConcurrently(const ConvergeConfig& rule, const int kActions) {
  constexpr int kThreads = 8;
  constexpr int kDimensions = 50;
  const int64_t kCount = rule.count;
  Env env;
  env.clock.Set(T(100));

  std::atomic<int> next{1};
  std::atomic<int> errors{0};
  std::vector<Decision> decisions(kActions + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int id = next++; id <= kActions; id = next++) {
        Action a =
            Act(id, id * 0.001, "dim" + std::to_string(id % kDimensions));
        absl::StatusOr<Decision> d = env.manager->Submit(a, rule);
        if (!d.ok()) {
          ++errors;
          continue;
        }
        decisions[id] = *d;
      }
    });
  }
  for (auto& t : threads) t.join();
  REQUIRE(errors == 0);

  // At most one open instance per dimension (here exactly one: the window
  // covers the whole run), each with exactly one primary relation.
  std::vector<ConvergeInstance> open = env.stores.repo->ListOpen(0).value();
  CHECK(open.size() == kDimensions);
  std::map<std::string, int> per_dimension;
  std::map<int64_t, int> relations_of_action;
  for (const ConvergeInstance& inst : open) {
    ++per_dimension[inst.dimension];
    int primaries = 0;
    const std::vector<ConvergeRelation> relations =
        env.stores.repo->Relations(inst.id).value();
    for (const ConvergeRelation& rel : relations) {
      primaries += rel.is_primary ? 1 : 0;
      ++relations_of_action[rel.related_id];
    }
    CHECK(primaries == 1);
    // The threshold is never exceeded: exactly `count` executed members.
    CHECK(env.stores.repo->CountExecuted(inst.id).value() == kCount);
  }
  for (const auto& [dimension, n] : per_dimension) CHECK(n == 1);
  // No instance was ever created twice for a dimension: ids are dense.
  CHECK(env.stores.repo->GetInstance(kDimensions + 1).status().code() ==
        absl::StatusCode::kNotFound);

  // Every action has exactly one decision and at most one relation; a
  // redelivery returns the same decision.
  std::map<std::string, int> executes_per_dimension;
  for (int id = 1; id <= kActions; ++id) {
    std::optional<ActionRecord> rec = env.stores.repo->GetAction(id).value();
    REQUIRE(rec.has_value());
    CHECK(rec->decision.outcome == decisions[id].outcome);
    CHECK(relations_of_action[id] <= 1);
    if (rec->decision.outcome == Outcome::kExecute) {
      ++executes_per_dimension["dim" + std::to_string(id % kDimensions)];
    }
  }
  for (const auto& [dimension, n] : executes_per_dimension) {
    INFO(dimension);
    CHECK(n == kCount);
  }
  Decision again =
      env.manager->Submit(Act(77, 77 * 0.001, "dim27"), rule).value();
  CHECK(again.replayed);
  CHECK(again.outcome == decisions[77].outcome);
}

TEST_CASE("8 threads, 10,000 actions, 50 dimensions: invariants hold",
          "[concurrency]") {
  SubmitConcurrently(Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600), 10000);
}

// Every dimension's actions also write and read the window key of their
// business (the same for all): the slow paths of all dimensions meet on
// one key (on MySQL, a row lock held to a Submit's commit).
TEST_CASE(
    "8 threads, 4,000 actions, 50 dimensions sharing a window key: "
    "invariants hold",
    "[concurrency]") {
  ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  rule.condition.push_back(Condition{"bk_biz_id", {Value("self")}});
  SubmitConcurrently(rule, 4000);
}

}  // namespace
}  // namespace converge::testing
