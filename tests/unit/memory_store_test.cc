// Contract tests for the memory store: every sentence of the store interfaces
// (converge/store/*.h), run against converge::memory::NewMemoryStores with a
// virtual clock driving lease expiry, key expiry and queue visibility.

#include "converge/memory/memory_store.h"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/model.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge {
namespace {

absl::Time At(double seconds) {
  return absl::UnixEpoch() + absl::Seconds(seconds);
}

struct Stores {
  Stores() : clock(At(1000)) {
    memory::MemoryOptions options;
    options.clock = &clock;
    absl::StatusOr<memory::MemoryStores> s = memory::NewMemoryStores(options);
    REQUIRE(s.ok());
    stores = std::move(*s);
  }
  LockStore& lock() { return *stores.lock; }
  WindowStore& window() { return *stores.window; }
  InstanceRepo& repo() { return *stores.repo; }
  QueueStore& queue() { return *stores.queue; }

  VirtualClock clock;
  memory::MemoryStores stores;
};

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// ===========================================================================
// LockStore

TEST_CASE("LockStore: a free lease is taken, a held one is refused",
          "[memory]") {
  Stores s;
  CHECK(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  // Another key is independent.
  CHECK(s.lock().TryAcquire("L2", "b", absl::Seconds(10)).value());
}

TEST_CASE("LockStore: an expired lease is taken over by another token",
          "[memory]") {
  Stores s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(9));
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(2));  // 11 s after: expired
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  // The old owner lost it: it can neither release nor extend it.
  CHECK_FALSE(s.lock().Release("L", "a").value());
  CHECK_FALSE(s.lock().Extend("L", "a", absl::Seconds(10)).value());
  // And the new owner still holds it.
  CHECK_FALSE(s.lock().TryAcquire("L", "c", absl::Seconds(10)).value());
  CHECK(s.lock().Release("L", "b").value());
}

TEST_CASE("LockStore: re-acquire by the same token extends the lease",
          "[memory]") {
  Stores s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(8));
  CHECK(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  // Expiry is now 18 s after the start: at 15 s it is still held.
  s.clock.Advance(absl::Seconds(7));
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(4));  // 19 s: expired
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
}

TEST_CASE("LockStore: Release by the owner frees the lease", "[memory]") {
  Stores s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK(s.lock().Release("L", "a").value());
  // Released: a second release returns false, another token can take it.
  CHECK_FALSE(s.lock().Release("L", "a").value());
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
}

TEST_CASE("LockStore: Release of a free lease returns false", "[memory]") {
  Stores s;
  CHECK_FALSE(s.lock().Release("never", "a").value());
}

TEST_CASE("LockStore: Release by a non-owner returns false and keeps the lease",
          "[memory]") {
  Stores s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().Release("L", "b").value());
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  CHECK(s.lock().Release("L", "a").value());
}

TEST_CASE("LockStore: the owner releases its own expired lease", "[memory]") {
  // "Releases the lease if token holds it (expired or not yet)."
  Stores s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(30));
  CHECK(s.lock().Release("L", "a").value());
}

TEST_CASE("LockStore: Extend pushes the expiry of a held lease", "[memory]") {
  Stores s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(5));
  CHECK(s.lock().Extend("L", "a", absl::Seconds(20)).value());
  s.clock.Advance(absl::Seconds(19));  // 24 s after the start; expiry at 25 s
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(2));
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
}

TEST_CASE(
    "LockStore: Extend by a non-owner, on a free key or after expiry "
    "returns false",
    "[memory]") {
  Stores s;
  CHECK_FALSE(s.lock().Extend("free", "a", absl::Seconds(10)).value());
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().Extend("L", "b", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(11));
  CHECK_FALSE(s.lock().Extend("L", "a", absl::Seconds(10)).value());
  // Extend after expiry did not revive it.
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
}

TEST_CASE("LockStore: empty key, empty token or ttl <= 0 is kInvalidArgument",
          "[memory]") {
  Stores s;
  auto code = [](const absl::StatusOr<bool>& r) { return r.status().code(); };
  CHECK(code(s.lock().TryAcquire("", "a", absl::Seconds(1))) ==
        absl::StatusCode::kInvalidArgument);
  CHECK(code(s.lock().TryAcquire("L", "", absl::Seconds(1))) ==
        absl::StatusCode::kInvalidArgument);
  CHECK(code(s.lock().TryAcquire("L", "a", absl::ZeroDuration())) ==
        absl::StatusCode::kInvalidArgument);
  CHECK(code(s.lock().TryAcquire("L", "a", -absl::Seconds(1))) ==
        absl::StatusCode::kInvalidArgument);
  // Nothing was taken by the refused calls.
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(1)).value());
}

TEST_CASE("LockStore: 8 threads hammering one key are mutually excluded",
          "[memory]") {
  Stores s;  // the virtual clock never moves: leases never expire
  constexpr int kThreads = 8;
  constexpr int kIterations = 2000;
  std::atomic<int> inside{0};
  std::atomic<int> violations{0};
  std::atomic<int> acquisitions{0};
  std::atomic<int> errors{0};
  std::atomic<int> bad_releases{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string token = "worker-" + std::to_string(t);
      for (int i = 0; i < kIterations; ++i) {
        absl::StatusOr<bool> got =
            s.lock().TryAcquire("hot", token, absl::Minutes(1));
        if (!got.ok()) {
          ++errors;
          continue;
        }
        if (!*got) continue;
        ++acquisitions;
        if (inside.fetch_add(1) != 0) ++violations;
        std::this_thread::yield();
        inside.fetch_sub(1);
        absl::StatusOr<bool> released = s.lock().Release("hot", token);
        if (!released.ok() || !*released) ++bad_releases;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(errors.load() == 0);
  CHECK(violations.load() == 0);
  CHECK(bad_releases.load() == 0);
  CHECK(acquisitions.load() > 0);
  // Every holder released: the lease is free.
  CHECK(s.lock().TryAcquire("hot", "after", absl::Seconds(1)).value());
}

// ===========================================================================
// WindowStore

WindowEntry Entry(std::string key, std::string member, double at) {
  return WindowEntry{std::move(key), std::move(member), At(at)};
}

// Reads `groups` over [start, end].
std::vector<std::vector<std::string>> Read(
    Stores& s, std::vector<std::vector<std::string>> groups,
    absl::Time start = absl::InfinitePast(),
    absl::Time end = absl::InfiniteFuture()) {
  WindowRequest req;
  req.read_groups = std::move(groups);
  req.start = start;
  req.end = end;
  absl::StatusOr<WindowResult> r = s.window().Apply(req);
  REQUIRE(r.ok());
  REQUIRE(r->lease_acquired);
  REQUIRE(r->groups.size() == req.read_groups.size());
  for (auto& g : r->groups) g = Sorted(std::move(g));
  return r->groups;
}

void Add(Stores& s, std::vector<WindowEntry> add,
         absl::Duration key_ttl = absl::ZeroDuration(),
         absl::Time trim_before = absl::InfinitePast()) {
  WindowRequest req;
  req.add = std::move(add);
  req.key_ttl = key_ttl;
  req.trim_before = trim_before;
  absl::StatusOr<WindowResult> r = s.window().Apply(req);
  REQUIRE(r.ok());
  CHECK(r->lease_acquired);
  CHECK(r->groups.empty());
}

using Members = std::vector<std::string>;

TEST_CASE("WindowStore: Apply adds members and reads groups in one call",
          "[memory]") {
  Stores s;
  WindowRequest req;
  req.add = {Entry("k1", "action_1", 100), Entry("k1", "action_2", 200),
             Entry("k2", "action_3", 150)};
  req.read_groups = {{"k1"}, {"k2"}, {"k1", "k2"}, {"missing"}};
  absl::StatusOr<WindowResult> r = s.window().Apply(req);
  REQUIRE(r.ok());
  CHECK(r->lease_acquired);  // no lease requested
  REQUIRE(r->groups.size() == 4);
  CHECK(Sorted(r->groups[0]) == Members{"action_1", "action_2"});
  CHECK(Sorted(r->groups[1]) == Members{"action_3"});
  CHECK(Sorted(r->groups[2]) == Members{"action_1", "action_2", "action_3"});
  CHECK(r->groups[3].empty());
  CHECK(s.window().Size("k1").value() == 2);
  CHECK(s.window().Size("k2").value() == 1);
  CHECK(s.window().Size("missing").value() == 0);
}

TEST_CASE("WindowStore: a group is the deduplicated union of its keys",
          "[memory]") {
  Stores s;
  Add(s, {Entry("k1", "action_1", 100), Entry("k2", "action_1", 100),
          Entry("k2", "action_2", 100), Entry("k3", "action_1", 100)});
  auto groups = Read(s, {{"k1", "k2", "k3"}, {"k1", "k1"}});
  CHECK(groups[0] == Members{"action_1", "action_2"});
  CHECK(groups[1] == Members{"action_1"});
}

TEST_CASE("WindowStore: read bounds are inclusive at both ends", "[memory]") {
  Stores s;
  Add(s, {Entry("k", "action_1", 100), Entry("k", "action_2", 150),
          Entry("k", "action_3", 200)});
  CHECK(Read(s, {{"k"}}, At(100), At(200))[0] ==
        Members{"action_1", "action_2", "action_3"});
  CHECK(Read(s, {{"k"}}, At(100) + absl::Nanoseconds(1),
             At(200) - absl::Nanoseconds(1))[0] == Members{"action_2"});
  CHECK(Read(s, {{"k"}}, At(150), At(150))[0] == Members{"action_2"});
  CHECK(Read(s, {{"k"}}, At(201), At(300))[0].empty());
  CHECK(Read(s, {{"k"}}, At(200), At(100))[0].empty());  // start > end
  // Default bounds read everything.
  CHECK(Read(s, {{"k"}})[0].size() == 3);
}

TEST_CASE("WindowStore: re-adding a member with a new score moves it",
          "[memory]") {
  Stores s;
  Add(s, {Entry("k", "action_1", 100)});
  Add(s, {Entry("k", "action_1", 500)});
  CHECK(s.window().Size("k").value() == 1);
  CHECK(Read(s, {{"k"}}, At(0), At(200))[0].empty());
  CHECK(Read(s, {{"k"}}, At(400), At(600))[0] == Members{"action_1"});
  // Also within one Apply: the later entry wins.
  Add(s, {Entry("k", "converge_2", 10), Entry("k", "converge_2", 20)});
  CHECK(Read(s, {{"k"}}, At(20), At(20))[0] == Members{"converge_2"});
  CHECK(Read(s, {{"k"}}, At(10), At(10))[0].empty());
}

TEST_CASE("WindowStore: trim_before drops members scored before it",
          "[memory]") {
  Stores s;
  Add(s, {Entry("k", "action_1", 100), Entry("k", "action_2", 200),
          Entry("other", "action_9", 100)});
  Add(s, {Entry("k", "action_3", 300)}, absl::ZeroDuration(), At(200));
  // action_1 (100 < 200) is gone; action_2 (200, not before 200) stays.
  CHECK(Read(s, {{"k"}})[0] == Members{"action_2", "action_3"});
  CHECK(s.window().Size("k").value() == 2);
  // A key not written by the call is not trimmed.
  CHECK(Read(s, {{"other"}})[0] == Members{"action_9"});
}

TEST_CASE("WindowStore: keys expire key_ttl after their last write",
          "[memory]") {
  Stores s;
  Add(s, {Entry("k", "action_1", 1000), Entry("k2", "action_2", 1000)},
      absl::Seconds(60));
  s.clock.Advance(absl::Seconds(50));
  // Only k is written again: its expiry slides, k2's does not.
  Add(s, {Entry("k", "action_3", 1050)}, absl::Seconds(60));
  s.clock.Advance(absl::Seconds(9));  // 59 s after the first write
  CHECK(s.window().Size("k2").value() == 1);
  s.clock.Advance(absl::Seconds(2));  // 61 s
  CHECK(s.window().Size("k2").value() == 0);
  CHECK(Read(s, {{"k2"}})[0].empty());
  CHECK(s.window().Size("k").value() == 2);
  s.clock.Advance(absl::Seconds(50));  // 111 s: k expired (written at 50 s)
  CHECK(s.window().Size("k").value() == 0);
  CHECK(Read(s, {{"k"}})[0].empty());
  // A member added to an expired key starts a fresh key.
  Add(s, {Entry("k", "action_4", 1111)}, absl::Seconds(60));
  CHECK(Read(s, {{"k"}})[0] == Members{"action_4"});
}

TEST_CASE("WindowStore: key_ttl 0 means keys never expire", "[memory]") {
  Stores s;
  Add(s, {Entry("k", "action_1", 1000)});
  s.clock.Advance(absl::Hours(24 * 365));
  CHECK(s.window().Size("k").value() == 1);
}

TEST_CASE(
    "WindowStore: a lease held by another token skips the reads but "
    "applies the adds",
    "[memory]") {
  Stores s;
  REQUIRE(s.lock().TryAcquire("D", "other", absl::Seconds(30)).value());
  WindowRequest req;
  req.add = {Entry("k", "action_1", 1000)};
  req.lease = LeaseRequest{"D", "me", absl::Seconds(30)};
  req.read_groups = {{"k"}};
  absl::StatusOr<WindowResult> r = s.window().Apply(req);
  REQUIRE(r.ok());
  CHECK_FALSE(r->lease_acquired);
  CHECK(r->groups.empty());
  CHECK(s.window().Size("k").value() == 1);
  // The other owner's lease is intact.
  CHECK_FALSE(s.lock().Release("D", "me").value());

  // Once it is released, the same request takes the lease and reads.
  REQUIRE(s.lock().Release("D", "other").value());
  req.add.clear();
  r = s.window().Apply(req);
  REQUIRE(r.ok());
  CHECK(r->lease_acquired);
  REQUIRE(r->groups.size() == 1);
  CHECK(r->groups[0] == Members{"action_1"});
}

TEST_CASE("WindowStore: a lease taken by Apply is the LockStore's lease",
          "[memory]") {
  Stores s;
  WindowRequest req;
  req.lease = LeaseRequest{"D", "me", absl::Seconds(30)};
  req.read_groups = {{"k"}};
  absl::StatusOr<WindowResult> r = s.window().Apply(req);
  REQUIRE(r.ok());
  CHECK(r->lease_acquired);
  REQUIRE(r->groups.size() == 1);
  CHECK(r->groups[0].empty());
  // Held against the LockStore, released through it.
  CHECK_FALSE(s.lock().TryAcquire("D", "other", absl::Seconds(30)).value());
  CHECK(s.lock().Extend("D", "me", absl::Seconds(30)).value());
  CHECK(s.lock().Release("D", "me").value());
  CHECK(s.lock().TryAcquire("D", "other", absl::Seconds(30)).value());
}

TEST_CASE("WindowStore: the Apply lease has TryAcquire's semantics",
          "[memory]") {
  Stores s;
  WindowRequest req;
  req.lease = LeaseRequest{"D", "me", absl::Seconds(10)};
  REQUIRE(s.window().Apply(req).value().lease_acquired);
  // Same token: re-acquired and extended to now + ttl.
  s.clock.Advance(absl::Seconds(8));
  CHECK(s.window().Apply(req).value().lease_acquired);
  s.clock.Advance(absl::Seconds(8));  // 16 s: still held (expiry at 18 s)
  WindowRequest other;
  other.lease = LeaseRequest{"D", "other", absl::Seconds(10)};
  CHECK_FALSE(s.window().Apply(other).value().lease_acquired);
  // Expired: taken over.
  s.clock.Advance(absl::Seconds(3));
  CHECK(s.window().Apply(other).value().lease_acquired);
  CHECK_FALSE(s.lock().Release("D", "me").value());
  CHECK(s.lock().Release("D", "other").value());
}

TEST_CASE("WindowStore: invalid requests are kInvalidArgument", "[memory]") {
  Stores s;
  auto code = [&](const WindowRequest& req) {
    return s.window().Apply(req).status().code();
  };
  WindowRequest empty_key;
  empty_key.add = {Entry("", "action_1", 1)};
  CHECK(code(empty_key) == absl::StatusCode::kInvalidArgument);
  WindowRequest empty_member;
  empty_member.add = {Entry("k", "", 1)};
  CHECK(code(empty_member) == absl::StatusCode::kInvalidArgument);
  WindowRequest empty_read_key;
  empty_read_key.read_groups = {{"k", ""}};
  CHECK(code(empty_read_key) == absl::StatusCode::kInvalidArgument);
  WindowRequest lease_key;
  lease_key.lease = LeaseRequest{"", "t", absl::Seconds(1)};
  CHECK(code(lease_key) == absl::StatusCode::kInvalidArgument);
  WindowRequest lease_token;
  lease_token.lease = LeaseRequest{"D", "", absl::Seconds(1)};
  CHECK(code(lease_token) == absl::StatusCode::kInvalidArgument);
  WindowRequest lease_ttl;
  lease_ttl.lease = LeaseRequest{"D", "t", absl::ZeroDuration()};
  CHECK(code(lease_ttl) == absl::StatusCode::kInvalidArgument);
  lease_ttl.lease->ttl = -absl::Seconds(5);
  CHECK(code(lease_ttl) == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("WindowStore: arbitrary members round-trip exactly", "[memory]") {
  Stores s;
  const Members members = {
      "action_1",
      "action_007",  // non-canonical: not the same member as action_7
      "action_7",
      "action_0",
      "action_",
      "converge_",
      "converge_0",
      "converge_12",
      "action_-1",
      "action_+5",
      "action_ 5",
      "action_5 ",
      "action_1x",
      "action_4611686018427387903",   // 2^62 - 1
      "action_4611686018427387904",   // 2^62
      "action_18446744073709551615",  // 2^64 - 1
      "action_18446744073709551616",  // 2^64
      "converge_99999999999999999999",
      "Action_1",
      "foo",
      "a|b#c.d e",
      "\xe5\x91\x8a\xe8\xad\xa6",  // UTF-8
      std::string("nul\0byte", 8),
  };
  std::vector<WindowEntry> add;
  for (size_t i = 0; i < members.size(); ++i) {
    add.push_back(Entry("k", members[i], 100 + static_cast<double>(i)));
  }
  Add(s, add);
  CHECK(s.window().Size("k").value() == static_cast<int64_t>(members.size()));
  CHECK(Read(s, {{"k"}})[0] == Sorted(members));
  // Each member sits at its own score.
  for (size_t i = 0; i < members.size(); ++i) {
    INFO("member " << members[i]);
    const absl::Time at = At(100 + static_cast<double>(i));
    CHECK(Read(s, {{"k"}}, at, at)[0] == Members{members[i]});
  }
  // And is removable by its exact spelling.
  CHECK(s.window().Remove("k", "action_007").value());
  CHECK_FALSE(s.window().Remove("k", "action_007").value());
  CHECK(s.window().Remove("k", "foo").value());
  CHECK(s.window().Size("k").value() ==
        static_cast<int64_t>(members.size()) - 2);
  Members rest = Read(s, {{"k"}})[0];
  CHECK(std::find(rest.begin(), rest.end(), "action_7") != rest.end());
  CHECK(std::find(rest.begin(), rest.end(), "action_007") == rest.end());
}

TEST_CASE("WindowStore: Remove and Size", "[memory]") {
  Stores s;
  Add(s, {Entry("k", "action_1", 100), Entry("k", "action_2", 100)});
  CHECK(s.window().Remove("k", "action_1").value());
  CHECK_FALSE(s.window().Remove("k", "action_1").value());  // not there now
  CHECK_FALSE(s.window().Remove("k", "action_3").value());
  CHECK_FALSE(s.window().Remove("nokey", "action_2").value());
  CHECK_FALSE(s.window().Remove("k", "never-interned").value());
  CHECK(s.window().Size("k").value() == 1);
  CHECK(s.window().Remove("k", "action_2").value());
  CHECK(s.window().Size("k").value() == 0);
  CHECK(Read(s, {{"k"}})[0].empty());
  // Remove on an expired key: it is gone.
  Add(s, {Entry("e", "action_1", 100)}, absl::Seconds(5));
  s.clock.Advance(absl::Seconds(6));
  CHECK_FALSE(s.window().Remove("e", "action_1").value());
}

// ===========================================================================
// InstanceRepo

ActionRecord Rec(int64_t id, Outcome outcome = Outcome::kExecute,
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

ConvergeInstance Inst(std::string dimension,
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

CreateRequest ActionCreate(std::string dimension, int64_t creator,
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

ConvergeRelation JoinRel(int64_t converge_id, int64_t action_id,
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

std::vector<int64_t> Ids(const std::vector<ConvergeInstance>& v) {
  std::vector<int64_t> out;
  for (const auto& i : v) out.push_back(i.id);
  return out;
}

std::vector<int64_t> MemberIds(const std::vector<MemberStatus>& v) {
  std::vector<int64_t> out;
  for (const auto& m : v) out.push_back(m.action_id);
  return out;
}

TEST_CASE("InstanceRepo: GetAction of an undecided action is nullopt",
          "[memory]") {
  Stores s;
  absl::StatusOr<std::optional<ActionRecord>> r = s.repo().GetAction(1);
  REQUIRE(r.ok());
  CHECK_FALSE(r->has_value());
}

TEST_CASE(
    "InstanceRepo: RecordDecision stores once, then returns the first "
    "record",
    "[memory]") {
  Stores s;
  absl::StatusOr<RecordResult> first = s.repo().RecordDecision(Rec(5));
  REQUIRE(first.ok());
  CHECK(first->inserted);
  CHECK(first->record.id == 5);
  CHECK(first->record.decision.outcome == Outcome::kExecute);
  CHECK(first->record.decision.reason == "reason 5");

  ActionRecord other = Rec(5, Outcome::kSkip, 300);
  other.decision.reason = "second";
  absl::StatusOr<RecordResult> second = s.repo().RecordDecision(other);
  REQUIRE(second.ok());
  CHECK_FALSE(second->inserted);
  CHECK(second->record.decision.outcome == Outcome::kExecute);
  CHECK(second->record.decision.reason == "reason 5");
  CHECK(second->record.status == ActionStatus::kConverged);
  CHECK(second->record.create_time == At(100));

  std::optional<ActionRecord> stored = s.repo().GetAction(5).value();
  REQUIRE(stored.has_value());
  CHECK(stored->id == 5);
  CHECK(stored->create_time == At(100));
  CHECK(stored->strategy_id == 10);
  CHECK(stored->execute_timeout == 600);
  CHECK(stored->status == ActionStatus::kConverged);
  CHECK(stored->status_time == At(100));
  CHECK(stored->decision.action_id == 5);
  CHECK(stored->decision.outcome == Outcome::kExecute);
  CHECK_FALSE(stored->decision.converge_id.has_value());
  CHECK_FALSE(stored->decision.primary);
  CHECK(stored->decision.decided_at == At(100));
  CHECK(stored->decision.reason == "reason 5");
}

TEST_CASE(
    "InstanceRepo: Create assigns ids from 1 and stores the instance, "
    "primary relation and creator decision",
    "[memory]") {
  Stores s;
  absl::StatusOr<CreateResult> c1 = s.repo().Create(ActionCreate("D1", 11));
  REQUIRE(c1.ok());
  CHECK(c1->instance.id == 1);
  CHECK(c1->attached.empty());
  absl::StatusOr<CreateResult> c2 = s.repo().Create(ActionCreate("D2", 12));
  REQUIRE(c2.ok());
  CHECK(c2->instance.id == 2);

  ConvergeInstance got = s.repo().GetInstance(1).value();
  CHECK(got.id == 1);
  CHECK(got.dimension == "D1");
  CHECK(got.converge_type == ConvergeType::kAction);
  CHECK(got.converge_func == ConvergeFunction::kSkipWhenExceed);
  CHECK(got.bk_biz_id == 2);
  CHECK(got.description == "desc");
  CHECK(got.content == "{\"k\": 1}");
  CHECK(got.create_time == At(100));
  CHECK(got.is_open());
  CHECK(got.is_visible);
  CHECK(got.window_seconds == 300);

  std::optional<ConvergeInstance> open = s.repo().FindOpen("D1").value();
  REQUIRE(open.has_value());
  CHECK(open->id == 1);
  CHECK_FALSE(s.repo().FindOpen("D3").value().has_value());

  std::vector<ConvergeRelation> rels = s.repo().Relations(1).value();
  REQUIRE(rels.size() == 1);
  CHECK(rels[0].converge_id == 1);
  CHECK(rels[0].related_id == 11);
  CHECK(rels[0].related_type == ConvergeType::kAction);
  CHECK(rels[0].is_primary);
  CHECK(rels[0].converge_status == ConvergeStatus::kExecuted);
  CHECK(rels[0].alerts == std::vector<std::string>{"alert-11"});

  std::optional<ActionRecord> creator = s.repo().GetAction(11).value();
  REQUIRE(creator.has_value());
  CHECK(creator->decision.converge_id == std::optional<int64_t>(1));
  CHECK(creator->decision.outcome == Outcome::kExecute);
  CHECK(creator->decision.primary);
}

TEST_CASE("InstanceRepo: Create refuses an open dimension and writes nothing",
          "[memory]") {
  Stores s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(3)).ok());
  absl::StatusOr<CreateResult> dup = s.repo().Create(ActionCreate("D", 2, {3}));
  CHECK(dup.status().code() == absl::StatusCode::kAlreadyExists);
  // Nothing written: no decision for 2, 3 not attached, no relation.
  CHECK_FALSE(s.repo().GetAction(2).value().has_value());
  CHECK(s.repo().Relations(1).value().size() == 1);
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{2, 3}, ConvergeType::kAction)
            .value() == std::vector<int64_t>{2, 3});
  CHECK(Ids(s.repo().ListOpen(0).value()) == std::vector<int64_t>{1});
  // No id was consumed.
  CHECK(s.repo().Create(ActionCreate("E", 2)).value().instance.id == 2);
}

TEST_CASE("InstanceRepo: Create refuses a creator that already has a decision",
          "[memory]") {
  Stores s;
  REQUIRE(s.repo().RecordDecision(Rec(7, Outcome::kSkip)).ok());
  absl::StatusOr<CreateResult> r = s.repo().Create(ActionCreate("D", 7));
  CHECK(r.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK_FALSE(s.repo().FindOpen("D").value().has_value());
  CHECK(s.repo().ListOpen(0).value().empty());
  CHECK(s.repo().GetAction(7).value()->decision.outcome == Outcome::kSkip);
}

TEST_CASE(
    "InstanceRepo: Create attaches only executed candidates without a "
    "relation",
    "[memory]") {
  Stores s;
  // 4 is decided (execute) and already related to instance 1.
  REQUIRE(s.repo().Create(ActionCreate("D1", 1)).ok());
  REQUIRE(s.repo()
              .Join(Rec(4), JoinRel(1, 4, ConvergeStatus::kExecuted))
              .value()
              .inserted);
  // 2 and 8: execute, unrelated. 3: skip. 5: undecided. 6: sleep.
  // 7: approval.
  REQUIRE(s.repo().RecordDecision(Rec(8)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(2)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(3, Outcome::kSkip)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(6, Outcome::kSleep)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(7, Outcome::kApproval)).ok());

  absl::StatusOr<CreateResult> c =
      s.repo().Create(ActionCreate("D2", 9, {8, 2, 3, 4, 5, 6, 7, 9}));
  REQUIRE(c.ok());
  CHECK(c->instance.id == 2);
  CHECK(c->attached == std::vector<int64_t>{8, 2});

  std::vector<ConvergeRelation> rels = s.repo().Relations(2).value();
  REQUIRE(rels.size() == 3);
  CHECK(rels[0].related_id == 9);
  CHECK(rels[0].is_primary);
  for (size_t i = 1; i < rels.size(); ++i) {
    CHECK(rels[i].converge_id == 2);
    CHECK(rels[i].related_type == ConvergeType::kAction);
    CHECK_FALSE(rels[i].is_primary);
    CHECK(rels[i].converge_status == ConvergeStatus::kExecuted);
    CHECK(rels[i].alerts.empty());
  }
  CHECK(rels[1].related_id == 8);
  CHECK(rels[2].related_id == 2);
  // The others were left alone.
  CHECK(s.repo().Relations(1).value().size() == 2);
  CHECK_FALSE(s.repo().GetAction(5).value().has_value());
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8, 9},
                       ConvergeType::kAction)
            .value() == std::vector<int64_t>{3, 5, 6, 7});
  CHECK(s.repo().CountExecuted(2).value() == 3);
}

TEST_CASE(
    "InstanceRepo: End is compare-and-set and rewrites the dimension "
    "once",
    "[memory]") {
  Stores s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  absl::StatusOr<bool> ended = s.repo().End(1, At(1234.7));
  REQUIRE(ended.ok());
  CHECK(*ended);
  ConvergeInstance got = s.repo().GetInstance(1).value();
  CHECK_FALSE(got.is_open());
  CHECK(got.end_time == std::optional<absl::Time>(At(1234.7)));
  CHECK(got.dimension == "D fixed at 1234 #1");
  CHECK_FALSE(s.repo().FindOpen("D").value().has_value());
  CHECK(s.repo().ListOpen(0).value().empty());

  // Second End: false, nothing changes.
  ended = s.repo().End(1, At(5000));
  REQUIRE(ended.ok());
  CHECK_FALSE(*ended);
  got = s.repo().GetInstance(1).value();
  CHECK(got.dimension == "D fixed at 1234 #1");
  CHECK(got.end_time == std::optional<absl::Time>(At(1234.7)));

  // D is free for a new instance.
  absl::StatusOr<CreateResult> again = s.repo().Create(ActionCreate("D", 2));
  REQUIRE(again.ok());
  CHECK(again->instance.id == 2);
  CHECK(s.repo().FindOpen("D").value()->id == 2);
  CHECK(s.repo().End(2, At(1234)).value());
  CHECK(s.repo().GetInstance(2).value().dimension == "D fixed at 1234 #2");

  CHECK(s.repo().End(99, At(1)).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("InstanceRepo: GetInstance of an unknown id is kNotFound",
          "[memory]") {
  Stores s;
  CHECK(s.repo().GetInstance(1).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("InstanceRepo: Join stores the decision and the relation once",
          "[memory]") {
  Stores s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  ActionRecord rec = Rec(2, Outcome::kSkip);
  rec.decision.converge_id = 1;
  absl::StatusOr<RecordResult> j = s.repo().Join(rec, JoinRel(1, 2));
  REQUIRE(j.ok());
  CHECK(j->inserted);
  CHECK(j->record.id == 2);
  CHECK(j->record.decision.outcome == Outcome::kSkip);
  CHECK(j->record.decision.converge_id == std::optional<int64_t>(1));
  CHECK(j->record.status == ActionStatus::kSkipped);

  std::vector<ConvergeRelation> rels = s.repo().Relations(1).value();
  REQUIRE(rels.size() == 2);
  CHECK(rels[1].related_id == 2);
  CHECK(rels[1].converge_status == ConvergeStatus::kSkipped);
  CHECK_FALSE(rels[1].is_primary);
  CHECK(rels[1].alerts == std::vector<std::string>{"alert-2"});
  // A skipped member is not part of the executed set.
  CHECK(MemberIds(s.repo().ExecutedMembers(1).value()) ==
        std::vector<int64_t>{1});

  // A second Join writes nothing and returns the first record.
  ActionRecord again = Rec(2, Outcome::kExecute, 500);
  absl::StatusOr<RecordResult> j2 =
      s.repo().Join(again, JoinRel(1, 2, ConvergeStatus::kExecuted));
  REQUIRE(j2.ok());
  CHECK_FALSE(j2->inserted);
  CHECK(j2->record.decision.outcome == Outcome::kSkip);
  CHECK(j2->record.create_time == At(100));
  CHECK(s.repo().Relations(1).value().size() == 2);
  CHECK(s.repo().CountExecuted(1).value() == 1);

  // RecordDecision of a joined action also returns its record.
  absl::StatusOr<RecordResult> rd = s.repo().RecordDecision(Rec(2));
  REQUIRE(rd.ok());
  CHECK_FALSE(rd->inserted);
  CHECK(rd->record.decision.outcome == Outcome::kSkip);
}

TEST_CASE(
    "InstanceRepo: Join an ended instance is kFailedPrecondition, an "
    "unknown one kNotFound",
    "[memory]") {
  Stores s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  REQUIRE(s.repo().End(1, At(200)).value());
  absl::StatusOr<RecordResult> ended = s.repo().Join(Rec(2), JoinRel(1, 2));
  CHECK(ended.status().code() == absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<RecordResult> unknown = s.repo().Join(Rec(3), JoinRel(42, 3));
  CHECK(unknown.status().code() == absl::StatusCode::kNotFound);
  // Nothing was written.
  CHECK_FALSE(s.repo().GetAction(2).value().has_value());
  CHECK_FALSE(s.repo().GetAction(3).value().has_value());
  CHECK(s.repo().Relations(1).value().size() == 1);
  CHECK(s.repo().Relations(42).value().empty());
}

TEST_CASE(
    "InstanceRepo: Join of an action related without a decision is "
    "kAlreadyExists",
    "[memory]") {
  // The only way to make such a relation through the interface is an
  // action-type Create without a creator record (upstream data can carry
  // such relations).
  Stores s;
  CreateRequest req = ActionCreate("D", 50);
  req.creator.reset();
  absl::StatusOr<CreateResult> c = s.repo().Create(req);
  if (!c.ok()) {
    // Refusing the malformed request is also acceptable.
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  // 50 has a relation of type action (its primary) ...
  CHECK(s.repo().Relations(c->instance.id).value().size() == 1);
  // ... so it is not unrelated ...
  // (Pins a fixed memory-store bug: relatedness used to be tracked on the
  // decision row only, so a relation without a decision was invisible.)
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{50}, ConvergeType::kAction)
            .value()
            .empty());
  // ... and a Join of it must not add a second relation.
  absl::StatusOr<RecordResult> j =
      s.repo().Join(Rec(50), JoinRel(c->instance.id, 50));
  CHECK(j.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(s.repo().Relations(c->instance.id).value().size() == 1);
  // It still has no decision.
  CHECK_FALSE(s.repo().GetAction(50).value().has_value());
  CHECK(s.repo().SetActionStatus(50, ActionStatus::kSuccess, At(1)).code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE(
    "InstanceRepo: ExecutedMembers carry the reported status, ordered "
    "by id",
    "[memory]") {
  Stores s;
  REQUIRE(s.repo().RecordDecision(Rec(3)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("D", 5, {3, 1})).ok());
  REQUIRE(s.repo().Join(Rec(4), JoinRel(1, 4, ConvergeStatus::kExecuted)).ok());
  REQUIRE(s.repo().Join(Rec(2, Outcome::kSkip), JoinRel(1, 2)).ok());

  REQUIRE(s.repo().SetActionStatus(5, ActionStatus::kSuccess, At(500)).ok());
  REQUIRE(s.repo().SetActionStatus(3, ActionStatus::kFailure, At(600)).ok());

  std::vector<MemberStatus> m = s.repo().ExecutedMembers(1).value();
  // Executed and related_type action: 5 (primary), 3 and 1 (attached), 4
  // (joined as executed); 2 joined as skipped. "Ordered by id": the action
  // ids, the only id a MemberStatus carries.
  // (Pins a fixed memory-store bug: members used to come in relation order,
  // {5, 3, 1, 4}.)
  CHECK(MemberIds(m) == std::vector<int64_t>{1, 3, 4, 5});
  REQUIRE(m.size() == 4);
  auto member = [&](int64_t id) {
    for (const MemberStatus& ms : m) {
      if (ms.action_id == id) return ms;
    }
    FAIL("no member " << id);
    return MemberStatus{};
  };
  CHECK(member(1).status == ActionStatus::kConverged);
  CHECK(member(1).status_time == At(100));
  CHECK(member(3).status == ActionStatus::kFailure);
  CHECK(member(3).status_time == At(600));
  CHECK(member(4).status == ActionStatus::kConverged);
  CHECK(member(5).status == ActionStatus::kSuccess);
  CHECK(member(5).status_time == At(500));
  CHECK(s.repo().CountExecuted(1).value() == 4);

  CHECK(s.repo().ExecutedMembers(99).value().empty());
  CHECK(s.repo().CountExecuted(99).value() == 0);
}

TEST_CASE(
    "InstanceRepo: a converge-type instance has no executed set, attaches "
    "first-level instances only and hides them",
    "[memory]") {
  Stores s;
  REQUIRE(s.repo().Create(ActionCreate("F1", 1)).ok());  // instance 1
  REQUIRE(s.repo().Create(ActionCreate("F2", 2)).ok());  // instance 2
  REQUIRE(s.repo().RecordDecision(Rec(3)).ok());
  CreateRequest req;
  req.instance = Inst("S", ConvergeType::kConverge);
  req.instance.converge_func = ConvergeFunction::kCollectAlarm;
  req.primary.related_id = 1;
  req.primary.related_type = ConvergeType::kConverge;
  req.primary.is_primary = true;
  req.primary.converge_status = ConvergeStatus::kExecuted;
  // 3 is the new instance itself, 9 is unknown: neither is attached.
  req.attach_candidates = {2, 3, 9};
  absl::StatusOr<CreateResult> c = s.repo().Create(req);
  REQUIRE(c.ok());
  CHECK(c->instance.id == 3);
  CHECK(c->instance.converge_type == ConvergeType::kConverge);
  CHECK(c->attached == std::vector<int64_t>{2});
  const std::vector<ConvergeRelation> rels = s.repo().Relations(3).value();
  REQUIRE(rels.size() == 2);
  CHECK(rels[1].related_id == 2);
  CHECK(rels[1].converge_status == ConvergeStatus::kSkipped);
  CHECK_FALSE(rels[1].is_primary);
  CHECK_FALSE(s.repo().GetInstance(1).value().is_visible);
  CHECK_FALSE(s.repo().GetInstance(2).value().is_visible);
  CHECK(s.repo().GetInstance(3).value().is_visible);
  CHECK(s.repo().ExecutedMembers(3).value().empty());
  CHECK(s.repo().CountExecuted(3).value() == 0);
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{1, 2, 4}, ConvergeType::kConverge)
            .value() == std::vector<int64_t>{4});
  // Type matters: instance 1 as an action id is a different thing (action 1
  // is related, through instance 1's primary relation).
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{1, 2, 3}, ConvergeType::kAction)
            .value() == std::vector<int64_t>{3});
}

TEST_CASE("InstanceRepo: Unrelated keeps the order given", "[memory]") {
  Stores s;
  REQUIRE(s.repo().Create(ActionCreate("D", 4)).ok());
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{9, 4, 2, 7}, ConvergeType::kAction)
            .value() == std::vector<int64_t>{9, 2, 7});
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{}, ConvergeType::kAction)
            .value()
            .empty());
  // A decided but unrelated action is unrelated.
  REQUIRE(s.repo().RecordDecision(Rec(9)).ok());
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{9}, ConvergeType::kAction)
            .value() == std::vector<int64_t>{9});
}

TEST_CASE("InstanceRepo: SetActionStatus", "[memory]") {
  Stores s;
  CHECK(s.repo().SetActionStatus(1, ActionStatus::kSuccess, At(5)).code() ==
        absl::StatusCode::kNotFound);
  REQUIRE(s.repo().RecordDecision(Rec(1)).ok());
  REQUIRE(s.repo().SetActionStatus(1, ActionStatus::kRunning, At(200)).ok());
  std::optional<ActionRecord> r = s.repo().GetAction(1).value();
  REQUIRE(r.has_value());
  CHECK(r->status == ActionStatus::kRunning);
  CHECK(r->status_time == At(200));
  // The decision is untouched.
  CHECK(r->decision.outcome == Outcome::kExecute);
  CHECK(r->decision.decided_at == At(100));
}

TEST_CASE("InstanceRepo: UpdateDecision is compare-and-set on the outcome",
          "[memory]") {
  Stores s;
  Decision d;
  d.action_id = 1;
  d.outcome = Outcome::kExecute;
  d.decided_at = At(300);
  d.reason = "woke up";
  CHECK(s.repo().UpdateDecision(1, Outcome::kSleep, d).status().code() ==
        absl::StatusCode::kNotFound);

  REQUIRE(s.repo().RecordDecision(Rec(1, Outcome::kSleep)).ok());
  // Expected outcome does not match: false, nothing changes.
  absl::StatusOr<bool> r = s.repo().UpdateDecision(1, Outcome::kApproval, d);
  REQUIRE(r.ok());
  CHECK_FALSE(*r);
  CHECK(s.repo().GetAction(1).value()->decision.outcome == Outcome::kSleep);
  CHECK(s.repo().GetAction(1).value()->status == ActionStatus::kSleep);

  r = s.repo().UpdateDecision(1, Outcome::kSleep, d);
  REQUIRE(r.ok());
  CHECK(*r);
  std::optional<ActionRecord> got = s.repo().GetAction(1).value();
  REQUIRE(got.has_value());
  CHECK(got->decision.outcome == Outcome::kExecute);
  CHECK(got->decision.reason == "woke up");
  CHECK(got->decision.decided_at == At(300));
  CHECK(got->status == ActionStatus::kConverged);  // StatusForOutcome

  // The same compare-and-set again loses: the outcome changed.
  CHECK_FALSE(s.repo().UpdateDecision(1, Outcome::kSleep, d).value());

  Decision skip = d;
  skip.outcome = Outcome::kSkip;
  CHECK(s.repo().UpdateDecision(1, Outcome::kExecute, skip).value());
  CHECK(s.repo().GetAction(1).value()->status == ActionStatus::kSkipped);
}

TEST_CASE("InstanceRepo: SetVisible", "[memory]") {
  Stores s;
  CHECK(s.repo().SetVisible(1, false).code() == absl::StatusCode::kNotFound);
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  REQUIRE(s.repo().SetVisible(1, false).ok());
  CHECK_FALSE(s.repo().GetInstance(1).value().is_visible);
  CHECK_FALSE(s.repo().FindOpen("D").value()->is_visible);
  REQUIRE(s.repo().SetVisible(1, true).ok());
  CHECK(s.repo().GetInstance(1).value().is_visible);
  // Also on an ended instance.
  REQUIRE(s.repo().End(1, At(200)).value());
  CHECK(s.repo().SetVisible(1, false).ok());
  CHECK_FALSE(s.repo().GetInstance(1).value().is_visible);
}

TEST_CASE("InstanceRepo: ListOpen is ordered by id with a limit", "[memory]") {
  Stores s;
  CHECK(s.repo().ListOpen(0).value().empty());
  // Dimensions chosen so that no hash or name order matches id order.
  int64_t creator = 100;
  for (const char* d : {"zz", "aa", "mm", "bb", "yy"}) {
    REQUIRE(s.repo().Create(ActionCreate(d, ++creator)).ok());
  }
  REQUIRE(s.repo().End(2, At(200)).value());
  CHECK(Ids(s.repo().ListOpen(0).value()) == std::vector<int64_t>{1, 3, 4, 5});
  CHECK(Ids(s.repo().ListOpen(2).value()) == std::vector<int64_t>{1, 3});
  CHECK(Ids(s.repo().ListOpen(4).value()) == std::vector<int64_t>{1, 3, 4, 5});
  CHECK(Ids(s.repo().ListOpen(10).value()) == std::vector<int64_t>{1, 3, 4, 5});
  std::vector<ConvergeInstance> open = s.repo().ListOpen(1).value();
  REQUIRE(open.size() == 1);
  CHECK(open[0].dimension == "zz");
}

TEST_CASE("InstanceRepo: Relations are ordered by relation id", "[memory]") {
  Stores s;
  CHECK(s.repo().Relations(1).value().empty());  // unknown instance
  REQUIRE(s.repo().Create(ActionCreate("A", 1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("B", 2)).ok());
  // Interleave joins into the two instances.
  REQUIRE(s.repo().Join(Rec(3, Outcome::kSkip), JoinRel(1, 3)).ok());
  REQUIRE(s.repo().Join(Rec(4, Outcome::kSkip), JoinRel(2, 4)).ok());
  REQUIRE(s.repo().Join(Rec(5, Outcome::kSkip), JoinRel(1, 5)).ok());
  std::vector<ConvergeRelation> a = s.repo().Relations(1).value();
  REQUIRE(a.size() == 3);
  CHECK(a[0].related_id == 1);
  CHECK(a[1].related_id == 3);
  CHECK(a[2].related_id == 5);
  CHECK(a[0].id < a[1].id);
  CHECK(a[1].id < a[2].id);
  for (const auto& r : a) CHECK(r.converge_id == 1);
  std::vector<ConvergeRelation> b = s.repo().Relations(2).value();
  REQUIRE(b.size() == 2);
  CHECK(b[0].related_id == 2);
  CHECK(b[1].related_id == 4);
  CHECK(b[0].id < b[1].id);
  // Relation ids are unique across instances.
  CHECK(b[0].id != a[0].id);
  CHECK(b[1].id != a[2].id);
}

// ===========================================================================
// QueueStore

Task MakeTask(std::string id, double due, std::string kind = "summary") {
  Task t;
  t.id = std::move(id);
  t.kind = std::move(kind);
  t.subject_id = 7;
  t.payload = "{\"p\": 1}";
  t.due = At(due);
  return t;
}

std::optional<Delivery> Pop(Stores& s, double now, double visibility = 30,
                            std::string_view queue = "q") {
  absl::StatusOr<std::optional<Delivery>> d =
      s.queue().Dequeue(queue, At(now), absl::Seconds(visibility));
  REQUIRE(d.ok());
  return *d;
}

std::vector<std::string> TaskIds(const std::vector<Task>& v) {
  std::vector<std::string> out;
  for (const auto& t : v) out.push_back(t.id);
  return out;
}

TEST_CASE(
    "QueueStore: Dequeue delivers due tasks by due time, ties by "
    "enqueue order",
    "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("c", 30)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("b", 10)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("z", 20)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("a", 20)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("m", 20)).ok());

  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i) {
    std::optional<Delivery> d = Pop(s, 100);
    REQUIRE(d.has_value());
    order.push_back(d->task.id);
  }
  CHECK(order == std::vector<std::string>{"b", "z", "a", "m", "c"});
  CHECK_FALSE(Pop(s, 100).has_value());
}

TEST_CASE("QueueStore: a task is delivered at or after its due time",
          "[memory]") {
  Stores s;
  Task t = MakeTask("t", 50);
  t.attempts = 9;  // ignored: the store counts
  REQUIRE(s.queue().Enqueue("q", t).ok());
  CHECK_FALSE(Pop(s, 49).has_value());
  CHECK_FALSE(Pop(s, 49.999).has_value());
  std::optional<Delivery> d = Pop(s, 50, 30);
  REQUIRE(d.has_value());
  CHECK(d->task.id == "t");
  CHECK(d->task.kind == "summary");
  CHECK(d->task.subject_id == 7);
  CHECK(d->task.payload == "{\"p\": 1}");
  CHECK(d->task.due == At(50));
  CHECK(d->task.attempts == 1);
  CHECK_FALSE(d->receipt.empty());
  CHECK(d->visible_until == At(80));
  // Unknown and empty queues deliver nothing.
  CHECK_FALSE(Pop(s, 1000, 30, "other").has_value());
}

TEST_CASE(
    "QueueStore: Enqueue refuses a duplicate id while pending, in "
    "flight or dead",
    "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  CHECK(s.queue().Enqueue("q", MakeTask("t", 99)).code() ==
        absl::StatusCode::kAlreadyExists);
  // Same id in another queue is fine.
  CHECK(s.queue().Enqueue("q2", MakeTask("t", 10)).ok());

  std::optional<Delivery> d = Pop(s, 10);
  REQUIRE(d.has_value());
  CHECK(s.queue().Enqueue("q", MakeTask("t", 99)).code() ==
        absl::StatusCode::kAlreadyExists);

  REQUIRE(s.queue().Bury("q", d->receipt, "boom").value());
  CHECK(s.queue().Enqueue("q", MakeTask("t", 99)).code() ==
        absl::StatusCode::kAlreadyExists);

  // Acknowledged tasks free the id.
  REQUIRE(s.queue().Redrive("q", "t", At(10)).ok());
  d = Pop(s, 10);
  REQUIRE(d.has_value());
  REQUIRE(s.queue().Ack("q", d->receipt).value());
  CHECK(s.queue().Enqueue("q", MakeTask("t", 99)).ok());
}

TEST_CASE("QueueStore: empty queue name or task id is kInvalidArgument",
          "[memory]") {
  Stores s;
  CHECK(s.queue().Enqueue("", MakeTask("t", 1)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.queue().Enqueue("q", MakeTask("", 1)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.queue().Stats("q").value().pending == 0);
}

TEST_CASE("QueueStore: Ack removes the task; a second Ack is stale",
          "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  std::optional<Delivery> d = Pop(s, 10);
  REQUIRE(d.has_value());
  CHECK(s.queue().Ack("q", d->receipt).value());
  CHECK_FALSE(s.queue().Ack("q", d->receipt).value());
  CHECK_FALSE(Pop(s, 1000).has_value());
  QueueStats st = s.queue().Stats("q").value();
  CHECK(st.pending == 0);
  CHECK(st.in_flight == 0);
  CHECK(st.dead == 0);
  // Receipts that name nothing are stale.
  CHECK_FALSE(s.queue().Ack("q", "garbage").value());
  CHECK_FALSE(s.queue().Ack("q", "").value());
  CHECK_FALSE(s.queue().Ack("nope", d->receipt).value());
}

TEST_CASE(
    "QueueStore: visibility timeout redelivers; the old receipt goes "
    "stale",
    "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  std::optional<Delivery> first = Pop(s, 10, 30);
  REQUIRE(first.has_value());
  CHECK(first->task.attempts == 1);
  // Hidden until 40.
  CHECK_FALSE(Pop(s, 39, 30).has_value());
  std::optional<Delivery> second = Pop(s, 40, 30);
  REQUIRE(second.has_value());
  CHECK(second->task.id == "t");
  CHECK(second->task.attempts == 2);
  CHECK(second->receipt != first->receipt);
  CHECK(second->visible_until == At(70));
  // The first worker's receipt is stale for every settling call.
  CHECK_FALSE(s.queue().Ack("q", first->receipt).value());
  CHECK_FALSE(s.queue().Retry("q", first->receipt, At(0), "x").value());
  CHECK_FALSE(s.queue().Bury("q", first->receipt, "x").value());
  std::optional<Delivery> third = Pop(s, 70, 30);
  REQUIRE(third.has_value());
  CHECK(third->task.attempts == 3);
  CHECK(s.queue().Ack("q", third->receipt).value());
  CHECK_FALSE(Pop(s, 1000).has_value());
}

TEST_CASE(
    "QueueStore: a receipt stays valid past visibility until the task "
    "is redelivered",
    "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  std::optional<Delivery> d = Pop(s, 10, 30);
  REQUIRE(d.has_value());
  s.clock.Advance(absl::Hours(1));
  CHECK(s.queue().Ack("q", d->receipt).value());
}

TEST_CASE("QueueStore: Retry puts the task back with a new due time",
          "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  std::optional<Delivery> d = Pop(s, 10, 30);
  REQUIRE(d.has_value());
  REQUIRE(s.queue().Retry("q", d->receipt, At(100), "transient").value());
  // The receipt is spent.
  CHECK_FALSE(s.queue().Ack("q", d->receipt).value());
  CHECK_FALSE(s.queue().Retry("q", d->receipt, At(5), "again").value());

  QueueStats st = s.queue().Stats("q").value();
  CHECK(st.pending == 1);
  CHECK(st.in_flight == 0);
  std::vector<Task> pending = s.queue().ListPending("q", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].due == At(100));
  CHECK(pending[0].last_error == "transient");

  CHECK_FALSE(Pop(s, 99).has_value());  // not due before 100, even though
                                        // the old visibility (40) passed
  std::optional<Delivery> again = Pop(s, 100);
  REQUIRE(again.has_value());
  CHECK(again->task.attempts == 2);
  CHECK(again->task.due == At(100));
  CHECK(again->task.last_error == "transient");
  CHECK(s.queue().Ack("q", again->receipt).value());
}

TEST_CASE("QueueStore: Bury, ListDead and Redrive", "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("a", 10)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("b", 20)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("c", 30)).ok());
  std::optional<Delivery> da = Pop(s, 100, 1000);
  std::optional<Delivery> db = Pop(s, 100, 1000);
  REQUIRE(da.has_value());
  REQUIRE(db.has_value());
  REQUIRE(da->task.id == "a");
  REQUIRE(db->task.id == "b");

  REQUIRE(s.queue().Bury("q", db->receipt, "b failed").value());
  REQUIRE(s.queue().Bury("q", da->receipt, "a failed").value());
  // The receipts are spent.
  CHECK_FALSE(s.queue().Bury("q", da->receipt, "again").value());
  CHECK_FALSE(s.queue().Ack("q", da->receipt).value());
  CHECK_FALSE(s.queue().Retry("q", db->receipt, At(0), "x").value());

  // Oldest first: b was buried before a.
  std::vector<Task> dead = s.queue().ListDead("q").value();
  CHECK(TaskIds(dead) == std::vector<std::string>{"b", "a"});
  REQUIRE(dead.size() == 2);
  CHECK(dead[0].last_error == "b failed");
  CHECK(dead[1].last_error == "a failed");
  CHECK(dead[0].attempts == 1);
  CHECK(s.queue().ListDead("other").value().empty());

  QueueStats st = s.queue().Stats("q").value();
  CHECK(st.pending == 1);  // c
  CHECK(st.in_flight == 0);
  CHECK(st.dead == 2);
  CHECK(TaskIds(s.queue().ListPending("q", 0).value()) ==
        std::vector<std::string>{"c"});

  // Dead tasks are never delivered, however late.
  std::optional<Delivery> dc = Pop(s, 10000, 1000);
  REQUIRE(dc.has_value());
  CHECK(dc->task.id == "c");
  REQUIRE(s.queue().Ack("q", dc->receipt).value());
  CHECK_FALSE(Pop(s, 1e9).has_value());

  // Redrive b: pending again, due at 500.
  REQUIRE(s.queue().Redrive("q", "b", At(500)).ok());
  CHECK(TaskIds(s.queue().ListDead("q").value()) ==
        std::vector<std::string>{"a"});
  std::vector<Task> pending = s.queue().ListPending("q", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].id == "b");
  CHECK(pending[0].attempts == 0);
  CHECK(pending[0].due == At(500));
  st = s.queue().Stats("q").value();
  CHECK(st.pending == 1);
  CHECK(st.dead == 1);
  CHECK_FALSE(Pop(s, 499).has_value());
  std::optional<Delivery> b = Pop(s, 500);
  REQUIRE(b.has_value());
  CHECK(b->task.id == "b");
  CHECK(b->task.attempts == 1);

  // Redrive of a task that is not dead, or unknown.
  CHECK(s.queue().Redrive("q", "b", At(0)).code() ==
        absl::StatusCode::kNotFound);  // in flight
  CHECK(s.queue().Redrive("q", "nope", At(0)).code() ==
        absl::StatusCode::kNotFound);
  CHECK(s.queue().Redrive("other", "a", At(0)).code() ==
        absl::StatusCode::kNotFound);
  // A redriven task is no longer dead: a second Redrive is kNotFound.
  CHECK(s.queue().Redrive("q", "a", At(0)).ok());
  CHECK(s.queue().Redrive("q", "a", At(0)).code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("QueueStore: Redrive resets attempts", "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("x", 0)).ok());
  std::optional<Delivery> d1 = Pop(s, 0, 10);
  std::optional<Delivery> d2 = Pop(s, 10, 10);  // redelivered
  REQUIRE(d1.has_value());
  REQUIRE(d2.has_value());
  CHECK(d2->task.attempts == 2);
  REQUIRE(s.queue().Bury("q", d2->receipt, "gave up").value());
  std::vector<Task> dead = s.queue().ListDead("q").value();
  REQUIRE(dead.size() == 1);
  CHECK(dead[0].attempts == 2);
  CHECK(dead[0].last_error == "gave up");
  REQUIRE(s.queue().Redrive("q", "x", At(20)).ok());
  std::optional<Delivery> d3 = Pop(s, 20, 10);
  REQUIRE(d3.has_value());
  CHECK(d3->task.attempts == 1);
  CHECK(d3->task.due == At(20));
}

TEST_CASE("QueueStore: Stats counts pending (due or not), in flight and dead",
          "[memory]") {
  Stores s;
  QueueStats empty = s.queue().Stats("q").value();
  CHECK(empty.pending == 0);
  CHECK(empty.in_flight == 0);
  CHECK(empty.dead == 0);
  REQUIRE(s.queue().Enqueue("q", MakeTask("due", 10)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("later", 1e6)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("x", 10)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("y", 10)).ok());
  std::optional<Delivery> d1 = Pop(s, 10);
  std::optional<Delivery> d2 = Pop(s, 10);
  REQUIRE(d1.has_value());
  REQUIRE(d2.has_value());
  REQUIRE(s.queue().Bury("q", d2->receipt, "e").value());
  QueueStats st = s.queue().Stats("q").value();
  CHECK(st.pending == 2);
  CHECK(st.in_flight == 1);
  CHECK(st.dead == 1);
  CHECK(s.queue().Stats("q2").value().pending == 0);
}

TEST_CASE(
    "QueueStore: ListPending is ordered by due time, excludes in-flight "
    "and dead tasks, and honours the limit",
    "[memory]") {
  Stores s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("c", 30)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("a", 10)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("d", 40)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("b", 20)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("e", 5)).ok());
  std::optional<Delivery> d = Pop(s, 5, 1000);  // e in flight
  REQUIRE(d.has_value());
  REQUIRE(d->task.id == "e");
  CHECK(TaskIds(s.queue().ListPending("q", 0).value()) ==
        std::vector<std::string>{"a", "b", "c", "d"});
  CHECK(TaskIds(s.queue().ListPending("q", 2).value()) ==
        std::vector<std::string>{"a", "b"});
  std::optional<Delivery> a = Pop(s, 10, 1000);
  REQUIRE(a.has_value());
  REQUIRE(s.queue().Bury("q", a->receipt, "dead").value());
  CHECK(TaskIds(s.queue().ListPending("q", 0).value()) ==
        std::vector<std::string>{"b", "c", "d"});
  CHECK(s.queue().ListPending("nope", 0).value().empty());
}

}  // namespace
}  // namespace converge

namespace converge::memory {
namespace {

TEST_CASE("InstanceRepo: relation alerts round-trip exactly", "[memory]") {
  VirtualClock clock(absl::FromUnixSeconds(100));
  MemoryStores s = NewMemoryStores({&clock}).value();
  const std::vector<std::string> alerts = {"",
                                           "a",
                                           std::string(254, 'x'),
                                           std::string(255, 'y'),
                                           std::string(70000, 'z'),
                                           std::string("nul\0byte", 8),
                                           "\xff\x01"};
  CreateRequest req;
  req.instance.dimension = "!sha1#" + std::string(40, 'a');
  req.instance.create_time = clock.Now();
  req.primary.related_id = 7;
  req.primary.related_type = ConvergeType::kAction;
  req.primary.is_primary = true;
  req.primary.converge_status = ConvergeStatus::kExecuted;
  req.primary.alerts = alerts;
  CreateResult created = s.repo->Create(req).value();
  std::vector<ConvergeRelation> rels =
      s.repo->Relations(created.instance.id).value();
  REQUIRE(rels.size() == 1);
  CHECK(rels[0].alerts == alerts);
  // Canonical and non-canonical dimensions are both found while open.
  CHECK(s.repo->FindOpen(req.instance.dimension).value().has_value());
  CHECK_FALSE(
      s.repo->FindOpen("!sha1#" + std::string(40, 'A')).value().has_value());
  req.instance.dimension = "!sha1#" + std::string(40, 'A');  // not canonical
  req.primary.related_id = 8;
  REQUIRE(s.repo->Create(req).ok());
  CHECK(
      s.repo->LookupOpen("!sha1#" + std::string(40, 'A')).value().has_value());
  CHECK(s.repo->ListOpen(0).value().size() == 2);
}

}  // namespace
}  // namespace converge::memory
