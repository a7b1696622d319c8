// Conformance: QueueStore (converge/store/queue_store.h). Every contract
// sentence of the header has a case here; the cases run against every store.

#include "conformance.h"

namespace converge::conformance {
namespace {

TEST_CASE(
    "QueueStore: Dequeue delivers due tasks by due time, ties by "
    "enqueue order",
    "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
  CHECK(s.queue().Enqueue("", MakeTask("t", 1)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.queue().Enqueue("q", MakeTask("", 1)).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.queue().Stats("q").value().pending == 0);
}

TEST_CASE("QueueStore: Ack removes the task, a second Ack is stale",
          "[conformance]") {
  StoreSet s;
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
    "QueueStore: visibility timeout redelivers, the old receipt goes "
    "stale",
    "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  std::optional<Delivery> d = Pop(s, 10, 30);
  REQUIRE(d.has_value());
  s.clock.Advance(absl::Hours(1));
  CHECK(s.queue().Ack("q", d->receipt).value());
}

TEST_CASE("QueueStore: Retry puts the task back with a new due time",
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("QueueStore: Bury, ListDead and Redrive", "[conformance]") {
  StoreSet s;
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
  std::vector<Task> dead = s.queue().ListDead("q", 0).value();
  CHECK(TaskIds(dead) == std::vector<std::string>{"b", "a"});
  REQUIRE(dead.size() == 2);
  CHECK(dead[0].last_error == "b failed");
  CHECK(dead[1].last_error == "a failed");
  CHECK(dead[0].attempts == 1);
  CHECK(s.queue().ListDead("other", 0).value().empty());
  // At most `limit`, the oldest burials; a limit beyond any count is all.
  CHECK(TaskIds(s.queue().ListDead("q", 1).value()) ==
        std::vector<std::string>{"b"});
  CHECK(TaskIds(s.queue().ListDead("q", SIZE_MAX).value()) ==
        std::vector<std::string>{"b", "a"});
  CHECK(TaskIds(s.queue().ListDead("q", size_t{1} << 60).value()) ==
        std::vector<std::string>{"b", "a"});

  QueueStats st = s.queue().Stats("q").value();
  CHECK(st.pending == 1);  // c
  CHECK(st.in_flight == 0);
  CHECK(st.dead == 2);
  CHECK(TaskIds(s.queue().ListPending("q", 0).value()) ==
        std::vector<std::string>{"c"});
  CHECK(TaskIds(s.queue().ListPending("q", SIZE_MAX).value()) ==
        std::vector<std::string>{"c"});

  // Dead tasks are never delivered, however late.
  std::optional<Delivery> dc = Pop(s, 10000, 1000);
  REQUIRE(dc.has_value());
  CHECK(dc->task.id == "c");
  REQUIRE(s.queue().Ack("q", dc->receipt).value());
  CHECK_FALSE(Pop(s, 1e9).has_value());

  // Redrive b: pending again, due at 500.
  REQUIRE(s.queue().Redrive("q", "b", At(500)).ok());
  CHECK(TaskIds(s.queue().ListDead("q", 0).value()) ==
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

TEST_CASE("QueueStore: Redrive resets attempts", "[conformance]") {
  StoreSet s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("x", 0)).ok());
  std::optional<Delivery> d1 = Pop(s, 0, 10);
  std::optional<Delivery> d2 = Pop(s, 10, 10);  // redelivered
  REQUIRE(d1.has_value());
  REQUIRE(d2.has_value());
  CHECK(d2->task.attempts == 2);
  REQUIRE(s.queue().Bury("q", d2->receipt, "gave up").value());
  std::vector<Task> dead = s.queue().ListDead("q", 0).value();
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
          "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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

TEST_CASE(
    "QueueStore: Reschedule puts the task back as a new occurrence: due "
    "at the new time, attempts reset",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  std::optional<Delivery> d1 = Pop(s, 10, 30);
  REQUIRE(d1.has_value());
  REQUIRE(s.queue().Retry("q", d1->receipt, At(20), "flaky").value());
  std::optional<Delivery> d2 = Pop(s, 20, 30);
  REQUIRE(d2.has_value());
  CHECK(d2->task.attempts == 2);
  REQUIRE(s.queue().Reschedule("q", d2->receipt, At(100)).value());
  // The receipt is spent.
  CHECK_FALSE(s.queue().Ack("q", d2->receipt).value());
  CHECK_FALSE(s.queue().Reschedule("q", d2->receipt, At(5)).value());

  QueueStats st = s.queue().Stats("q").value();
  CHECK(st.pending == 1);
  CHECK(st.in_flight == 0);
  std::vector<Task> pending = s.queue().ListPending("q", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].due == At(100));
  CHECK(pending[0].attempts == 0);
  CHECK(pending[0].last_error.empty());  // not a failure

  CHECK_FALSE(Pop(s, 99).has_value());
  std::optional<Delivery> d3 = Pop(s, 100);
  REQUIRE(d3.has_value());
  CHECK(d3->task.attempts == 1);
  CHECK(d3->task.due == At(100));
  CHECK(d3->task.kind == "summary");
  CHECK(d3->task.payload == "{\"p\": 1}");
  CHECK(s.queue().Ack("q", d3->receipt).value());
}

TEST_CASE("QueueStore: Reschedule with a stale receipt returns false",
          "[conformance]") {
  StoreSet s;
  CHECK_FALSE(s.queue().Reschedule("q", "nothing", At(1)).value());
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  std::optional<Delivery> first = Pop(s, 10, 30);
  std::optional<Delivery> second = Pop(s, 40, 30);  // redelivered
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK_FALSE(s.queue().Reschedule("q", first->receipt, At(1)).value());
  REQUIRE(s.queue().Ack("q", second->receipt).value());
  CHECK_FALSE(s.queue().Reschedule("q", second->receipt, At(1)).value());
  CHECK(s.queue().Stats("q").value().pending == 0);
}

TEST_CASE("QueueStore: a task put back keeps its enqueue order for ties",
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("a", 10)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("b", 50)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("c", 50)).ok());
  std::optional<Delivery> a = Pop(s, 10);
  REQUIRE(a.has_value());
  REQUIRE(a->task.id == "a");
  REQUIRE(s.queue().Retry("q", a->receipt, At(50), "again").value());
  CHECK(TaskIds(s.queue().ListPending("q", 0).value()) ==
        std::vector<std::string>{"a", "b", "c"});
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    std::optional<Delivery> d = Pop(s, 50, 1000);
    REQUIRE(d.has_value());
    order.push_back(d->task.id);
  }
  CHECK(order == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE(
    "QueueStore: an overdue in-flight task is redelivered in due order "
    "with pending ones",
    "[conformance]") {
  // An in-flight task whose visibility has passed competes with pending
  // tasks by the time it became deliverable again (visible_until).
  StoreSet s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("x", 0)).ok());
  std::optional<Delivery> x = Pop(s, 0, 10);  // visible again at 10
  REQUIRE(x.has_value());
  REQUIRE(s.queue().Enqueue("q", MakeTask("y", 5)).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("z", 20)).ok());
  std::optional<Delivery> d = Pop(s, 30, 100);
  REQUIRE(d.has_value());
  CHECK(d->task.id == "y");  // due 5 < 10
  d = Pop(s, 30, 100);
  REQUIRE(d.has_value());
  CHECK(d->task.id == "x");  // 10 < 20
  CHECK(d->task.attempts == 2);
  d = Pop(s, 30, 100);
  REQUIRE(d.has_value());
  CHECK(d->task.id == "z");
  CHECK_FALSE(Pop(s, 30).has_value());
}

TEST_CASE("QueueStore: queues are independent", "[conformance]") {
  StoreSet s;
  REQUIRE(s.queue().Enqueue("q1", MakeTask("t", 10)).ok());
  REQUIRE(s.queue().Enqueue("q2", MakeTask("t", 10)).ok());
  std::optional<Delivery> d1 = Pop(s, 10, 30, "q1");
  REQUIRE(d1.has_value());
  // A receipt of q1 means nothing in q2.
  CHECK_FALSE(s.queue().Ack("q2", d1->receipt).value());
  CHECK(s.queue().Stats("q2").value().pending == 1);
  CHECK(s.queue().Stats("q1").value().in_flight == 1);
  std::optional<Delivery> d2 = Pop(s, 10, 30, "q2");
  REQUIRE(d2.has_value());
  CHECK(s.queue().Ack("q1", d1->receipt).value());
  CHECK(s.queue().Ack("q2", d2->receipt).value());
}

TEST_CASE("QueueStore: task fields round-trip", "[conformance]") {
  StoreSet s;
  Task t = MakeTask("id with spaces/and:colons#1", 10, "repoll");
  t.subject_id = -42;
  t.payload = std::string("bin\0ary\xff payload", 16);
  t.last_error = "ignored?";
  REQUIRE(s.queue().Enqueue("queue.name", t).ok());
  std::optional<Delivery> d = Pop(s, 10, 30, "queue.name");
  REQUIRE(d.has_value());
  CHECK(d->task.id == t.id);
  CHECK(d->task.kind == "repoll");
  CHECK(d->task.subject_id == -42);
  CHECK(d->task.payload == t.payload);
  CHECK(d->task.due == At(10));
  REQUIRE(s.queue()
              .Retry("queue.name", d->receipt, At(20) + absl::Nanoseconds(1),
                     "why\nnot")
              .value());
  std::vector<Task> pending = s.queue().ListPending("queue.name", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].due == At(20) + absl::Nanoseconds(1));
  CHECK(pending[0].last_error == "why\nnot");
  CHECK(pending[0].payload == t.payload);
}

TEST_CASE("QueueStore: Dequeue with visibility <= 0 is kInvalidArgument",
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  CHECK(s.queue().Dequeue("q", At(10), absl::ZeroDuration()).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.queue().Stats("q").value().pending == 1);
}

TEST_CASE(
    "QueueStore: Enqueue starts attempts at 0 and keeps last_error as "
    "given",
    "[conformance]") {
  StoreSet s;
  Task t = MakeTask("t", 10);
  t.attempts = 5;
  t.last_error = "from an earlier life";
  REQUIRE(s.queue().Enqueue("q", t).ok());
  std::vector<Task> pending = s.queue().ListPending("q", 0).value();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].attempts == 0);
  CHECK(pending[0].last_error == "from an earlier life");
  std::optional<Delivery> d = Pop(s, 10);
  REQUIRE(d.has_value());
  CHECK(d->task.attempts == 1);
  CHECK(d->task.last_error == "from an earlier life");
}

TEST_CASE("QueueStore: bad input is refused with the words every store uses",
          "[conformance]") {
  // store/checks.h: the store's name, then the same words in every store.
  StoreSet s;
  CheckRefusal(s.queue().Enqueue("", MakeTask("t", 1)),
               ": queue name and task id must not be empty");
  CheckRefusal(s.queue().Enqueue("q", MakeTask("", 1)),
               ": queue name and task id must not be empty");
  CheckRefusal(s.queue().Dequeue("q", At(1), absl::ZeroDuration()).status(),
               ": visibility must be > 0");
  CheckRefusal(s.queue().Dequeue("q", At(1), -absl::Seconds(1)).status(),
               ": visibility must be > 0");
}

}  // namespace
}  // namespace converge::conformance
