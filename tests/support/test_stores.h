// The store under test, chosen at link time: one test source compiles into
// one executable per store (conformance_memory, conformance_sqlite,
// scenarios_memory, ...), each linked with one definition of MakeTestStores
// (tests/support/memory_test_stores.cc, sqlite_test_stores.cc). This is the
// harness of the conformance suite (house-style.md, "Conformance suite").

#ifndef CONVERGE_TESTS_SUPPORT_TEST_STORES_H_
#define CONVERGE_TESTS_SUPPORT_TEST_STORES_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "converge/clock.h"
#include "converge/manager.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge::testing {

// One isolated set of stores; owns them (and whatever keeps them alive: a
// SQLite set owns its temporary file and deletes it when destroyed).
struct TestStores {
  // Declared first, so destroyed last: what the stores live on.
  std::shared_ptr<void> owner;
  std::unique_ptr<LockStore> lock;
  std::unique_ptr<QueueStore> queue;
  std::unique_ptr<InstanceRepo> repo;
  std::unique_ptr<WindowStore> window;

  Stores view() const {
    return Stores{lock.get(), queue.get(), repo.get(), window.get()};
  }
};

// Makes a fresh, empty set of stores, isolated from every other set made in
// the process, whose lease, key and queue expiry follow `clock` (not owned;
// must outlive the set). Calls from many threads are allowed.
absl::StatusOr<TestStores> MakeTestStores(const Clock* clock);

// "memory", "sqlite": for messages.
std::string_view TestStoreName();

// What the store under test cannot do, each with why (house-style.md,
// "Conformance suite": a flag that excuses an adapter says why). Every
// harness gets these defaults (tests/conformance/capabilities.cc, a weak
// definition); a harness whose store differs defines its own.
struct TestCapabilities {
  // Text that is not UTF-8 round-trips in upstream's text columns
  // (converge_relation.alerts, converge_instance.converge_config). False
  // for MySQL: those columns are utf8mb4 text, as upstream's, and such
  // text is refused (kInvalidArgument) rather than stored mangled.
  bool any_bytes_in_text = true;
  // Instance ids handed out in a rolled-back batch are handed out again.
  // False for MySQL: InnoDB never gives AUTO_INCREMENT values back.
  bool rollback_returns_ids = true;
  // Instance times (create_time, end_time) keep nanoseconds. False for
  // MySQL: upstream's datetime columns are DATETIME(6), microseconds.
  bool nanosecond_instance_times = true;
  // Rounds per thread of the hot-key lease case (8 threads on one key).
  // 2,000 by default; MySQL runs 250: there every round is two commits
  // serialized by one row lock (about 1.5 ms each on two cores), and 2,000
  // rounds took 28 s of the suite's time while 250 still keep the eight
  // threads contending for the whole case.
  int hot_key_iterations = 2000;
  // Writes through the lock, window and queue stores made inside a repo
  // batch are part of it (InstanceRepo::BeginBatch, SQLite), so that a batch
  // destroyed without Commit takes them back too. False for MySQL: those
  // stores never join the batch, so that their row locks are not held for
  // a whole batch (adapters/mysql/src/db.h, WriteAside), except in a batch
  // told RetriedOnConflict (a Submit, MysqlOptions::one_transaction); and
  // false for Redis beside a SQL repo: they are on another backend.
  bool batch_takes_other_stores = true;
};
TestCapabilities TestStoreCapabilities();

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_TEST_STORES_H_
