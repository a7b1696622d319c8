#include "converge/manager.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <forward_list>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "converge/context.h"
#include "converge/dimension.h"
#include "converge/errors.h"
#include "converge/functions.h"
#include "converge/metrics.h"
#include "converge/store/errors.h"
#include "internal/bulk.h"
#include "internal/lease_busy.h"
#include "internal/strings.h"

namespace converge {
namespace {

constexpr std::string_view kActionMember = "action_";

// Display labels of upstream's ALL_CONVERGE_DIMENSION, for descriptions.
std::string_view DimensionLabel(std::string_view key) {
  static constexpr std::pair<std::string_view, std::string_view> kLabels[] = {
      {"dimensions", "dimensions"},
      {"strategy_id", "strategy"},
      {"alert_name", "alert name"},
      {"bk_biz_id", "business"},
      {"alert_level", "alert level"},
      {"signal", "alert signal"},
      {"notice_receiver", "notice receiver"},
      {"notice_way", "notice way"},
      {"group_notice_way", "notice way with member type"},
      {"alert_info", "alert info"},
      {"notice_info", "notice info"},
      {"action_info", "action package info"},
  };
  for (const auto& [k, label] : kLabels) {
    if (k == key) return label;
  }
  return key;
}

std::string Describe(const ConvergeConfig& eff, int64_t window_seconds,
                     const ConvergedCondition& converged) {
  std::vector<absl::string_view> labels;
  for (const auto& entry : converged) {
    if (entry.first == "action_id") continue;
    labels.push_back(internal::AV(DimensionLabel(entry.first)));
  }
  return internal::StrCat("within ", window_seconds, " s, when ", eff.count,
                          " or more alerts share the same ",
                          absl::StrJoin(labels, ","), ", ",
                          ToString(eff.converge_func),
                          " applies to executions of the same package");
}

absl::Status CheckSize(std::string_view path, size_t bytes, size_t limit) {
  if (bytes <= limit) return absl::OkStatus();
  return FieldError(
      path, internal::StrCat("value of ", bytes, " bytes exceeds the limit of ",
                             limit));
}

absl::Status CheckValue(std::string_view path, const Value& v, size_t limit,
                        int depth) {
  if (depth > 8) return FieldError(path, "lists nested deeper than 8");
  if (v.is_string()) return CheckSize(path, v.as_string().size(), limit);
  if (v.is_list()) {
    const Value::List& list = v.as_list();
    if (list.size() > limit) {
      return FieldError(
          path, internal::StrCat("list of ", list.size(),
                                 " items exceeds the limit of ", limit));
    }
    for (size_t i = 0; i < list.size(); ++i) {
      // The item's path text only when the item needs a closer look.
      if (!list[i].is_list() &&
          (!list[i].is_string() || list[i].as_string().size() <= limit)) {
        continue;
      }
      absl::Status st = CheckValue(internal::StrCat(path, "[", i, "]"), list[i],
                                   limit, depth + 1);
      if (!st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAction(const Action& a, const ManagerOptions& o) {
  if (a.id <= 0) {
    return FieldError("action.id", internal::StrCat("must be > 0, got ", a.id));
  }
  if (a.create_time == absl::InfinitePast() ||
      a.create_time == absl::InfiniteFuture()) {
    return FieldError("action.create_time", "must be a finite time");
  }
  if (a.execute_timeout < 0) {
    return FieldError(
        "action.execute_timeout",
        internal::StrCat("must be >= 0, got ", a.execute_timeout));
  }
  const size_t limit = o.max_value_bytes;
  if (auto st = CheckSize("action.signal", a.signal.size(), limit); !st.ok()) {
    return st;
  }
  if (auto st = CheckSize("action.plugin_type", a.plugin_type.size(), limit);
      !st.ok()) {
    return st;
  }
  if (a.alerts.size() > o.max_alerts) {
    return FieldError(
        "action.alerts",
        internal::StrCat(a.alerts.size(), " alerts exceed the limit of ",
                         o.max_alerts));
  }
  for (size_t i = 0; i < a.alerts.size(); ++i) {
    if (a.alerts[i].empty()) {
      return FieldError(internal::StrCat("action.alerts[", i, "]"),
                        "empty alert id");
    }
    if (a.alerts[i].size() <= limit) continue;
    if (auto st = CheckSize(internal::StrCat("action.alerts[", i, "]"),
                            a.alerts[i].size(), limit);
        !st.ok()) {
      return st;
    }
  }
  for (const auto& [key, value] : a.context) {
    if (key.empty()) {
      return FieldError("action.context", "empty key");
    }
    // Fast path first: the common small scalar needs no path text.
    if (key.size() <= limit && !value.is_list() &&
        (!value.is_string() || value.as_string().size() <= limit)) {
      continue;
    }
    std::string path = internal::StrCat("action.context.", key);
    if (auto st = CheckSize(path, key.size(), limit); !st.ok()) return st;
    if (auto st = CheckValue(path, value, limit, 0); !st.ok()) return st;
  }
  return absl::OkStatus();
}

// The sizes of a config's conditions (ManagerOptions::max_condition_values,
// max_value_bytes), and of its sub config's.
// `depth`: 0 for converge_config, 1 for its sub config, ...; the path text
// is made only for an error (Submit checks every action's config).
absl::Status CheckConditions(const ConvergeConfig& c, const ManagerOptions& o,
                             int depth = 0) {
  auto config_path = [depth] {
    std::string path = "converge_config";
    for (int i = 0; i < depth; ++i) path += ".sub_converge_config";
    return path;
  };
  const size_t limit = o.max_value_bytes;
  size_t values = 0;
  for (const Condition& cond : c.condition) {
    values += std::max<size_t>(1, cond.value.size());
  }
  if (values > o.max_condition_values) {
    return FieldError(
        internal::StrCat(config_path(), ".condition"),
        internal::StrCat(values, " values in all exceed the limit of ",
                         o.max_condition_values));
  }
  for (size_t i = 0; i < c.condition.size(); ++i) {
    const Condition& cond = c.condition[i];
    bool small = cond.dimension.size() <= limit;
    for (const Value& v : cond.value) {
      small = small && !v.is_list() &&
              (!v.is_string() || v.as_string().size() <= limit);
    }
    if (small) continue;  // the common case needs no path text
    const std::string at =
        internal::StrCat(config_path(), ".condition[", i, "]");
    if (auto st = CheckSize(internal::StrCat(at, ".dimension"),
                            cond.dimension.size(), limit);
        !st.ok()) {
      return st;
    }
    for (size_t j = 0; j < cond.value.size(); ++j) {
      if (auto st = CheckValue(internal::StrCat(at, ".value[", j, "]"),
                               cond.value[j], limit, 0);
          !st.ok()) {
        return st;
      }
    }
  }
  if (c.sub_converge_config != nullptr) {
    return CheckConditions(*c.sub_converge_config, o, depth + 1);
  }
  return absl::OkStatus();
}

// Parses "action_<id>" members; others (second-level members) are ignored.
bool ParseActionMember(std::string_view member, int64_t* id) {
  if (member.substr(0, kActionMember.size()) != kActionMember) return false;
  return absl::SimpleAtoi(internal::AV(member.substr(kActionMember.size())),
                          id);
}

// Union within each group, intersection across groups (section 3.5.3).
// (A store that honoured WindowRequest::intersect answers one group, the
// intersection already.)
std::vector<int64_t> MatchIds(const WindowResult& result) {
  std::vector<int64_t> ids;
  if (result.groups.empty()) return ids;
  absl::flat_hash_set<int64_t> acc;
  for (const std::string& m : result.groups[0]) {
    int64_t id;
    if (ParseActionMember(m, &id)) acc.insert(id);
  }
  for (size_t g = 1; g < result.groups.size() && !acc.empty(); ++g) {
    absl::flat_hash_set<int64_t> next;
    for (const std::string& m : result.groups[g]) {
      int64_t id;
      if (ParseActionMember(m, &id) && acc.contains(id)) next.insert(id);
    }
    acc = std::move(next);
  }
  ids.assign(acc.begin(), acc.end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The hash tag of a dimension's lease. Instances are per D, and one D can be
// shared by actions of several strategies (a rule whose condition names no
// strategy-specific key), so the lease is routed by D itself, never by the
// action's strategy: one lease per D, as upstream's K5.
std::string LeaseRoute(std::string_view dimension) {
  constexpr std::string_view kPrefix = "!sha1#";
  std::string_view hex = dimension.substr(0, kPrefix.size()) == kPrefix
                             ? dimension.substr(kPrefix.size(), 16)
                             : dimension.substr(0, 16);
  return internal::StrCat("d", hex);
}

// The notes and lease releases deferred by the repo batch running on this
// thread, if any.
struct DeferredNotes {
  const ConvergeManager* manager = nullptr;
  std::vector<std::function<void()>> notes;
  // Leases released by the batch's evaluations: released after the batch
  // has committed (or rolled back), so that no other evaluator reads a
  // dimension before the writes made under its lease show. (A backend
  // whose batch holds one write lock, SQLite, would not need it; MySQL
  // beside its own leases or Redis's does.)
  std::vector<std::pair<std::string, std::string>> releases;
  // False when the batch excludes other writers (RepoBatch::
  // ExcludesWriters): leases are then released at once.
  bool defer_releases = false;
  // Leases released in the batch's transaction (LockStore::
  // ReleasesWithRepoBatch): freed when it commits, and until then still
  // the batch's to take over, as `releases`.
  std::vector<std::pair<std::string, std::string>> released_with_batch;
  // Leases PrefetchBatch took for the batch's items (held until each item
  // is decided, then released with the others).
  size_t prefetched_leases = 0;
  // With PrefetchBatch, the follow-up tasks of the batch's decisions
  // (summaries, re-polls): enqueued together before its commit.
  bool defer_enqueues = false;
  std::vector<Task> enqueues;
  // With PrefetchBatch: the actions the batch's decisions have related to
  // an instance so far (joiners, creators, attached candidates), which a
  // prefetched Unrelated answer did not know of.
  absl::flat_hash_set<int64_t> related;
};
thread_local DeferredNotes* t_deferred = nullptr;
// How many listener callbacks this thread is running (of any manager). A
// group's leader runs the callbacks of its group while it still leads, so
// a Submit from a callback must not queue for a group: behind this thread
// it would wait for itself, behind another manager's leader (whose own
// callback may be waiting for this thread's group) for each other.
thread_local int t_in_callbacks = 0;

struct InCallbacks {
  InCallbacks() { ++t_in_callbacks; }
  ~InCallbacks() { --t_in_callbacks; }
  InCallbacks(const InCallbacks&) = delete;
  InCallbacks& operator=(const InCallbacks&) = delete;
};

// Releases a lease when the evaluation that took it returns (nothing when
// no token was taken), or when the repo batch it ran in ends. Release
// errors are ignored: the lease then expires.
struct LeaseReleaser {
  LockStore* lock;
  const std::string& key;
  const std::string& token;
  ~LeaseReleaser() {
    if (token.empty()) return;
    if (t_deferred != nullptr && t_deferred->defer_releases) {
      if (!lock->ReleasesWithRepoBatch()) {
        t_deferred->releases.emplace_back(key, token);
        return;
      }
      t_deferred->released_with_batch.emplace_back(key, token);
    }
    (void)lock->Release(key, token);
  }
};

// In a repo batch, a lease this thread's batch still holds for `key` (its
// release deferred) is taken over by the next evaluation of the key rather
// than waited for: its token, and no release of it pending any more.
std::string PendingToken(const std::string& key) {
  if (t_deferred == nullptr) return std::string();
  // (A lease released with the batch is taken over as it is: released
  // again at the end, it is freed by the same commit.)
  for (auto* r : {&t_deferred->releases, &t_deferred->released_with_batch}) {
    for (auto it = r->begin(); it != r->end(); ++it) {
      if (it->first == key) {
        std::string token = std::move(it->second);
        r->erase(it);
        return token;
      }
    }
  }
  return std::string();
}

Decision Replayed(const ActionRecord& record) {
  Decision d = record.decision;
  d.replayed = true;
  return d;
}

}  // namespace

// The context of one action as the manager reads it: values the caller gave
// are read in place; derived values (composites, normalized lists) are
// computed once on first use. Pointers stay valid while the view lives.
class ContextView {
 public:
  explicit ContextView(const Action& action) : action_(action) {}

  const Value* Get(std::string_view key) {
    auto it = action_.context.find(key);
    if (it != action_.context.end() && !Normalized(key, it->second)) {
      return &it->second;
    }
    for (const auto& [k, v] : derived_) {
      if (k == key) return &v;
    }
    std::optional<Value> v = ResolveContextValue(action_, key);
    if (!v.has_value()) return nullptr;
    derived_.emplace_front(std::string(key), *std::move(v));
    return &derived_.front().second;
  }

 private:
  // The given keys BuildContext rewrites.
  bool Normalized(std::string_view key, const Value& v) const {
    if (key == "dimensions" || key == "notice_receiver") return v.is_list();
    if (key == "notice_way") return action_.context.count("notice_channel");
    return false;
  }

  const Action& action_;
  // A list: no allocation until a derived value is needed, and stable
  // addresses.
  std::forward_list<std::pair<std::string, Value>> derived_;
};

struct ConvergeManager::Plan {
  const ConvergeConfig* eff = nullptr;  // the original, or `overridden`
  std::optional<ConvergeConfig> overridden;
  int64_t window_seconds = 0;
  DimensionResult dim;  // details filled by Details()
  bool has_details = false;
  absl::Time start;
  absl::Time end;
  std::string route;
  std::string lease_key;
  WindowRequest window;  // without the lease token
};

// What PrefetchBatch fetched for one item of a batch. SubmitImpl runs in
// three passes over a batch: two that collect (`stop`: it returns, having
// set `stopped`, where it has what the pass collects, or before it would
// call a store), then the deciding one, which takes each fetched answer in
// place of its own store call, once.
struct ConvergeManager::Prefetch {
  enum class Stop { kNone, kAtHint, kAtLease };
  Stop stop = Stop::kNone;
  bool stopped = false;
  // Collected. kAtHint: the dimension (empty: the item needs none).
  // kAtLease: the open instance it will join (0: none), or the lease key
  // and its window request with the lease (and a token of its own).
  std::string dimension;
  int64_t join_instance = 0;
  std::string lease_key;
  WindowRequest request;
  // kAtLease: the index keys the item writes and reads if it takes the
  // slow path (that of a join refused, too), when `want_keys`.
  bool want_keys = true;
  std::vector<std::string> add_keys;
  std::vector<std::string> read_keys;
  // Fetched: the hint (LookupOpen before the lease), the stored decision
  // (GetAction), the applied window request, and the open instance read
  // again once the lease was held.
  std::optional<std::optional<OpenInstanceRef>> hint;
  std::optional<std::optional<ActionRecord>> existing;
  std::optional<WindowResult> window;
  std::optional<std::optional<OpenInstanceRef>> under_lease;
  // When the batch took the lease of `window`.
  absl::Time acquired_at;
  // Unrelated of the members `window` matched.
  std::optional<std::vector<int64_t>> unrelated;
  // The instance `under_lease` names, if it has expired for the item (the
  // decision ends it).
  std::optional<ConvergeInstance> expired;
};

// Group commit (ManagerOptions::group_commit_max): leader and followers.
// A Submit queues its item; the first caller to find no leader becomes one,
// takes the queue (up to the maximum), runs it as one SubmitBatch without
// the lock, hands out the results, and steps down; a waiter whose item is
// still queued then leads the next group.
// Groups a leader serves in a row while callers are queued.
constexpr int kGroupRounds = 8;

struct ConvergeManager::GroupCommit {
  struct Item {
    Item(const Action* a, const ConvergeConfig* c) : action(a), config(c) {}
    const Action* action;
    const ConvergeConfig* config;
    std::optional<absl::StatusOr<Decision>> result;  // guarded by mu
    std::condition_variable cv;  // its caller waits here, alone
  };
  // Shared by the caller and the leader: the leader wakes a caller after
  // unlocking mu (so that it does not wake to wait for mu), and the caller
  // may have returned by then.
  using ItemRef = std::shared_ptr<Item>;
  std::mutex mu;
  std::deque<ItemRef> queue;  // guarded by mu
  bool leading = false;       // guarded by mu
  // Callers the last group woke besides its leader (guarded by mu): none,
  // and a leader alone has nobody to wait for.
  size_t woken = 0;
};

ConvergeManager::~ConvergeManager() = default;

ConvergeManager::ConvergeManager(Stores stores, const Clock* clock,
                                 ManagerOptions options)
    : stores_(stores),
      clock_(clock),
      options_(std::move(options)),
      keys_(options_.keys),
      group_(std::make_unique<GroupCommit>()) {
  // The user's prefix (for reading leases in a store) is always followed by
  // a random part, so that two managers never share tokens.
  token_prefix_ = options_.token_prefix;
  {
    absl::BitGen gen;
    // 7 random base-62 characters (about 41 bits) and a separator.
    static constexpr char kDigits[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int i = 0; i < 7; ++i) {
      token_prefix_.push_back(kDigits[absl::Uniform<int>(gen, 0, 62)]);
    }
    token_prefix_.push_back('.');
  }
}

absl::StatusOr<std::unique_ptr<ConvergeManager>> ConvergeManager::Create(
    Stores stores, const Clock* clock, ManagerOptions options) {
  if (stores.lock == nullptr || stores.queue == nullptr ||
      stores.repo == nullptr || stores.window == nullptr) {
    return absl::InvalidArgumentError(
        "converge: every store (lock, queue, repo, window) is required");
  }
  if (clock == nullptr) {
    return absl::InvalidArgumentError("converge: a clock is required");
  }
  if (options.lease_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "converge: options.lease_ttl: must be > 0");
  }
  if (options.lease_attempts < 1) {
    return absl::InvalidArgumentError(
        "converge: options.lease_attempts: must be >= 1");
  }
  if (options.lease_backoff_min < absl::ZeroDuration() ||
      options.lease_backoff_max < options.lease_backoff_min) {
    return absl::InvalidArgumentError(
        "converge: options.lease_backoff_min/max: need 0 <= min <= max");
  }
  if (options.index_retention < absl::ZeroDuration() ||
      options.summary_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "converge: options.index_retention and summary_delay: must be >= 0");
  }
  if (options.repoll_interval <= absl::ZeroDuration() ||
      options.approval_timeout <= absl::ZeroDuration() ||
      options.business_counter_ttl <= absl::ZeroDuration() ||
      options.retention <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "converge: options.repoll_interval, approval_timeout, "
        "business_counter_ttl and retention: must be > 0");
  }
  if (options.sweep_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "converge: options.sweep_grace: must be >= 0");
  }
  if (options.task_queue.empty()) {
    return absl::InvalidArgumentError(
        "converge: options.task_queue: must not be empty");
  }
  if (options.group_commit_max < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("converge: options.group_commit_max: must be >= 1, got ",
                     options.group_commit_max));
  }
  return std::unique_ptr<ConvergeManager>(
      new ConvergeManager(stores, clock, std::move(options)));
}

// Tokens are the manager's prefix plus a per-manager sequence number in
// base 62: unique per lease holder, and short enough for the small-string
// buffer with the default 8-character random prefix.
std::string ConvergeManager::NextToken(int64_t) {
  static constexpr char kDigits[] =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  uint64_t n = token_seq_.fetch_add(1, std::memory_order_relaxed);
  std::string token = token_prefix_;
  do {
    token.push_back(kDigits[n % 62]);
    n /= 62;
  } while (n > 0);
  return token;
}

absl::StatusOr<Decision> ConvergeManager::Record(const ActionRecord& record) {
  absl::StatusOr<RecordResult> r = stores_.repo->RecordDecision(record);
  if (!r.ok()) return r.status();
  if (!r->inserted) return Replay(r->record);
  return r->record.decision;
}

absl::StatusOr<Decision> ConvergeManager::Replay(const ActionRecord& rec) {
  if (rec.decision.primary && rec.decision.converge_id.has_value()) {
    // The summary task may have been lost after the creation committed:
    // scheduling it again is idempotent.
    absl::StatusOr<ConvergeInstance> inst =
        stores_.repo->GetInstance(*rec.decision.converge_id);
    // A deleted instance (retention) has nothing left to schedule.
    if (inst.ok()) {
      if (absl::Status st = EnsureSummary(*inst); !st.ok()) return st;
      if (absl::Status st = EnsureSubConverge(*inst); !st.ok()) return st;
    } else if (inst.status().code() != absl::StatusCode::kNotFound) {
      return inst.status();
    }
  }
  if (absl::Status st = EnsureFollowUp(rec.decision); !st.ok()) return st;
  return Replayed(rec);
}

absl::StatusOr<Decision> ConvergeManager::SubmitOne(
    const Action& action, const ConvergeConfig& config, Prefetch* prefetch) {
  absl::StatusOr<Decision> d = SubmitImpl(action, config, prefetch);
  if (!d.ok()) {
    if (IsLeaseBusy(d.status()) && options_.metrics != nullptr) {
      options_.metrics->RecordLockFailure();
    }
    return d;
  }
  if (!d->replayed) {
    // A fresh sleep or approval outcome gets its follow-up task. (A replay
    // re-ensures it in Replay.) If scheduling fails the caller retries and
    // the replay schedules it.
    if (absl::Status st = EnsureFollowUp(*d); !st.ok()) return st;
  }
  std::optional<ConvergeFunction> func;
  if (d->converge_id.has_value()) func = config.converge_func;
  Emit([this, decision = *d, func] {
    if (options_.metrics != nullptr && !decision.replayed) {
      options_.metrics->RecordDecision(decision.outcome, func);
    }
    if (options_.listener != nullptr) options_.listener->OnDecision(decision);
  });
  return d;
}

namespace {
// A per-item error: the item is refused and the batch goes on. Any other
// error is the store's, and the batch cannot be trusted.
// A failed result handed to another thread: its own copy of the status.
// A batch that fails gives every item one status, whose representation the
// copies share by reference count; absl's count is atomic, but the Debian
// library is not instrumented for ThreadSanitizer, which then reports the
// callers' reads and the last one's free as a race.
absl::Status Unshared(const absl::Status& st) {
  absl::Status copy(st.code(), std::string(st.message()));
  st.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    copy.SetPayload(url, absl::Cord(std::string(payload)));
  });
  return copy;
}

bool ItemError(const absl::Status& st) {
  return absl::IsInvalidArgument(st) || IsLeaseBusy(st);
}
}  // namespace

bool ConvergeManager::DeferEnqueue(const Task& task) {
  if (!InRepoBatch() || !t_deferred->defer_enqueues) return false;
  t_deferred->enqueues.push_back(task);
  return true;
}

bool ConvergeManager::InRepoBatch() const {
  return t_deferred != nullptr && t_deferred->manager == this;
}

void ConvergeManager::Emit(std::function<void()> note) {
  if (InRepoBatch()) {
    t_deferred->notes.push_back(std::move(note));
    return;
  }
  InCallbacks in_callbacks;
  note();
}

absl::StatusOr<Decision> ConvergeManager::Submit(const Action& action,
                                                 const ConvergeConfig& config) {
  if (t_deferred != nullptr) {
    if (InRepoBatch()) return SubmitOne(action, config);
    return absl::FailedPreconditionError(
        "converge: Submit: another manager's batch is running on this "
        "thread");
  }
  // One transaction for the whole decision where the repo has them: the
  // index, the lease, the decision and its follow-up tasks are committed
  // together, once; shared with other threads' Submit calls of the moment
  // when group commit is on.
  // A Submit from a listener callback is decided alone, in a transaction
  // of its own: queued, it could wait for the thread that runs it.
  if (options_.group_commit_max > 1 &&
      repo_batches_.load(std::memory_order_relaxed) == 1 &&
      t_in_callbacks == 0) {
    return SubmitGrouped(action, config);
  }
  BatchItem item{&action, &config};
  std::vector<absl::StatusOr<Decision>> r =
      SubmitBatch(absl::MakeConstSpan(&item, 1));
  return std::move(r.front());
}

absl::StatusOr<Decision> ConvergeManager::SubmitGrouped(
    const Action& action, const ConvergeConfig& config) {
  GroupCommit& g = *group_;
  auto mine = std::make_shared<GroupCommit::Item>(&action, &config);
  std::unique_lock<std::mutex> lock(g.mu);
  g.queue.push_back(mine);
  while (true) {
    // Decided by a leader, or free to lead the next group (mine is still
    // queued: it is in that group, or a later one). A leader that steps
    // down wakes the first caller still queued, and only that one.
    mine->cv.wait(lock, [&] { return mine->result.has_value() || !g.leading; });
    if (mine->result.has_value()) return *std::move(mine->result);

    // Lead: serve groups while callers are queued (a few rounds at most,
    // so that this caller, decided in the first, is not kept long): the
    // callers woken by one group queue again while the next one runs.
    g.leading = true;
    if (g.queue.size() == 1 && g.woken > 0) {
      // Alone: give the callers just woken by the last group a moment to
      // queue again, so that they share this transaction. (A caller that
      // is always alone, one thread submitting one by one, never waits.)
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
    for (int round = 0; round < kGroupRounds && !g.queue.empty(); ++round) {
      const size_t n = std::min(g.queue.size(),
                                static_cast<size_t>(options_.group_commit_max));
      std::vector<GroupCommit::ItemRef> group(g.queue.begin(),
                                              g.queue.begin() + n);
      g.queue.erase(g.queue.begin(), g.queue.begin() + n);
      lock.unlock();
      std::vector<BatchItem> items;
      items.reserve(group.size());
      for (const GroupCommit::ItemRef& item : group) {
        items.push_back(BatchItem{item->action, item->config});
      }
      std::vector<absl::StatusOr<Decision>> results;
      try {
        results = RunGroup(items);
      } catch (...) {
        // A listener callback threw (user code, run after the commit): the
        // group's other callers get an error instead of waiting forever,
        // this caller leaves the queue (its action is gone with its
        // frame), and the next caller leads.
        lock.lock();
        for (const GroupCommit::ItemRef& item : group) {
          if (item != mine && !item->result.has_value()) {
            item->result = absl::InternalError(
                "converge: Submit: a listener callback threw while this "
                "action was decided with others; its decision may be "
                "stored (submit it again to read it)");
          }
        }
        g.queue.erase(std::remove(g.queue.begin(), g.queue.end(), mine),
                      g.queue.end());
        g.leading = false;
        GroupCommit::ItemRef next = g.queue.empty() ? nullptr : g.queue.front();
        lock.unlock();
        for (const GroupCommit::ItemRef& item : group) {
          if (item != mine) item->cv.notify_one();
        }
        if (next != nullptr) next->cv.notify_one();
        throw;
      }
      lock.lock();
      for (size_t i = 0; i < group.size(); ++i) {
        if (!results[i].ok()) results[i] = Unshared(results[i].status());
        group[i]->result = std::move(results[i]);
      }
      g.woken = group.size() - static_cast<size_t>(std::count(
                                   group.begin(), group.end(), mine));
      // Wake them with mu free: woken under it, each would run only to
      // block on mu until the leader lets go (a second sleep and wake-up
      // per caller).
      lock.unlock();
      for (const GroupCommit::ItemRef& item : group) {
        if (item != mine) item->cv.notify_one();
      }
      group.clear();
      lock.lock();
    }
    g.leading = false;
    if (!g.queue.empty()) {
      GroupCommit::ItemRef next = g.queue.front();  // the next leader
      lock.unlock();
      next->cv.notify_one();
      lock.lock();
    }
  }
}

std::vector<absl::StatusOr<Decision>> ConvergeManager::RunGroup(
    absl::Span<const BatchItem> items) {
  std::vector<absl::StatusOr<Decision>> results = SubmitBatch(items);
  if (items.size() > 1 && !results.front().ok() &&
      !ItemError(results.front().status())) {
    // The store as a whole is down (its server unreachable, its lock held
    // past the busy timeout): every action would fail the same way, each
    // after the same wait. They all fail now.
    if (IsStoreDown(results.front().status())) return results;
    // The shared transaction failed and nothing of it was stored: each
    // action runs again in a transaction of its own, so that one action's
    // trouble is not the others'. After a conflict that is its last run
    // (it checks everything in the calls, and sees the other writer's
    // work); else a batch of one, run again once after a conflict.
    const bool conflict = IsConflict(results.front().status());
    for (size_t i = 0; i < items.size(); ++i) {
      const absl::Span<const BatchItem> one = absl::MakeConstSpan(&items[i], 1);
      results[i] = std::move(
          (conflict ? SubmitBatchOnce(one, false) : SubmitBatch(one)).front());
    }
    return results;
  }
  if (items.size() > 1) {
    // An item refused because its lease was busy while the group held
    // other leases (AcquireLease does not wait then) runs again alone, now
    // that the group's leases are released: as a caller of Submit outside
    // a group, it waits for the lease.
    for (size_t i = 0; i < items.size(); ++i) {
      if (!results[i].ok() && IsLeaseBusy(results[i].status())) {
        results[i] =
            std::move(SubmitBatch(absl::MakeConstSpan(&items[i], 1)).front());
      }
    }
  }
  return results;
}

// The batch's bulk reads (ManagerOptions::batch_prefetch), in two
// collecting passes of SubmitImpl over the items:
//  1. each item's dimension: one LookupOpenMany for all of them (the hint
//     each decision first reads);
//  2. with its hint, what each item does next: join an open instance
//     (PrepareJoins for all of them), or take its dimension's lease with
//     its window request: GetActions for those items, then ApplyMany of
//     their requests (the leases, index writes and window reads of all of
//     them at once), then LookupOpenMany again for those whose dimension
//     had no open instance inside the window, now that the leases are held
//     (the read the decision makes under its lease).
// Only the first item of each dimension and of each action id is
// prefetched; a later one is decided as it comes, after the first. The
// decisions stay those of deciding the items one by one in order: an
// item's window request is applied early only when no other item's index
// writes and window reads could meet it out of order (its reads are added
// to by no earlier item decided as it comes, nor by any later prefetched
// one; its adds are read by no earlier item).
absl::Status ConvergeManager::PrefetchBatch(absl::Span<const BatchItem> items,
                                            std::vector<Prefetch>& pf) {
  pf.assign(items.size(), Prefetch{});
  constexpr size_t kNone = static_cast<size_t>(-1);
  absl::flat_hash_set<int64_t> ids;
  absl::flat_hash_map<std::string, size_t> dim_of;  // dimension -> in dims
  std::vector<std::string> dims;
  std::vector<size_t> dim_index(items.size(), kNone);
  std::vector<bool> first(items.size(), false);
  std::vector<bool> first_of_id(items.size(), false);
  for (size_t i = 0; i < items.size(); ++i) {
    Prefetch& p = pf[i];
    // An action met before in the batch is decided as it comes (its keys
    // still count below).
    const bool fresh_id = ids.insert(items[i].action->id).second;
    p.stop = Prefetch::Stop::kAtHint;
    (void)SubmitImpl(*items[i].action, *items[i].config, &p);
    if (!p.stopped || p.dimension.empty()) {
      p = Prefetch{};
      continue;
    }
    auto [it, fresh] = dim_of.try_emplace(p.dimension, dims.size());
    if (fresh) dims.push_back(p.dimension);
    dim_index[i] = it->second;
    first[i] = fresh && fresh_id;
    first_of_id[i] = fresh_id;
  }
  if (dims.empty()) return absl::OkStatus();
  absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> hints =
      stores_.repo->LookupOpenMany(dims);
  if (!hints.ok()) return hints.status();
  if (absl::Status st = internal::CheckAnswered("LookupOpenMany", hints->size(),
                                                dims.size(), "dimensions");
      !st.ok()) {
    return st;
  }

  // Pass 2.
  std::vector<std::pair<int64_t, int64_t>> joins;
  std::vector<size_t> leased;  // items that stopped at the lease
  std::vector<size_t> keyed;   // items that stopped with their keys
  for (size_t i = 0; i < items.size(); ++i) {
    if (dim_index[i] == kNone) continue;
    Prefetch& p = pf[i];
    p.hint = (*hints)[dim_index[i]];
    p.stop = Prefetch::Stop::kAtLease;
    p.stopped = false;
    // The keys of an item that stops short of the lease are made below,
    // only where they can matter.
    p.want_keys = false;
    (void)SubmitImpl(*items[i].action, *items[i].config, &p);
    p.stop = Prefetch::Stop::kNone;
    if (p.stopped) keyed.push_back(i);
    if (p.stopped && p.join_instance != 0 && first_of_id[i]) {
      joins.emplace_back(items[i].action->id, p.join_instance);
    } else if (p.stopped && !p.lease_key.empty()) {
      leased.push_back(i);
    }
  }
  // An item decided as it comes meets an early window request out of order
  // only if it comes before it: the keys of the items that stopped short of
  // the lease (planned joins, unknown counts), before the last item that
  // may be applied early. In a batch of joins alone, none are made.
  size_t last_early = 0;
  for (size_t i : leased) {
    if (first[i]) last_early = i + 1;
  }
  for (size_t i : keyed) {
    if (i >= last_early) break;
    Prefetch& p = pf[i];
    if (!p.lease_key.empty()) continue;  // has its keys
    p.stop = Prefetch::Stop::kAtLease;
    p.stopped = false;
    p.want_keys = true;
    (void)SubmitImpl(*items[i].action, *items[i].config, &p);
    p.stop = Prefetch::Stop::kNone;
  }
  // A later item of a dimension reads its own hint (the first item may
  // create or end the instance).
  for (size_t i = 0; i < items.size(); ++i) {
    if (!first[i]) pf[i].hint.reset();
  }

  // The stored decisions of the first items that take the lease.
  std::vector<int64_t> asked;
  std::vector<size_t> asked_items;
  for (size_t i : leased) {
    if (!first[i]) continue;
    asked.push_back(items[i].action->id);
    asked_items.push_back(i);
  }
  if (!asked.empty()) {
    absl::StatusOr<std::vector<std::optional<ActionRecord>>> stored =
        stores_.repo->GetActions(asked);
    if (!stored.ok()) return stored.status();
    if (absl::Status st = internal::CheckAnswered("GetActions", stored->size(),
                                                  asked.size(), "actions");
        !st.ok()) {
      return st;
    }
    for (size_t k = 0; k < asked.size(); ++k) {
      pf[asked_items[k]].existing = std::move((*stored)[k]);
    }
  }

  // Which window requests may be applied now (see above), in the items'
  // order. Every item that may touch the index counts: one planned to join
  // may take the slow path (its instance ended meanwhile), and so may one
  // whose count was unknown; they and the items not applied early write
  // and read theirs as they come ("late").
  absl::flat_hash_set<std::string_view> late_adds, late_reads, early_reads;
  std::vector<WindowRequest> requests;
  std::vector<size_t> applied;
  for (size_t i : keyed) {
    Prefetch& p = pf[i];
    bool early = first[i] && !p.lease_key.empty() && p.existing.has_value() &&
                 !p.existing->has_value();
    for (const std::string& key : p.add_keys) {
      early = early && !late_reads.contains(key) && !early_reads.contains(key);
    }
    for (const std::string& key : p.read_keys) {
      early = early && !late_adds.contains(key);
    }
    if (early) {
      // Its reads are made now if its request has them, else (a round
      // after a join refused) as it comes.
      auto& reads = p.request.read_groups.empty() ? late_reads : early_reads;
      reads.insert(p.read_keys.begin(), p.read_keys.end());
      requests.push_back(p.request);
      applied.push_back(i);
      continue;
    }
    late_adds.insert(p.add_keys.begin(), p.add_keys.end());
    late_reads.insert(p.read_keys.begin(), p.read_keys.end());
  }
  if (!requests.empty()) {
    const absl::Time asked_at = clock_->Now();
    absl::StatusOr<std::vector<WindowResult>> results =
        stores_.window->ApplyMany(requests);
    if (results.ok()) {
      if (absl::Status st = internal::CheckAnswered(
              "ApplyMany", results->size(), requests.size(), "requests");
          !st.ok()) {
        results = st;
      }
    }
    if (!results.ok()) {
      // Some leases may have been taken: released best-effort.
      std::vector<std::pair<std::string, std::string>> taken;
      for (const WindowRequest& r : requests) {
        taken.emplace_back(r.lease->key, r.lease->token);
      }
      (void)stores_.lock->ReleaseMany(taken);
      return results.status();
    }
    std::vector<std::string> again;
    std::vector<size_t> again_items;
    for (size_t k = 0; k < applied.size(); ++k) {
      Prefetch& p = pf[applied[k]];
      p.window = std::move((*results)[k]);
      if (!p.window->lease_acquired) {
        if (options_.metrics != nullptr) {
          options_.metrics->RecordLeaseContention();
        }
        continue;
      }
      if (t_deferred != nullptr) ++t_deferred->prefetched_leases;
      p.acquired_at = asked_at;
      const std::optional<OpenInstanceRef>& hint = *p.hint;
      if (!hint.has_value() || hint->create_time < p.request.start) {
        again.push_back(p.dimension);
        again_items.push_back(applied[k]);
      }
    }
    // The members each matched, without a relation: one Unrelated for all.
    std::vector<int64_t> members;
    std::vector<std::pair<size_t, std::vector<int64_t>>> matched;
    for (size_t i : applied) {
      Prefetch& p = pf[i];
      if (!p.window->lease_acquired || p.request.read_groups.empty()) continue;
      std::vector<int64_t> ids = MatchIds(*p.window);
      members.insert(members.end(), ids.begin(), ids.end());
      matched.emplace_back(i, std::move(ids));
    }
    if (!members.empty()) {
      std::sort(members.begin(), members.end());
      members.erase(std::unique(members.begin(), members.end()), members.end());
      absl::StatusOr<std::vector<int64_t>> free =
          stores_.repo->Unrelated(members, ConvergeType::kAction);
      if (!free.ok()) return free.status();
      const absl::flat_hash_set<int64_t> unrelated(free->begin(), free->end());
      for (auto& [i, ids] : matched) {
        std::erase_if(ids, [&](int64_t id) { return !unrelated.contains(id); });
        pf[i].unrelated = std::move(ids);
      }
    }
    if (!again.empty()) {
      absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> open =
          stores_.repo->LookupOpenMany(again);
      if (!open.ok()) return open.status();
      if (absl::Status st = internal::CheckAnswered(
              "LookupOpenMany", open->size(), again.size(), "dimensions");
          !st.ok()) {
        return st;
      }
      // The instances found expired, read for their ends.
      std::vector<int64_t> expired;
      std::vector<size_t> expired_items;
      for (size_t k = 0; k < again.size(); ++k) {
        Prefetch& p = pf[again_items[k]];
        p.under_lease = std::move((*open)[k]);
        if (p.under_lease->has_value() &&
            (*p.under_lease)->create_time < p.request.start) {
          expired.push_back((*p.under_lease)->id);
          expired_items.push_back(again_items[k]);
        }
      }
      if (!expired.empty()) {
        absl::StatusOr<std::vector<ConvergeInstance>> insts =
            stores_.repo->GetInstances(expired);
        // Not found (purged meanwhile): each reads its own.
        if (!insts.ok() &&
            insts.status().code() != absl::StatusCode::kNotFound) {
          return insts.status();
        }
        if (insts.ok() && insts->size() == expired.size()) {
          for (size_t k = 0; k < expired.size(); ++k) {
            pf[expired_items[k]].expired = std::move((*insts)[k]);
          }
        }
      }
    }
  }
  if (!joins.empty()) {
    if (absl::Status st = stores_.repo->PrepareJoins(joins); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

std::vector<absl::StatusOr<Decision>> ConvergeManager::SubmitBatch(
    absl::Span<const BatchItem> items) {
  std::vector<absl::StatusOr<Decision>> results =
      SubmitBatchOnce(items, items.size() == 1);
  // A batch of one rolled back whole after meeting another writer's work
  // (per-item errors are never conflicts) runs again, and sees that work
  // (the store checks at once what it had left to the commit). Not a batch
  // of several: the window index writes of its first run outlive the
  // rollback (Db::WriteAside, Redis), and a second run would show an
  // earlier item those of later ones. Its caller, or group commit (which
  // decides a failed group's calls alone), submits them again.
  if (items.size() == 1 && !results.front().ok() &&
      IsConflict(results.front().status())) {
    return SubmitBatchOnce(items, false);  // the last run
  }
  return results;
}

std::vector<absl::StatusOr<Decision>> ConvergeManager::SubmitBatchOnce(
    absl::Span<const BatchItem> items, bool runs_again) {
  std::vector<absl::StatusOr<Decision>> results;
  results.reserve(items.size());
  auto fail_all = [&](const absl::Status& st) {
    results.assign(items.size(), st);
    return results;
  };
  for (const BatchItem& item : items) {
    if (item.action == nullptr || item.config == nullptr) {
      return fail_all(absl::InvalidArgumentError(
          "converge: SubmitBatch: every item needs an action and a config"));
    }
  }
  if (t_deferred != nullptr) {
    return fail_all(absl::FailedPreconditionError(
        "converge: SubmitBatch: a batch is already running on this thread"));
  }
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = stores_.repo->BeginBatch();
  if (!batch.ok()) return fail_all(batch.status());
  repo_batches_.store(*batch == nullptr ? 0 : 1, std::memory_order_relaxed);
  if (*batch == nullptr) {
    // No transactions: one by one.
    for (const BatchItem& item : items) {
      results.push_back(SubmitOne(*item.action, *item.config));
    }
    return results;
  }
  if (runs_again) (*batch)->RetriedOnConflict();
  DeferredNotes deferred;
  deferred.manager = this;
  deferred.defer_releases = !(*batch)->ExcludesWriters();
  // Clears t_deferred and releases the deferred leases on every way out,
  // an exception included; the batch (declared before) is rolled back
  // after it unless committed.
  struct BatchScope {
    DeferredNotes* deferred;
    LockStore* lock;
    std::vector<Prefetch>* prefetch;
    bool released = false;
    void Release() {
      t_deferred = nullptr;
      if (released) return;
      released = true;
      // Leases prefetched for items that did not use them.
      for (Prefetch& p : *prefetch) {
        if (p.window.has_value() && p.window->lease_acquired) {
          deferred->releases.emplace_back(p.lease_key, p.request.lease->token);
        }
      }
      if (!deferred->releases.empty()) {
        (void)lock->ReleaseMany(deferred->releases);
      }
    }
    ~BatchScope() { Release(); }
  };
  std::vector<Prefetch> prefetch;
  BatchScope scope{&deferred, stores_.lock, &prefetch};
  t_deferred = &deferred;
  const bool use_prefetch =
      items.size() > 1 &&
      (options_.batch_prefetch == ManagerOptions::BatchPrefetch::kOn ||
       (options_.batch_prefetch == ManagerOptions::BatchPrefetch::kAuto &&
        !(*batch)->ExcludesWriters()));
  deferred.defer_enqueues = use_prefetch;
  if (use_prefetch) {
    if (absl::Status st = PrefetchBatch(items, prefetch); !st.ok()) {
      t_deferred = nullptr;
      batch->reset();
      scope.Release();
      return fail_all(st);
    }
  }
  for (size_t i = 0; i < items.size(); ++i) {
    absl::StatusOr<Decision> d =
        SubmitOne(*items[i].action, *items[i].config,
                  prefetch.empty() ? nullptr : &prefetch[i]);
    if (!d.ok() && !ItemError(d.status())) {
      // A store error: the transaction cannot be trusted; roll it back.
      t_deferred = nullptr;
      batch->reset();
      scope.Release();
      return fail_all(d.status());
    }
    results.push_back(std::move(d));
  }
  t_deferred = nullptr;
  absl::Status committed;
  if (!deferred.enqueues.empty()) {
    committed =
        stores_.queue->EnqueueMany(options_.task_queue, deferred.enqueues);
  }
  if (committed.ok()) {
    committed = (*batch)->Commit();
  } else {
    batch->reset();  // rolled back
  }
  scope.Release();
  if (!committed.ok() && items.size() > 1 && ItemError(committed)) {
    // One item's bad value, found only when the batch's writes were sent
    // (MySQL writes a batch's joins at its commit): not the others' error.
    // Nothing was stored; each may be submitted again (group commit and
    // converged then decide each alone).
    committed = absl::AbortedError(internal::StrCat(
        "converge: SubmitBatch: the batch's commit (or its tasks) failed and "
        "nothing of it was stored: ",
        committed.message(), "; submit its actions again, one by one"));
  }
  if (!committed.ok()) return fail_all(committed);
  InCallbacks in_callbacks;
  for (auto& note : deferred.notes) note();
  return results;
}

absl::Status ConvergeManager::Validate(const Action& action,
                                       const ConvergeConfig& config) const {
  if (absl::Status st = ValidateAction(action, options_); !st.ok()) return st;
  return CheckConfig(config);
}

absl::Status ConvergeManager::CheckConfig(const ConvergeConfig& config) const {
  if (absl::Status st = ValidateConfig(config); !st.ok()) return st;
  return CheckConditions(config, options_);
}

absl::StatusOr<Decision> ConvergeManager::SubmitImpl(
    const Action& action, const ConvergeConfig& config, Prefetch* pf) {
  if (absl::Status st = Validate(action, config); !st.ok()) return st;
  // A collecting pass (PrefetchBatch) stops where it has what it collects,
  // or before the first store call: nothing is written.
  const Prefetch::Stop collect =
      pf != nullptr ? pf->stop : Prefetch::Stop::kNone;
  auto stop = [&]() -> absl::StatusOr<Decision> {
    pf->stopped = true;
    return Decision{};
  };

  // An action that already has a decision gets it back. Every repo write
  // below refuses to decide an action twice and returns the stored record,
  // so the early paths (shield, illegal, settled join) need no look-up
  // first; the path with the lease checks before it can end or create an
  // instance.
  const absl::Time now = clock_->Now();
  ActionRecord record;
  record.id = action.id;
  record.create_time = action.create_time;
  record.strategy_id = action.strategy_id;
  record.execute_timeout = action.execute_timeout;
  record.status_time = now;
  record.decision.action_id = action.id;
  record.decision.decided_at = now;

  if (action.shielded) {
    // Shielded actions are not indexed and do not count (point 9).
    record.decision.outcome = Outcome::kShield;
    record.decision.reason = "shielded";
    record.status = ActionStatus::kShield;
    if (collect != Prefetch::Stop::kNone) return stop();
    return Record(record);
  }

  ContextView context(action);
  auto lookup = [&](std::string_view key) { return context.Get(key); };
  Plan plan;
  plan.eff = &config;
  if (options_.rules.profile == Profile::kBkmonitor) {
    const Value* notice_info = context.Get("notice_info");
    plan.overridden = config;
    if (ApplyProfile(&*plan.overridden, options_.rules, ConvergeType::kAction,
                     action.plugin_type,
                     notice_info != nullptr && !notice_info->IsEmpty())) {
      plan.eff = &*plan.overridden;
    }
  }
  if (std::string illegal = IllegalReason(*plan.eff, action.is_parent);
      !illegal.empty()) {
    record.decision.outcome = Outcome::kExecute;
    record.decision.reason = std::move(illegal);
    record.status = ActionStatus::kConverged;
    if (collect != Prefetch::Stop::kNone) return stop();
    return Record(record);
  }
  plan.window_seconds = WindowSeconds(*plan.eff, options_.rules);
  // D alone now; converged_condition and the canonical text only when the
  // window must be read or an instance created.
  plan.dim = ComputeDimension(*plan.eff, config, lookup, /*details=*/false);
  auto details = [&]() -> const DimensionResult& {
    if (!plan.has_details) {
      plan.dim = ComputeDimension(*plan.eff, config, lookup, true);
      plan.has_details = true;
    }
    return plan.dim;
  };
  const absl::Duration w = absl::Seconds(plan.window_seconds);
  plan.start = action.create_time - w;
  plan.end = action.create_time + w;

  // The action's index entries: under every condition key of the effective
  // config (point 5). Built only on the path that indexes (see the fast
  // path below).
  WindowRequest& req = plan.window;
  // Index and read keys are needed only off the settled-join fast path:
  // their texts are made on first use.
  std::string member, strategy;
  auto key_texts = [&] {
    if (!strategy.empty()) return;
    plan.route = internal::StrCat("s", action.strategy_id);
    member = internal::StrCat(kActionMember, action.id);
    strategy = internal::StrCat(action.strategy_id);
  };
  auto render = [&](std::string_view key,
                    std::string_view value) -> absl::StatusOr<std::string> {
    key_texts();
    const KeyField fields[] = {
        {"strategy_id", strategy}, {"dimension", key}, {"value", value}};
    return keys_.Render(keys::kConvergeDimension, fields, plan.route);
  };
  const std::vector<Condition>& conditions = plan.eff->condition;
  // Condition keys, first occurrence only (upstream keys them in a dict).
  auto first_occurrence = [&](size_t i) {
    for (size_t j = 0; j < i; ++j) {
      if (conditions[j].dimension == conditions[i].dimension) return false;
    }
    return true;
  };
  auto index_entries = [&]() -> absl::Status {
    for (size_t i = 0; i < conditions.size(); ++i) {
      if (!first_occurrence(i)) continue;
      const std::string& key = conditions[i].dimension;
      const Value* own = context.Get(key);
      if (own == nullptr || own->IsEmpty()) continue;
      auto add = [&](const Value& v) -> absl::Status {
        absl::StatusOr<std::string> k =
            render(key, v.is_string() ? v.as_string() : v.PyStr());
        if (!k.ok()) return k.status();
        req.add.push_back(
            WindowEntry{*std::move(k), member, action.create_time});
        return absl::OkStatus();
      };
      if (own->is_list()) {
        for (const Value& v : own->as_list()) {
          if (absl::Status st = add(v); !st.ok()) return st;
        }
      } else if (absl::Status st = add(*own); !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  };
  // The window to read: per condition key, the keys of its converged
  // values (none: the "" key). Built only when needed.
  auto read_groups =
      [&]() -> absl::StatusOr<std::vector<std::vector<std::string>>> {
    std::vector<std::vector<std::string>> groups;
    for (size_t i = 0; i < conditions.size(); ++i) {
      if (!first_occurrence(i)) continue;
      const std::string& key = conditions[i].dimension;
      std::vector<std::string>& group = groups.emplace_back();
      const std::vector<Value>& values = details().converged_condition.at(key);
      if (values.empty()) {
        absl::StatusOr<std::string> k = render(key, "");
        if (!k.ok()) return k.status();
        group.push_back(*std::move(k));
      }
      for (const Value& v : values) {
        absl::StatusOr<std::string> k =
            render(key, v.is_string() ? v.as_string() : v.PyStr());
        if (!k.ok()) return k.status();
        if (std::find(group.begin(), group.end(), *k) == group.end()) {
          group.push_back(*std::move(k));
        }
      }
    }
    return groups;
  };
  req.key_ttl = options_.index_retention + w;
  req.trim_before = now - w - options_.index_retention;
  req.start = plan.start;
  req.end = plan.end;

  record.status = ActionStatus::kReceived;
  // Hint, read before the lease: with an instance open for D the window is
  // not needed (the common case in a storm), so the hot path skips reading
  // it. Under the lease the hint is checked by the repo's writes (Join fails
  // on an ended instance, Create on an open D), and the window is read then
  // if it turns out to be needed.
  if (collect == Prefetch::Stop::kAtHint) {
    pf->dimension = plan.dim.dimension;
    return stop();
  }
  // Collecting at the lease: stops with the keys the item would write and
  // read on the slow path, which a join refused or an unknown count may
  // still take (nothing if they cannot be made: the item fails before it
  // touches the index).
  auto stop_with_keys = [&]() -> absl::StatusOr<Decision> {
    if (!pf->want_keys) return stop();
    if (req.add.empty()) (void)index_entries();
    for (const WindowEntry& e : req.add) pf->add_keys.push_back(e.key);
    if (absl::StatusOr<std::vector<std::vector<std::string>>> groups =
            read_groups();
        groups.ok()) {
      for (auto& group : *groups) {
        for (std::string& key : group) pf->read_keys.push_back(std::move(key));
      }
    }
    return stop();
  };
  absl::StatusOr<std::optional<OpenInstanceRef>> open;
  if (pf != nullptr && pf->hint.has_value()) {
    open = *pf->hint;
    if (collect == Prefetch::Stop::kNone) pf->hint.reset();
  } else {
    open = stores_.repo->LookupOpen(plan.dim.dimension);
  }
  if (!open.ok()) return open.status();
  const ConvergeConfig& eff = *plan.eff;

  // Fast path without the lease: joining an open instance whose outcome can
  // no longer change, because the function only counts the executed set and
  // the count has reached the threshold (or the function ignores it). The
  // executed set only grows, so concurrent joiners cannot change the
  // outcome; upstream takes no lock here either (3.5.2).
  //
  // Such a joiner is not indexed either: the window index only serves
  // matching, and matching drops every action that already has a relation,
  // so the entry of an action that joins could never be counted. (If the
  // join fails because the instance ended, the slow path below indexes it.)
  if (open->has_value() && (*open)->create_time >= plan.start &&
      !FunctionReadsStatuses(eff.converge_func)) {
    absl::StatusOr<int64_t> n = (*open)->executed_count;
    if (*n < 0 && collect != Prefetch::Stop::kNone) return stop_with_keys();
    if (*n < 0) n = stores_.repo->CountExecuted((*open)->id);
    if (!n.ok()) return n.status();
    const bool count_free =
        eff.converge_func == ConvergeFunction::kTrigger ||
        eff.converge_func == ConvergeFunction::kRelevance ||
        eff.converge_func == ConvergeFunction::kCollectAlarm;
    if (count_free || *n >= eff.count) {
      if (collect != Prefetch::Stop::kNone) {
        pf->join_instance = (*open)->id;
        return stop_with_keys();
      }
      absl::StatusOr<std::optional<Decision>> joined = JoinOpen(
          action, eff, plan.window_seconds, (*open)->id, *n, nullptr, &record);
      if (!joined.ok()) return joined.status();
      if (joined->has_value()) return **joined;
      open->reset();  // the instance ended: take the slow path
    }
  }

  absl::StatusOr<std::optional<ActionRecord>> existing;
  if (collect != Prefetch::Stop::kNone) {
    existing = std::optional<ActionRecord>();  // asked for the whole batch
  } else if (pf != nullptr && pf->existing.has_value()) {
    existing = *std::move(pf->existing);
    pf->existing.reset();
  } else {
    existing = stores_.repo->GetAction(action.id);
  }
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) return Replay(**existing);
  if (absl::Status st = index_entries(); !st.ok()) return st;

  absl::StatusOr<std::string> lease_key = LeaseKey(plan.dim.dimension);
  if (!lease_key.ok()) return lease_key.status();
  plan.lease_key = *std::move(lease_key);

  bool have_reads = false;
  if (!open->has_value() || (*open)->create_time < plan.start) {
    absl::StatusOr<std::vector<std::vector<std::string>>> groups =
        read_groups();
    if (!groups.ok()) return groups.status();
    req.read_groups = *std::move(groups);
    req.intersect = true;  // MatchIds uses the intersection only
    have_reads = true;
  }
  if (collect != Prefetch::Stop::kNone) {
    pf->lease_key = plan.lease_key;
    pf->request = req;
    pf->request.lease =
        LeaseRequest{plan.lease_key, NextToken(action.id), options_.lease_ttl};
    pf->want_keys = true;  // always: it may be applied early
    return stop_with_keys();
  }
  std::string token;
  WindowResult result;
  absl::StatusOr<bool> acquired = false;
  // A lease the batch took long ago (earlier items waited on row locks):
  // checked, and the reads made under it made again.
  bool stale = false;
  if (pf != nullptr && pf->window.has_value()) {
    // Applied for the batch (ApplyMany): the index entries are written; the
    // lease is ours, or else taken as below (without adding again).
    token = pf->request.lease->token;
    if (pf->window->lease_acquired) {
      result = *std::move(pf->window);
      acquired = true;
      stale = clock_->Now() - pf->acquired_at >= options_.lease_ttl / 2;
      if (stale) {
        have_reads = false;
        pf->under_lease.reset();
        pf->unrelated.reset();
        pf->expired.reset();
      }
    } else {
      // The batch's attempt was the first.
      req.add.clear();
      acquired = AcquireLease(plan.lease_key, token, &req, &result, 1);
    }
    pf->window.reset();
  } else {
    token = PendingToken(plan.lease_key);
    if (token.empty()) token = NextToken(action.id);
    acquired = AcquireLease(plan.lease_key, token, &req, &result);
  }
  if (!acquired.ok()) return acquired.status();
  if (!*acquired) {
    return internal::LeaseBusyError(
        internal::StrCat("converge: lease on dimension ", plan.dim.dimension,
                         " stayed busy after ", options_.lease_attempts,
                         " attempts; retry later"));
  }
  LeaseReleaser releaser{stores_.lock, plan.lease_key, token};

  // Under the lease. A concurrent delivery of the same action may have
  // decided while we waited: every repo write below refuses to decide an
  // action twice and hands back the stored decision instead.
  std::vector<int64_t> matched;
  if (have_reads) matched = MatchIds(result);
  // A few rounds: an instance can end, or (after a lost lease) be created,
  // between our read and our write; the repo's checks make that visible.
  for (int round = 0; round < 4; ++round) {
    const absl::Time at = clock_->Now();
    record.decision.decided_at = at;
    record.status_time = at;
    // Still ours? A holder that outlived its lease must not write. Not
    // asked in the first round: the lease was taken (to now + lease_ttl)
    // just before, with nothing in between but matching in memory, and
    // asking would cost a store round trip on the hot path (a join costs
    // two Redis round trips: Apply and Release).
    if (round > 0 || stale) {
      absl::StatusOr<bool> held =
          stores_.lock->Extend(plan.lease_key, token, options_.lease_ttl);
      if (!held.ok()) return held.status();
      if (!*held) {
        return internal::LeaseBusyError(internal::StrCat(
            "converge: lost the lease on dimension ", plan.dim.dimension,
            " while evaluating action ", action.id, "; retry later"));
      }
    }
    // A hint of an open instance inside the window is checked by Join. Any
    // other hint is read again under the lease: an instance may have been
    // created (or the expired one ended and replaced) between the hint and
    // the lease, and missing it would execute an action below the threshold.
    if (round == 0 && pf != nullptr && pf->under_lease.has_value()) {
      // Read for the batch after its leases were taken.
      open = *std::move(pf->under_lease);
      pf->under_lease.reset();
    } else if (round > 0 || !open->has_value() ||
               (*open)->create_time < plan.start) {
      open = stores_.repo->LookupOpen(plan.dim.dimension);
      if (!open.ok()) return open.status();
    }
    if (open->has_value() && (*open)->create_time < plan.start) {
      // Lazy expiry (section 3.5.1): ended relative to this action.
      const ConvergeInstance* known = nullptr;
      if (pf != nullptr && pf->expired.has_value()) known = &*pf->expired;
      absl::StatusOr<bool> ended = EndExpired((*open)->id, at, known);
      if (pf != nullptr) pf->expired.reset();
      if (!ended.ok()) return ended.status();
      if (!*ended) continue;  // someone else ended it: look again
      open->reset();
    }

    if (open->has_value()) {
      std::vector<MemberStatus> executed;
      int64_t n = 0;
      if (FunctionReadsStatuses(eff.converge_func)) {
        absl::StatusOr<std::vector<MemberStatus>> members =
            stores_.repo->ExecutedMembers((*open)->id);
        if (!members.ok()) return members.status();
        executed = *std::move(members);
      } else {
        absl::StatusOr<int64_t> count =
            stores_.repo->CountExecuted((*open)->id);
        if (!count.ok()) return count.status();
        n = *count;
      }
      absl::StatusOr<std::optional<Decision>> joined = JoinOpen(
          action, eff, plan.window_seconds, (*open)->id, n, &executed, &record);
      if (!joined.ok()) return joined.status();
      if (joined->has_value()) return **joined;
      continue;  // the instance ended under us: look again
    }

    // No open instance: the match list, minus actions already related.
    if (!have_reads) {
      WindowRequest reads;
      reads.lease = LeaseRequest{plan.lease_key, token, options_.lease_ttl};
      absl::StatusOr<std::vector<std::vector<std::string>>> groups =
          read_groups();
      if (!groups.ok()) return groups.status();
      reads.read_groups = *std::move(groups);
      reads.intersect = true;
      reads.start = plan.start;
      reads.end = plan.end;
      absl::StatusOr<WindowResult> r = stores_.window->Apply(reads);
      if (!r.ok()) return r.status();
      if (!r->lease_acquired) {
        return internal::LeaseBusyError(internal::StrCat(
            "converge: lost the lease on dimension ", plan.dim.dimension,
            " while evaluating action ", action.id, "; retry later"));
      }
      matched = MatchIds(*r);
      have_reads = true;
    }
    absl::StatusOr<std::vector<int64_t>> unrelated;
    if (pf != nullptr && pf->unrelated.has_value()) {
      // Asked for the batch with its window reads; less what the batch has
      // related since.
      unrelated = *std::move(pf->unrelated);
      pf->unrelated.reset();
      if (t_deferred != nullptr) {
        std::erase_if(*unrelated, [](int64_t id) {
          return t_deferred->related.contains(id);
        });
      }
    } else {
      unrelated = stores_.repo->Unrelated(matched, ConvergeType::kAction);
    }
    if (!unrelated.ok()) return unrelated.status();
    const int64_t n = static_cast<int64_t>(unrelated->size());
    if (n == 0 || n < eff.count) {
      record.decision.outcome = Outcome::kExecute;
      record.decision.converge_id.reset();
      record.decision.primary = false;
      record.decision.reason = "below threshold";
      record.status = ActionStatus::kConverged;
      return Record(record);
    }

    FunctionInput in;
    in.func = eff.converge_func;
    in.type = ConvergeType::kAction;
    in.is_new = true;
    in.count = eff.count;
    in.now = at;
    in.window_seconds = plan.window_seconds;
    // The business counter (section 5.1), counted once per creation
    // attempt, before the creator's outcome is known: collect skips the
    // creator's own notice once the business already has enough instances.
    std::optional<std::array<std::string, 5>> business;
    if (HasSecondLevel(eff)) {
      business = BusinessFields(details().converged_condition);
    }
    if (business.has_value()) {
      absl::StatusOr<std::string> counter =
          BusinessKey(keys::kSubConvergeDimensionLock, *business);
      if (!counter.ok()) return counter.status();
      const int64_t threshold = eff.sub_converge_config->count;
      absl::StatusOr<int64_t> n = stores_.window->Increment(
          *counter, options_.business_counter_ttl, threshold);
      if (!n.ok()) return n.status();
      in.biz_converge_existed = *n > threshold;
    }
    const FunctionResult fr = EvaluateFunction(in);

    CreateRequest create;
    ConvergeInstance& inst = create.instance;
    inst.converge_type = ConvergeType::kAction;
    inst.converge_func = eff.converge_func;
    inst.bk_biz_id = action.bk_biz_id;
    inst.dimension = plan.dim.dimension;
    inst.description =
        Describe(eff, plan.window_seconds, details().converged_condition);
    inst.content = eff.context.empty() ? "{}" : eff.context;
    inst.create_time = at;
    inst.is_visible = true;
    inst.converge_config = eff;
    inst.converged_condition = details().converged_condition;
    inst.window_seconds = plan.window_seconds;
    create.primary.related_id = action.id;
    create.primary.related_type = ConvergeType::kAction;
    create.primary.is_primary = true;
    // The creator's relation is executed whatever its outcome (3.6).
    create.primary.converge_status = ConvergeStatus::kExecuted;
    create.primary.alerts = action.alerts;
    record.decision.outcome = fr.outcome;
    record.decision.primary = true;
    record.decision.reason = "created";
    record.status = StatusForOutcome(fr.outcome);
    create.creator = record;
    for (int64_t id : *unrelated) {
      if (id != action.id) create.attach_candidates.push_back(id);
    }
    absl::StatusOr<CreateResult> created = stores_.repo->Create(create);
    if (created.ok() && t_deferred != nullptr) {
      t_deferred->related.insert(action.id);
      t_deferred->related.insert(created->attached.begin(),
                                 created->attached.end());
    }
    if (created.status().code() == absl::StatusCode::kAlreadyExists) {
      // Another evaluator created D (our lease expired), or decided this
      // action: look again.
      existing = stores_.repo->GetAction(action.id);
      if (!existing.ok()) return existing.status();
      if (existing->has_value()) return Replay(**existing);
      continue;
    }
    if (!created.ok()) return created.status();
    NotifyInstance(InstanceEvent::Kind::kCreated, created->instance, at);
    if (fr.schedule_summary) {
      if (absl::Status st = EnsureSummary(created->instance); !st.ok()) {
        return st;
      }
    }
    if (business.has_value()) {
      if (absl::Status st = EnsureSubConverge(created->instance); !st.ok()) {
        return st;
      }
    }
    Decision d = record.decision;
    d.converge_id = created->instance.id;
    return d;
  }
  return absl::AbortedError(internal::StrCat(
      "converge: dimension ", plan.dim.dimension,
      " kept changing while action ", action.id, " was evaluated; retry"));
}

absl::StatusOr<std::optional<Decision>> ConvergeManager::JoinOpen(
    const Action& action, const ConvergeConfig& eff, int64_t window_seconds,
    int64_t converge_id, int64_t executed_count,
    const std::vector<MemberStatus>* executed, ActionRecord* record) {
  const absl::Time at = clock_->Now();
  FunctionInput in;
  in.func = eff.converge_func;
  in.type = ConvergeType::kAction;
  in.is_new = false;
  in.count = eff.count;
  if (executed != nullptr && FunctionReadsStatuses(eff.converge_func)) {
    in.executed = *executed;
  } else {
    in.executed_count = executed_count;
  }
  in.now = at;
  in.window_seconds = window_seconds;
  const FunctionResult fr = EvaluateFunction(in);
  record->decision.decided_at = at;
  record->status_time = at;
  record->decision.outcome = fr.outcome;
  record->decision.converge_id = converge_id;
  record->decision.primary = false;
  record->decision.reason = "joined";
  record->status = StatusForOutcome(fr.outcome);
  ConvergeRelation rel;
  rel.converge_id = converge_id;
  rel.related_id = action.id;
  rel.related_type = ConvergeType::kAction;
  rel.is_primary = false;
  rel.converge_status = fr.outcome == Outcome::kExecute
                            ? ConvergeStatus::kExecuted
                            : ConvergeStatus::kSkipped;
  rel.alerts = action.alerts;
  absl::StatusOr<RecordResult> joined = stores_.repo->Join(*record, rel);
  if (joined.status().code() == absl::StatusCode::kFailedPrecondition) {
    return std::optional<Decision>();  // ended meanwhile
  }
  if (!joined.ok()) return joined.status();
  if (t_deferred != nullptr && joined->inserted) {
    t_deferred->related.insert(action.id);
  }
  if (!joined->inserted) {
    absl::StatusOr<Decision> replayed = Replay(joined->record);
    if (!replayed.ok()) return replayed.status();
    return std::optional<Decision>(*std::move(replayed));
  }
  return std::optional<Decision>(joined->record.decision);
}

absl::StatusOr<bool> ConvergeManager::AcquireLease(const std::string& key,
                                                   const std::string& token,
                                                   WindowRequest* request,
                                                   WindowResult* result,
                                                   int tried) {
  if (request != nullptr) {
    request->lease = LeaseRequest{key, token, options_.lease_ttl};
  }
  std::optional<absl::BitGen> gen;  // seeded only if we have to wait
  absl::Duration delay = options_.lease_backoff_min;
  // A store error may come after the lease was taken (the write went
  // through, the reply was lost): release it best-effort, so that D is not
  // blocked until the lease expires. Tokens are unique, so this never frees
  // another owner's lease.
  auto fail = [&](absl::Status st) -> absl::StatusOr<bool> {
    (void)stores_.lock->Release(key, token);
    return st;
  };
  // In a repo batch that holds the store's write lock (SQLite), the holder
  // of a busy lease (another process) cannot release it before the batch
  // ends, so waiting is pointless; the item is refused at once (lease busy,
  // retried later by the caller or the processor). A batch of row locks
  // (MySQL) waits as a call outside a batch does while it holds no lease
  // yet; once it holds some (their releases deferred to its end), it does
  // not wait either: waiting would keep those leases past their time
  // (their expiry is not pushed while the batch runs), and two batches
  // each holding what the other waits for would only wait each other out.
  const bool holding = InRepoBatch() && (!t_deferred->defer_releases ||
                                         !t_deferred->releases.empty() ||
                                         t_deferred->prefetched_leases > 0);
  const int attempts = holding ? 1 : options_.lease_attempts;
  for (int attempt = tried; attempt < attempts; ++attempt) {
    if (attempt > 0) {
      // Jittered, doubling, bounded real-time backoff.
      if (!gen.has_value()) gen.emplace();
      const double jitter = absl::Uniform(*gen, 0.5, 1.0);
      std::this_thread::sleep_for(absl::ToChronoNanoseconds(delay * jitter));
      delay = std::min(delay * 2, options_.lease_backoff_max);
    }
    if (request != nullptr) {
      absl::StatusOr<WindowResult> r = stores_.window->Apply(*request);
      if (!r.ok()) return fail(r.status());
      if (r->lease_acquired) {
        *result = *std::move(r);
        return true;
      }
      request->add.clear();  // indexed on the first attempt
      if (options_.metrics != nullptr)
        options_.metrics->RecordLeaseContention();
    } else {
      absl::StatusOr<bool> r =
          stores_.lock->TryAcquire(key, token, options_.lease_ttl);
      if (!r.ok()) return fail(r.status());
      if (*r) return true;
      if (options_.metrics != nullptr)
        options_.metrics->RecordLeaseContention();
    }
  }
  return false;
}

absl::Status ConvergeManager::EnsureSummary(const ConvergeInstance& instance) {
  if (!instance.is_open()) return absl::OkStatus();
  if (instance.converge_func != ConvergeFunction::kCollect &&
      instance.converge_func != ConvergeFunction::kCollectAlarm) {
    return absl::OkStatus();
  }
  return EnqueueOnce(task_kinds::kSummary, instance.id,
                     instance.create_time + options_.summary_delay);
}

absl::Status ConvergeManager::ReportStatus(int64_t action_id,
                                           ActionStatus status) {
  return stores_.repo->SetActionStatus(action_id, status, clock_->Now());
}

absl::StatusOr<std::optional<Decision>> ConvergeManager::GetDecision(
    int64_t action_id) {
  absl::StatusOr<std::optional<ActionRecord>> rec =
      stores_.repo->GetAction(action_id);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) return std::optional<Decision>();
  return std::optional<Decision>(Replayed(**rec));
}

absl::StatusOr<Decision> ConvergeManager::StoredDecision(int64_t action_id) {
  absl::StatusOr<std::optional<Decision>> stored = GetDecision(action_id);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) {
    return absl::InternalError(
        internal::StrCat("converge: action ", action_id, " lost its decision"));
  }
  return **stored;
}

absl::StatusOr<std::string> ConvergeManager::LeaseKey(
    std::string_view dimension) const {
  return keys_.Render(keys::kConvergeProcessLock, {{"dimension", dimension}},
                      LeaseRoute(dimension));
}

absl::StatusOr<bool> ConvergeManager::EndInstance(int64_t converge_id) {
  return EndRecursive(converge_id, clock_->Now(), 0);
}

absl::StatusOr<Decision> ConvergeManager::Reevaluate(int64_t action_id) {
  absl::StatusOr<std::optional<ActionRecord>> rec =
      stores_.repo->GetAction(action_id);
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) {
    return absl::NotFoundError(
        internal::StrCat("converge: action ", action_id, " has no decision"));
  }
  const ActionRecord& record = **rec;
  if (record.decision.outcome != Outcome::kSleep ||
      !record.decision.converge_id.has_value()) {
    // Decided already: a re-poll retried after the update committed but
    // before its follow-up was scheduled schedules it now (idempotent).
    if (absl::Status st = EnsureFollowUp(record.decision); !st.ok()) return st;
    return Replayed(record);
  }
  absl::StatusOr<ConvergeInstance> inst =
      stores_.repo->GetInstance(*record.decision.converge_id);
  if (!inst.ok()) return inst.status();

  const absl::Time now = clock_->Now();
  Decision next = record.decision;
  next.decided_at = now;
  next.replayed = false;
  // Upstream: create_time + max(execute timeout, max_timedelta) (3.4 step 2).
  // When neither is set (upstream would time out at once) the window bounds
  // the sleep instead.
  // max_timedelta counts in whole minutes where windows do (upstream Wm).
  int64_t max_timedelta = inst->converge_config.max_timedelta;
  if (options_.rules.profile == Profile::kBkmonitor ||
      options_.rules.minute_windows) {
    max_timedelta = max_timedelta / 60 * 60;
  }
  int64_t limit = std::max(record.execute_timeout, max_timedelta);
  if (limit == 0) limit = inst->window_seconds;
  std::string token;
  std::string lease_key;
  if (record.create_time + absl::Seconds(limit) < now) {
    next.outcome = Outcome::kSkip;
    next.reason = "sleep timed out";
  } else if (!inst->is_open()) {
    next.outcome = Outcome::kExecute;
    next.reason = "the instance it waited on has ended";
  } else {
    absl::StatusOr<std::string> key = LeaseKey(inst->dimension);
    if (!key.ok()) return key.status();
    lease_key = *std::move(key);
    token = PendingToken(lease_key);
    if (token.empty()) token = NextToken(action_id);
    absl::StatusOr<bool> acquired =
        AcquireLease(lease_key, token, nullptr, nullptr);
    if (!acquired.ok()) return acquired.status();
    if (!*acquired) {
      return internal::LeaseBusyError(
          internal::StrCat("converge: lease on dimension ", inst->dimension,
                           " stayed busy after ", options_.lease_attempts,
                           " attempts; retry later"));
    }
  }
  LeaseReleaser releaser{stores_.lock, lease_key, token};

  if (!token.empty()) {
    // Under the lease: the instance may have ended since we read it.
    inst = stores_.repo->GetInstance(inst->id);
    if (!inst.ok()) return inst.status();
  }
  if (!token.empty() && !inst->is_open()) {
    next.outcome = Outcome::kExecute;
    next.reason = "the instance it waited on has ended";
  } else if (!token.empty()) {
    absl::StatusOr<std::vector<MemberStatus>> executed =
        stores_.repo->ExecutedMembers(inst->id);
    if (!executed.ok()) return executed.status();
    FunctionInput in;
    in.func = inst->converge_config.converge_func;
    in.type = ConvergeType::kAction;
    in.is_new = false;
    in.count = inst->converge_config.count;
    in.executed = *executed;
    in.now = now;
    in.window_seconds = inst->window_seconds;
    next.outcome = EvaluateFunction(in).outcome;
    if (next.outcome == Outcome::kSleep) {
      // Unchanged; return what is stored now (another evaluator may have
      // decided meanwhile).
      return StoredDecision(action_id);
    }
  }
  absl::StatusOr<bool> updated =
      stores_.repo->UpdateDecision(action_id, Outcome::kSleep, next);
  if (!updated.ok()) return updated.status();
  if (!*updated) {
    // Another evaluator changed it first; return what is stored.
    return StoredDecision(action_id);
  }
  // The change is stored: it is reported whatever follows (a retried
  // re-poll finds it decided and reports nothing). A sleeper sent to
  // approval (approve_when_failed) gets its approval timeout, as one
  // decided so at once does; if that fails, the retry schedules it.
  NotifyDecisionChanged(next, inst->converge_config.converge_func);
  if (absl::Status st = EnsureFollowUp(next); !st.ok()) return st;
  return next;
}

}  // namespace converge
