#include "converge/memory/memory_store.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "converge/store/checks.h"
#include "internal/strings.h"

namespace converge::memory {
namespace {

// ---------------------------------------------------------------------------
// Shared lease and window state.

struct Lease {
  std::string token;
  absl::Time expires;
};

// Members are stored as 64-bit codes: "action_<n>" and "converge_<n>" (the
// only members converge writes) pack into the code itself; any other string
// is interned. This keeps an index entry at two machine words.
class MemberCodec {
 public:
  static constexpr uint64_t kTagShift = 62;
  static constexpr uint64_t kAction = 0, kConverge = 1, kInterned = 2;
  static constexpr uint64_t kMaxNumber = (uint64_t{1} << kTagShift) - 1;

  uint64_t Encode(std::string_view m) {
    if (uint64_t code; Pack(m, "action_", kAction, &code) ||
                       Pack(m, "converge_", kConverge, &code)) {
      return code;
    }
    auto [it, inserted] =
        interned_.try_emplace(std::string(m), strings_.size());
    if (inserted) strings_.push_back(std::string(m));
    return (kInterned << kTagShift) | it->second;
  }

  // Like Encode, but never interns: returns false for an unknown string.
  bool Find(std::string_view m, uint64_t* code) const {
    if (Pack(m, "action_", kAction, code) ||
        Pack(m, "converge_", kConverge, code)) {
      return true;
    }
    auto it = interned_.find(internal::AV(m));
    if (it == interned_.end()) return false;
    *code = (kInterned << kTagShift) | it->second;
    return true;
  }

  std::string Decode(uint64_t code) const {
    uint64_t tag = code >> kTagShift;
    uint64_t n = code & kMaxNumber;
    if (tag == kAction) return internal::StrCat("action_", n);
    if (tag == kConverge) return internal::StrCat("converge_", n);
    return strings_[n];
  }

 private:
  static bool Pack(std::string_view m, std::string_view prefix, uint64_t tag,
                   uint64_t* code) {
    if (m.size() <= prefix.size() || m.substr(0, prefix.size()) != prefix) {
      return false;
    }
    std::string_view digits = m.substr(prefix.size());
    // Canonical decimal only, so that decoding gives the same string back.
    if (digits.size() > 1 && digits[0] == '0') return false;
    uint64_t n;
    if (!absl::SimpleAtoi(internal::AV(digits), &n) || n > kMaxNumber ||
        internal::StrCat(n) != digits) {
      return false;
    }
    *code = (tag << kTagShift) | n;
    return true;
  }

  absl::flat_hash_map<std::string, uint64_t> interned_;
  std::vector<std::string> strings_;
};

struct WindowKey {
  absl::btree_set<std::pair<int64_t, uint64_t>> by_score;  // (nanos, member)
  absl::flat_hash_map<uint64_t, int64_t> score_of;
  absl::Time expires = absl::InfiniteFuture();
};

struct LeaseState {
  explicit LeaseState(const Clock* c) : clock(c) {}
  const Clock* clock;
  std::mutex mu;
  absl::flat_hash_map<std::string, Lease> leases;
  absl::flat_hash_map<std::string, WindowKey> windows;
  struct Counter {
    int64_t value = 0;
    absl::Time expires = absl::InfiniteFuture();
  };
  absl::flat_hash_map<std::string, Counter> counters;
  MemberCodec codec;
  uint64_t ops_since_sweep = 0;

  // Keys are otherwise dropped only when touched after they expired, and
  // leases that expire unreleased (a crashed holder) only when retaken; a
  // sweep every kSweepEvery calls removes both, so that dimensions that go
  // quiet do not hold memory forever. Amortized O(1) per call.
  static constexpr uint64_t kSweepEvery = 1 << 16;
  void MaybeSweep(absl::Time now) {
    if (++ops_since_sweep < kSweepEvery) return;
    ops_since_sweep = 0;
    absl::erase_if(windows, [&](const auto& entry) {
      return entry.second.expires <= now;
    });
    absl::erase_if(leases, [&](const auto& entry) {
      return entry.second.token.empty() || entry.second.expires <= now;
    });
    absl::erase_if(counters, [&](const auto& entry) {
      return entry.second.expires <= now;
    });
  }

  // The live counter `key`, dropping it if it has expired.
  Counter* LiveCounter(std::string_view key, absl::Time now) {
    if (counters.empty()) return nullptr;
    auto it = counters.find(internal::AV(key));
    if (it == counters.end()) return nullptr;
    if (it->second.expires <= now) {
      counters.erase(it);
      return nullptr;
    }
    return &it->second;
  }

  // Lease semantics shared by LockStore and WindowStore.
  bool TryAcquireLocked(std::string_view key, std::string_view token,
                        absl::Duration ttl, absl::Time now) {
    auto it = leases.find(internal::AV(key));
    // A released lease keeps its entry with an empty token (no allocation
    // for the next holder of the same dimension).
    if (it != leases.end() && !it->second.token.empty() &&
        it->second.token != token && it->second.expires > now) {
      return false;
    }
    if (it == leases.end()) {
      leases.emplace(std::string(key), Lease{std::string(token), now + ttl});
    } else {
      it->second.token.assign(token.data(), token.size());
      it->second.expires = now + ttl;
    }
    return true;
  }

  // Returns the live window key, dropping it if it has expired.
  WindowKey* LiveKey(std::string_view key, absl::Time now) {
    auto it = windows.find(internal::AV(key));
    if (it == windows.end()) return nullptr;
    if (it->second.expires <= now) {
      windows.erase(it);
      return nullptr;
    }
    return &it->second;
  }
};

constexpr size_t kMaxFreeLeases = 1 << 16;

class MemoryLockStore final : public LockStore {
 public:
  explicit MemoryLockStore(std::shared_ptr<LeaseState> s) : s_(std::move(s)) {}

  absl::StatusOr<bool> TryAcquire(std::string_view key, std::string_view token,
                                  absl::Duration ttl) override {
    if (auto st = store::CheckLeaseArgs("memory", key, token, ttl); !st.ok())
      return st;
    std::lock_guard<std::mutex> lock(s_->mu);
    return s_->TryAcquireLocked(key, token, ttl, s_->clock->Now());
  }

  absl::StatusOr<bool> Release(std::string_view key,
                               std::string_view token) override {
    if (auto st = store::CheckLeaseArgs("memory", key, token, std::nullopt);
        !st.ok())
      return st;
    std::lock_guard<std::mutex> lock(s_->mu);
    auto it = s_->leases.find(internal::AV(key));
    if (it == s_->leases.end() || it->second.token != token) return false;
    // Keep a bounded number of free entries for reuse.
    if (s_->leases.size() > kMaxFreeLeases) {
      s_->leases.erase(it);
    } else {
      it->second.token.clear();
    }
    return true;
  }

  absl::StatusOr<bool> Extend(std::string_view key, std::string_view token,
                              absl::Duration ttl) override {
    if (auto st = store::CheckLeaseArgs("memory", key, token, ttl); !st.ok())
      return st;
    std::lock_guard<std::mutex> lock(s_->mu);
    const absl::Time now = s_->clock->Now();
    auto it = s_->leases.find(internal::AV(key));
    if (it == s_->leases.end() || it->second.token != token ||
        it->second.expires <= now) {
      return false;
    }
    it->second.expires = now + ttl;
    return true;
  }

  absl::StatusOr<std::vector<LeaseInfo>> ListLeases(std::string_view prefix,
                                                    size_t limit) override {
    std::vector<LeaseInfo> out;
    std::lock_guard<std::mutex> lock(s_->mu);
    const absl::Time now = s_->clock->Now();
    for (const auto& [key, lease] : s_->leases) {
      if (lease.token.empty() || lease.expires <= now) continue;
      if (std::string_view(key.data(), key.size()).substr(0, prefix.size()) !=
          prefix) {
        continue;
      }
      out.push_back(LeaseInfo{std::string(key), lease.token, lease.expires});
    }
    return store::SortAndLimitLeases(std::move(out), limit);
  }

 private:
  std::shared_ptr<LeaseState> s_;
};

class MemoryWindowStore final : public WindowStore {
 public:
  explicit MemoryWindowStore(std::shared_ptr<LeaseState> s)
      : s_(std::move(s)) {}

  absl::StatusOr<WindowResult> Apply(const WindowRequest& req) override {
    if (auto st = store::CheckWindowRequest("memory", req); !st.ok()) {
      return st;
    }

    std::lock_guard<std::mutex> lock(s_->mu);
    const absl::Time now = s_->clock->Now();
    s_->MaybeSweep(now);
    const int64_t trim = req.trim_before == absl::InfinitePast()
                             ? std::numeric_limits<int64_t>::min()
                             : absl::ToUnixNanos(req.trim_before);
    for (const WindowEntry& e : req.add) {
      if (s_->LiveCounter(e.key, now) != nullptr) {
        return absl::FailedPreconditionError(internal::StrCat(
            "memory: key ", e.key, " is a counter, not a window index"));
      }
    }
    for (const WindowEntry& e : req.add) {
      WindowKey* wk = s_->LiveKey(e.key, now);
      if (wk == nullptr) wk = &s_->windows[e.key];
      const uint64_t code = s_->codec.Encode(e.member);
      const int64_t score = absl::ToUnixNanos(e.score);
      auto [it, inserted] = wk->score_of.try_emplace(code, score);
      if (!inserted && it->second != score) {
        wk->by_score.erase({it->second, code});
        it->second = score;
      }
      wk->by_score.insert({score, code});
      wk->expires = req.key_ttl > absl::ZeroDuration() ? now + req.key_ttl
                                                       : absl::InfiniteFuture();
      // ZREMRANGEBYSCORE -inf (trim_before.
      while (!wk->by_score.empty() && wk->by_score.begin()->first < trim) {
        wk->score_of.erase(wk->by_score.begin()->second);
        wk->by_score.erase(wk->by_score.begin());
      }
      if (wk->by_score.empty()) s_->windows.erase(e.key);
    }

    WindowResult result;
    if (req.lease.has_value() &&
        !s_->TryAcquireLocked(req.lease->key, req.lease->token, req.lease->ttl,
                              now)) {
      result.lease_acquired = false;
      return result;
    }
    const int64_t lo = req.start == absl::InfinitePast()
                           ? std::numeric_limits<int64_t>::min()
                           : absl::ToUnixNanos(req.start);
    const int64_t hi = req.end == absl::InfiniteFuture()
                           ? std::numeric_limits<int64_t>::max()
                           : absl::ToUnixNanos(req.end);
    if (req.intersect && req.read_groups.size() > 1) {
      result.groups.push_back(Intersect(req.read_groups, lo, hi, now));
      return result;
    }
    result.groups.reserve(req.read_groups.size());
    std::vector<uint64_t> codes;
    for (const auto& group : req.read_groups) {
      codes.clear();
      for (const std::string& key : group) {
        WindowKey* wk = s_->LiveKey(key, now);
        if (wk == nullptr || lo > hi) continue;
        for (auto it = wk->by_score.lower_bound({lo, 0});
             it != wk->by_score.end() && it->first <= hi; ++it) {
          codes.push_back(it->second);
        }
      }
      if (group.size() > 1) {
        std::sort(codes.begin(), codes.end());
        codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
      }
      std::vector<std::string>& out = result.groups.emplace_back();
      out.reserve(codes.size());
      for (uint64_t code : codes) out.push_back(s_->codec.Decode(code));
    }
    return result;
  }

  absl::StatusOr<bool> Remove(std::string_view key,
                              std::string_view member) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    WindowKey* wk = s_->LiveKey(key, s_->clock->Now());
    uint64_t code;
    if (wk == nullptr || !s_->codec.Find(member, &code)) return false;
    auto it = wk->score_of.find(code);
    if (it == wk->score_of.end()) return false;
    wk->by_score.erase({it->second, code});
    wk->score_of.erase(it);
    if (wk->by_score.empty()) s_->windows.erase(std::string(key));
    return true;
  }

  absl::StatusOr<int64_t> Size(std::string_view key) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    WindowKey* wk = s_->LiveKey(key, s_->clock->Now());
    return wk == nullptr ? 0 : static_cast<int64_t>(wk->by_score.size());
  }

  absl::StatusOr<int64_t> Increment(std::string_view key, absl::Duration ttl,
                                    int64_t refresh_up_to) override {
    if (auto st = store::CheckCounterArgs("memory", key, ttl); !st.ok()) {
      return st;
    }
    std::lock_guard<std::mutex> lock(s_->mu);
    const absl::Time now = s_->clock->Now();
    if (s_->LiveKey(key, now) != nullptr) {
      return absl::FailedPreconditionError(internal::StrCat(
          "memory: key ", key, " is a window index, not a counter"));
    }
    LeaseState::Counter* c = s_->LiveCounter(key, now);
    if (c == nullptr) c = &s_->counters[std::string(key)];
    ++c->value;
    if (c->value <= refresh_up_to) c->expires = now + ttl;
    return c->value;
  }

  absl::StatusOr<int64_t> CounterValue(std::string_view key) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    LeaseState::Counter* c = s_->LiveCounter(key, s_->clock->Now());
    return c == nullptr ? 0 : c->value;
  }

  absl::StatusOr<bool> Delete(std::string_view key) override {
    std::lock_guard<std::mutex> lock(s_->mu);
    const absl::Time now = s_->clock->Now();
    if (s_->LiveCounter(key, now) != nullptr) {
      s_->counters.erase(internal::AV(key));
      return true;
    }
    if (s_->LiveKey(key, now) != nullptr) {
      s_->windows.erase(internal::AV(key));
      return true;
    }
    return false;
  }

 private:
  // WindowRequest::intersect: the members scored within [lo, hi] in every
  // group, read from the group with the fewest members and looked up in the
  // others. Under s_->mu.
  std::vector<std::string> Intersect(
      const std::vector<std::vector<std::string>>& groups, int64_t lo,
      int64_t hi, absl::Time now) {
    std::vector<std::vector<const WindowKey*>> keys(groups.size());
    size_t smallest = 0;
    size_t smallest_size = std::numeric_limits<size_t>::max();
    for (size_t g = 0; g < groups.size(); ++g) {
      size_t size = 0;
      for (const std::string& key : groups[g]) {
        if (const WindowKey* wk = s_->LiveKey(key, now)) {
          keys[g].push_back(wk);
          size += wk->score_of.size();
        }
      }
      if (size < smallest_size) {
        smallest = g;
        smallest_size = size;
      }
    }
    std::vector<std::string> out;
    if (lo > hi || smallest_size == 0) return out;
    auto in_group = [&](size_t g, uint64_t code) {
      for (const WindowKey* wk : keys[g]) {
        auto it = wk->score_of.find(code);
        if (it != wk->score_of.end() && it->second >= lo && it->second <= hi) {
          return true;
        }
      }
      return false;
    };
    std::vector<uint64_t> codes;
    for (const WindowKey* wk : keys[smallest]) {
      for (auto it = wk->by_score.lower_bound({lo, 0});
           it != wk->by_score.end() && it->first <= hi; ++it) {
        codes.push_back(it->second);
      }
    }
    std::sort(codes.begin(), codes.end());
    codes.erase(std::unique(codes.begin(), codes.end()), codes.end());
    for (uint64_t code : codes) {
      bool everywhere = true;
      for (size_t g = 0; g < groups.size() && everywhere; ++g) {
        if (g != smallest) everywhere = in_group(g, code);
      }
      if (everywhere) out.push_back(s_->codec.Decode(code));
    }
    return out;
  }

  std::shared_ptr<LeaseState> s_;
};

// ---------------------------------------------------------------------------
// Instance repo.

// Compact per-action row (the memory store is sized for storms of millions
// of actions): reasons are interned, times are nanoseconds.
struct ActionRow {
  int64_t create = 0;
  int64_t status_time = 0;
  int64_t decided_at = 0;
  int64_t converge_id = 0;  // 0 = none
  int64_t strategy_id = 0;
  int64_t execute_timeout = 0;
  uint32_t reason = 0;
  Outcome outcome = Outcome::kExecute;
  ActionStatus status = ActionStatus::kReceived;
  bool primary = false;
  bool related = false;  // has a relation of type action
  bool decided = false;  // false: only related (a relation without decision)
};

struct RelationRow {
  int64_t id = 0;
  int64_t related_id = 0;
  ConvergeType related_type = ConvergeType::kAction;
  bool is_primary = false;
  ConvergeStatus status = ConvergeStatus::kSkipped;
  // Alert ids, length-prefixed in one string (one short alert id fits the
  // string's inline buffer: no allocation).
  std::string alerts;
};

std::string PackAlerts(const std::vector<std::string>& alerts) {
  std::string out;
  for (const std::string& a : alerts) {
    if (a.size() < 255) {
      out.push_back(static_cast<char>(a.size()));
    } else {
      out.push_back(static_cast<char>(255));
      const uint32_t n = static_cast<uint32_t>(a.size());
      out.append(reinterpret_cast<const char*>(&n), sizeof(n));
    }
    out.append(a);
  }
  return out;
}

std::vector<std::string> UnpackAlerts(std::string_view packed) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < packed.size()) {
    size_t n = static_cast<unsigned char>(packed[pos++]);
    if (n == 255) {
      uint32_t len;
      std::memcpy(&len, packed.data() + pos, sizeof(len));
      pos += sizeof(len);
      n = len;
    }
    out.emplace_back(packed.substr(pos, n));
    pos += n;
  }
  return out;
}

struct Digest {
  uint64_t a = 0, b = 0;
  uint32_t c = 0;
  friend bool operator==(const Digest& x, const Digest& y) {
    return x.a == y.a && x.b == y.b && x.c == y.c;
  }
  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.a, d.b, d.c);
  }
};

// Parses a canonical dimension; false for any other text.
bool ParseDigest(std::string_view dimension, Digest* out) {
  constexpr std::string_view kPrefix = "!sha1#";
  if (dimension.size() != kPrefix.size() + 40 ||
      dimension.substr(0, kPrefix.size()) != kPrefix) {
    return false;
  }
  // Lowercase hex digit values; 0xFF for anything else (uppercase too: a
  // non-canonical text).
  static constexpr auto kHex = [] {
    std::array<uint8_t, 256> t{};
    for (auto& v : t) v = 0xFF;
    for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
    return t;
  }();
  const auto* hex =
      reinterpret_cast<const unsigned char*>(dimension.data() + kPrefix.size());
  uint8_t bytes[20];
  uint8_t bad = 0;
  for (int i = 0; i < 20; ++i) {
    const uint8_t hi = kHex[hex[2 * i]];
    const uint8_t lo = kHex[hex[2 * i + 1]];
    bad |= hi | lo;
    bytes[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  if (bad & 0xF0) return false;
  std::memcpy(&out->a, bytes, 8);
  std::memcpy(&out->b, bytes + 8, 8);
  std::memcpy(&out->c, bytes + 16, 4);
  return true;
}

struct InstanceRow {
  ConvergeInstance instance;
  // A deque: an instance of a storm gathers thousands of relations, and a
  // vector's doubling would keep allocating (and freeing) large blocks.
  std::deque<RelationRow> relations;
  std::vector<int64_t> executed;  // executed action members, by id
};

class MemoryInstanceRepo final : public InstanceRepo {
 public:
  absl::StatusOr<std::optional<ActionRecord>> GetAction(
      int64_t action_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    const ActionRow* row = Decided(action_id);
    if (row == nullptr) return std::optional<ActionRecord>();
    return std::optional<ActionRecord>(ToRecord(action_id, *row));
  }

  absl::StatusOr<RecordResult> RecordDecision(
      const ActionRecord& record) override {
    if (auto st = store::CheckRecord("memory", record); !st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu_);
    if (const ActionRow* row = Decided(record.id); row != nullptr) {
      return RecordResult{ToRecord(record.id, *row), false};
    }
    ActionRow& row = actions_[record.id];
    FillRow(record, &row);
    return RecordResult{ToRecord(record.id, row), true};
  }

  absl::StatusOr<RecordResult> Join(const ActionRecord& record,
                                    const ConvergeRelation& rel) override {
    if (auto st = store::CheckJoin("memory", record, rel); !st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu_);
    // Check the instance first, so that one probe of actions_ both finds an
    // existing row and makes the new one.
    auto inst = instances_.find(rel.converge_id);
    const bool open =
        inst != instances_.end() && inst->second.instance.is_open();
    auto [it, inserted] = actions_.try_emplace(record.id);
    ActionRow& row = it->second;
    if (!inserted && row.decided) {
      return RecordResult{ToRecord(record.id, row), false};
    }
    if (!inserted && row.related) {
      return absl::AlreadyExistsError(
          internal::StrCat("memory: action ", record.id,
                           " already has a relation but no decision"));
    }
    if (!open) {
      if (inserted) actions_.erase(it);
      if (inst == instances_.end()) {
        return absl::NotFoundError(
            internal::StrCat("memory: no instance ", rel.converge_id));
      }
      return absl::FailedPreconditionError(
          internal::StrCat("memory: instance ", rel.converge_id, " has ended"));
    }
    FillRow(record, &row);
    row.converge_id = rel.converge_id;
    AddRelation(&inst->second, rel, &row);
    return RecordResult{ToRecord(record.id, row), true};
  }

  absl::Status SetActionStatus(int64_t action_id, ActionStatus status,
                               absl::Time at) override {
    std::lock_guard<std::mutex> lock(mu_);
    ActionRow* row = Decided(action_id);
    if (row == nullptr) {
      return absl::NotFoundError(
          internal::StrCat("memory: action ", action_id, " has no decision"));
    }
    row->status = status;
    row->status_time = absl::ToUnixNanos(at);
    return absl::OkStatus();
  }

  absl::StatusOr<bool> UpdateDecision(int64_t action_id, Outcome expected,
                                      const Decision& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    ActionRow* found = Decided(action_id);
    if (found == nullptr) {
      return absl::NotFoundError(
          internal::StrCat("memory: action ", action_id, " has no decision"));
    }
    ActionRow& row = *found;
    if (row.outcome != expected) return false;
    row.outcome = d.outcome;
    row.converge_id = d.converge_id.value_or(0);
    row.primary = d.primary;
    row.status = StatusForOutcome(d.outcome);
    row.decided_at = absl::ToUnixNanos(d.decided_at);
    row.status_time = row.decided_at;
    row.reason = Intern(d.reason);
    return true;
  }

  absl::StatusOr<CreateResult> Create(const CreateRequest& req) override {
    if (auto st = store::CheckCreate("memory", req); !st.ok()) return st;
    std::lock_guard<std::mutex> lock(mu_);
    if (FindOpenRef(req.instance.dimension) != nullptr) {
      return absl::AlreadyExistsError(internal::StrCat(
          "memory: an open instance has dimension ", req.instance.dimension));
    }
    if (req.creator.has_value() && actions_.contains(req.creator->id)) {
      // Decided, or related without a decision: either way not a creator.
      return absl::AlreadyExistsError(
          internal::StrCat("memory: action ", req.creator->id,
                           " already has a decision or a relation"));
    }
    if (req.instance.converge_type == ConvergeType::kConverge) {
      // The primary member must be an open first-level instance: one whose
      // own summary ended it since the caller looked is not hidden and
      // summarized twice.
      auto member = instances_.find(req.primary.related_id);
      if (member == instances_.end() || !member->second.instance.is_open() ||
          member->second.instance.converge_type != ConvergeType::kAction) {
        return absl::FailedPreconditionError(
            internal::StrCat("memory: primary member ", req.primary.related_id,
                             " is not an open first-level instance"));
      }
    }
    const int64_t id = ++next_instance_id_;
    InstanceRow& row = instances_[id];
    row.instance = req.instance;
    row.instance.id = id;
    SetOpenRef(row.instance.dimension, &row);
    ConvergeRelation primary = req.primary;
    primary.converge_id = id;
    AddRelation(&row, primary);
    if (req.creator.has_value()) {
      ActionRow& arow = actions_[req.creator->id];
      FillRow(*req.creator, &arow);
      arow.converge_id = id;
      arow.primary = true;
    }
    CreateResult result;
    if (req.instance.converge_type == ConvergeType::kConverge) {
      HideLocked(primary.related_id);
      for (int64_t cand : req.attach_candidates) {
        auto cit = instances_.find(cand);
        if (cit == instances_.end() || converge_related_.contains(cand) ||
            !cit->second.instance.is_open() ||
            cit->second.instance.converge_type != ConvergeType::kAction) {
          continue;  // unknown, already linked, ended or not first-level
        }
        ConvergeRelation rel;
        rel.converge_id = id;
        rel.related_id = cand;
        rel.related_type = ConvergeType::kConverge;
        rel.is_primary = false;
        rel.converge_status = ConvergeStatus::kSkipped;
        AddRelation(&row, rel);
        HideLocked(cand);
        result.attached.push_back(cand);
      }
    } else {
      for (int64_t cand : req.attach_candidates) {
        auto it = actions_.find(cand);
        if (it == actions_.end() || !it->second.decided || it->second.related ||
            it->second.outcome != Outcome::kExecute) {
          continue;
        }
        ConvergeRelation rel;
        rel.converge_id = id;
        rel.related_id = cand;
        rel.related_type = ConvergeType::kAction;
        rel.is_primary = false;
        rel.converge_status = ConvergeStatus::kExecuted;
        AddRelation(&row, rel);
        result.attached.push_back(cand);
      }
    }
    result.instance = row.instance;
    return result;
  }

  absl::StatusOr<std::optional<ConvergeInstance>> FindOpen(
      std::string_view dimension) override {
    std::lock_guard<std::mutex> lock(mu_);
    const InstanceRow* row = FindOpenRef(dimension);
    if (row == nullptr) return std::optional<ConvergeInstance>();
    return std::optional<ConvergeInstance>(row->instance);
  }

  absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view dimension) override {
    std::lock_guard<std::mutex> lock(mu_);
    const InstanceRow* row = FindOpenRef(dimension);
    if (row == nullptr) return std::optional<OpenInstanceRef>();
    return std::optional<OpenInstanceRef>(
        OpenInstanceRef{row->instance.id, row->instance.create_time,
                        static_cast<int64_t>(row->executed.size())});
  }

  absl::StatusOr<ConvergeInstance> GetInstance(int64_t id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) {
      return absl::NotFoundError(internal::StrCat("memory: no instance ", id));
    }
    return it->second.instance;
  }

  absl::StatusOr<bool> End(int64_t id, absl::Time now) override {
    return EndIf(id, now, /*visible_only=*/false);
  }

  absl::StatusOr<bool> EndVisible(int64_t id, absl::Time now) override {
    return EndIf(id, now, /*visible_only=*/true);
  }

  absl::StatusOr<bool> EndIf(int64_t id, absl::Time now, bool visible_only) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) {
      return absl::NotFoundError(internal::StrCat("memory: no instance ", id));
    }
    ConvergeInstance& inst = it->second.instance;
    if (!inst.is_open() || (visible_only && !inst.is_visible)) return false;
    EraseOpenRef(inst.dimension);
    inst.end_time = now;
    internal::StrAppend(&inst.dimension, " fixed at ", absl::ToUnixSeconds(now),
                        " #", id);
    return true;
  }

  absl::Status SetVisible(int64_t id, bool visible) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = instances_.find(id);
    if (it == instances_.end()) {
      return absl::NotFoundError(internal::StrCat("memory: no instance ", id));
    }
    it->second.instance.is_visible = visible;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<ConvergeInstance>> ListOpen(
      size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> ids;
    ids.reserve(open_by_digest_.size() + open_by_text_.size());
    for (const auto& entry : open_by_digest_) {
      ids.push_back(entry.second->instance.id);
    }
    for (const auto& entry : open_by_text_) {
      ids.push_back(entry.second->instance.id);
    }
    std::sort(ids.begin(), ids.end());
    if (limit > 0 && ids.size() > limit) ids.resize(limit);
    std::vector<ConvergeInstance> out;
    out.reserve(ids.size());
    for (int64_t id : ids) out.push_back(instances_.at(id).instance);
    return out;
  }

  absl::StatusOr<std::vector<ConvergeInstance>> ListOpenAfter(
      int64_t after_id, size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> ids;
    auto collect = [&](const InstanceRow* row) {
      if (row->instance.id > after_id) ids.push_back(row->instance.id);
    };
    for (const auto& entry : open_by_digest_) collect(entry.second);
    for (const auto& entry : open_by_text_) collect(entry.second);
    std::sort(ids.begin(), ids.end());
    if (limit > 0 && ids.size() > limit) ids.resize(limit);
    std::vector<ConvergeInstance> out;
    out.reserve(ids.size());
    for (int64_t id : ids) out.push_back(instances_.at(id).instance);
    return out;
  }

  absl::StatusOr<std::vector<ConvergeInstance>> ListEndedAfter(
      int64_t after_id, size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> ids;
    for (const auto& [id, row] : instances_) {
      if (id > after_id && !row.instance.is_open()) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    if (limit > 0 && ids.size() > limit) ids.resize(limit);
    std::vector<ConvergeInstance> out;
    out.reserve(ids.size());
    for (int64_t id : ids) out.push_back(instances_.at(id).instance);
    return out;
  }

  absl::StatusOr<OpenCounts> CountOpen() override {
    std::lock_guard<std::mutex> lock(mu_);
    OpenCounts counts;
    auto count = [&](const InstanceRow* row) {
      if (row->instance.converge_type == ConvergeType::kAction) {
        ++counts.action;
      } else {
        ++counts.converge;
      }
    };
    for (const auto& entry : open_by_digest_) count(entry.second);
    for (const auto& entry : open_by_text_) count(entry.second);
    return counts;
  }

  absl::StatusOr<PurgeResult> Purge(absl::Time before, size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    PurgeResult result;
    const size_t cap = limit == 0 ? SIZE_MAX : limit;
    std::vector<int64_t> doomed;
    for (const auto& [id, row] : instances_) {
      if (doomed.size() >= cap) break;
      if (row.instance.end_time.has_value() &&
          *row.instance.end_time < before) {
        doomed.push_back(id);
      }
    }
    for (int64_t id : doomed) {
      InstanceRow& row = instances_.at(id);
      for (const RelationRow& r : row.relations) {
        if (r.related_type == ConvergeType::kConverge) {
          // Only this instance's link: another second-level instance may
          // hold the member too (ConvergeOf then answers the newest left).
          if (auto it = converge_related_.find(r.related_id);
              it != converge_related_.end()) {
            auto& holders = it->second;
            holders.erase(
                std::remove(holders.begin(), holders.end(), row.instance.id),
                holders.end());
            if (holders.empty()) converge_related_.erase(it);
          }
        } else if (auto it = actions_.find(r.related_id);
                   it != actions_.end()) {
          it->second.related = false;
          if (!it->second.decided) actions_.erase(it);
        }
      }
      result.relations += static_cast<int64_t>(row.relations.size());
      instances_.erase(id);
      ++result.instances;
    }
    const int64_t cutoff = absl::ToUnixNanos(before);
    std::vector<int64_t> old_actions;
    for (const auto& [id, row] : actions_) {
      if (old_actions.size() >= cap) break;
      // Members of an instance go with it (its relations name them).
      if (!row.decided || row.decided_at >= cutoff || row.related ||
          (row.converge_id != 0 && instances_.contains(row.converge_id))) {
        continue;
      }
      old_actions.push_back(id);
    }
    for (int64_t id : old_actions) actions_.erase(id);
    result.actions = static_cast<int64_t>(old_actions.size());
    return result;
  }

  absl::StatusOr<std::vector<ConvergeRelation>> Link(
      int64_t converge_id,
      absl::Span<const ConvergeRelation> relations) override {
    if (auto st = store::CheckLink("memory", converge_id, relations);
        !st.ok()) {
      return st;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = instances_.find(converge_id);
    if (it == instances_.end()) {
      return absl::NotFoundError(
          internal::StrCat("memory: no instance ", converge_id));
    }
    if (!it->second.instance.is_open()) {
      return absl::FailedPreconditionError(
          internal::StrCat("memory: instance ", converge_id, " has ended"));
    }
    std::vector<ConvergeRelation> inserted;
    for (const ConvergeRelation& rel : relations) {
      auto member = instances_.find(rel.related_id);
      if (member == instances_.end() || !member->second.instance.is_open() ||
          member->second.instance.converge_type != ConvergeType::kAction ||
          converge_related_.contains(rel.related_id)) {
        continue;  // open first-level members only, not linked yet
      }
      AddRelation(&it->second, rel);
      inserted.push_back(rel);
      inserted.back().id = it->second.relations.back().id;
      HideLocked(rel.related_id);
    }
    return inserted;
  }

  absl::StatusOr<std::vector<ConvergeRelation>> Relations(
      int64_t converge_id) override {
    return RelationsAfter(converge_id, std::numeric_limits<int64_t>::min(), 0);
  }

  absl::StatusOr<std::vector<ConvergeRelation>> RelationsAfter(
      int64_t converge_id, int64_t after_id, size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ConvergeRelation> out;
    auto it = instances_.find(converge_id);
    if (it == instances_.end()) return out;
    if (limit == 0) out.reserve(it->second.relations.size());
    for (const RelationRow& r : it->second.relations) {
      if (r.id <= after_id) continue;  // relation ids start at 1
      if (limit > 0 && out.size() >= limit) break;
      ConvergeRelation rel;
      rel.id = r.id;
      rel.converge_id = converge_id;
      rel.related_id = r.related_id;
      rel.related_type = r.related_type;
      rel.is_primary = r.is_primary;
      rel.converge_status = r.status;
      rel.alerts = UnpackAlerts(r.alerts);
      out.push_back(std::move(rel));
    }
    return out;
  }

  absl::StatusOr<std::optional<int64_t>> ConvergeOf(
      int64_t first_level_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = converge_related_.find(first_level_id);
    if (it == converge_related_.end()) return std::optional<int64_t>();
    return std::optional<int64_t>(
        *std::max_element(it->second.begin(), it->second.end()));
  }

  absl::StatusOr<std::vector<MemberStatus>> ExecutedMembers(
      int64_t converge_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<MemberStatus> out;
    auto it = instances_.find(converge_id);
    if (it == instances_.end()) return out;
    out.reserve(it->second.executed.size());
    for (int64_t id : it->second.executed) {
      MemberStatus m;
      m.action_id = id;
      if (const ActionRow* a = Decided(id); a != nullptr) {
        m.status = a->status;
        m.status_time = absl::FromUnixNanos(a->status_time);
      }
      out.push_back(m);
    }
    std::sort(out.begin(), out.end(),
              [](const MemberStatus& a, const MemberStatus& b) {
                return a.action_id < b.action_id;
              });
    return out;
  }

  absl::StatusOr<int64_t> CountExecuted(int64_t converge_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = instances_.find(converge_id);
    if (it == instances_.end()) return 0;
    return static_cast<int64_t>(it->second.executed.size());
  }

  absl::StatusOr<std::vector<int64_t>> Unrelated(absl::Span<const int64_t> ids,
                                                 ConvergeType type) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> out;
    out.reserve(ids.size());
    for (int64_t id : ids) {
      bool related;
      if (type == ConvergeType::kAction) {
        auto it = actions_.find(id);
        related = it != actions_.end() && it->second.related;
      } else {
        related = converge_related_.contains(id);
      }
      if (!related) out.push_back(id);
    }
    return out;
  }

 private:
  uint32_t Intern(const std::string& reason) {
    // Decisions come in runs of the same reason ("joined").
    if (last_reason_ < reasons_.size() && reasons_[last_reason_] == reason) {
      return last_reason_;
    }
    auto [it, inserted] = reason_ids_.try_emplace(reason, reasons_.size());
    if (inserted) reasons_.push_back(reason);
    last_reason_ = it->second;
    return it->second;
  }

  InstanceRow* FindOpenRef(std::string_view dimension) const {
    Digest d;
    if (ParseDigest(dimension, &d)) {
      auto it = open_by_digest_.find(d);
      return it == open_by_digest_.end() ? nullptr : it->second;
    }
    auto it = open_by_text_.find(internal::AV(dimension));
    return it == open_by_text_.end() ? nullptr : it->second;
  }
  void SetOpenRef(std::string_view dimension, InstanceRow* ref) {
    Digest d;
    if (ParseDigest(dimension, &d)) {
      open_by_digest_[d] = ref;
    } else {
      open_by_text_[std::string(dimension)] = ref;
    }
  }
  void EraseOpenRef(std::string_view dimension) {
    Digest d;
    if (ParseDigest(dimension, &d)) {
      open_by_digest_.erase(d);
    } else {
      open_by_text_.erase(internal::AV(dimension));
    }
  }

  void HideLocked(int64_t instance_id) {
    auto it = instances_.find(instance_id);
    if (it != instances_.end()) it->second.instance.is_visible = false;
  }

  ActionRow* Decided(int64_t id) {
    auto it = actions_.find(id);
    return it == actions_.end() || !it->second.decided ? nullptr : &it->second;
  }

  void FillRow(const ActionRecord& r, ActionRow* row) {
    row->decided = true;
    row->create = absl::ToUnixNanos(r.create_time);
    row->status_time = absl::ToUnixNanos(r.status_time);
    row->decided_at = absl::ToUnixNanos(r.decision.decided_at);
    row->converge_id = r.decision.converge_id.value_or(0);
    row->strategy_id = r.strategy_id;
    row->execute_timeout = r.execute_timeout;
    row->reason = Intern(r.decision.reason);
    row->outcome = r.decision.outcome;
    row->status = r.status;
    row->primary = r.decision.primary;
  }

  ActionRecord ToRecord(int64_t id, const ActionRow& row) const {
    ActionRecord r;
    r.id = id;
    r.create_time = absl::FromUnixNanos(row.create);
    r.strategy_id = row.strategy_id;
    r.execute_timeout = row.execute_timeout;
    r.status = row.status;
    r.status_time = absl::FromUnixNanos(row.status_time);
    r.decision.action_id = id;
    r.decision.outcome = row.outcome;
    if (row.converge_id != 0) r.decision.converge_id = row.converge_id;
    r.decision.primary = row.primary;
    r.decision.decided_at = absl::FromUnixNanos(row.decided_at);
    r.decision.reason = reasons_[row.reason];
    return r;
  }

  // `member` is the related action's row when the caller has it at hand.
  void AddRelation(InstanceRow* row, const ConvergeRelation& rel,
                   ActionRow* member = nullptr) {
    RelationRow r;
    r.id = ++next_relation_id_;
    r.related_id = rel.related_id;
    r.related_type = rel.related_type;
    r.is_primary = rel.is_primary;
    r.status = rel.converge_status;
    r.alerts = PackAlerts(rel.alerts);
    row->relations.push_back(std::move(r));
    if (rel.related_type == ConvergeType::kAction) {
      (member != nullptr ? *member : actions_[rel.related_id]).related = true;
      if (rel.converge_status == ConvergeStatus::kExecuted) {
        row->executed.push_back(rel.related_id);
      }
    }
    if (rel.related_type == ConvergeType::kConverge) {
      converge_related_[rel.related_id].push_back(row->instance.id);
    }
  }

  std::mutex mu_;
  // Flat: rows live in the table (no node per action). References into it
  // are never held across an insertion.
  absl::flat_hash_map<int64_t, ActionRow> actions_;
  absl::node_hash_map<int64_t, InstanceRow> instances_;
  // Open instances by dimension. A canonical D ("!sha1#" + 40 lowercase
  // hex) is keyed by its 20-byte digest, stored in the table itself, so a
  // look-up touches no separate key string; any other dimension text (a
  // caller's own) is keyed by the text.
  // Values point into instances_ (a node map: stable addresses).
  absl::flat_hash_map<Digest, InstanceRow*> open_by_digest_;
  absl::flat_hash_map<std::string, InstanceRow*> open_by_text_;
  // First-level instance id -> the second-level instances holding a
  // converge relation to it (one, normally).
  absl::flat_hash_map<int64_t, absl::InlinedVector<int64_t, 1>>
      converge_related_;
  std::vector<std::string> reasons_;
  absl::flat_hash_map<std::string, uint32_t> reason_ids_;
  uint32_t last_reason_ = UINT32_MAX;
  int64_t next_instance_id_ = 0;
  int64_t next_relation_id_ = 0;
};

// ---------------------------------------------------------------------------
// Queue store.

struct QueuedTask {
  Task task;
  uint64_t seq = 0;  // enqueue order, for ties
  enum State { kPending, kInFlight, kDead } state = kPending;
  absl::Time visible_until;
  uint64_t delivery = 0;  // delivery counter; part of the receipt
};

struct Queue {
  absl::flat_hash_map<std::string, QueuedTask> tasks;
  // (due or visible_until, seq, id) of pending and in-flight tasks.
  absl::btree_set<std::tuple<absl::Time, uint64_t, std::string>> ready;
  std::vector<std::string> dead_order;
};

class MemoryQueueStore final : public QueueStore {
 public:
  absl::Status Enqueue(std::string_view queue, const Task& task) override {
    if (auto st = store::CheckEnqueue("memory", queue, task); !st.ok()) {
      return st;
    }
    std::lock_guard<std::mutex> lock(mu_);
    Queue& q = queues_[std::string(queue)];
    if (q.tasks.contains(task.id)) {
      return absl::AlreadyExistsError(internal::StrCat(
          "memory: task ", task.id, " already exists in queue ", queue));
    }
    QueuedTask& t = q.tasks[task.id];
    t.task = task;
    t.task.attempts = 0;
    t.seq = ++seq_;
    t.state = QueuedTask::kPending;
    q.ready.insert({t.task.due, t.seq, t.task.id});
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<Delivery>> Dequeue(
      std::string_view queue, absl::Time now,
      absl::Duration visibility) override {
    if (auto st = store::CheckVisibility("memory", visibility); !st.ok()) {
      return st;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto qit = queues_.find(internal::AV(queue));
    if (qit == queues_.end()) return std::optional<Delivery>();
    Queue& q = qit->second;
    if (q.ready.empty() || std::get<0>(*q.ready.begin()) > now) {
      return std::optional<Delivery>();
    }
    auto first = q.ready.begin();
    std::string id = std::get<2>(*first);
    q.ready.erase(first);
    QueuedTask& t = q.tasks.at(id);
    t.state = QueuedTask::kInFlight;
    t.visible_until = now + visibility;
    t.delivery = ++seq_;
    ++t.task.attempts;
    q.ready.insert({t.visible_until, t.seq, id});
    Delivery d;
    d.task = t.task;
    d.receipt = internal::StrCat(id, "#", t.delivery);
    d.visible_until = t.visible_until;
    return std::optional<Delivery>(std::move(d));
  }

  absl::StatusOr<bool> Ack(std::string_view queue,
                           std::string_view receipt) override {
    std::lock_guard<std::mutex> lock(mu_);
    QueuedTask* t = InFlight(queue, receipt);
    if (t == nullptr) return false;
    Queue& q = queues_.find(internal::AV(queue))->second;
    q.ready.erase({t->visible_until, t->seq, t->task.id});
    q.tasks.erase(std::string(t->task.id));
    return true;
  }

  absl::StatusOr<bool> Retry(std::string_view queue, std::string_view receipt,
                             absl::Time due, std::string_view error) override {
    std::lock_guard<std::mutex> lock(mu_);
    QueuedTask* t = InFlight(queue, receipt);
    if (t == nullptr) return false;
    Queue& q = queues_.find(internal::AV(queue))->second;
    q.ready.erase({t->visible_until, t->seq, t->task.id});
    t->state = QueuedTask::kPending;
    t->task.due = due;
    t->task.last_error = std::string(error);
    t->delivery = ++seq_;  // the old receipt goes stale
    q.ready.insert({due, t->seq, t->task.id});
    return true;
  }

  absl::StatusOr<bool> Reschedule(std::string_view queue,
                                  std::string_view receipt,
                                  absl::Time due) override {
    std::lock_guard<std::mutex> lock(mu_);
    QueuedTask* t = InFlight(queue, receipt);
    if (t == nullptr) return false;
    Queue& q = queues_.find(internal::AV(queue))->second;
    q.ready.erase({t->visible_until, t->seq, t->task.id});
    t->state = QueuedTask::kPending;
    t->task.due = due;
    t->task.attempts = 0;
    t->task.last_error.clear();
    t->delivery = ++seq_;
    q.ready.insert({due, t->seq, t->task.id});
    return true;
  }

  absl::StatusOr<bool> Bury(std::string_view queue, std::string_view receipt,
                            std::string_view error) override {
    std::lock_guard<std::mutex> lock(mu_);
    QueuedTask* t = InFlight(queue, receipt);
    if (t == nullptr) return false;
    Queue& q = queues_.find(internal::AV(queue))->second;
    q.ready.erase({t->visible_until, t->seq, t->task.id});
    t->state = QueuedTask::kDead;
    t->task.last_error = std::string(error);
    t->delivery = ++seq_;
    q.dead_order.push_back(t->task.id);
    return true;
  }

  absl::StatusOr<std::vector<Task>> ListDead(std::string_view queue,
                                             size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Task> out;
    auto qit = queues_.find(internal::AV(queue));
    if (qit == queues_.end()) return out;
    for (const std::string& id : qit->second.dead_order) {
      if (limit > 0 && out.size() >= limit) break;
      out.push_back(qit->second.tasks.at(id).task);
    }
    return out;
  }

  absl::Status Redrive(std::string_view queue, std::string_view task_id,
                       absl::Time due) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto qit = queues_.find(internal::AV(queue));
    if (qit != queues_.end()) {
      Queue& q = qit->second;
      auto it = q.tasks.find(internal::AV(task_id));
      if (it != q.tasks.end() && it->second.state == QueuedTask::kDead) {
        QueuedTask& t = it->second;
        q.dead_order.erase(
            std::find(q.dead_order.begin(), q.dead_order.end(), t.task.id));
        t.state = QueuedTask::kPending;
        t.task.due = due;
        t.task.attempts = 0;
        q.ready.insert({due, t.seq, t.task.id});
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(internal::StrCat("memory: no dead task ",
                                                task_id, " in queue ", queue));
  }

  absl::StatusOr<std::vector<Task>> ListPending(std::string_view queue,
                                                size_t limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Task> out;
    auto qit = queues_.find(internal::AV(queue));
    if (qit == queues_.end()) return out;
    for (const auto& entry : qit->second.ready) {
      const QueuedTask& t = qit->second.tasks.at(std::get<2>(entry));
      if (t.state != QueuedTask::kPending) continue;
      out.push_back(t.task);
      if (limit > 0 && out.size() >= limit) break;
    }
    return out;
  }

  absl::StatusOr<QueueStats> Stats(std::string_view queue) override {
    std::lock_guard<std::mutex> lock(mu_);
    QueueStats stats;
    auto qit = queues_.find(internal::AV(queue));
    if (qit == queues_.end()) return stats;
    for (const auto& entry : qit->second.tasks) {
      switch (entry.second.state) {
        case QueuedTask::kPending:
          ++stats.pending;
          break;
        case QueuedTask::kInFlight:
          ++stats.in_flight;
          break;
        case QueuedTask::kDead:
          ++stats.dead;
          break;
      }
    }
    return stats;
  }

 private:
  // The in-flight task a receipt names, or null if the receipt is stale.
  QueuedTask* InFlight(std::string_view queue, std::string_view receipt) {
    auto qit = queues_.find(internal::AV(queue));
    if (qit == queues_.end()) return nullptr;
    size_t hash = receipt.rfind('#');
    if (hash == std::string_view::npos) return nullptr;
    uint64_t delivery;
    if (!absl::SimpleAtoi(internal::AV(receipt.substr(hash + 1)), &delivery))
      return nullptr;
    auto it = qit->second.tasks.find(internal::AV(receipt.substr(0, hash)));
    if (it == qit->second.tasks.end()) return nullptr;
    QueuedTask& t = it->second;
    if (t.state != QueuedTask::kInFlight || t.delivery != delivery) {
      return nullptr;
    }
    return &t;
  }

  std::mutex mu_;
  absl::flat_hash_map<std::string, Queue> queues_;
  uint64_t seq_ = 0;
};

}  // namespace

absl::StatusOr<MemoryStores> NewMemoryStores(const MemoryOptions& options) {
  const Clock* clock =
      options.clock != nullptr ? options.clock : RealClock::Default();
  auto lease = std::make_shared<LeaseState>(clock);
  MemoryStores stores;
  stores.lock = std::make_unique<MemoryLockStore>(lease);
  stores.window = std::make_unique<MemoryWindowStore>(lease);
  stores.repo = std::make_unique<MemoryInstanceRepo>();
  stores.queue = std::make_unique<MemoryQueueStore>();
  return stores;
}

}  // namespace converge::memory
