// Conformance: WindowStore (converge/store/window_store.h). Every contract
// sentence of the header has a case here; the cases run against every store.

#include "absl/strings/str_cat.h"
#include "conformance.h"

namespace converge::conformance {
namespace {

TEST_CASE("WindowStore: Apply adds members and reads groups in one call",
          "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
  Add(s, {Entry("k1", "action_1", 100), Entry("k2", "action_1", 100),
          Entry("k2", "action_2", 100), Entry("k3", "action_1", 100)});
  auto groups = Read(s, {{"k1", "k2", "k3"}, {"k1", "k1"}});
  CHECK(groups[0] == Members{"action_1", "action_2"});
  CHECK(groups[1] == Members{"action_1"});
}

TEST_CASE(
    "WindowStore: with intersect, one group per read group or their "
    "intersection",
    "[conformance]") {
  StoreSet s;
  // "shared" is the key many dimensions share; the intersection is small.
  std::vector<WindowEntry> entries;
  for (int i = 1; i <= 300; ++i) {
    entries.push_back(Entry("shared", absl::StrCat("action_", i), 100));
  }
  entries.push_back(Entry("shared", "action_900", 50));  // before the window
  entries.push_back(Entry("a", "action_7", 100));
  entries.push_back(Entry("a", "action_900", 50));
  entries.push_back(Entry("b", "action_8", 100));
  entries.push_back(Entry("b", "action_999", 100));  // not in "shared"
  Add(s, entries);
  auto intersect = [&](std::vector<std::vector<std::string>> groups) {
    WindowRequest req;
    req.read_groups = std::move(groups);
    req.intersect = true;
    req.start = At(60);
    req.end = At(200);
    absl::StatusOr<WindowResult> r = s.window().Apply(req);
    REQUIRE(r.ok());
    REQUIRE(
        (r->groups.size() == 1 || r->groups.size() == req.read_groups.size()));
    // What the caller does with either answer.
    Members acc = Sorted(r->groups[0]);
    for (size_t g = 1; g < r->groups.size(); ++g) {
      Members next;
      for (const std::string& m : Sorted(r->groups[g])) {
        if (std::binary_search(acc.begin(), acc.end(), m)) next.push_back(m);
      }
      acc = next;
    }
    return acc;
  };
  CHECK(intersect({{"shared"}, {"a", "b"}}) == Members{"action_7", "action_8"});
  CHECK(intersect({{"a", "b"}, {"shared"}}) == Members{"action_7", "action_8"});
  CHECK(intersect({{"shared"}, {"a"}, {"b"}}).empty());
  CHECK(intersect({{"shared"}, {"missing"}}).empty());
  CHECK(intersect({{"shared"}, {"b", "b"}}) == Members{"action_8"});
  CHECK(intersect({{"shared"}}).size() == 300);
  CHECK(intersect({{"shared"}, {"shared", "a"}}).size() == 300);
}

TEST_CASE("WindowStore: read bounds are inclusive at both ends",
          "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("WindowStore: key_ttl 0 means keys never expire", "[conformance]") {
  StoreSet s;
  Add(s, {Entry("k", "action_1", 1000)});
  s.clock.Advance(absl::Hours(24 * 365));
  CHECK(s.window().Size("k").value() == 1);
}

TEST_CASE(
    "WindowStore: a lease held by another token skips the reads but "
    "applies the adds",
    "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("WindowStore: invalid requests are kInvalidArgument",
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("WindowStore: arbitrary members round-trip exactly",
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("WindowStore: Remove and Size", "[conformance]") {
  StoreSet s;
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

// ---- counters (upstream K4) ----

TEST_CASE("WindowStore: Increment counts from 0 and CounterValue reads it",
          "[conformance]") {
  StoreSet s;
  CHECK(s.window().CounterValue("c").value() == 0);  // missing
  CHECK(s.window().Increment("c", absl::Seconds(60), 10).value() == 1);
  CHECK(s.window().Increment("c", absl::Seconds(60), 10).value() == 2);
  CHECK(s.window().Increment("c", absl::Seconds(60), 10).value() == 3);
  CHECK(s.window().CounterValue("c").value() == 3);
  // Counters are independent.
  CHECK(s.window().Increment("c2", absl::Seconds(60), 10).value() == 1);
  CHECK(s.window().CounterValue("c").value() == 3);
}

TEST_CASE(
    "WindowStore: a counter's expiry is refreshed up to refresh_up_to, then "
    "left as it was",
    "[conformance]") {
  StoreSet s;
  const absl::Duration ttl = absl::Seconds(60);
  CHECK(s.window().Increment("c", ttl, 2).value() == 1);  // expires at +60
  s.clock.Advance(absl::Seconds(30));
  CHECK(s.window().Increment("c", ttl, 2).value() == 2);  // expires at +90
  s.clock.Advance(absl::Seconds(30));
  CHECK(s.window().Increment("c", ttl, 2).value() == 3);  // still +90
  s.clock.Advance(absl::Seconds(29));                     // +89
  CHECK(s.window().CounterValue("c").value() == 3);
  s.clock.Advance(absl::Seconds(1));  // +90: expired
  CHECK(s.window().CounterValue("c").value() == 0);
  // An expired counter counts from 0 again.
  CHECK(s.window().Increment("c", ttl, 2).value() == 1);
  s.clock.Advance(absl::Seconds(59));
  CHECK(s.window().CounterValue("c").value() == 1);
  s.clock.Advance(absl::Seconds(1));
  CHECK(s.window().CounterValue("c").value() == 0);
}

TEST_CASE(
    "WindowStore: a counter first incremented above refresh_up_to gets no "
    "expiry",
    "[conformance]") {
  // Upstream INCR without EXPIRE: the key keeps no TTL.
  StoreSet s;
  CHECK(s.window().Increment("c", absl::Seconds(60), 0).value() == 1);
  s.clock.Advance(absl::Hours(24 * 365));
  CHECK(s.window().CounterValue("c").value() == 1);
}

TEST_CASE("WindowStore: counter and index keys share one key space",
          "[conformance]") {
  StoreSet s;
  Add(s, {Entry("idx", "action_1", 100)});
  CHECK(s.window().Increment("idx", absl::Seconds(60), 10).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(s.window().Size("idx").value() == 1);  // untouched
  CHECK(s.window().CounterValue("idx").value() == 0);

  REQUIRE(s.window().Increment("cnt", absl::Seconds(60), 10).ok());
  CHECK(s.window().Size("cnt").value() == 0);  // a counter has no members
  WindowRequest add;
  add.add = {Entry("cnt", "action_2", 100)};
  CHECK(s.window().Apply(add).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(s.window().CounterValue("cnt").value() == 1);  // untouched
  CHECK(Read(s, {{"cnt"}})[0].empty());

  // Once the counter expired the key can become an index, and back.
  s.clock.Advance(absl::Seconds(61));
  Add(s, {Entry("cnt", "action_2", 100)}, absl::Seconds(10));
  CHECK(s.window().Size("cnt").value() == 1);
  s.clock.Advance(absl::Seconds(11));
  CHECK(s.window().Increment("cnt", absl::Seconds(60), 10).value() == 1);
}

TEST_CASE(
    "WindowStore: Increment with an empty key or ttl <= 0 is "
    "kInvalidArgument",
    "[conformance]") {
  StoreSet s;
  CHECK(s.window().Increment("", absl::Seconds(1), 1).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.window().Increment("c", absl::ZeroDuration(), 1).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.window().Increment("c", -absl::Seconds(1), 1).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.window().CounterValue("c").value() == 0);
}

TEST_CASE("WindowStore: Delete removes a live index or counter key",
          "[conformance]") {
  StoreSet s;
  Add(s, {Entry("idx", "action_1", 100), Entry("idx", "action_2", 100)});
  REQUIRE(s.window().Increment("cnt", absl::Seconds(60), 10).ok());
  CHECK(s.window().Delete("idx").value());
  CHECK(s.window().Size("idx").value() == 0);
  CHECK(Read(s, {{"idx"}})[0].empty());
  CHECK_FALSE(s.window().Delete("idx").value());
  CHECK(s.window().Delete("cnt").value());
  CHECK(s.window().CounterValue("cnt").value() == 0);
  CHECK_FALSE(s.window().Delete("cnt").value());
  CHECK_FALSE(s.window().Delete("never").value());
  // An expired key is not live: nothing to delete.
  Add(s, {Entry("e", "action_1", 100)}, absl::Seconds(5));
  REQUIRE(s.window().Increment("ec", absl::Seconds(5), 10).ok());
  s.clock.Advance(absl::Seconds(5));
  CHECK_FALSE(s.window().Delete("e").value());
  CHECK_FALSE(s.window().Delete("ec").value());
  // A deleted key starts afresh.
  Add(s, {Entry("idx", "action_3", 100)});
  CHECK(Read(s, {{"idx"}})[0] == Members{"action_3"});
  CHECK(s.window().Increment("cnt", absl::Seconds(60), 10).value() == 1);
}

TEST_CASE("WindowStore: an invalid Apply writes nothing", "[conformance]") {
  StoreSet s;
  WindowRequest req;
  req.add = {Entry("k", "action_1", 100), Entry("k", "", 100)};
  CHECK(s.window().Apply(req).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.window().Size("k").value() == 0);
  REQUIRE(s.window().Increment("cnt", absl::Seconds(60), 10).ok());
  req.add = {Entry("k", "action_1", 100), Entry("cnt", "action_1", 100)};
  CHECK(s.window().Apply(req).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(s.window().Size("k").value() == 0);
}

TEST_CASE("WindowStore: a key trimmed empty is gone", "[conformance]") {
  StoreSet s;
  Add(s, {Entry("k", "action_1", 100)});
  Add(s, {Entry("k", "action_2", 50)}, absl::ZeroDuration(), At(200));
  CHECK(s.window().Size("k").value() == 0);
  CHECK_FALSE(s.window().Delete("k").value());
  // So it can hold a counter.
  CHECK(s.window().Increment("k", absl::Seconds(60), 10).value() == 1);
}

TEST_CASE(
    "WindowStore: an Apply made twice leaves what one leaves, so a retry "
    "is safe",
    "[conformance]") {
  StoreSet s;
  WindowRequest req;
  req.add = {Entry("k", "action_1", 1000), Entry("k", "action_2", 1010),
             Entry("k2", "action_1", 1000)};
  req.key_ttl = absl::Seconds(60);
  req.trim_before = At(900);
  req.lease = LeaseRequest{"D", "me", absl::Seconds(30)};
  req.read_groups = {{"k"}, {"k", "k2"}};
  absl::StatusOr<WindowResult> first = s.window().Apply(req);
  REQUIRE(first.ok());
  REQUIRE(first->lease_acquired);
  s.clock.Advance(absl::Seconds(10));
  absl::StatusOr<WindowResult> again = s.window().Apply(req);  // the retry
  REQUIRE(again.ok());
  CHECK(again->lease_acquired);  // the same token takes its lease again
  REQUIRE(again->groups.size() == 2);
  CHECK(Sorted(again->groups[0]) == Members{"action_1", "action_2"});
  CHECK(Sorted(again->groups[1]) == Members{"action_1", "action_2"});
  CHECK(s.window().Size("k").value() == 2);
  CHECK(s.window().Size("k2").value() == 1);
  // One lease, released once.
  CHECK(s.lock().Release("D", "me").value());
  CHECK_FALSE(s.lock().Release("D", "me").value());
  // The keys expire key_ttl after the retry, as after a single write.
  s.clock.Advance(absl::Seconds(59));
  CHECK(s.window().Size("k").value() == 2);
  s.clock.Advance(absl::Seconds(2));
  CHECK(s.window().Size("k").value() == 0);
  CHECK(s.window().Size("k2").value() == 0);
}

TEST_CASE("WindowStore: a write with key_ttl 0 takes a key's expiry away",
          "[conformance]") {
  // "Every key written gets its expiry pushed to now + key_ttl (0 = keys
  // never expire)": a key that had an expiry too.
  StoreSet s;
  Add(s, {Entry("k", "action_1", 1000)}, absl::Seconds(60));
  s.clock.Advance(absl::Seconds(30));
  Add(s, {Entry("k", "action_2", 1030)});
  s.clock.Advance(absl::Hours(24 * 365));
  CHECK(s.window().Size("k").value() == 2);
  CHECK(Read(s, {{"k"}})[0] == Members{"action_1", "action_2"});
}

TEST_CASE("WindowStore: bad input is refused with the words every store uses",
          "[conformance]") {
  // store/checks.h: the store's name, then the same words in every store.
  StoreSet s;
  auto apply = [&](const WindowRequest& req) {
    return s.window().Apply(req).status();
  };
  WindowRequest req;
  req.add = {Entry("", "action_1", 1)};
  CheckRefusal(apply(req), ": window entry with an empty key or member");
  req.add = {Entry("k", "", 1)};
  CheckRefusal(apply(req), ": window entry with an empty key or member");
  req.add.clear();
  req.read_groups = {{"k", ""}};
  CheckRefusal(apply(req), ": empty window key to read");
  req.read_groups.clear();
  req.lease = LeaseRequest{"", "t", absl::Seconds(1)};
  CheckRefusal(apply(req), ": empty lease key");
  req.lease = LeaseRequest{"D", "", absl::Seconds(1)};
  CheckRefusal(apply(req), ": empty lease token");
  req.lease = LeaseRequest{"D", "t", absl::ZeroDuration()};
  CheckRefusal(apply(req), ": lease ttl must be > 0");
  CheckRefusal(s.window().Increment("", absl::Seconds(1), 1).status(),
               ": empty counter key");
  CheckRefusal(s.window().Increment("c", absl::ZeroDuration(), 1).status(),
               ": counter ttl must be > 0");
}

}  // namespace
}  // namespace converge::conformance
