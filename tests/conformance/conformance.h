// Shared fixture and builders of the conformance suite: every case is
// written once against the store interfaces (converge/store/*.h) and runs
// against each store through the harness of tests/support/test_stores.h.
//
// The virtual clock starts at 1000 s and drives lease, key and queue expiry;
// times passed to the repo and the queue are the callers'.

#ifndef CONVERGE_TESTS_CONFORMANCE_CONFORMANCE_H_
#define CONVERGE_TESTS_CONFORMANCE_CONFORMANCE_H_

#include <algorithm>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/model.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"
#include "converge/types.h"
#include "support/test_stores.h"

namespace converge::conformance {

inline absl::Time At(double seconds) {
  return absl::UnixEpoch() + absl::Seconds(seconds);
}

// A fresh set of stores of the store under test, on a virtual clock.
struct StoreSet {
  StoreSet() : clock(At(1000)) {
    absl::StatusOr<testing::TestStores> made = testing::MakeTestStores(&clock);
    INFO(made.status().ToString());
    REQUIRE(made.ok());
    stores = std::move(*made);
  }
  LockStore& lock() { return *stores.lock; }
  WindowStore& window() { return *stores.window; }
  InstanceRepo& repo() { return *stores.repo; }
  QueueStore& queue() { return *stores.queue; }

  VirtualClock clock;
  testing::TestStores stores;
};

using Members = std::vector<std::string>;

inline std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// A refusal of bad input as store/checks.h words it, the same in every
// store: kInvalidArgument, "<store>: ..." ending with `words`.
inline void CheckRefusal(const absl::Status& st, std::string_view words) {
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  const std::string message(st.message());
  const size_t colon = message.find(": ");
  REQUIRE(colon != std::string::npos);
  const std::string store = message.substr(0, colon);
  CHECK_FALSE(store.empty());
  CHECK(store.find(' ') == std::string::npos);  // a name, not a phrase
  CHECK(message.ends_with(words));
}

// ---- window ----

inline WindowEntry Entry(std::string key, std::string member, double at) {
  return WindowEntry{std::move(key), std::move(member), At(at)};
}

// Reads `groups` over [start, end], each group sorted.
inline std::vector<std::vector<std::string>> Read(
    StoreSet& s, std::vector<std::vector<std::string>> groups,
    absl::Time start = absl::InfinitePast(),
    absl::Time end = absl::InfiniteFuture()) {
  WindowRequest req;
  req.read_groups = std::move(groups);
  req.start = start;
  req.end = end;
  absl::StatusOr<WindowResult> r = s.window().Apply(req);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->lease_acquired);
  REQUIRE(r->groups.size() == req.read_groups.size());
  for (auto& g : r->groups) g = Sorted(std::move(g));
  return r->groups;
}

inline void Add(StoreSet& s, std::vector<WindowEntry> add,
                absl::Duration key_ttl = absl::ZeroDuration(),
                absl::Time trim_before = absl::InfinitePast()) {
  WindowRequest req;
  req.add = std::move(add);
  req.key_ttl = key_ttl;
  req.trim_before = trim_before;
  absl::StatusOr<WindowResult> r = s.window().Apply(req);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  CHECK(r->lease_acquired);
  CHECK(r->groups.empty());
}

// ---- repo ----

inline ActionRecord Rec(int64_t id, Outcome outcome = Outcome::kExecute,
                        double at = 100) {
  ActionRecord r;
  r.id = id;
  r.create_time = At(at);
  r.strategy_id = 10;
  r.execute_timeout = 600;
  r.status = StatusForOutcome(outcome);
  r.status_time = At(at);
  r.decision.action_id = id;
  r.decision.outcome = outcome;
  r.decision.decided_at = At(at);
  r.decision.reason = "reason " + std::to_string(id);
  return r;
}

inline ConvergeInstance Inst(std::string dimension,
                             ConvergeType type = ConvergeType::kAction) {
  ConvergeInstance i;
  i.converge_type = type;
  i.converge_func = ConvergeFunction::kSkipWhenExceed;
  i.bk_biz_id = 2;
  i.dimension = std::move(dimension);
  i.description = "desc";
  i.content = "{\"k\": 1}";
  i.create_time = At(100);
  i.window_seconds = 300;
  return i;
}

inline CreateRequest ActionCreate(std::string dimension, int64_t creator,
                                  std::vector<int64_t> candidates = {}) {
  CreateRequest req;
  req.instance = Inst(std::move(dimension));
  req.primary.related_id = creator;
  req.primary.related_type = ConvergeType::kAction;
  req.primary.is_primary = true;
  req.primary.converge_status = ConvergeStatus::kExecuted;
  req.primary.alerts = {"alert-" + std::to_string(creator)};
  req.creator = Rec(creator);
  req.attach_candidates = std::move(candidates);
  return req;
}

// A second-level create whose primary member is first-level instance
// `primary_instance`.
inline CreateRequest ConvergeCreate(std::string dimension,
                                    int64_t primary_instance,
                                    std::vector<int64_t> candidates = {}) {
  CreateRequest req;
  req.instance = Inst(std::move(dimension), ConvergeType::kConverge);
  req.instance.converge_func = ConvergeFunction::kCollectAlarm;
  req.primary.related_id = primary_instance;
  req.primary.related_type = ConvergeType::kConverge;
  req.primary.is_primary = true;
  req.primary.converge_status = ConvergeStatus::kExecuted;
  req.attach_candidates = std::move(candidates);
  return req;
}

inline ConvergeRelation JoinRel(
    int64_t converge_id, int64_t action_id,
    ConvergeStatus status = ConvergeStatus::kSkipped) {
  ConvergeRelation r;
  r.converge_id = converge_id;
  r.related_id = action_id;
  r.related_type = ConvergeType::kAction;
  r.is_primary = false;
  r.converge_status = status;
  r.alerts = {"alert-" + std::to_string(action_id)};
  return r;
}

inline ConvergeRelation LinkRel(int64_t converge_id, int64_t instance_id) {
  ConvergeRelation r;
  r.converge_id = converge_id;
  r.related_id = instance_id;
  r.related_type = ConvergeType::kConverge;
  r.is_primary = false;
  r.converge_status = ConvergeStatus::kSkipped;
  return r;
}

inline std::vector<int64_t> Ids(const std::vector<ConvergeInstance>& v) {
  std::vector<int64_t> out;
  for (const auto& i : v) out.push_back(i.id);
  return out;
}

inline std::vector<int64_t> MemberIds(const std::vector<MemberStatus>& v) {
  std::vector<int64_t> out;
  for (const auto& m : v) out.push_back(m.action_id);
  return out;
}

inline std::vector<int64_t> RelatedIds(const std::vector<ConvergeRelation>& v) {
  std::vector<int64_t> out;
  for (const auto& r : v) out.push_back(r.related_id);
  return out;
}

// ---- queue ----

inline Task MakeTask(std::string id, double due, std::string kind = "summary") {
  Task t;
  t.id = std::move(id);
  t.kind = std::move(kind);
  t.subject_id = 7;
  t.payload = "{\"p\": 1}";
  t.due = At(due);
  return t;
}

inline std::optional<Delivery> Pop(StoreSet& s, double now,
                                   double visibility = 30,
                                   std::string_view queue = "q") {
  absl::StatusOr<std::optional<Delivery>> d =
      s.queue().Dequeue(queue, At(now), absl::Seconds(visibility));
  INFO(d.status().ToString());
  REQUIRE(d.ok());
  return *d;
}

inline std::vector<std::string> TaskIds(const std::vector<Task>& v) {
  std::vector<std::string> out;
  for (const auto& t : v) out.push_back(t.id);
  return out;
}

}  // namespace converge::conformance

#endif  // CONVERGE_TESTS_CONFORMANCE_CONFORMANCE_H_
