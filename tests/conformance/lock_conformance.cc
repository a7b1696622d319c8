// Conformance: LockStore (converge/store/lock_store.h). Every contract sentence
// of the header has a case here; the cases run against every store.

#include "conformance.h"

namespace converge::conformance {
namespace {

TEST_CASE("LockStore: a free lease is taken, a held one is refused",
          "[conformance]") {
  StoreSet s;
  CHECK(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  // Another key is independent.
  CHECK(s.lock().TryAcquire("L2", "b", absl::Seconds(10)).value());
}

TEST_CASE("LockStore: an expired lease is taken over by another token",
          "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(8));
  CHECK(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  // Expiry is now 18 s after the start: at 15 s it is still held.
  s.clock.Advance(absl::Seconds(7));
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(4));  // 19 s: expired
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
}

TEST_CASE("LockStore: Release by the owner frees the lease", "[conformance]") {
  StoreSet s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK(s.lock().Release("L", "a").value());
  // Released: a second release returns false, another token can take it.
  CHECK_FALSE(s.lock().Release("L", "a").value());
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
}

TEST_CASE(
    "LockStore: a release in a repo batch takes effect with the batch when "
    "ReleasesWithRepoBatch says so, and at once otherwise",
    "[conformance]") {
  StoreSet s;
  CHECK_FALSE(s.lock().ReleasesWithRepoBatch());  // no batch open
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(30)).value());
  REQUIRE(s.lock().TryAcquire("M", "a", absl::Seconds(30)).value());
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  if (*batch == nullptr) return;  // no transactions
  (*batch)->RetriedOnConflict();  // as a Submit's batch
  const bool with = s.lock().ReleasesWithRepoBatch();
  // Taken before the batch, released in it, rolled back with it or not.
  CHECK(s.lock().Release("L", "a").value());
  batch->reset();
  CHECK_FALSE(s.lock().ReleasesWithRepoBatch());
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(30)).value() == !with);
  // Committed: released either way.
  batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  (*batch)->RetriedOnConflict();
  CHECK(s.lock().ReleasesWithRepoBatch() == with);
  CHECK(s.lock().Release("M", "a").value());
  REQUIRE((*batch)->Commit().ok());
  CHECK(s.lock().TryAcquire("M", "b", absl::Seconds(30)).value());
}

TEST_CASE("LockStore: Release of a free lease returns false", "[conformance]") {
  StoreSet s;
  CHECK_FALSE(s.lock().Release("never", "a").value());
}

TEST_CASE("LockStore: Release by a non-owner returns false and keeps the lease",
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().Release("L", "b").value());
  CHECK_FALSE(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
  CHECK(s.lock().Release("L", "a").value());
}

TEST_CASE("LockStore: the owner releases its own expired lease",
          "[conformance]") {
  // "Releases the lease if token holds it (expired or not yet)."
  StoreSet s;
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(30));
  CHECK(s.lock().Release("L", "a").value());
}

TEST_CASE("LockStore: Extend pushes the expiry of a held lease",
          "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
  CHECK_FALSE(s.lock().Extend("free", "a", absl::Seconds(10)).value());
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().Extend("L", "b", absl::Seconds(10)).value());
  s.clock.Advance(absl::Seconds(11));
  CHECK_FALSE(s.lock().Extend("L", "a", absl::Seconds(10)).value());
  // Extend after expiry did not revive it.
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(10)).value());
}

TEST_CASE("LockStore: ListLeases lists unexpired leases by prefix, in order",
          "[conformance]") {
  StoreSet s;
  CHECK(s.lock().ListLeases("", 0).value().empty());
  const absl::Time start = s.clock.Now();
  REQUIRE(s.lock().TryAcquire("dim.b", "t2", absl::Seconds(10)).value());
  REQUIRE(s.lock().TryAcquire("dim.a", "t1", absl::Seconds(30)).value());
  REQUIRE(s.lock().TryAcquire("other", "t3", absl::Seconds(10)).value());
  REQUIRE(s.lock().TryAcquire("dim*", "t4", absl::Seconds(10)).value());
  REQUIRE(s.lock().TryAcquire("gone", "t5", absl::Seconds(10)).value());
  REQUIRE(s.lock().Release("gone", "t5").value());

  std::vector<LeaseInfo> all = s.lock().ListLeases("", 0).value();
  std::vector<std::string> keys;
  for (const LeaseInfo& l : all) keys.push_back(l.key);
  // Byte order; a released lease is not listed.
  CHECK(keys == std::vector<std::string>{"dim*", "dim.a", "dim.b", "other"});
  REQUIRE(all.size() == 4);
  CHECK(all[1].token == "t1");
  CHECK(absl::AbsDuration(all[1].expires_at - (start + absl::Seconds(30))) <
        absl::Milliseconds(1));

  // A prefix is a prefix of bytes, not a pattern ("dim*" is one key).
  std::vector<LeaseInfo> dim = s.lock().ListLeases("dim.", 0).value();
  REQUIRE(dim.size() == 2);
  CHECK(dim[0].key == "dim.a");
  CHECK(dim[1].key == "dim.b");
  std::vector<LeaseInfo> star = s.lock().ListLeases("dim*", 0).value();
  REQUIRE(star.size() == 1);
  CHECK(star[0].token == "t4");
  // The limit keeps the first keys.
  std::vector<LeaseInfo> two = s.lock().ListLeases("", 2).value();
  REQUIRE(two.size() == 2);
  CHECK(two[1].key == "dim.a");

  // Expired leases are not listed, even before anyone retakes them.
  s.clock.Advance(absl::Seconds(11));
  all = s.lock().ListLeases("", 0).value();
  REQUIRE(all.size() == 1);
  CHECK(all[0].key == "dim.a");
}

TEST_CASE("LockStore: empty key, empty token or ttl <= 0 is kInvalidArgument",
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("LockStore: bad input is refused with the words every store uses",
          "[conformance]") {
  // store/checks.h: the store's name, then the same words in every store.
  StoreSet s;
  CheckRefusal(s.lock().TryAcquire("", "a", absl::Seconds(1)).status(),
               ": empty lease key");
  CheckRefusal(s.lock().TryAcquire("L", "", absl::Seconds(1)).status(),
               ": empty lease token");
  CheckRefusal(s.lock().TryAcquire("L", "a", absl::ZeroDuration()).status(),
               ": lease ttl must be > 0");
}

}  // namespace
}  // namespace converge::conformance
