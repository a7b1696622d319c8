// Conformance: the bulk calls a batch makes for all of its actions at once
// (LookupOpenMany, GetActions, PrepareJoins, ApplyMany, ReleaseMany,
// EnqueueMany). Each answers as the one-by-one calls would; the cases run
// against every store (the defaults on memory and Redis, the multi-row
// statements on MySQL, one transaction on SQLite).

#include "absl/strings/str_cat.h"
#include "conformance.h"

namespace converge::conformance {
namespace {

TEST_CASE("InstanceRepo: LookupOpenMany answers as LookupOpen, in order",
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("E", 2, {})).ok());
  ActionRecord rec = Rec(3);
  rec.decision.converge_id = 1;
  REQUIRE(s.repo().Join(rec, JoinRel(1, 3, ConvergeStatus::kExecuted)).ok());
  REQUIRE(s.repo().End(2, At(150)).value());
  const std::vector<std::string> dims = {"E", "D", "missing", "D"};
  absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> many =
      s.repo().LookupOpenMany(dims);
  REQUIRE(many.ok());
  REQUIRE(many->size() == 4);
  CHECK_FALSE((*many)[0].has_value());  // ended
  REQUIRE((*many)[1].has_value());
  CHECK((*many)[1]->id == 1);
  CHECK((*many)[1]->create_time == At(100));
  if ((*many)[1]->executed_count >= 0) CHECK((*many)[1]->executed_count == 2);
  CHECK_FALSE((*many)[2].has_value());
  REQUIRE((*many)[3].has_value());
  CHECK((*many)[3]->id == 1);
  for (size_t i = 0; i < dims.size(); ++i) {
    std::optional<OpenInstanceRef> one = s.repo().LookupOpen(dims[i]).value();
    CHECK(one.has_value() == (*many)[i].has_value());
    if (one.has_value()) CHECK(one->id == (*many)[i]->id);
  }
  CHECK(s.repo().LookupOpenMany({}).value().empty());
}

TEST_CASE(
    "InstanceRepo: GetInstances answers as GetInstance, in order; an "
    "unknown id is kNotFound",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("E", 2)).ok());
  REQUIRE(s.repo().End(1, At(150)).value());
  absl::StatusOr<std::vector<ConvergeInstance>> many =
      s.repo().GetInstances({2, 1, 2});
  REQUIRE(many.ok());
  REQUIRE(many->size() == 3);
  CHECK((*many)[0].id == 2);
  CHECK((*many)[0].dimension == "E");
  CHECK_FALSE((*many)[0].end_time.has_value());
  CHECK((*many)[1].id == 1);
  CHECK((*many)[1].end_time == std::optional<absl::Time>(At(150)));
  CHECK((*many)[1].converge_config.count ==
        s.repo().GetInstance(1).value().converge_config.count);
  CHECK((*many)[2].description == "desc");
  CHECK(s.repo().GetInstances({2, 99}).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(s.repo().GetInstances({}).value().empty());
}

TEST_CASE("InstanceRepo: GetActions answers as GetAction, in order",
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().RecordDecision(Rec(5, Outcome::kExecute)).ok());
  REQUIRE(s.repo().Create(ActionCreate("D", 6)).ok());
  const std::vector<int64_t> ids = {6, 7, 5, 6};
  absl::StatusOr<std::vector<std::optional<ActionRecord>>> many =
      s.repo().GetActions(ids);
  REQUIRE(many.ok());
  REQUIRE(many->size() == 4);
  REQUIRE((*many)[0].has_value());
  CHECK((*many)[0]->decision.primary);
  CHECK((*many)[0]->decision.converge_id == std::optional<int64_t>(1));
  CHECK_FALSE((*many)[1].has_value());
  REQUIRE((*many)[2].has_value());
  CHECK((*many)[2]->decision.reason == "reason 5");
  CHECK((*many)[2]->create_time == At(100));
  CHECK_FALSE((*many)[2]->decision.converge_id.has_value());
  REQUIRE((*many)[3].has_value());
  CHECK((*many)[3]->id == 6);
  CHECK(s.repo().GetActions({}).value().empty());
}

TEST_CASE(
    "InstanceRepo: inside a batch, joins, decisions and creations after "
    "GetActions and PrepareJoins answer as without them",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("E", 2)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(9)).ok());  // decided before
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  REQUIRE(s.repo().End(2, At(150)).value());  // E ends in the batch
  REQUIRE(s.repo().GetActions({10, 11, 12, 9, 13}).ok());
  const std::vector<std::pair<int64_t, int64_t>> joins = {
      {10, 1}, {11, 2}, {9, 1}};
  REQUIRE(s.repo().PrepareJoins(joins).ok());
  auto join = [&](int64_t id, int64_t instance) {
    ActionRecord r = Rec(id, Outcome::kSkip);
    r.decision.converge_id = instance;
    return s.repo().Join(r, JoinRel(instance, id));
  };
  absl::StatusOr<RecordResult> j10 = join(10, 1);
  REQUIRE(j10.ok());
  CHECK(j10->inserted);
  // An instance the batch ended is refused; a decided action answers its
  // stored decision.
  CHECK(join(11, 2).status().code() == absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<RecordResult> j9 = join(9, 1);
  REQUIRE(j9.ok());
  CHECK_FALSE(j9->inserted);
  CHECK(j9->record.decision.reason == "reason 9");
  // A decision below the threshold, twice: the second answers the first.
  absl::StatusOr<RecordResult> r12 = s.repo().RecordDecision(Rec(12));
  REQUIRE(r12.ok());
  CHECK(r12->inserted);
  absl::StatusOr<RecordResult> again =
      s.repo().RecordDecision(Rec(12, Outcome::kSkip));
  REQUIRE(again.ok());
  CHECK_FALSE(again->inserted);
  CHECK(again->record.decision.outcome == Outcome::kExecute);
  // A creation by an action found undecided, with candidates: 12 (decided
  // execute, unrelated) is attached, 10 (related) and 11 (undecided) not.
  absl::StatusOr<CreateResult> f =
      s.repo().Create(ActionCreate("F", 13, {12, 10, 11}));
  REQUIRE(f.ok());
  CHECK(f->attached == std::vector<int64_t>{12});
  // Read back inside the batch.
  CHECK(s.repo().CountExecuted(f->instance.id).value() == 2);
  CHECK(s.repo().GetAction(13).value().value().decision.primary);
  CHECK(s.repo().Relations(1).value().size() == 2);
  CHECK(s.repo().Unrelated({10, 11, 12, 13}, ConvergeType::kAction).value() ==
        std::vector<int64_t>{11});
  // A second creation of F's dimension is refused.
  CHECK(s.repo().Create(ActionCreate("F", 14)).status().code() ==
        absl::StatusCode::kAlreadyExists);
  if (*batch != nullptr) REQUIRE((*batch)->Commit().ok());
  batch->reset();
  CHECK(s.repo().GetAction(10).value().value().decision.converge_id ==
        std::optional<int64_t>(1));
  CHECK_FALSE(s.repo().GetAction(11).value().has_value());
  CHECK(s.repo().GetAction(12).value().has_value());
  CHECK_FALSE(s.repo().GetAction(14).value().has_value());
  std::vector<ConvergeRelation> rels =
      s.repo().Relations(f->instance.id).value();
  REQUIRE(rels.size() == 2);
  CHECK(rels[0].related_id == 13);
  CHECK(rels[0].is_primary);
  CHECK(rels[0].alerts == std::vector<std::string>{"alert-13"});
  CHECK(rels[1].related_id == 12);
  CHECK(rels[1].converge_status == ConvergeStatus::kExecuted);
}

TEST_CASE("WindowStore: ApplyMany applies each request as Apply would",
          "[conformance]") {
  StoreSet s;
  // A lease another token holds, and a live counter.
  REQUIRE(s.lock().TryAcquire("busy", "other", absl::Seconds(30)).value());
  REQUIRE(s.window().Increment("counter", absl::Seconds(60), 5).ok());
  // An old member of k2, trimmed by its request.
  Add(s, {Entry("k2", "action_1", 10)});
  std::vector<WindowRequest> reqs(3);
  reqs[0].add = {Entry("k1", "action_2", 100), Entry("k1", "action_3", 120)};
  reqs[0].key_ttl = absl::Seconds(600);
  reqs[0].lease = LeaseRequest{"L1", "t1", absl::Seconds(30)};
  reqs[0].read_groups = {{"k1"}, {"k0", "k1"}};
  reqs[0].start = At(110);
  reqs[0].end = At(200);
  reqs[1].add = {Entry("k2", "action_4", 150)};
  reqs[1].trim_before = At(50);
  reqs[1].lease = LeaseRequest{"busy", "t2", absl::Seconds(30)};
  reqs[1].read_groups = {{"k2"}};
  reqs[2].add = {Entry("k3", "action_5", 100)};
  reqs[2].lease = LeaseRequest{"L3", "t3", absl::Seconds(30)};
  reqs[2].read_groups = {{"k2"}, {"k3"}};
  absl::StatusOr<std::vector<WindowResult>> r = s.window().ApplyMany(reqs);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->size() == 3);
  CHECK((*r)[0].lease_acquired);
  REQUIRE((*r)[0].groups.size() == 2);
  CHECK(Sorted((*r)[0].groups[0]) == Members{"action_3"});
  CHECK(Sorted((*r)[0].groups[1]) == Members{"action_3"});
  // The busy lease: refused, nothing read, the adds made.
  CHECK_FALSE((*r)[1].lease_acquired);
  CHECK((*r)[1].groups.empty());
  CHECK((*r)[2].lease_acquired);
  REQUIRE((*r)[2].groups.size() == 2);
  CHECK(Sorted((*r)[2].groups[0]) == Members{"action_4"});  // 1 was trimmed
  CHECK(Sorted((*r)[2].groups[1]) == Members{"action_5"});
  CHECK(s.window().Size("k2").value() == 1);
  // The leases taken are held by their tokens.
  CHECK_FALSE(s.lock().TryAcquire("L1", "x", absl::Seconds(30)).value());
  CHECK(s.lock().Release("L3", "t3").value());
  CHECK(s.lock().Release("busy", "other").value());
  // A live counter among the adds refuses the call.
  std::vector<WindowRequest> bad(2);
  bad[0].add = {Entry("k9", "action_9", 100)};
  bad[1].add = {Entry("counter", "action_8", 100)};
  CHECK(s.window().ApplyMany(bad).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(s.window().CounterValue("counter").value() == 1);
  CHECK(s.window().ApplyMany({}).value().empty());
  // Keys expire after their request's ttl (k1), or never (k3).
  s.clock.Advance(absl::Seconds(601));
  CHECK(s.window().Size("k1").value() == 0);
  CHECK(s.window().Size("k3").value() == 1);
}

TEST_CASE(
    "WindowStore: ApplyMany over many requests, a dead key starting afresh",
    "[conformance]") {
  StoreSet s;
  // "old" dies (its ttl passes) with a member in it.
  Add(s, {Entry("old", "action_1", 10)}, absl::Seconds(5));
  s.clock.Advance(absl::Seconds(6));
  std::vector<WindowRequest> reqs;
  for (int i = 0; i < 1200; ++i) {  // more than a statement's chunk
    WindowRequest& r = reqs.emplace_back();
    const std::string key = i == 0 ? "old" : absl::StrCat("d", i);
    r.add = {Entry(key, absl::StrCat("action_", 100 + i), 100)};
    r.key_ttl = absl::Seconds(600);
    r.lease = LeaseRequest{absl::StrCat("lease ", i), absl::StrCat("t", i),
                           absl::Seconds(30)};
    r.read_groups = {{key}};
  }
  absl::StatusOr<std::vector<WindowResult>> r = s.window().ApplyMany(reqs);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->size() == reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    INFO(i);
    CHECK((*r)[i].lease_acquired);
    REQUIRE((*r)[i].groups.size() == 1);
    CHECK((*r)[i].groups[0] ==
          std::vector<std::string>{absl::StrCat("action_", 100 + i)});
  }
  CHECK(s.window().Size("old").value() == 1);
  CHECK(s.window().Size("d1199").value() == 1);
  std::vector<std::pair<std::string, std::string>> leases;
  for (size_t i = 0; i < reqs.size(); ++i) {
    leases.emplace_back(reqs[i].lease->key, reqs[i].lease->token);
  }
  CHECK(s.lock().ReleaseMany(leases).value() == reqs.size());
  CHECK(s.lock().ListLeases("", 0).value().empty());
}

TEST_CASE(
    "LockStore: ReleaseMany releases the leases its tokens hold and counts "
    "them",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.lock().TryAcquire("A", "a", absl::Seconds(10)).value());
  REQUIRE(s.lock().TryAcquire("B", "b", absl::Seconds(10)).value());
  REQUIRE(s.lock().TryAcquire("C", "c", absl::Seconds(10)).value());
  // A by its token, B by another token (kept), D free, C's token for A.
  const std::vector<std::pair<std::string, std::string>> leases = {
      {"A", "a"}, {"B", "x"}, {"D", "d"}, {"A", "c"}};
  CHECK(s.lock().ReleaseMany(leases).value() == 1);
  CHECK(s.lock().TryAcquire("A", "z", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().TryAcquire("B", "z", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock().TryAcquire("C", "z", absl::Seconds(10)).value());
  CHECK(s.lock().ReleaseMany({}).value() == 0);
  const std::vector<std::pair<std::string, std::string>> empty_key = {
      {"", "a"}};
  CHECK(s.lock().ReleaseMany(empty_key).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE(
    "QueueStore: EnqueueMany schedules each task, leaving queued ones as "
    "they are",
    "[conformance]") {
  StoreSet s;
  Task first = MakeTask("t1", 100);
  first.payload = "first";
  REQUIRE(s.queue().Enqueue("q", first).ok());
  Task again = MakeTask("t1", 50);
  again.payload = "again";
  const std::vector<Task> tasks = {MakeTask("t2", 120), again,
                                   MakeTask("t3", 110), MakeTask("t2", 10)};
  REQUIRE(s.queue().EnqueueMany("q", tasks).ok());
  QueueStats stats = s.queue().Stats("q").value();
  CHECK(stats.pending == 3);
  // Due order: t1 (100, as first enqueued), t3, t2 (120).
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    std::optional<Delivery> d =
        s.queue().Dequeue("q", At(500), absl::Seconds(30)).value();
    REQUIRE(d.has_value());
    order.push_back(d->task.id);
    if (d->task.id == "t1") CHECK(d->task.payload == "first");
  }
  CHECK(order == std::vector<std::string>{"t1", "t3", "t2"});
  // Large payloads (more than a MySQL statement's share of them).
  std::vector<Task> large;
  for (int i = 0; i < 3; ++i) {
    Task& t = large.emplace_back(MakeTask(absl::StrCat("big", i), 600));
    t.payload = std::string(600 * 1024, static_cast<char>('a' + i));
  }
  REQUIRE(s.queue().EnqueueMany("big", large).ok());
  CHECK(s.queue().Stats("big").value().pending == 3);
  for (int i = 0; i < 3; ++i) {
    std::optional<Delivery> d =
        s.queue().Dequeue("big", At(700), absl::Seconds(30)).value();
    REQUIRE(d.has_value());
    CHECK(d->task.payload.size() == 600 * 1024);
    CHECK(d->task.payload[0] == d->task.id.back() - '0' + 'a');
  }
  const std::vector<Task> bad = {MakeTask("t4", 100), MakeTask("", 100)};
  CHECK(s.queue().EnqueueMany("q", bad).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.queue().EnqueueMany("q", {}).ok());
}

}  // namespace
}  // namespace converge::conformance
