// The lifecycle half of ConvergeManager: follow-up tasks, approvals, the
// second level (business summary), summaries, ends, sweeps and retention
// (sections 3.7, 4.10, 5 and 6 of converge-semantics.md).

#include <algorithm>
#include <array>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "converge/dimension.h"
#include "converge/functions.h"
#include "converge/manager.h"
#include "converge/metrics.h"
#include "internal/bulk.h"
#include "internal/lease_busy.h"
#include "internal/strings.h"

namespace converge {
namespace {

constexpr std::string_view kConvergeMember = "converge_";
// Business keys (K3, K4) are routed like upstream's default (strategy 0).
constexpr std::string_view kBusinessRoute = "s0";
// Depth guard of the recursive end (upstream has none; the real depth is 2).
constexpr int kMaxEndDepth = 4;

bool ParseConvergeMember(std::string_view member, int64_t* id) {
  if (member.substr(0, kConvergeMember.size()) != kConvergeMember) return false;
  return absl::SimpleAtoi(internal::AV(member.substr(kConvergeMember.size())),
                          id);
}

bool IsSummaryFunction(ConvergeFunction f) {
  return f == ConvergeFunction::kCollect ||
         f == ConvergeFunction::kCollectAlarm;
}

// Upstream renders a business field from a converged-condition entry: null
// becomes "", a list its items joined by "_", anything else str().
std::string RenderBusinessValue(const std::vector<Value>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back('_');
    const Value& v = values[i];
    if (v.is_null()) continue;
    out += v.is_string() ? v.as_string() : v.PyStr();
  }
  return out;
}

}  // namespace

std::string_view ToString(InstanceEvent::Kind kind) {
  switch (kind) {
    case InstanceEvent::Kind::kCreated:
      return "created";
    case InstanceEvent::Kind::kHidden:
      return "hidden";
    case InstanceEvent::Kind::kEnded:
      return "ended";
  }
  return "unknown";
}

// ---- notifications ----

void ConvergeManager::NotifyInstance(InstanceEvent::Kind kind,
                                     const ConvergeInstance& instance,
                                     absl::Time at) {
  InstanceEvent e;
  e.kind = kind;
  e.time = at;
  e.converge_id = instance.id;
  e.converge_type = instance.converge_type;
  e.converge_func = instance.converge_func;
  Emit([this, e] {
    if (options_.metrics != nullptr) {
      options_.metrics->RecordInstance(e.converge_type, ToString(e.kind));
    }
    if (options_.listener != nullptr) options_.listener->OnInstance(e);
  });
}

void ConvergeManager::NotifyDecisionChanged(
    const Decision& decision, std::optional<ConvergeFunction> func) {
  Emit([this, decision, func] {
    if (options_.metrics != nullptr) {
      options_.metrics->RecordDecision(decision.outcome, func);
    }
    if (options_.listener != nullptr) options_.listener->OnDecision(decision);
  });
}

// ---- follow-up tasks ----

absl::Status ConvergeManager::EnqueueOnce(std::string_view kind,
                                          int64_t subject, absl::Time due) {
  Task task;
  task.id = internal::StrCat(kind, ":", subject);
  task.kind = std::string(kind);
  task.subject_id = subject;
  task.due = due;
  if (DeferEnqueue(task)) return absl::OkStatus();
  absl::Status st = stores_.queue->Enqueue(options_.task_queue, task);
  if (st.code() == absl::StatusCode::kAlreadyExists) return absl::OkStatus();
  return st;
}

absl::Status ConvergeManager::EnsureFollowUp(const Decision& decision) {
  if (decision.outcome == Outcome::kSleep) {
    return EnqueueOnce(task_kinds::kRepoll, decision.action_id,
                       decision.decided_at + options_.repoll_interval);
  }
  if (decision.outcome == Outcome::kApproval) {
    return EnqueueOnce(task_kinds::kApproval, decision.action_id,
                       decision.decided_at + options_.approval_timeout);
  }
  return absl::OkStatus();
}

// ---- approvals ----

absl::StatusOr<Decision> ConvergeManager::SettleApproval(int64_t action_id,
                                                         Outcome next,
                                                         std::string reason,
                                                         bool timeout) {
  absl::StatusOr<std::optional<ActionRecord>> rec =
      stores_.repo->GetAction(action_id);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) {
    return absl::NotFoundError(
        internal::StrCat("converge: action ", action_id, " has no decision"));
  }
  const ActionRecord& record = **rec;
  const absl::Time now = clock_->Now();
  if (record.decision.outcome != Outcome::kApproval) {
    if (timeout) return StoredDecision(action_id);
    return absl::FailedPreconditionError(internal::StrCat(
        "converge: action ", action_id, " is not waiting for approval (",
        ToString(record.decision.outcome), ")"));
  }
  if (timeout && now < record.decision.decided_at + options_.approval_timeout) {
    return StoredDecision(action_id);  // not yet due
  }
  Decision d = record.decision;
  d.outcome = next;
  d.reason = std::move(reason);
  d.decided_at = now;
  d.replayed = false;
  absl::StatusOr<bool> updated =
      stores_.repo->UpdateDecision(action_id, Outcome::kApproval, d);
  if (!updated.ok()) return updated.status();
  if (!*updated) {
    // Settled concurrently (approved while timing out, ...).
    if (timeout) return StoredDecision(action_id);
    return absl::FailedPreconditionError(internal::StrCat(
        "converge: action ", action_id, " was settled concurrently"));
  }
  std::optional<ConvergeFunction> func;
  if (d.converge_id.has_value()) {
    absl::StatusOr<ConvergeInstance> inst =
        stores_.repo->GetInstance(*d.converge_id);
    if (inst.ok()) func = inst->converge_func;
  }
  NotifyDecisionChanged(d, func);
  return d;
}

absl::StatusOr<Decision> ConvergeManager::Approve(int64_t action_id) {
  return SettleApproval(action_id, Outcome::kExecute, "approved", false);
}

absl::StatusOr<Decision> ConvergeManager::Reject(int64_t action_id) {
  return SettleApproval(action_id, Outcome::kSkip, "rejected", false);
}

absl::StatusOr<Decision> ConvergeManager::ExpireApproval(int64_t action_id) {
  return SettleApproval(action_id, Outcome::kSkip, "approval timed out", true);
}

// ---- ends ----

absl::StatusOr<bool> ConvergeManager::EndRecursive(
    int64_t id, absl::Time now, int depth, bool* committed, bool visible_only,
    const ConvergeInstance* known) {
  // Read first: the event needs the instance's type and function (which
  // never change), and nothing may fail between the end and its event (a
  // retry would find the instance ended and report nothing).
  absl::StatusOr<ConvergeInstance> inst =
      known != nullptr && known->id == id
          ? absl::StatusOr<ConvergeInstance>(*known)
          : stores_.repo->GetInstance(id);
  if (!inst.ok()) return inst.status();
  absl::StatusOr<bool> ended = visible_only ? stores_.repo->EndVisible(id, now)
                                            : stores_.repo->End(id, now);
  if (!ended.ok()) return ended.status();
  if (committed != nullptr) *committed = *ended;
  if (*ended) NotifyInstance(InstanceEvent::Kind::kEnded, *inst, now);
  // A second-level instance ends its first-level ones, also when it had
  // ended already (a crash between the two steps is finished here).
  if (inst->converge_type == ConvergeType::kConverge && depth < kMaxEndDepth) {
    absl::StatusOr<std::vector<ConvergeRelation>> rels =
        stores_.repo->Relations(id);
    if (!rels.ok()) return rels.status();
    for (const ConvergeRelation& r : *rels) {
      if (r.related_type != ConvergeType::kConverge) continue;
      absl::StatusOr<bool> sub = EndRecursive(r.related_id, now, depth + 1);
      if (!sub.ok() && sub.status().code() != absl::StatusCode::kNotFound) {
        return sub.status();
      }
    }
  }
  return *ended;
}

// ---- second level ----

bool ConvergeManager::HasSecondLevel(const ConvergeConfig& config) {
  return config.need_biz_converge && config.sub_converge_config != nullptr;
}

std::optional<std::array<std::string, 5>> ConvergeManager::BusinessFields(
    const std::map<std::string, std::vector<Value>, std::less<>>& cond) {
  static constexpr std::string_view kKeys[] = {
      "bk_biz_id", "signal", "notice_way", "notice_receiver", "alert_level"};
  std::array<std::string, 5> out;
  for (size_t i = 0; i < 5; ++i) {
    auto it = cond.find(kKeys[i]);
    if (it == cond.end()) return std::nullopt;
    out[i] = RenderBusinessValue(it->second);
  }
  return out;
}

absl::StatusOr<std::string> ConvergeManager::BusinessKey(
    const KeyTemplate& tpl, const std::array<std::string, 5>& f) const {
  const KeyField fields[] = {{"bk_biz_id", f[0]},
                             {"signal", f[1]},
                             {"notice_way", f[2]},
                             {"notice_receiver", f[3]},
                             {"alert_level", f[4]}};
  return keys_.Render(tpl, fields, kBusinessRoute);
}

absl::Status ConvergeManager::EnsureSubConverge(
    const ConvergeInstance& instance) {
  if (!instance.is_open() || instance.converge_type != ConvergeType::kAction ||
      !HasSecondLevel(instance.converge_config)) {
    return absl::OkStatus();
  }
  std::optional<std::array<std::string, 5>> business =
      BusinessFields(instance.converged_condition);
  if (!business.has_value()) return absl::OkStatus();
  absl::StatusOr<std::string> key =
      BusinessKey(keys::kSubConvergeDimension, *business);
  if (!key.ok()) return key.status();
  // K3: the first-level instance scored by its create time (5.2).
  WindowRequest req;
  req.add.push_back(WindowEntry{*std::move(key),
                                internal::StrCat(kConvergeMember, instance.id),
                                instance.create_time});
  const absl::Time now = clock_->Now();
  const absl::Duration w = absl::Seconds(instance.window_seconds);
  req.key_ttl = options_.index_retention + w;
  req.trim_before = now - w - options_.index_retention;
  absl::StatusOr<WindowResult> r = stores_.window->Apply(req);
  if (!r.ok()) return r.status();
  // Due at once (upstream: no countdown).
  return EnqueueOnce(task_kinds::kSubConverge, instance.id, now);
}

absl::Status ConvergeManager::ProcessSubConverge(int64_t first_level_id) {
  absl::StatusOr<ConvergeInstance> first =
      stores_.repo->GetInstance(first_level_id);
  if (!first.ok()) return first.status();
  // S18: an ended first-level instance is not matched again (no double
  // summaries); nor is one of the second level itself.
  if (!first->is_open() || first->converge_type != ConvergeType::kAction ||
      !HasSecondLevel(first->converge_config)) {
    return absl::OkStatus();
  }
  {
    const int64_t ids[] = {first_level_id};
    absl::StatusOr<std::vector<int64_t>> unrelated =
        stores_.repo->Unrelated(ids, ConvergeType::kConverge);
    if (!unrelated.ok()) return unrelated.status();
    if (unrelated->empty()) {
      // Already linked. The second-level instance's summary task may have
      // been lost (a crash, or a failed enqueue, between its creation and
      // the scheduling): scheduled again here (idempotent).
      absl::StatusOr<std::optional<int64_t>> parent =
          stores_.repo->ConvergeOf(first_level_id);
      if (!parent.ok()) return parent.status();
      if (!parent->has_value()) return absl::OkStatus();
      absl::StatusOr<ConvergeInstance> second =
          stores_.repo->GetInstance(**parent);
      if (absl::IsNotFound(second.status())) return absl::OkStatus();
      if (!second.ok()) return second.status();
      return EnsureSummary(*second);
    }
  }

  // The effective second-level config (5.3) and its context: the
  // first-level instance's converged condition.
  ConvergeConfig sub = *first->converge_config.sub_converge_config;
  sub.is_enabled = true;
  ConvergeConfig eff = sub;
  ApplyProfile(&eff, options_.rules, ConvergeType::kConverge, "", false);
  if (!IllegalReason(eff, false).empty()) return absl::OkStatus();
  std::map<std::string, Value, std::less<>> context;
  for (const auto& [key, values] : first->converged_condition) {
    context.emplace(key, Value(Value::List(values.begin(), values.end())));
  }
  auto lookup = [&](std::string_view key) -> const Value* {
    auto it = context.find(key);
    return it == context.end() ? nullptr : &it->second;
  };
  DimensionResult dim = ComputeDimension(eff, sub, lookup, /*details=*/true);
  std::optional<std::array<std::string, 5>> business =
      BusinessFields(dim.converged_condition);
  if (!business.has_value()) return absl::OkStatus();
  absl::StatusOr<std::string> index_key =
      BusinessKey(keys::kSubConvergeDimension, *business);
  if (!index_key.ok()) return index_key.status();
  const int64_t window_seconds = WindowSeconds(eff, options_.rules);
  const absl::Duration w = absl::Seconds(window_seconds);
  // The window is anchored on the first-level instance's create time.
  const absl::Time start = first->create_time - w;
  const absl::Time end = first->create_time + w;

  absl::StatusOr<std::string> lease_key = LeaseKey(dim.dimension);
  if (!lease_key.ok()) return lease_key.status();
  const std::string token = NextToken(first_level_id);
  WindowRequest req;
  req.read_groups.push_back({*index_key});
  req.start = start;
  req.end = end;
  WindowResult result;
  absl::StatusOr<bool> acquired =
      AcquireLease(*lease_key, token, &req, &result);
  if (!acquired.ok()) return acquired.status();
  if (!*acquired) {
    return internal::LeaseBusyError(
        internal::StrCat("converge: lease on business dimension ",
                         dim.dimension, " stayed busy after ",
                         options_.lease_attempts, " attempts; retry later"));
  }
  struct Releaser {
    LockStore* lock;
    const std::string& key;
    const std::string& token;
    ~Releaser() { (void)lock->Release(key, token); }
  } releaser{stores_.lock, *lease_key, token};

  const absl::Time now = clock_->Now();
  absl::StatusOr<std::optional<OpenInstanceRef>> open =
      stores_.repo->LookupOpen(dim.dimension);
  if (!open.ok()) return open.status();
  if (open->has_value() && (*open)->create_time < start) {
    // Lazy expiry, relative to the first-level instance.
    absl::StatusOr<bool> ended = EndExpired((*open)->id, now);
    if (!ended.ok()) return ended.status();
    open->reset();
  }
  ConvergeRelation own;
  own.related_id = first_level_id;
  own.related_type = ConvergeType::kConverge;
  if (open->has_value()) {
    own.converge_id = (*open)->id;
    own.is_primary = false;
    own.converge_status = ConvergeStatus::kSkipped;
    absl::StatusOr<std::vector<ConvergeRelation>> linked =
        stores_.repo->Link((*open)->id, {own});
    if (linked.status().code() == absl::StatusCode::kFailedPrecondition) {
      return absl::AbortedError(internal::StrCat(
          "converge: business instance ", (*open)->id, " ended while instance ",
          first_level_id, " joined it; retry"));
    }
    if (!linked.ok()) return linked.status();
    if (!linked->empty()) {
      NotifyInstance(InstanceEvent::Kind::kHidden, *first, now);
    }
    return absl::OkStatus();
  }

  // Matching: first-level instances in the business window, not linked to
  // a second-level instance yet and not ended.
  std::vector<int64_t> ids;
  if (!result.groups.empty()) {
    for (const std::string& m : result.groups[0]) {
      int64_t id;
      if (ParseConvergeMember(m, &id)) ids.push_back(id);
    }
  }
  if (std::find(ids.begin(), ids.end(), first_level_id) == ids.end()) {
    ids.push_back(first_level_id);  // its index entry may have expired
  }
  std::sort(ids.begin(), ids.end());
  absl::StatusOr<std::vector<int64_t>> unrelated =
      stores_.repo->Unrelated(ids, ConvergeType::kConverge);
  if (!unrelated.ok()) return unrelated.status();
  std::vector<ConvergeInstance> matched;
  for (int64_t id : *unrelated) {
    absl::StatusOr<ConvergeInstance> inst = stores_.repo->GetInstance(id);
    if (inst.status().code() == absl::StatusCode::kNotFound) continue;
    if (!inst.ok()) return inst.status();
    if (inst->is_open()) matched.push_back(*std::move(inst));
  }
  if (static_cast<int64_t>(matched.size()) < eff.count || matched.empty()) {
    return absl::OkStatus();
  }

  CreateRequest create;
  ConvergeInstance& inst = create.instance;
  inst.converge_type = ConvergeType::kConverge;
  inst.converge_func = eff.converge_func;
  inst.bk_biz_id = first->bk_biz_id;
  inst.dimension = dim.dimension;
  inst.description = internal::StrCat(
      "within ", window_seconds, " s, when ", eff.count,
      " or more converge instances of one business share the same receiver, ",
      ToString(eff.converge_func), " applies");
  inst.content = eff.context.empty() ? "{}" : eff.context;
  inst.create_time = now;
  inst.is_visible = true;
  inst.converge_config = eff;
  inst.converged_condition = dim.converged_condition;
  inst.window_seconds = window_seconds;
  own.is_primary = true;
  own.converge_status = ConvergeStatus::kExecuted;
  create.primary = own;
  // The other matched instances with a smaller id (5.3); later ones link
  // themselves when their own task runs.
  for (const ConvergeInstance& m : matched) {
    if (m.id < first_level_id) create.attach_candidates.push_back(m.id);
  }
  absl::StatusOr<CreateResult> created = stores_.repo->Create(create);
  if (created.status().code() == absl::StatusCode::kFailedPrecondition) {
    // This first-level instance ended (its own summary) since it was read:
    // an ended instance is not matched (S18). Any other reason (a store
    // whose schema is not in place answers this code too) is an error.
    absl::StatusOr<ConvergeInstance> again =
        stores_.repo->GetInstance(first_level_id);
    if (again.ok() && !again->is_open()) return absl::OkStatus();
    return created.status();
  }
  if (created.status().code() == absl::StatusCode::kAlreadyExists) {
    return absl::AbortedError(
        internal::StrCat("converge: business dimension ", dim.dimension,
                         " was created concurrently; retry"));
  }
  if (!created.ok()) return created.status();
  NotifyInstance(InstanceEvent::Kind::kCreated, created->instance, now);
  NotifyInstance(InstanceEvent::Kind::kHidden, *first, now);
  for (int64_t id : created->attached) {
    for (const ConvergeInstance& m : matched) {
      if (m.id == id) NotifyInstance(InstanceEvent::Kind::kHidden, m, now);
    }
  }
  FunctionInput in;
  in.func = eff.converge_func;
  in.type = ConvergeType::kConverge;
  in.is_new = true;
  in.count = eff.count;
  in.now = now;
  in.window_seconds = window_seconds;
  if (EvaluateFunction(in).schedule_summary) {
    return EnsureSummary(created->instance);
  }
  return absl::OkStatus();
}

// ---- summaries ----

absl::StatusOr<Summary> ConvergeManager::RunSummary(int64_t converge_id) {
  absl::StatusOr<ConvergeInstance> inst =
      stores_.repo->GetInstance(converge_id);
  if (!inst.ok()) return inst.status();
  return Summarize(*inst, clock_->Now(), nullptr, /*reset_counter=*/true);
}

absl::StatusOr<bool> ConvergeManager::EndExpired(
    int64_t id, absl::Time now, const ConvergeInstance* known) {
  absl::StatusOr<ConvergeInstance> inst =
      known != nullptr && known->id == id
          ? absl::StatusOr<ConvergeInstance>(*known)
          : stores_.repo->GetInstance(id);
  if (!inst.ok()) return inst.status();
  if (!inst->is_visible || !IsSummaryFunction(inst->converge_func)) {
    return EndRecursive(id, now, 0, nullptr, false, &*inst);
  }
  bool ended = false;
  absl::StatusOr<Summary> summary =
      Summarize(*inst, now, &ended, /*reset_counter=*/false);
  if (!summary.ok()) return summary.status();
  return ended;
}

absl::StatusOr<Summary> ConvergeManager::Summarize(
    const ConvergeInstance& instance, absl::Time now, bool* ended_out,
    bool reset_counter) {
  const ConvergeInstance* inst = &instance;
  if (ended_out != nullptr) *ended_out = false;
  Summary summary;
  summary.converge_id = inst->id;
  summary.converge_type = inst->converge_type;
  summary.converge_func = inst->converge_func;
  summary.bk_biz_id = inst->bk_biz_id;
  summary.time = now;
  summary.converged_condition = inst->converged_condition;

  if (reset_counter && inst->converge_type == ConvergeType::kConverge &&
      inst->is_open()) {
    // The business counter starts over (5.6).
    if (std::optional<std::array<std::string, 5>> business =
            BusinessFields(inst->converged_condition);
        business.has_value()) {
      absl::StatusOr<std::string> counter =
          BusinessKey(keys::kSubConvergeDimensionLock, *business);
      if (!counter.ok()) return counter.status();
      absl::StatusOr<bool> deleted = stores_.window->Delete(*counter);
      if (!deleted.ok()) return deleted.status();
    }
  }

  // Related actions: skipped members of the instance; for a second-level
  // one, those of its hidden first-level instances.
  std::vector<int64_t> related;
  auto gather = [&](int64_t id) -> absl::Status {
    absl::StatusOr<std::vector<ConvergeRelation>> rels =
        stores_.repo->Relations(id);
    if (!rels.ok()) return rels.status();
    std::vector<int64_t> actions;
    for (const ConvergeRelation& r : *rels) {
      if (r.related_type == ConvergeType::kAction) {
        actions.push_back(r.related_id);
      }
    }
    absl::StatusOr<std::vector<std::optional<ActionRecord>>> recs =
        stores_.repo->GetActions(actions);
    if (!recs.ok()) return recs.status();
    if (absl::Status st = internal::CheckAnswered("GetActions", recs->size(),
                                                  actions.size(), "actions");
        !st.ok()) {
      return st;
    }
    for (size_t i = 0; i < actions.size(); ++i) {
      const std::optional<ActionRecord>& rec = (*recs)[i];
      if (rec.has_value() && rec->status == ActionStatus::kSkipped) {
        related.push_back(actions[i]);
      }
    }
    return absl::OkStatus();
  };
  if (inst->is_open() && inst->is_visible) {
    if (inst->converge_type == ConvergeType::kAction) {
      if (absl::Status st = gather(inst->id); !st.ok()) return st;
    } else {
      absl::StatusOr<std::vector<ConvergeRelation>> rels =
          stores_.repo->Relations(inst->id);
      if (!rels.ok()) return rels.status();
      for (const ConvergeRelation& r : *rels) {
        if (r.related_type != ConvergeType::kConverge) continue;
        absl::StatusOr<ConvergeInstance> first =
            stores_.repo->GetInstance(r.related_id);
        if (first.status().code() == absl::StatusCode::kNotFound) continue;
        if (!first.ok()) return first.status();
        if (first->is_visible) continue;
        if (absl::Status st = gather(first->id); !st.ok()) return st;
      }
    }
  }
  std::sort(related.begin(), related.end());
  related.erase(std::unique(related.begin(), related.end()), related.end());

  // A hidden instance is left to its second-level instance; a visible one
  // ends now, with or without something to report: only if it is still
  // visible, since a Link that committed after the read above has made
  // its actions the second level's to report.
  absl::Status after_end;
  if (inst->is_visible) {
    bool committed = false;
    absl::StatusOr<bool> ended = EndRecursive(inst->id, now, 0, &committed,
                                              /*visible_only=*/true, inst);
    if (!ended.ok()) {
      if (!committed) return ended.status();
      // The end is stored: the summary goes out now (a retry would find the
      // instance ended and report nothing); the error still fails the
      // call, so that the rest (first-level ends) is retried.
      after_end = ended.status();
    }
    summary.sent = committed && !related.empty();
    if (ended_out != nullptr) *ended_out = committed;
  }
  if (summary.sent) {
    summary.action_ids = std::move(related);
    summary.template_type = summary.action_ids.size() > 1
                                ? inst->converge_type
                                : ConvergeType::kAction;
  }
  Emit([this, summary] {
    if (options_.metrics != nullptr) {
      options_.metrics->RecordSummary(summary.converge_type, summary.sent);
    }
    if (summary.sent && options_.listener != nullptr) {
      options_.listener->OnSummary(summary);
    }
  });
  if (!after_end.ok()) return after_end;
  return summary;
}

// ---- sweep and retention ----

absl::StatusOr<SweepResult> ConvergeManager::Sweep(size_t limit) {
  SweepResult result;
  const absl::Time now = clock_->Now();
  int64_t after = 0;
  constexpr size_t kPage = 512;
  absl::Status failed;  // the first instance that failed, if any
  // Second-level instances seen in this sweep: open or not.
  absl::flat_hash_map<int64_t, bool> parent_open;
  auto end_now = [&](int64_t id) {
    absl::StatusOr<bool> ended = EndRecursive(id, now, 0);
    if (!ended.ok()) {
      if (failed.ok()) failed = ended.status();
    } else if (*ended) {
      ++result.ended;
    }
  };
  while (true) {
    absl::StatusOr<std::vector<ConvergeInstance>> page =
        stores_.repo->ListOpenAfter(after, kPage);
    if (!page.ok()) return page.status();
    for (const ConvergeInstance& inst : *page) {
      after = inst.id;
      ++result.scanned;
      if (!inst.is_visible) {
        // Ended through its second level, normally. One whose second-level
        // instance has ended (or gone) without it, since a failure or a
        // crash came between the two ends, has no one left to end it: it
        // is ended here once its own window has passed.
        if (inst.create_time + absl::Seconds(inst.window_seconds) +
                options_.sweep_grace >=
            now) {
          continue;
        }
        absl::StatusOr<std::optional<int64_t>> parent =
            stores_.repo->ConvergeOf(inst.id);
        if (!parent.ok()) {
          if (failed.ok()) failed = parent.status();
          continue;
        }
        if (parent->has_value()) {
          // One look per second-level instance and sweep: its members
          // are many.
          auto [known, fresh] = parent_open.try_emplace(**parent, false);
          if (fresh) {
            absl::StatusOr<ConvergeInstance> second =
                stores_.repo->GetInstance(**parent);
            if (!second.ok() && !absl::IsNotFound(second.status())) {
              parent_open.erase(known);
              if (failed.ok()) failed = second.status();
              continue;
            }
            known->second = second.ok() && second->is_open();
          }
          if (known->second) continue;
        }
        end_now(inst.id);
        if (limit > 0 && static_cast<size_t>(result.ended) >= limit) break;
        continue;
      }
      const absl::Duration w = absl::Seconds(inst.window_seconds);
      if (IsSummaryFunction(inst.converge_func)) {
        if (inst.create_time + std::max(w, options_.summary_delay) +
                options_.sweep_grace >=
            now) {
          continue;
        }
        // Late summary: run it here (the queued task then finds the
        // instance ended), so that nothing suppressed goes unreported.
        absl::StatusOr<Summary> s = RunSummary(inst.id);
        if (!s.ok()) {
          // One instance that fails must not hold up the others (the next
          // run starts from the first open instance again).
          if (failed.ok()) failed = s.status();
          continue;
        }
        ++result.summaries;
        ++result.ended;
      } else {
        if (inst.create_time + w + options_.sweep_grace >= now) continue;
        end_now(inst.id);
      }
      if (limit > 0 && static_cast<size_t>(result.ended) >= limit) break;
    }
    if (limit > 0 && static_cast<size_t>(result.ended) >= limit) break;
    if (page->size() < kPage) break;
  }
  if (!failed.ok()) return failed;
  return result;
}

absl::StatusOr<PurgeResult> ConvergeManager::Purge(size_t limit) {
  return stores_.repo->Purge(clock_->Now() - options_.retention, limit);
}

}  // namespace converge
