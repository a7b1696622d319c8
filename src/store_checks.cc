#include <algorithm>
#include <utility>

#include "converge/store/checks.h"
#include "internal/strings.h"

namespace converge::store {

using internal::StrCat;

std::vector<LeaseInfo> SortAndLimitLeases(std::vector<LeaseInfo> leases,
                                          size_t limit) {
  std::sort(
      leases.begin(), leases.end(),
      [](const LeaseInfo& a, const LeaseInfo& b) { return a.key < b.key; });
  if (limit != 0 && leases.size() > limit) leases.resize(limit);
  return leases;
}

absl::Status CheckLeaseArgs(std::string_view store, std::string_view key,
                            std::string_view token,
                            std::optional<absl::Duration> ttl) {
  if (key.empty()) {
    return absl::InvalidArgumentError(StrCat(store, ": empty lease key"));
  }
  if (token.empty()) {
    return absl::InvalidArgumentError(StrCat(store, ": empty lease token"));
  }
  if (ttl.has_value() && *ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(StrCat(store, ": lease ttl must be > 0"));
  }
  return absl::OkStatus();
}

absl::Status CheckWindowRequest(std::string_view store,
                                const WindowRequest& req,
                                absl::Status (*key_check)(std::string_view)) {
  for (const WindowEntry& e : req.add) {
    if (e.key.empty() || e.member.empty()) {
      return absl::InvalidArgumentError(
          StrCat(store, ": window entry with an empty key or member"));
    }
    if (key_check != nullptr) {
      if (absl::Status st = key_check(e.key); !st.ok()) return st;
    }
  }
  for (const auto& group : req.read_groups) {
    for (const std::string& key : group) {
      if (key.empty()) {
        return absl::InvalidArgumentError(
            StrCat(store, ": empty window key to read"));
      }
      if (key_check != nullptr) {
        if (absl::Status st = key_check(key); !st.ok()) return st;
      }
    }
  }
  if (req.lease.has_value()) {
    return CheckLeaseArgs(store, req.lease->key, req.lease->token,
                          req.lease->ttl);
  }
  return absl::OkStatus();
}

absl::Status CheckCounterArgs(std::string_view store, std::string_view key,
                              absl::Duration ttl) {
  if (key.empty()) {
    return absl::InvalidArgumentError(StrCat(store, ": empty counter key"));
  }
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        StrCat(store, ": counter ttl must be > 0"));
  }
  return absl::OkStatus();
}

absl::Status CheckEnqueue(std::string_view store, std::string_view queue,
                          const Task& task) {
  if (queue.empty() || task.id.empty()) {
    return absl::InvalidArgumentError(
        StrCat(store, ": queue name and task id must not be empty"));
  }
  return absl::OkStatus();
}

absl::Status CheckVisibility(std::string_view store,
                             absl::Duration visibility) {
  if (visibility <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        StrCat(store, ": visibility must be > 0"));
  }
  return absl::OkStatus();
}

absl::Status CheckRecord(std::string_view store, const ActionRecord& r) {
  if (r.id <= 0 || r.decision.action_id != r.id) {
    return absl::InvalidArgumentError(
        StrCat(store, ": record id ", r.id, " and decision action_id ",
               r.decision.action_id, " must be equal and > 0"));
  }
  return absl::OkStatus();
}

absl::Status CheckJoin(std::string_view store, const ActionRecord& record,
                       const ConvergeRelation& rel) {
  if (absl::Status st = CheckRecord(store, record); !st.ok()) return st;
  if (rel.related_id != record.id ||
      rel.related_type != ConvergeType::kAction) {
    return absl::InvalidArgumentError(
        StrCat(store, ": Join needs the action's own relation of type action"));
  }
  return absl::OkStatus();
}

absl::Status CheckCreate(std::string_view store, const CreateRequest& req) {
  if (req.instance.end_time.has_value()) {
    return absl::InvalidArgumentError(
        StrCat(store, ": a new instance must not have an end_time"));
  }
  if (req.instance.dimension.empty()) {
    return absl::InvalidArgumentError(
        StrCat(store, ": empty instance dimension"));
  }
  if (req.creator.has_value()) return CheckRecord(store, *req.creator);
  return absl::OkStatus();
}

absl::Status CheckLink(std::string_view store, int64_t converge_id,
                       absl::Span<const ConvergeRelation> relations) {
  for (const ConvergeRelation& rel : relations) {
    if (rel.related_type != ConvergeType::kConverge ||
        rel.converge_id != converge_id) {
      return absl::InvalidArgumentError(
          StrCat(store,
                 ": Link takes relations of type converge to the instance "
                 "it names"));
    }
  }
  return absl::OkStatus();
}

}  // namespace converge::store
