// Conformance: InstanceRepo (converge/store/instance_repo.h). Every contract
// sentence of the header has a case here; the cases run against every store.

#include "conformance.h"

namespace converge::conformance {
namespace {

TEST_CASE("InstanceRepo: GetAction of an undecided action is nullopt",
          "[conformance]") {
  StoreSet s;
  absl::StatusOr<std::optional<ActionRecord>> r = s.repo().GetAction(1);
  REQUIRE(r.ok());
  CHECK_FALSE(r->has_value());
}

TEST_CASE(
    "InstanceRepo: RecordDecision stores once, then returns the first "
    "record",
    "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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

TEST_CASE("InstanceRepo: EndVisible ends a visible instance only",
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("A", 1)).ok());  // 1
  REQUIRE(s.repo().Create(ActionCreate("B", 2)).ok());  // 2
  REQUIRE(s.repo().SetVisible(2, false).ok());
  // Visible: ended, its dimension rewritten, as End does.
  CHECK(s.repo().EndVisible(1, At(100)).value());
  CHECK(s.repo().GetInstance(1).value().dimension == "A fixed at 100 #1");
  CHECK_FALSE(s.repo().EndVisible(1, At(200)).value());  // ended already
  // Hidden: left open, D still taken.
  CHECK_FALSE(s.repo().EndVisible(2, At(100)).value());
  ConvergeInstance hidden = s.repo().GetInstance(2).value();
  CHECK(hidden.is_open());
  CHECK(hidden.dimension == "B");
  CHECK(s.repo().FindOpen("B").value().has_value());
  // End still ends it (its second level's end).
  CHECK(s.repo().End(2, At(300)).value());
  CHECK(s.repo().EndVisible(99, At(1)).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE(
    "InstanceRepo: in a batch, an instance EndVisible left open (hidden) "
    "still takes joins",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("H", 1)).ok());  // 1
  REQUIRE(s.repo().SetVisible(1, false).ok());
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  CHECK_FALSE(s.repo().EndVisible(1, At(100)).value());
  ActionRecord rec = Rec(2, Outcome::kSkip);
  rec.decision.converge_id = 1;
  absl::StatusOr<RecordResult> joined = s.repo().Join(rec, JoinRel(1, 2));
  INFO(joined.status().ToString());
  CHECK(joined.ok());
  if (*batch != nullptr) REQUIRE((*batch)->Commit().ok());
  CHECK(s.repo().GetInstance(1).value().is_open());
  CHECK(s.repo().GetAction(2).value().has_value());
}

TEST_CASE(
    "InstanceRepo: ConvergeOf answers the newest link, and the older one "
    "once the newest is purged",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("F", 1)).ok());    // 1
  REQUIRE(s.repo().Create(ConvergeCreate("S", 1)).ok());  // 2
  REQUIRE(s.repo().Create(ConvergeCreate("T", 1)).ok());  // 3
  CHECK(s.repo().ConvergeOf(1).value() == std::optional<int64_t>(3));
  REQUIRE(s.repo().End(3, At(50)).value());
  REQUIRE(s.repo().End(2, At(300)).value());
  PurgeResult purged = s.repo().Purge(At(100), 0).value();
  CHECK(purged.instances == 1);
  CHECK(s.repo().ConvergeOf(1).value() == std::optional<int64_t>(2));
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{1}, ConvergeType::kConverge)
            .value()
            .empty());
}

TEST_CASE("InstanceRepo: GetInstance of an unknown id is kNotFound",
          "[conformance]") {
  StoreSet s;
  CHECK(s.repo().GetInstance(1).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("InstanceRepo: Join stores the decision and the relation once",
          "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  // The only way to make such a relation through the interface is an
  // action-type Create without a creator record (upstream data can carry
  // such relations).
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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
    "[conformance]") {
  StoreSet s;
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

TEST_CASE("InstanceRepo: Unrelated keeps the order given", "[conformance]") {
  StoreSet s;
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

TEST_CASE("InstanceRepo: SetActionStatus", "[conformance]") {
  StoreSet s;
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
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("InstanceRepo: SetVisible", "[conformance]") {
  StoreSet s;
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

TEST_CASE("InstanceRepo: ListOpen is ordered by id with a limit",
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("InstanceRepo: Relations are ordered by relation id",
          "[conformance]") {
  StoreSet s;
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

TEST_CASE("InstanceRepo: RelationsAfter pages Relations by relation id",
          "[conformance]") {
  StoreSet s;
  CHECK(s.repo().RelationsAfter(1, 0, 10).value().empty());  // unknown
  REQUIRE(s.repo().Create(ActionCreate("A", 1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("B", 2)).ok());
  for (int64_t id = 3; id <= 8; ++id) {
    REQUIRE(s.repo()
                .Join(Rec(id, Outcome::kSkip), JoinRel(id % 2 == 1 ? 1 : 2, id))
                .ok());
  }
  const std::vector<ConvergeRelation> all = s.repo().Relations(1).value();
  REQUIRE(all.size() == 4);  // 1, 3, 5, 7
  // Pages of 3 from the start, then from the cursor: the same relations,
  // none twice, in order.
  std::vector<ConvergeRelation> p1 =
      s.repo().RelationsAfter(1, all[0].id - 1, 3).value();
  REQUIRE(p1.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(p1[i].id == all[i].id);
    CHECK(p1[i].related_id == all[i].related_id);
    CHECK(p1[i].converge_id == 1);
    CHECK(p1[i].is_primary == all[i].is_primary);
    CHECK(p1[i].converge_status == all[i].converge_status);
    CHECK(p1[i].alerts == all[i].alerts);
  }
  std::vector<ConvergeRelation> p2 =
      s.repo().RelationsAfter(1, p1.back().id, 3).value();
  REQUIRE(p2.size() == 1);
  CHECK(p2[0].related_id == 7);
  CHECK(s.repo().RelationsAfter(1, p2.back().id, 3).value().empty());
  // limit 0 is all after the cursor; another instance's are never listed.
  std::vector<ConvergeRelation> rest =
      s.repo().RelationsAfter(1, all[1].id, 0).value();
  REQUIRE(rest.size() == 2);
  CHECK(rest[0].related_id == 5);
  CHECK(rest[1].related_id == 7);
  const std::vector<ConvergeRelation> other =
      s.repo().RelationsAfter(2, 0, 0).value();
  CHECK(other.size() == 4);  // 2, 4, 6, 8
  for (const ConvergeRelation& r : other) {
    CHECK(r.converge_id == 2);
    CHECK(r.related_id % 2 == 0);
  }
}

// ---- additions beyond the memory store's own tests ----

TEST_CASE("InstanceRepo: an instance round-trips every field",
          "[conformance]") {
  StoreSet s;
  CreateRequest req = ActionCreate("!sha1#" + std::string(40, 'f'), 1);
  ConvergeInstance& in = req.instance;
  in.converge_func = ConvergeFunction::kCollect;
  in.bk_biz_id = -7;
  in.description = "\xe6\x94\xb6\xe6\x95\x9b: \"quoted\"\n";
  in.content = "{\"context\": [1, 2]}";
  in.create_time = At(100) + absl::Nanoseconds(123456789);
  in.is_visible = false;
  in.window_seconds = 7200;
  ConvergeConfig& c = in.converge_config;
  c.is_enabled = true;
  c.converge_func = ConvergeFunction::kCollect;
  c.timedelta = 120;
  c.max_timedelta = 600;
  c.count = 3;
  c.condition = {Condition{"alert_info", {Value("self")}},
                 Condition{"notice_way", {Value("mail"), Value("sms")}}};
  c.need_biz_converge = false;
  auto sub = std::make_shared<ConvergeConfig>();
  sub->is_enabled = true;
  sub->converge_func = ConvergeFunction::kCollectAlarm;
  sub->timedelta = 120;
  sub->count = 5;
  sub->condition = {Condition{"bk_biz_id", {Value("self")}}};
  c.sub_converge_config = sub;
  c.description = "effective";
  c.context = "{\"a\":1}";
  in.converged_condition = {
      {"alert_info", {Value("10_1_abnormal_x")}},
      {"notice_way",
       {Value("mail"), Value(int64_t{2}), Value(true),
        Value(Value::List{Value("a"), Value()})}},
      {"raw", {Value("not UTF-8: \xff\xfe"), Value(2.5)}},
  };
  if (!testing::TestStoreCapabilities().any_bytes_in_text) {
    // Refused, writing nothing; the rest of the case with UTF-8 only.
    CHECK(s.repo().Create(req).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK_FALSE(s.repo().FindOpen(in.dimension).value().has_value());
    in.converged_condition["raw"] = {Value("UTF-8: \xe5\x91\x8a"), Value(2.5)};
  }
  REQUIRE(s.repo().Create(req).ok());

  auto check = [&](const ConvergeInstance& got) {
    CHECK(got.id == 1);
    CHECK(got.converge_type == ConvergeType::kAction);
    CHECK(got.converge_func == ConvergeFunction::kCollect);
    CHECK(got.bk_biz_id == -7);
    CHECK(got.dimension == in.dimension);
    CHECK(got.description == in.description);
    CHECK(got.content == in.content);
    CHECK(got.create_time ==
          (testing::TestStoreCapabilities().nanosecond_instance_times
               ? in.create_time
               : absl::FromUnixMicros(absl::ToUnixMicros(in.create_time))));
    CHECK(got.is_open());
    CHECK_FALSE(got.is_visible);
    CHECK(got.window_seconds == 7200);
    const ConvergeConfig& g = got.converge_config;
    CHECK(g.is_enabled);
    CHECK(g.converge_func == ConvergeFunction::kCollect);
    CHECK(g.timedelta == 120);
    CHECK(g.max_timedelta == 600);
    CHECK(g.count == 3);
    REQUIRE(g.condition.size() == 2);
    CHECK(g.condition[0].dimension == "alert_info");
    CHECK(g.condition[0].value == std::vector<Value>{Value("self")});
    CHECK(g.condition[1].dimension == "notice_way");
    CHECK(g.condition[1].value ==
          std::vector<Value>{Value("mail"), Value("sms")});
    CHECK_FALSE(g.need_biz_converge);
    REQUIRE(g.sub_converge_config != nullptr);
    CHECK(g.sub_converge_config->converge_func ==
          ConvergeFunction::kCollectAlarm);
    CHECK(g.sub_converge_config->count == 5);
    CHECK(g.sub_converge_config->timedelta == 120);
    REQUIRE(g.sub_converge_config->condition.size() == 1);
    CHECK(g.sub_converge_config->condition[0].dimension == "bk_biz_id");
    CHECK(g.description == "effective");
    CHECK(g.context == "{\"a\":1}");
    CHECK(got.converged_condition == in.converged_condition);
  };
  check(s.repo().GetInstance(1).value());
  check(s.repo().FindOpen(in.dimension).value().value());
  check(s.repo().ListOpen(0).value().at(0));
  check(s.repo().ListOpenAfter(0, 0).value().at(0));
}

TEST_CASE(
    "InstanceRepo: decisions round-trip every field, times to the "
    "nanosecond",
    "[conformance]") {
  StoreSet s;
  ActionRecord r = Rec(9, Outcome::kApproval);
  r.create_time = At(100) + absl::Nanoseconds(1);
  r.strategy_id = -3;
  r.execute_timeout = 0;
  r.status_time = At(101) + absl::Nanoseconds(999999999);
  r.decision.decided_at = At(102) + absl::Nanoseconds(7);
  r.decision.converge_id = 77;  // RecordDecision stores what it is given
  r.decision.primary = true;
  r.decision.reason = "\xe5\x8e\x9f\xe5\x9b\xa0 with 'quotes'";
  REQUIRE(s.repo().RecordDecision(r).value().inserted);
  std::optional<ActionRecord> got = s.repo().GetAction(9).value();
  REQUIRE(got.has_value());
  CHECK(got->id == 9);
  CHECK(got->create_time == r.create_time);
  CHECK(got->strategy_id == -3);
  CHECK(got->execute_timeout == 0);
  CHECK(got->status == ActionStatus::kWaiting);
  CHECK(got->status_time == r.status_time);
  CHECK(got->decision.action_id == 9);
  CHECK(got->decision.outcome == Outcome::kApproval);
  CHECK(got->decision.converge_id == std::optional<int64_t>(77));
  CHECK(got->decision.primary);
  CHECK(got->decision.decided_at == r.decision.decided_at);
  CHECK(got->decision.reason == r.decision.reason);
  CHECK_FALSE(got->decision.replayed);
}

TEST_CASE("InstanceRepo: a record whose ids disagree is kInvalidArgument",
          "[conformance]") {
  StoreSet s;
  ActionRecord bad = Rec(5);
  bad.decision.action_id = 6;
  CHECK(s.repo().RecordDecision(bad).status().code() ==
        absl::StatusCode::kInvalidArgument);
  ActionRecord zero = Rec(0);
  CHECK(s.repo().RecordDecision(zero).status().code() ==
        absl::StatusCode::kInvalidArgument);
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  CHECK(s.repo().Join(bad, JoinRel(1, 5)).status().code() ==
        absl::StatusCode::kInvalidArgument);
  // Join takes the action's own relation of type action.
  CHECK(s.repo().Join(Rec(5), JoinRel(1, 6)).status().code() ==
        absl::StatusCode::kInvalidArgument);
  ConvergeRelation typed = JoinRel(1, 5);
  typed.related_type = ConvergeType::kConverge;
  CHECK(s.repo().Join(Rec(5), typed).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(s.repo().GetAction(5).value().has_value());
  CHECK_FALSE(s.repo().GetAction(6).value().has_value());
  CHECK(s.repo().Relations(1).value().size() == 1);
}

TEST_CASE(
    "InstanceRepo: Create of an ended or dimensionless instance is "
    "kInvalidArgument",
    "[conformance]") {
  StoreSet s;
  CreateRequest ended = ActionCreate("D", 1);
  ended.instance.end_time = At(5);
  CHECK(s.repo().Create(ended).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.repo().Create(ActionCreate("", 1)).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CreateRequest bad_creator = ActionCreate("D", 1);
  bad_creator.creator->decision.action_id = 2;
  CHECK(s.repo().Create(bad_creator).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.repo().ListOpen(0).value().empty());
  CHECK_FALSE(s.repo().GetAction(1).value().has_value());
  CHECK(s.repo().Create(ActionCreate("D", 1)).value().instance.id == 1);
}

TEST_CASE(
    "InstanceRepo: LookupOpen gives id, create time and the executed "
    "count",
    "[conformance]") {
  StoreSet s;
  CHECK_FALSE(s.repo().LookupOpen("D").value().has_value());
  REQUIRE(s.repo().RecordDecision(Rec(2)).ok());
  REQUIRE(s.repo().Create(ActionCreate("D", 1, {2})).ok());
  REQUIRE(s.repo().Join(Rec(3, Outcome::kSkip), JoinRel(1, 3)).ok());
  std::optional<OpenInstanceRef> ref = s.repo().LookupOpen("D").value();
  REQUIRE(ref.has_value());
  CHECK(ref->id == 1);
  CHECK(ref->create_time == At(100));
  // -1: the backend does not count in the same query.
  CHECK((ref->executed_count == -1 || ref->executed_count == 2));
  CHECK(s.repo().CountExecuted(1).value() == 2);
  REQUIRE(s.repo().End(1, At(200)).value());
  CHECK_FALSE(s.repo().LookupOpen("D").value().has_value());
  CHECK_FALSE(s.repo().LookupOpen("D fixed at 200 #1").value().has_value());
}

TEST_CASE("InstanceRepo: ListOpenAfter is a cursor over open instances",
          "[conformance]") {
  StoreSet s;
  CHECK(s.repo().ListOpenAfter(0, 0).value().empty());
  int64_t creator = 100;
  for (const char* d : {"zz", "aa", "mm", "bb", "yy"}) {
    REQUIRE(s.repo().Create(ActionCreate(d, ++creator)).ok());
  }
  REQUIRE(s.repo().End(2, At(200)).value());
  CHECK(Ids(s.repo().ListOpenAfter(0, 0).value()) ==
        std::vector<int64_t>{1, 3, 4, 5});
  CHECK(Ids(s.repo().ListOpenAfter(1, 0).value()) ==
        std::vector<int64_t>{3, 4, 5});
  CHECK(Ids(s.repo().ListOpenAfter(1, 2).value()) ==
        std::vector<int64_t>{3, 4});
  CHECK(Ids(s.repo().ListOpenAfter(4, 2).value()) == std::vector<int64_t>{5});
  CHECK(s.repo().ListOpenAfter(5, 0).value().empty());
  CHECK(Ids(s.repo().ListOpenAfter(-10, 1).value()) == std::vector<int64_t>{1});
  // Paging through visits each open instance once.
  std::vector<int64_t> seen;
  int64_t cursor = 0;
  for (;;) {
    std::vector<ConvergeInstance> page =
        s.repo().ListOpenAfter(cursor, 2).value();
    if (page.empty()) break;
    for (const auto& i : page) seen.push_back(i.id);
    cursor = page.back().id;
  }
  CHECK(seen == std::vector<int64_t>{1, 3, 4, 5});
}

TEST_CASE("InstanceRepo: ListEndedAfter is a cursor over ended instances",
          "[conformance]") {
  StoreSet s;
  CHECK(s.repo().ListEndedAfter(0, 0).value().empty());
  int64_t creator = 100;
  for (const char* d : {"zz", "aa", "mm", "bb", "yy"}) {
    REQUIRE(s.repo().Create(ActionCreate(d, ++creator)).ok());
  }
  CHECK(s.repo().ListEndedAfter(0, 0).value().empty());
  REQUIRE(s.repo().End(4, At(200)).value());
  REQUIRE(s.repo().End(2, At(210)).value());
  REQUIRE(s.repo().End(5, At(220)).value());
  std::vector<ConvergeInstance> ended = s.repo().ListEndedAfter(0, 0).value();
  CHECK(Ids(ended) == std::vector<int64_t>{2, 4, 5});
  REQUIRE(ended.size() == 3);
  // As stored: the end time and the rewritten dimension.
  CHECK(ended[0].end_time == At(210));
  CHECK(ended[0].dimension.rfind("aa fixed at ", 0) == 0);
  CHECK(Ids(s.repo().ListEndedAfter(2, 0).value()) ==
        std::vector<int64_t>{4, 5});
  CHECK(Ids(s.repo().ListEndedAfter(0, 2).value()) ==
        std::vector<int64_t>{2, 4});
  CHECK(s.repo().ListEndedAfter(5, 0).value().empty());
  // Open instances are not listed; a purged one is gone.
  REQUIRE(s.repo().Purge(At(215), 0).ok());
  CHECK(Ids(s.repo().ListEndedAfter(0, 0).value()) == std::vector<int64_t>{5});
}

TEST_CASE("InstanceRepo: CountOpen counts open instances per type",
          "[conformance]") {
  StoreSet s;
  OpenCounts none = s.repo().CountOpen().value();
  CHECK(none.action == 0);
  CHECK(none.converge == 0);
  REQUIRE(s.repo().Create(ActionCreate("A", 1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("B", 2)).ok());
  REQUIRE(s.repo().Create(ActionCreate("C", 3)).ok());
  REQUIRE(s.repo().Create(ConvergeCreate("S", 1)).ok());
  OpenCounts counts = s.repo().CountOpen().value();
  CHECK(counts.action == 3);
  CHECK(counts.converge == 1);
  REQUIRE(s.repo().End(2, At(200)).value());
  REQUIRE(s.repo().End(4, At(200)).value());
  counts = s.repo().CountOpen().value();
  CHECK(counts.action == 2);
  CHECK(counts.converge == 0);
}

TEST_CASE(
    "InstanceRepo: Link relates first-level instances to an open "
    "second-level one and hides them",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("F1", 1)).ok());   // 1
  REQUIRE(s.repo().Create(ActionCreate("F2", 2)).ok());   // 2
  REQUIRE(s.repo().Create(ActionCreate("F3", 3)).ok());   // 3
  REQUIRE(s.repo().Create(ConvergeCreate("S", 1)).ok());  // 4
  CHECK_FALSE(s.repo().GetInstance(1).value().is_visible);

  const std::vector<ConvergeRelation> want = {LinkRel(4, 2), LinkRel(4, 1)};
  std::vector<ConvergeRelation> linked = s.repo().Link(4, want).value();
  // 1 already has a relation of type converge (the primary): left alone.
  REQUIRE(linked.size() == 1);
  CHECK(linked[0].id > 0);
  CHECK(linked[0].converge_id == 4);
  CHECK(linked[0].related_id == 2);
  CHECK(linked[0].related_type == ConvergeType::kConverge);
  CHECK_FALSE(linked[0].is_primary);
  CHECK(linked[0].converge_status == ConvergeStatus::kSkipped);
  CHECK_FALSE(s.repo().GetInstance(2).value().is_visible);
  CHECK(s.repo().GetInstance(3).value().is_visible);
  std::vector<ConvergeRelation> rels = s.repo().Relations(4).value();
  CHECK(RelatedIds(rels) == std::vector<int64_t>{1, 2});
  CHECK(rels[1].id == linked[0].id);
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{1, 2, 3}, ConvergeType::kConverge)
            .value() == std::vector<int64_t>{3});
  // ConvergeOf: the second-level instance of the primary and of a linked
  // one; none for one not linked, nor for an unknown id.
  CHECK(s.repo().ConvergeOf(1).value() == std::optional<int64_t>(4));
  CHECK(s.repo().ConvergeOf(2).value() == std::optional<int64_t>(4));
  CHECK(s.repo().ConvergeOf(3).value() == std::nullopt);
  CHECK(s.repo().ConvergeOf(99).value() == std::nullopt);

  // Linking again inserts nothing.
  CHECK(s.repo().Link(4, want).value().empty());
  CHECK(s.repo().Relations(4).value().size() == 2);
  // An empty span is fine.
  CHECK(s.repo().Link(4, {}).value().empty());

  // Unknown and ended instances.
  CHECK(s.repo().Link(99, {}).status().code() == absl::StatusCode::kNotFound);
  CHECK(s.repo()
            .Link(99, std::vector<ConvergeRelation>{LinkRel(99, 3)})
            .status()
            .code() == absl::StatusCode::kNotFound);
  REQUIRE(s.repo().End(4, At(300)).value());
  CHECK(s.repo()
            .Link(4, std::vector<ConvergeRelation>{LinkRel(4, 3)})
            .status()
            .code() == absl::StatusCode::kFailedPrecondition);
  CHECK(s.repo().GetInstance(3).value().is_visible);
  CHECK(s.repo().Relations(4).value().size() == 2);
}

TEST_CASE("InstanceRepo: Link and Create relate open first-level members only",
          "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("F1", 1)).ok());  // 1
  REQUIRE(s.repo().Create(ActionCreate("F2", 2)).ok());  // 2
  REQUIRE(s.repo().Create(ActionCreate("F3", 3)).ok());  // 3
  REQUIRE(s.repo().Create(ActionCreate("F4", 4)).ok());  // 4
  // F2 ends (its own summary) after the caller looked at it.
  REQUIRE(s.repo().End(2, At(100)).value());

  // Create: the ended candidate and an unknown one are left alone.
  CreateResult c = s.repo().Create(ConvergeCreate("S", 1, {2, 3, 99})).value();
  const int64_t sid = c.instance.id;  // 5
  CHECK(c.attached == std::vector<int64_t>{3});
  CHECK(RelatedIds(s.repo().Relations(sid).value()) ==
        std::vector<int64_t>{1, 3});
  CHECK(s.repo().GetInstance(2).value().is_visible);
  CHECK(s.repo().ConvergeOf(2).value() == std::nullopt);

  // Link: ended, unknown and second-level members are left alone.
  REQUIRE(s.repo().End(4, At(110)).value());
  REQUIRE(s.repo().Create(ActionCreate("F6", 6)).ok());  // 6
  const std::vector<ConvergeRelation> rels = {
      LinkRel(sid, 2), LinkRel(sid, 4), LinkRel(sid, 99), LinkRel(sid, sid),
      LinkRel(sid, 6)};
  std::vector<ConvergeRelation> linked = s.repo().Link(sid, rels).value();
  REQUIRE(linked.size() == 1);
  CHECK(linked[0].related_id == 6);
  CHECK(RelatedIds(s.repo().Relations(sid).value()) ==
        std::vector<int64_t>{1, 3, 6});
  CHECK(s.repo().GetInstance(4).value().is_visible);
  CHECK(s.repo().GetInstance(sid).value().is_visible);
  CHECK_FALSE(s.repo().GetInstance(6).value().is_visible);

  // Create with an ended, unknown or second-level primary: refused,
  // nothing written (the candidate stays visible and unrelated).
  REQUIRE(s.repo().Create(ActionCreate("F7", 7)).ok());  // 7
  const size_t before = s.repo().ListOpen(0).value().size();
  for (int64_t primary : {int64_t{2}, int64_t{99}, sid}) {
    absl::StatusOr<CreateResult> refused =
        s.repo().Create(ConvergeCreate("T", primary, {7}));
    INFO(primary);
    CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  }
  CHECK(s.repo().ListOpen(0).value().size() == before);
  CHECK(s.repo().GetInstance(7).value().is_visible);
  CHECK(s.repo().ConvergeOf(7).value() == std::nullopt);
  CHECK_FALSE(s.repo().FindOpen("T").value().has_value());
}

TEST_CASE(
    "InstanceRepo: Link takes relations of type converge to the "
    "instance it names",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("F1", 1)).ok());
  REQUIRE(s.repo().Create(ActionCreate("F2", 2)).ok());
  REQUIRE(s.repo().Create(ConvergeCreate("S", 1)).ok());  // 3
  ConvergeRelation action_typed = LinkRel(3, 2);
  action_typed.related_type = ConvergeType::kAction;
  CHECK(s.repo()
            .Link(3, std::vector<ConvergeRelation>{action_typed})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.repo()
            .Link(3, std::vector<ConvergeRelation>{LinkRel(1, 2)})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
  // All or nothing: one bad relation refuses the whole call.
  CHECK(s.repo()
            .Link(3, std::vector<ConvergeRelation>{LinkRel(3, 2), action_typed})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
  CHECK(s.repo().Relations(3).value().size() == 1);
  CHECK(s.repo().GetInstance(2).value().is_visible);
}

TEST_CASE(
    "InstanceRepo: Purge deletes ended instances with their relations, and "
    "old decisions of actions that belong to no stored instance",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D1", 1)).ok());  // 1
  REQUIRE(s.repo().Join(Rec(2, Outcome::kSkip), JoinRel(1, 2)).ok());
  REQUIRE(s.repo().Create(ActionCreate("D2", 3)).ok());  // 2
  REQUIRE(s.repo().Create(ActionCreate("D3", 4)).ok());  // 3 stays open
  REQUIRE(s.repo().Join(Rec(5, Outcome::kSkip), JoinRel(3, 5)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(6)).ok());  // decided at 100
  REQUIRE(s.repo().RecordDecision(Rec(7, Outcome::kExecute, 500)).ok());
  REQUIRE(s.repo().End(1, At(200)).value());
  REQUIRE(s.repo().End(2, At(300)).value());

  // Nothing ended strictly before 200. Of the decisions older than 200 only
  // 6's goes: 1, 2 and 3 are members of stored (ended) instances.
  PurgeResult r = s.repo().Purge(At(200), 0).value();
  CHECK(r.instances == 0);
  CHECK(r.relations == 0);
  CHECK(r.actions == 1);
  CHECK_FALSE(s.repo().GetAction(6).value().has_value());
  CHECK(s.repo().GetAction(1).value().has_value());
  CHECK(s.repo().Relations(1).value().size() == 2);

  // Instance 1 goes with its relations, and its members' decisions with it.
  r = s.repo().Purge(At(250), 0).value();
  CHECK(r.instances == 1);
  CHECK(r.relations == 2);
  CHECK(r.actions == 2);
  CHECK(s.repo().GetInstance(1).status().code() == absl::StatusCode::kNotFound);
  CHECK(s.repo().Relations(1).value().empty());
  CHECK_FALSE(s.repo().GetAction(1).value().has_value());
  CHECK_FALSE(s.repo().GetAction(2).value().has_value());
  CHECK(s.repo().GetInstance(2).ok());  // ended at 300, not before 250
  CHECK(s.repo().GetAction(3).value().has_value());
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{1, 2, 3}, ConvergeType::kAction)
            .value() == std::vector<int64_t>{1, 2});

  // The open instance and its members are never touched, whatever their age.
  r = s.repo().Purge(At(1e9), 0).value();
  CHECK(r.instances == 1);  // 2
  CHECK(r.relations == 1);
  CHECK(r.actions == 2);  // 3 and 7
  CHECK(Ids(s.repo().ListOpen(0).value()) == std::vector<int64_t>{3});
  CHECK(s.repo().Relations(3).value().size() == 2);
  CHECK(s.repo().GetAction(4).value().has_value());
  CHECK(s.repo().GetAction(5).value().has_value());
  CHECK_FALSE(s.repo().GetAction(7).value().has_value());
  // A forgotten decision is decided anew.
  CHECK(s.repo().RecordDecision(Rec(6, Outcome::kSkip)).value().inserted);
  CHECK(s.repo().Create(ActionCreate("D9", 9)).value().instance.id == 4);
}

TEST_CASE("InstanceRepo: Purge keeps a decision whose instance is stored",
          "[conformance]") {
  // A decision that names an instance without being related to it (as
  // RecordDecision may store) stays while that instance is stored.
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  ActionRecord r = Rec(2, Outcome::kExecute);
  r.decision.converge_id = 1;
  REQUIRE(s.repo().RecordDecision(r).ok());
  REQUIRE(s.repo().End(1, At(300)).value());
  CHECK(s.repo().Purge(At(200), 0).value().actions == 0);
  CHECK(s.repo().GetAction(2).value().has_value());
  PurgeResult p = s.repo().Purge(At(400), 0).value();
  CHECK(p.instances == 1);
  CHECK(p.actions == 2);
  CHECK_FALSE(s.repo().GetAction(2).value().has_value());
}

TEST_CASE("InstanceRepo: Purge honours the limit", "[conformance]") {
  StoreSet s;
  for (int64_t i = 1; i <= 5; ++i) {
    REQUIRE(s.repo().Create(ActionCreate("D" + std::to_string(i), i)).ok());
    REQUIRE(s.repo().End(i, At(200)).value());
  }
  for (int64_t i = 6; i <= 10; ++i)
    REQUIRE(s.repo().RecordDecision(Rec(i)).ok());
  int64_t instances = 0, actions = 0;
  for (int round = 0; round < 10; ++round) {
    PurgeResult r = s.repo().Purge(At(300), 2).value();
    CHECK(r.instances <= 2);
    CHECK(r.actions <= 2);
    CHECK(r.relations == r.instances);
    instances += r.instances;
    actions += r.actions;
    if (r.instances == 0 && r.actions == 0) break;
  }
  CHECK(instances == 5);
  CHECK(actions == 10);
  CHECK(s.repo().Purge(At(300), 0).value().instances == 0);
}

TEST_CASE("InstanceRepo: relation alerts round-trip", "[conformance]") {
  StoreSet s;
  std::vector<std::string> alerts = {"",
                                     "a",
                                     std::string(254, 'x'),
                                     std::string(70000, 'z'),
                                     std::string("nul\0byte", 8),
                                     "\"quoted\" \\ /",
                                     "\xe5\x91\x8a\xe8\xad\xa6"};
  CreateRequest req = ActionCreate("D", 7);
  req.primary.alerts = alerts;
  REQUIRE(s.repo().Create(req).ok());
  ConvergeRelation rel = JoinRel(1, 8);
  rel.alerts = {};
  REQUIRE(s.repo().Join(Rec(8, Outcome::kSkip), rel).ok());
  std::vector<ConvergeRelation> rels = s.repo().Relations(1).value();
  REQUIRE(rels.size() == 2);
  CHECK(rels[0].alerts == alerts);
  CHECK(rels[1].alerts.empty());

  // Any bytes, not only UTF-8 (or a clear refusal that writes nothing).
  std::vector<std::string> odd = {"\xff\x01", "\xc3"};
  rel = JoinRel(1, 9);
  rel.alerts = odd;
  if (!testing::TestStoreCapabilities().any_bytes_in_text) {
    CHECK(s.repo().Join(Rec(9, Outcome::kSkip), rel).status().code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK_FALSE(s.repo().GetAction(9).value().has_value());
    CHECK(s.repo().Relations(1).value().size() == 2);
    return;
  }
  REQUIRE(s.repo().Join(Rec(9, Outcome::kSkip), rel).ok());
  CHECK(s.repo().Relations(1).value().at(2).alerts == odd);
}

TEST_CASE("InstanceRepo: dimensions are matched exactly", "[conformance]") {
  StoreSet s;
  const std::string lower = "!sha1#" + std::string(40, 'a');
  const std::string upper = "!sha1#" + std::string(40, 'A');
  REQUIRE(s.repo().Create(ActionCreate(lower, 1)).ok());
  CHECK_FALSE(s.repo().FindOpen(upper).value().has_value());
  CHECK_FALSE(s.repo().FindOpen(lower + " ").value().has_value());
  REQUIRE(s.repo().Create(ActionCreate(upper, 2)).ok());
  CHECK(s.repo().LookupOpen(upper).value()->id == 2);
  CHECK(s.repo().LookupOpen(lower).value()->id == 1);
  CHECK(s.repo().CountOpen().value().action == 2);
}

TEST_CASE(
    "InstanceRepo: Create ignores the ids it is given and fills in the new "
    "instance's",
    "[conformance]") {
  StoreSet s;
  CreateRequest req = ActionCreate("D", 5);
  req.instance.id = 42;
  req.primary.converge_id = 43;
  req.creator->decision.converge_id = 44;
  absl::StatusOr<CreateResult> c = s.repo().Create(req);
  REQUIRE(c.ok());
  CHECK(c->instance.id == 1);
  CHECK(s.repo().GetInstance(1).value().dimension == "D");
  CHECK(s.repo().GetInstance(42).status().code() ==
        absl::StatusCode::kNotFound);
  std::vector<ConvergeRelation> rels = s.repo().Relations(1).value();
  REQUIRE(rels.size() == 1);
  CHECK(rels[0].converge_id == 1);
  CHECK(s.repo().Relations(43).value().empty());
  CHECK(s.repo().GetAction(5).value()->decision.converge_id ==
        std::optional<int64_t>(1));
  // The next id follows the repo's, not the one given.
  CreateRequest next = ActionCreate("E", 6);
  next.instance.id = 7;
  CHECK(s.repo().Create(next).value().instance.id == 2);
}

TEST_CASE(
    "InstanceRepo: a second-level Create leaves a candidate that has a "
    "relation of type converge alone",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("F1", 1)).ok());        // 1
  REQUIRE(s.repo().Create(ActionCreate("F2", 2)).ok());        // 2
  REQUIRE(s.repo().Create(ActionCreate("F3", 3)).ok());        // 3
  REQUIRE(s.repo().Create(ConvergeCreate("S", 1, {2})).ok());  // 4
  REQUIRE(s.repo().SetVisible(1, true).ok());
  REQUIRE(s.repo().SetVisible(2, true).ok());
  // 1 (S's primary) and 2 (attached to S) are related to S already.
  absl::StatusOr<CreateResult> c =
      s.repo().Create(ConvergeCreate("T", 3, {1, 2}));
  REQUIRE(c.ok());
  CHECK(c->attached.empty());
  CHECK(RelatedIds(s.repo().Relations(c->instance.id).value()) ==
        std::vector<int64_t>{3});
  CHECK(RelatedIds(s.repo().Relations(4).value()) ==
        std::vector<int64_t>{1, 2});
  // Not hidden either: only the primary member and attached ones are.
  CHECK(s.repo().GetInstance(1).value().is_visible);
  CHECK(s.repo().GetInstance(2).value().is_visible);
  CHECK_FALSE(s.repo().GetInstance(3).value().is_visible);
}

TEST_CASE(
    "InstanceRepo: Link leaves a member that has a relation of type "
    "converge alone, visibility included",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("F1", 1)).ok());   // 1
  REQUIRE(s.repo().Create(ActionCreate("F2", 2)).ok());   // 2
  REQUIRE(s.repo().Create(ConvergeCreate("S", 1)).ok());  // 3
  REQUIRE(s.repo().Create(ConvergeCreate("T", 2)).ok());  // 4
  REQUIRE(s.repo().SetVisible(1, true).ok());
  CHECK(s.repo()
            .Link(4, std::vector<ConvergeRelation>{LinkRel(4, 1)})
            .value()
            .empty());
  CHECK(s.repo().GetInstance(1).value().is_visible);
  CHECK(RelatedIds(s.repo().Relations(4).value()) == std::vector<int64_t>{2});
  CHECK(RelatedIds(s.repo().Relations(3).value()) == std::vector<int64_t>{1});
}

TEST_CASE(
    "InstanceRepo: Join of an action decided on its own returns that "
    "decision and writes no relation",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());  // 1
  REQUIRE(s.repo().Create(ActionCreate("E", 2)).ok());  // 2
  REQUIRE(s.repo().End(2, At(200)).value());
  REQUIRE(s.repo().RecordDecision(Rec(3, Outcome::kSkip)).ok());
  absl::StatusOr<RecordResult> j =
      s.repo().Join(Rec(3), JoinRel(1, 3, ConvergeStatus::kExecuted));
  REQUIRE(j.ok());
  CHECK_FALSE(j->inserted);
  CHECK(j->record.decision.outcome == Outcome::kSkip);
  CHECK_FALSE(j->record.decision.converge_id.has_value());
  CHECK(s.repo().Relations(1).value().size() == 1);
  CHECK(s.repo().CountExecuted(1).value() == 1);
  CHECK(s.repo()
            .Unrelated(std::vector<int64_t>{3}, ConvergeType::kAction)
            .value() == std::vector<int64_t>{3});
  // The stored decision is returned whatever the instance: ended or unknown.
  for (int64_t instance : {2, 99}) {
    INFO("instance " << instance);
    absl::StatusOr<RecordResult> r =
        s.repo().Join(Rec(3), JoinRel(instance, 3));
    REQUIRE(r.ok());
    CHECK_FALSE(r->inserted);
    CHECK(r->record.decision.outcome == Outcome::kSkip);
  }
  CHECK(s.repo().Relations(2).value().size() == 1);
}

TEST_CASE("InstanceRepo: Purge ages an action record by its decision time",
          "[conformance]") {
  // "action records decided before `before`": not created, not reported.
  StoreSet s;
  ActionRecord late = Rec(1, Outcome::kExecute, 100);
  late.decision.decided_at = At(500);
  ActionRecord early = Rec(2, Outcome::kExecute, 500);
  early.decision.decided_at = At(100);
  REQUIRE(s.repo().RecordDecision(late).ok());
  REQUIRE(s.repo().RecordDecision(early).ok());
  REQUIRE(s.repo().RecordDecision(Rec(3, Outcome::kExecute, 100)).ok());
  REQUIRE(s.repo().SetActionStatus(3, ActionStatus::kSuccess, At(900)).ok());
  PurgeResult r = s.repo().Purge(At(300), 0).value();
  CHECK(r.actions == 2);
  CHECK(s.repo().GetAction(1).value().has_value());
  CHECK_FALSE(s.repo().GetAction(2).value().has_value());
  CHECK_FALSE(s.repo().GetAction(3).value().has_value());
}

TEST_CASE(
    "InstanceRepo: a member decided after `before` outlives its purged "
    "instance until its own age passes",
    "[conformance]") {
  // The instance goes with its relations; its members' decisions then
  // belong to no stored instance and age like any other (SQLite keeps a
  // member's decision out of its age index until then: schema version 4).
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());  // decided at 100
  REQUIRE(s.repo().Join(Rec(2, Outcome::kSkip, 150), JoinRel(1, 2)).ok());
  REQUIRE(s.repo().Join(Rec(3, Outcome::kSkip, 900), JoinRel(1, 3)).ok());
  REQUIRE(s.repo().End(1, At(200)).value());
  PurgeResult r = s.repo().Purge(At(300), 0).value();
  CHECK(r.instances == 1);
  CHECK(r.relations == 3);
  CHECK(r.actions == 2);  // 1 and 2
  CHECK_FALSE(s.repo().GetAction(1).value().has_value());
  CHECK_FALSE(s.repo().GetAction(2).value().has_value());
  CHECK(s.repo().GetAction(3).value().has_value());
  CHECK(s.repo().Purge(At(900), 0).value().actions == 0);
  r = s.repo().Purge(At(901), 0).value();
  CHECK(r.instances == 0);
  CHECK(r.actions == 1);
  CHECK_FALSE(s.repo().GetAction(3).value().has_value());
}

TEST_CASE("InstanceRepo: bad input is refused with the words every store uses",
          "[conformance]") {
  // store/checks.h: the store's name, then the same words in every store.
  StoreSet s;
  ActionRecord bad = Rec(5);
  bad.decision.action_id = 6;
  CheckRefusal(s.repo().RecordDecision(bad).status(), " must be equal and > 0");
  CheckRefusal(s.repo().RecordDecision(Rec(0)).status(),
               " must be equal and > 0");
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());  // 1
  CheckRefusal(s.repo().Join(bad, JoinRel(1, 5)).status(),
               " must be equal and > 0");
  CheckRefusal(s.repo().Join(Rec(5), JoinRel(1, 6)).status(),
               ": Join needs the action's own relation of type action");
  CreateRequest ended = ActionCreate("E", 2);
  ended.instance.end_time = At(5);
  CheckRefusal(s.repo().Create(ended).status(),
               ": a new instance must not have an end_time");
  CheckRefusal(s.repo().Create(ActionCreate("", 2)).status(),
               ": empty instance dimension");
  REQUIRE(s.repo().Create(ConvergeCreate("S", 1)).ok());  // 2
  ConvergeRelation typed = LinkRel(2, 1);
  typed.related_type = ConvergeType::kAction;
  CheckRefusal(
      s.repo().Link(2, std::vector<ConvergeRelation>{typed}).status(),
      ": Link takes relations of type converge to the instance it names");
}

// ---- batches ----

TEST_CASE(
    "InstanceRepo: a batch's writes are read back inside it and committed "
    "by Commit; without transactions each call commits on its own",
    "[conformance]") {
  StoreSet s;
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());
  ActionRecord rec = Rec(2, Outcome::kExecute);
  rec.decision.converge_id = 1;
  REQUIRE(s.repo().Join(rec, JoinRel(1, 2, ConvergeStatus::kExecuted)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(3)).ok());
  // Read back before any commit: the open instance with both executed
  // members, and the decisions.
  std::optional<OpenInstanceRef> open = s.repo().LookupOpen("D").value();
  REQUIRE(open.has_value());
  CHECK(open->id == 1);
  if (open->executed_count >= 0) CHECK(open->executed_count == 2);
  CHECK(s.repo().CountExecuted(1).value() == 2);
  CHECK(s.repo().GetAction(2).value().has_value());
  CHECK(s.repo().GetAction(3).value().has_value());
  // An instance ended in the batch is no longer open for it.
  REQUIRE(s.repo().End(1, At(200)).value());
  CHECK_FALSE(s.repo().LookupOpen("D").value().has_value());
  ActionRecord late = Rec(4, Outcome::kSkip);
  late.decision.converge_id = 1;
  CHECK(s.repo().Join(late, JoinRel(1, 4)).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  if (*batch != nullptr) {
    REQUIRE((*batch)->Commit().ok());
    // A batch commits once.
    CHECK((*batch)->Commit().code() == absl::StatusCode::kFailedPrecondition);
    batch->reset();
  }
  CHECK(s.repo().GetAction(2).value().has_value());
  CHECK(s.repo().GetAction(3).value().has_value());
  CHECK_FALSE(s.repo().GetAction(4).value().has_value());
  CHECK(s.repo().GetInstance(1).value().end_time.has_value());
  CHECK(s.repo().Relations(1).value().size() == 2);
}

TEST_CASE(
    "InstanceRepo: a batch destroyed without Commit leaves nothing behind",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("A", 1)).ok());
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  if (*batch == nullptr) {
    // No transactions: nothing to roll back; the calls above committed.
    CHECK(s.repo().LookupOpen("A").value().has_value());
    return;
  }
  // Looked up (and remembered) inside the batch, then changed by it.
  REQUIRE(s.repo().LookupOpen("A").value().has_value());
  REQUIRE(s.repo().End(1, At(150)).value());
  REQUIRE(s.repo().Create(ActionCreate("B", 2)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(3)).ok());
  batch->reset();  // rolled back

  std::optional<OpenInstanceRef> a = s.repo().LookupOpen("A").value();
  REQUIRE(a.has_value());
  CHECK(a->id == 1);
  CHECK_FALSE(s.repo().GetInstance(1).value().end_time.has_value());
  CHECK_FALSE(s.repo().LookupOpen("B").value().has_value());
  CHECK_FALSE(s.repo().GetAction(2).value().has_value());
  CHECK_FALSE(s.repo().GetAction(3).value().has_value());
  // The repo is usable, and ids continue as if the batch never ran (or,
  // where ids are not given back, after the ones it took).
  absl::StatusOr<CreateResult> b = s.repo().Create(ActionCreate("B", 2));
  REQUIRE(b.ok());
  if (testing::TestStoreCapabilities().rollback_returns_ids) {
    CHECK(b->instance.id == 2);
  } else {
    CHECK(b->instance.id > 1);
  }
}

TEST_CASE(
    "InstanceRepo: inside a batch, calls about a joined action or a joined "
    "instance see the join, whatever ran in between",
    "[conformance]") {
  StoreSet s;
  // Instances 1 (dimension D, created by action 1) and 2 (E, action 2).
  for (int64_t id : {1, 2}) {
    REQUIRE(s.repo().Create(ActionCreate(id == 1 ? "D" : "E", id)).ok());
  }
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  auto join = [&](int64_t id, int64_t instance, ConvergeStatus status) {
    ActionRecord r =
        Rec(id, status == ConvergeStatus::kExecuted ? Outcome::kExecute
                                                    : Outcome::kSkip);
    r.decision.converge_id = instance;
    absl::StatusOr<RecordResult> j =
        s.repo().Join(r, JoinRel(instance, id, status));
    REQUIRE(j.ok());
    CHECK(j->inserted);
  };
  join(10, 1, ConvergeStatus::kExecuted);
  // Calls about other actions and instances in between.
  CHECK_FALSE(s.repo().GetAction(99).value().has_value());
  REQUIRE(s.repo().RecordDecision(Rec(11)).ok());
  CHECK(s.repo().CountExecuted(2).value() == 1);
  join(12, 1, ConvergeStatus::kSkipped);
  // About the joined ones: they are there.
  CHECK(s.repo().CountExecuted(1).value() == 2);
  CHECK(s.repo().Unrelated({10, 11, 12, 13}, ConvergeType::kAction).value() ==
        std::vector<int64_t>{11, 13});
  absl::StatusOr<RecordResult> again =
      s.repo().RecordDecision(Rec(12, Outcome::kExecute));
  REQUIRE(again.ok());
  CHECK_FALSE(again->inserted);
  CHECK(again->record.decision.outcome == Outcome::kSkip);
  join(14, 2, ConvergeStatus::kExecuted);
  // A create that would attach a joined action leaves it where it is.
  absl::StatusOr<CreateResult> created =
      s.repo().Create(ActionCreate("F", 15, {14, 11}));
  REQUIRE(created.ok());
  CHECK(created->attached == std::vector<int64_t>{11});
  CHECK(s.repo().GetAction(14).value()->decision.converge_id == 2);
  if (*batch != nullptr) REQUIRE((*batch)->Commit().ok());
  CHECK(s.repo().Relations(1).value().size() == 3);
  CHECK(s.repo().Relations(2).value().size() == 2);
  CHECK(s.repo().Relations(created->instance.id).value().size() == 2);
  CHECK(s.repo().GetAction(11).value()->decision.outcome == Outcome::kExecute);
}

TEST_CASE(
    "InstanceRepo: a second batch on the same thread is kFailedPrecondition",
    "[conformance]") {
  StoreSet s;
  absl::StatusOr<std::unique_ptr<RepoBatch>> first = s.repo().BeginBatch();
  REQUIRE(first.ok());
  if (*first == nullptr) return;  // no transactions, no batches to nest
  absl::StatusOr<std::unique_ptr<RepoBatch>> second = s.repo().BeginBatch();
  CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);
  REQUIRE(s.repo().RecordDecision(Rec(1)).ok());
  REQUIRE((*first)->Commit().ok());
  CHECK(s.repo().GetAction(1).value().has_value());
  // Once the first has ended, a new one can start.
  absl::StatusOr<std::unique_ptr<RepoBatch>> third = s.repo().BeginBatch();
  REQUIRE(third.ok());
  REQUIRE(*third != nullptr);
  CHECK((*third)->Commit().ok());
}

TEST_CASE(
    "InstanceRepo: a refused call inside a batch changes nothing and the "
    "batch goes on",
    "[conformance]") {
  StoreSet s;
  REQUIRE(s.repo().Create(ActionCreate("D", 1)).ok());  // 1, open
  REQUIRE(s.repo().Create(ActionCreate("E", 2)).ok());  // 2, ended
  REQUIRE(s.repo().End(2, At(200)).value());
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  REQUIRE(s.repo().Join(Rec(3, Outcome::kSkip), JoinRel(1, 3)).ok());
  REQUIRE(s.repo().RecordDecision(Rec(4)).ok());
  // kAlreadyExists: an open dimension; a creator that has a decision.
  CHECK(s.repo().Create(ActionCreate("D", 5, {4})).status().code() ==
        absl::StatusCode::kAlreadyExists);
  CHECK(s.repo().Create(ActionCreate("F", 4)).status().code() ==
        absl::StatusCode::kAlreadyExists);
  // kFailedPrecondition: an ended instance.
  CHECK(s.repo().Join(Rec(6), JoinRel(2, 6)).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(s.repo()
            .Link(2, std::vector<ConvergeRelation>{LinkRel(2, 1)})
            .status()
            .code() == absl::StatusCode::kFailedPrecondition);
  // kNotFound: unknown instances and undecided actions.
  CHECK(s.repo().Join(Rec(7), JoinRel(99, 7)).status().code() ==
        absl::StatusCode::kNotFound);
  CHECK(s.repo().SetActionStatus(8, ActionStatus::kSuccess, At(300)).code() ==
        absl::StatusCode::kNotFound);
  CHECK(s.repo()
            .UpdateDecision(8, Outcome::kSleep, Rec(8).decision)
            .status()
            .code() == absl::StatusCode::kNotFound);
  CHECK(s.repo().SetVisible(99, false).code() == absl::StatusCode::kNotFound);
  CHECK(s.repo().End(99, At(300)).status().code() ==
        absl::StatusCode::kNotFound);
  // kInvalidArgument.
  ActionRecord bad = Rec(9);
  bad.decision.action_id = 10;
  CHECK(s.repo().RecordDecision(bad).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s.repo().Create(ActionCreate("", 11)).status().code() ==
        absl::StatusCode::kInvalidArgument);
  // The batch goes on: later calls work, and the commit keeps all of them.
  REQUIRE(s.repo()
              .Join(Rec(12), JoinRel(1, 12, ConvergeStatus::kExecuted))
              .value()
              .inserted);
  absl::StatusOr<CreateResult> g = s.repo().Create(ActionCreate("G", 13, {4}));
  REQUIRE(g.ok());
  CHECK(g->attached == std::vector<int64_t>{4});
  if (*batch != nullptr) REQUIRE((*batch)->Commit().ok());

  CHECK(RelatedIds(s.repo().Relations(1).value()) ==
        std::vector<int64_t>{1, 3, 12});
  CHECK(RelatedIds(s.repo().Relations(g->instance.id).value()) ==
        std::vector<int64_t>{13, 4});
  CHECK(RelatedIds(s.repo().Relations(2).value()) == std::vector<int64_t>{2});
  for (int64_t id : {3, 4, 12, 13}) {
    INFO("action " << id);
    CHECK(s.repo().GetAction(id).value().has_value());
  }
  for (int64_t id : {5, 6, 7, 8, 9, 10, 11}) {
    INFO("action " << id);
    CHECK_FALSE(s.repo().GetAction(id).value().has_value());
  }
  CHECK(s.repo().GetInstance(1).value().is_visible);
  CHECK(s.repo().CountOpen().value().action == 2);  // D and G
}

TEST_CASE(
    "InstanceRepo: a batch takes in the writes of the other stores of its "
    "backend",
    "[conformance]") {
  // "Where the backend's transactions hold its whole write lock (SQLite),
  // the writes of its lock, window and queue stores join the batch too"
  // (TestCapabilities::batch_takes_other_stores); elsewhere each of their
  // calls commits on its own.
  StoreSet s;
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo().BeginBatch();
  REQUIRE(batch.ok());
  if (*batch == nullptr) return;  // no transactions: nothing to take in
  REQUIRE(s.repo().RecordDecision(Rec(1)).ok());
  REQUIRE(s.lock().TryAcquire("L", "a", absl::Seconds(30)).value());
  Add(s, {Entry("k", "action_1", 1000)});
  REQUIRE(s.window().Increment("c", absl::Seconds(60), 10).ok());
  REQUIRE(s.queue().Enqueue("q", MakeTask("t", 10)).ok());
  // Read back inside the batch.
  CHECK(s.window().Size("k").value() == 1);
  CHECK(s.window().CounterValue("c").value() == 1);
  CHECK(s.queue().Stats("q").value().pending == 1);
  batch->reset();  // rolled back

  CHECK_FALSE(s.repo().GetAction(1).value().has_value());
  const bool taken = testing::TestStoreCapabilities().batch_takes_other_stores;
  CHECK(s.window().Size("k").value() == (taken ? 0 : 1));
  CHECK(s.window().CounterValue("c").value() == (taken ? 0 : 1));
  CHECK(s.queue().Stats("q").value().pending == (taken ? 0 : 1));
  CHECK(s.lock().TryAcquire("L", "b", absl::Seconds(30)).value() == taken);
}

}  // namespace
}  // namespace converge::conformance
