#include "converge/redis/redis_store.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "client.h"
#include "converge/store/checks.h"
#include "internal/strings.h"
#include "scripts.h"

namespace converge::redis {
namespace {

using converge::internal::AV;
using converge::internal::StrCat;
using internal_redis::Client;
using internal_redis::Command;
using internal_redis::GetScripts;
using internal_redis::Reply;
using internal_redis::Script;

// Window and counter keys starting with this are refused: it names the
// companion ("meta") keys that hold their expiry.
constexpr std::string_view kMetaTag = "converge.expires:";

// ---- times and scores ----

int64_t FloorMicros(absl::Time t) { return absl::ToUnixMicros(t); }

int64_t CeilMicros(absl::Time t) {
  const int64_t us = absl::ToUnixMicros(t);
  if (us == std::numeric_limits<int64_t>::max()) return us;
  return absl::FromUnixMicros(us) < t ? us + 1 : us;
}

// Epoch seconds with up to 6 decimals, the exact decimal of `us`: what
// upstream's sorted sets hold (whole seconds) when the time is whole.
std::string SecondsText(int64_t us) {
  const bool negative = us < 0;
  const uint64_t mag =
      negative ? 0 - static_cast<uint64_t>(us) : static_cast<uint64_t>(us);
  std::string out = StrCat(negative ? "-" : "", mag / 1000000);
  uint64_t frac = mag % 1000000;
  if (frac != 0) {
    char digits[8];
    int n = 6;
    while (frac % 10 == 0) {
      frac /= 10;
      --n;
    }
    for (int i = n - 1; i >= 0; --i) {
      digits[i] = static_cast<char>('0' + frac % 10);
      frac /= 10;
    }
    out.push_back('.');
    out.append(digits, static_cast<size_t>(n));
  }
  return out;
}

// Window scores: a member's score is its time floored to the microsecond;
// read bounds round inward (min up, max down), so that a member on a whole
// microsecond is in [min, max] exactly when its time is.
std::string MemberScore(absl::Time t) {
  if (t == absl::InfinitePast()) return "-inf";
  if (t == absl::InfiniteFuture()) return "+inf";
  return SecondsText(FloorMicros(t));
}
std::string MinScore(absl::Time t) {
  if (t == absl::InfinitePast()) return "-inf";
  if (t == absl::InfiniteFuture()) return "+inf";
  return SecondsText(CeilMicros(t));
}
std::string MaxScore(absl::Time t) {
  if (t == absl::InfinitePast()) return "-inf";
  if (t == absl::InfiniteFuture()) return "+inf";
  return SecondsText(FloorMicros(t));
}

// Queue scores: integer microseconds. A due time rounds up, `now` down, so a
// task is never delivered before it is due.
std::string DueScore(absl::Time t) {
  if (t == absl::InfinitePast()) return "-inf";
  if (t == absl::InfiniteFuture()) return "+inf";
  return StrCat(CeilMicros(t));
}
std::string NowScore(absl::Time t) {
  if (t == absl::InfinitePast()) return "-inf";
  if (t == absl::InfiniteFuture()) return "+inf";
  return StrCat(FloorMicros(t));
}

// The ZRANGE stop index of a list's `limit`: its last rank, or -1 for all
// (0, or a limit above any sorted set's size).
std::string RangeStop(size_t limit) {
  constexpr size_t kMaxRank = size_t{1} << 62;
  return limit == 0 || limit > kMaxRank ? "-1" : StrCat(limit - 1);
}

// Exact times as stored in queue records.
std::string TimeText(absl::Time t) {
  if (t == absl::InfinitePast()) return "-inf";
  if (t == absl::InfiniteFuture()) return "+inf";
  return StrCat(absl::ToUnixNanos(t));
}
bool ParseTime(std::string_view s, absl::Time* t) {
  if (s == "-inf") {
    *t = absl::InfinitePast();
    return true;
  }
  if (s == "+inf") {
    *t = absl::InfiniteFuture();
    return true;
  }
  int64_t ns;
  if (!absl::SimpleAtoi(AV(s), &ns)) return false;
  *t = absl::FromUnixNanos(ns);
  return true;
}

// A duration in whole microseconds, at least 1.
std::string DurationMicros(absl::Duration d) {
  int64_t us = absl::ToInt64Microseconds(d);
  if (absl::Microseconds(us) < d) ++us;
  return StrCat(std::max<int64_t>(us, 1));
}

// ---- shared state ----

// Redis Cluster's CRC16 (XMODEM: polynomial 0x1021, initial value 0).
uint16_t Crc16(std::string_view data) {
  uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

// Redis Cluster's slot of a key: the CRC16 of its hash tag (the text
// between the first '{' and the next '}', if not empty), else of the key.
int KeySlot(std::string_view key) {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16(key) & 16383;
}

struct Backend {
  std::vector<std::unique_ptr<Client>> clients;  // one per server
  RedisOptions options;
  std::string grace;  // gc grace in ms, "-1": no real TTLs

  std::string Now() const {
    return options.clock != nullptr ? StrCat(FloorMicros(options.clock->Now()))
                                    : std::string();
  }
  std::string Key(std::string_view key) const {
    return StrCat(options.key_prefix, key);
  }
  std::string Meta(std::string_view key) const {
    return StrCat(options.key_prefix, kMetaTag, key);
  }
  // The server of a (prefixed) key.
  size_t ServerOf(std::string_view key) const {
    if (clients.size() == 1) return 0;
    return static_cast<size_t>(KeySlot(key)) * clients.size() / 16384;
  }
  // Runs `script` on the server of keys[0] (every script's keys live with
  // their first: the lease, the index or counter key, the queue's tasks).
  absl::StatusOr<Reply> Eval(const Script& script,
                             absl::Span<const std::string> keys,
                             absl::Span<const std::string> args) const {
    return clients[ServerOf(keys[0])]->Eval(script, keys, args);
  }
  absl::Status Unexpected(const Script& script) const {
    return absl::InternalError(
        StrCat("redis: script ", script.name, " returned an unexpected reply"));
  }
  // An integer reply of `script`.
  absl::StatusOr<int64_t> Int(const Script& script,
                              absl::Span<const std::string> keys,
                              absl::Span<const std::string> args) const {
    absl::StatusOr<Reply> r = Eval(script, keys, args);
    if (!r.ok()) return r.status();
    if (r->type != Reply::Type::kInteger) return Unexpected(script);
    return r->integer;
  }
};

absl::Status CheckWindowKey(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("redis: empty window key");
  if (key.substr(0, kMetaTag.size()) == kMetaTag) {
    return absl::InvalidArgumentError(StrCat("redis: window key ", key,
                                             " starts with the reserved \"",
                                             kMetaTag, "\""));
  }
  return absl::OkStatus();
}

// ---- LockStore ----

class RedisLockStore final : public LockStore {
 public:
  explicit RedisLockStore(std::shared_ptr<const Backend> b)
      : b_(std::move(b)) {}

  absl::StatusOr<bool> TryAcquire(std::string_view key, std::string_view token,
                                  absl::Duration ttl) override {
    if (auto st = store::CheckLeaseArgs("redis", key, token, ttl); !st.ok())
      return st;
    const std::string keys[] = {b_->Key(key)};
    const std::string args[] = {b_->Now(), b_->grace, std::string(token),
                                DurationMicros(ttl)};
    absl::StatusOr<int64_t> r = b_->Int(GetScripts().lease_acquire, keys, args);
    if (!r.ok()) return r.status();
    return *r == 1;
  }

  absl::StatusOr<bool> Release(std::string_view key,
                               std::string_view token) override {
    if (auto st = store::CheckLeaseArgs("redis", key, token, std::nullopt);
        !st.ok())
      return st;
    const std::string keys[] = {b_->Key(key)};
    const std::string args[] = {std::string(token)};
    absl::StatusOr<int64_t> r = b_->Int(GetScripts().lease_release, keys, args);
    if (!r.ok()) return r.status();
    return *r == 1;
  }

  // One round trip per server.
  absl::StatusOr<size_t> ReleaseMany(
      absl::Span<const std::pair<std::string, std::string>> leases) override {
    absl::Status first;  // the first error; every valid lease is tried
    const Script& script = GetScripts().lease_release;
    std::vector<std::vector<Command>> commands(b_->clients.size());
    for (const auto& [key, token] : leases) {
      if (auto st = store::CheckLeaseArgs("redis", key, token, std::nullopt);
          !st.ok()) {
        if (first.ok()) first = st;
        continue;
      }
      const std::string keys[] = {b_->Key(key)};
      const std::string args[] = {token};
      commands[b_->ServerOf(keys[0])].push_back(
          EvalCommand(script, keys, args));
    }
    size_t released = 0;
    for (size_t server = 0; server < commands.size(); ++server) {
      if (commands[server].empty()) continue;
      const std::vector<const Script*> scripts(commands[server].size(),
                                               &script);
      absl::StatusOr<std::vector<Reply>> replies =
          b_->clients[server]->EvalPipeline(commands[server], scripts);
      if (!replies.ok()) {
        if (first.ok()) first = replies.status();
        continue;
      }
      for (const Reply& r : *replies) {
        if (r.is_error()) {
          if (first.ok()) first = b_->clients[server]->ReplyStatus(r.str);
        } else if (r.type == Reply::Type::kInteger && r.integer == 1) {
          ++released;
        }
      }
    }
    if (!first.ok()) return first;
    return released;
  }

  absl::StatusOr<bool> Extend(std::string_view key, std::string_view token,
                              absl::Duration ttl) override {
    if (auto st = store::CheckLeaseArgs("redis", key, token, ttl); !st.ok())
      return st;
    const std::string keys[] = {b_->Key(key)};
    const std::string args[] = {b_->Now(), b_->grace, std::string(token),
                                DurationMicros(ttl)};
    absl::StatusOr<int64_t> r = b_->Int(GetScripts().lease_extend, keys, args);
    if (!r.ok()) return r.status();
    return *r == 1;
  }

  // SCAN over each server for keys under the prefix, then HMGET token and
  // expires of each page of keys in one round trip. Keys of other types
  // (window indexes, meta keys) answer WRONGTYPE or nothing and are skipped.
  absl::StatusOr<std::vector<LeaseInfo>> ListLeases(std::string_view prefix,
                                                    size_t limit) override {
    const std::string full = b_->Key(prefix);
    std::string pattern;
    for (char c : full) {
      if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') {
        pattern.push_back('\\');
      }
      pattern.push_back(c);
    }
    pattern.push_back('*');
    const std::string& key_prefix = b_->options.key_prefix;
    std::vector<LeaseInfo> out;
    for (const auto& client : b_->clients) {
      absl::StatusOr<int64_t> now = NowMicros(*client);
      if (!now.ok()) return now.status();
      std::string cursor = "0";
      do {
        Command scan;
        scan.Arg("SCAN").Arg(cursor).Arg("MATCH").Arg(pattern).Arg("COUNT").Arg(
            int64_t{1000});
        absl::StatusOr<Reply> page = client->Call(scan);
        if (!page.ok()) return page.status();
        if (page->type != Reply::Type::kArray || page->elements.size() != 2 ||
            page->elements[1].type != Reply::Type::kArray) {
          return absl::InternalError(
              StrCat("redis: ", client->server(), ": unexpected SCAN reply"));
        }
        cursor = page->elements[0].str;
        std::vector<Command> gets;
        std::vector<std::string> keys;
        for (const Reply& k : page->elements[1].elements) {
          if (k.str.substr(0, key_prefix.size()) != key_prefix) continue;
          keys.push_back(k.str.substr(key_prefix.size()));
          gets.emplace_back().Arg("HMGET").Arg(k.str).Arg("token").Arg(
              "expires");
        }
        if (gets.empty()) continue;
        absl::StatusOr<std::vector<Reply>> fields = client->Pipeline(gets);
        if (!fields.ok()) return fields.status();
        for (size_t i = 0; i < keys.size(); ++i) {
          const Reply& f = (*fields)[i];
          if (f.type != Reply::Type::kArray || f.elements.size() != 2 ||
              f.elements[0].type != Reply::Type::kString ||
              f.elements[1].type != Reply::Type::kString) {
            continue;
          }
          int64_t expires = 0;
          if (!absl::SimpleAtoi(AV(f.elements[1].str), &expires) ||
              expires <= *now) {
            continue;
          }
          out.push_back(LeaseInfo{std::move(keys[i]), f.elements[0].str,
                                  absl::FromUnixMicros(expires)});
        }
      } while (cursor != "0");
    }
    return store::SortAndLimitLeases(std::move(out), limit);
  }

 private:
  // The store's clock in microseconds, or the server's TIME without one
  // (the scripts' now_us).
  absl::StatusOr<int64_t> NowMicros(Client& client) const {
    if (b_->options.clock != nullptr) {
      return FloorMicros(b_->options.clock->Now());
    }
    absl::StatusOr<Reply> t = client.Call(Command().Arg("TIME"));
    if (!t.ok()) return t.status();
    int64_t s = 0, us = 0;
    if (t->type != Reply::Type::kArray || t->elements.size() != 2 ||
        !absl::SimpleAtoi(AV(t->elements[0].str), &s) ||
        !absl::SimpleAtoi(AV(t->elements[1].str), &us)) {
      return absl::InternalError(
          StrCat("redis: ", client.server(), ": unexpected TIME reply"));
    }
    return s * 1000000 + us;
  }

  std::shared_ptr<const Backend> b_;
};

// ---- WindowStore ----

class RedisWindowStore final : public WindowStore {
 public:
  explicit RedisWindowStore(std::shared_ptr<const Backend> b)
      : b_(std::move(b)) {}

  // Where the keys of a request live.
  struct Placement {
    std::string lease_key;
    std::vector<size_t> add_server;
    std::vector<std::vector<size_t>> read_server;
    size_t one = SIZE_MAX;  // the server of every key, if `single`
    bool single = true;
  };
  Placement Place(const WindowRequest& req) const {
    Placement p;
    p.lease_key =
        req.lease.has_value() ? b_->Key(req.lease->key) : std::string();
    p.add_server.resize(req.add.size());
    p.read_server.resize(req.read_groups.size());
    p.one = req.lease.has_value() ? b_->ServerOf(p.lease_key) : SIZE_MAX;
    auto note = [&](size_t server) {
      if (p.one == SIZE_MAX) p.one = server;
      p.single = p.single && server == p.one;
      return server;
    };
    for (size_t i = 0; i < req.add.size(); ++i) {
      p.add_server[i] = note(b_->ServerOf(b_->Key(req.add[i].key)));
    }
    for (size_t g = 0; g < req.read_groups.size(); ++g) {
      for (const std::string& key : req.read_groups[g]) {
        p.read_server[g].push_back(note(b_->ServerOf(b_->Key(key))));
      }
    }
    if (p.one == SIZE_MAX) p.one = 0;
    return p;
  }

  // Pipelined, one round trip per server for each run of requests whose
  // keys are on one server (see below).
  absl::StatusOr<std::vector<WindowResult>> ApplyMany(
      absl::Span<const WindowRequest> requests) override {
    for (const WindowRequest& req : requests) {
      if (auto st = store::CheckWindowRequest("redis", req, CheckWindowKey);
          !st.ok()) {
        return st;
      }
    }
    std::vector<WindowResult> out(requests.size());
    // Runs of requests with their keys on one server are pipelined, one
    // round trip per server (a key lives on one server, so each server's
    // requests keep their order); a request over several servers runs in
    // steps, after the queued ones and before the later ones.
    std::vector<std::vector<Command>> commands(b_->clients.size());
    std::vector<std::vector<size_t>> of(b_->clients.size());
    auto send = [&]() -> absl::Status {
      for (size_t server = 0; server < commands.size(); ++server) {
        if (commands[server].empty()) continue;
        const std::vector<const Script*> scripts(commands[server].size(),
                                                 &GetScripts().window_apply);
        absl::StatusOr<std::vector<Reply>> replies =
            b_->clients[server]->EvalPipeline(commands[server], scripts);
        if (!replies.ok()) return replies.status();
        for (size_t k = 0; k < replies->size(); ++k) {
          Reply& reply = (*replies)[k];
          if (reply.is_error()) {
            return b_->clients[server]->ReplyStatus(reply.str);
          }
          absl::StatusOr<WindowResult> result = Result(
              std::move(reply), requests[of[server][k]].read_groups.size());
          if (!result.ok()) return result.status();
          out[of[server][k]] = *std::move(result);
        }
        commands[server].clear();
        of[server].clear();
      }
      return absl::OkStatus();
    };
    for (size_t r = 0; r < requests.size(); ++r) {
      const WindowRequest& req = requests[r];
      const Placement p = Place(req);
      if (!p.single) {
        if (absl::Status st = send(); !st.ok()) return st;
        absl::StatusOr<WindowResult> one = Apply(req);
        if (!one.ok()) return one.status();
        out[r] = *std::move(one);
        continue;
      }
      Command command;
      absl::StatusOr<WindowResult> built =
          Run(p.one, req, req.lease.has_value() ? &p.lease_key : nullptr,
              SIZE_MAX, p.add_server, p.read_server, true, &command);
      if (!built.ok()) return built.status();
      if (command.args.empty()) {
        out[r] = *std::move(built);  // nothing to run
        continue;
      }
      commands[p.one].push_back(std::move(command));
      of[p.one].push_back(r);
    }
    if (absl::Status st = send(); !st.ok()) return st;
    return out;
  }

  absl::StatusOr<WindowResult> Apply(const WindowRequest& req) override {
    if (auto st = store::CheckWindowRequest("redis", req, CheckWindowKey);
        !st.ok()) {
      return st;
    }

    // The servers of the keys: all on one (always, with one server) is one
    // script; otherwise the lease first, then one script per server.
    const Placement place = Place(req);
    const std::string& lease_key = place.lease_key;
    const std::vector<size_t>& add_server = place.add_server;
    const std::vector<std::vector<size_t>>& read_server = place.read_server;
    if (place.single) {
      return Run(place.one, req, req.lease.has_value() ? &lease_key : nullptr,
                 /*server_filter=*/SIZE_MAX, add_server, read_server,
                 /*reads=*/true);
    }

    // Keys on several servers: one script per server. The servers without
    // the lease first (their adds, and their reads), then the lease's
    // server (its adds, the lease, its reads): the adds are all applied
    // before the lease is taken, as in one script; the reads of the other
    // servers come just before it, which is as if adds that raced with them
    // had come a moment later (the index only grows by adds). A lease that
    // is busy discards every read.
    const size_t servers = b_->clients.size();
    const size_t lease_server =
        req.lease.has_value() ? b_->ServerOf(lease_key) : SIZE_MAX;
    std::vector<bool> busy(servers, false);
    size_t add_servers = 0;
    for (size_t server : add_server) {
      if (!busy[server]) ++add_servers;
      busy[server] = true;
    }
    if (add_servers > 1) {
      // "An invalid Apply writes nothing": every add server checks its keys
      // before any of them writes.
      for (size_t server = 0; server < servers; ++server) {
        if (!busy[server]) continue;
        if (absl::Status st = Check(server, req, add_server); !st.ok()) {
          return st;
        }
      }
    }
    for (const auto& keys : read_server) {
      for (size_t server : keys) busy[server] = true;
    }
    WindowResult result;
    result.groups.resize(req.read_groups.size());
    auto merge = [&](WindowResult& part) {
      for (size_t g = 0; g < part.groups.size(); ++g) {
        for (std::string& m : part.groups[g]) {
          result.groups[g].push_back(std::move(m));
        }
      }
    };
    for (size_t server = 0; server < servers; ++server) {
      if (!busy[server] || server == lease_server) continue;
      absl::StatusOr<WindowResult> part =
          Run(server, req, nullptr, server, add_server, read_server, true);
      if (!part.ok()) return part.status();
      merge(*part);
    }
    if (lease_server != SIZE_MAX) {
      absl::StatusOr<WindowResult> part =
          Run(lease_server, req, &lease_key, lease_server, add_server,
              read_server, true);
      if (!part.ok()) return part.status();
      if (!part->lease_acquired) return *std::move(part);
      merge(*part);
    }
    // A group read on several servers: deduplicate.
    for (size_t g = 0; g < result.groups.size(); ++g) {
      std::vector<std::string>& members = result.groups[g];
      bool spread = false;
      for (size_t server : read_server[g]) {
        spread = spread || server != read_server[g].front();
      }
      if (!spread) continue;
      std::sort(members.begin(), members.end());
      members.erase(std::unique(members.begin(), members.end()), members.end());
    }
    return result;
  }

  absl::StatusOr<bool> Remove(std::string_view key,
                              std::string_view member) override {
    if (key.empty()) return false;
    const std::string keys[] = {b_->Key(key), b_->Meta(key)};
    const std::string args[] = {b_->Now(), std::string(member)};
    absl::StatusOr<int64_t> r = b_->Int(GetScripts().window_remove, keys, args);
    if (!r.ok()) return r.status();
    return *r == 1;
  }

  absl::StatusOr<int64_t> Size(std::string_view key) override {
    if (key.empty()) return 0;
    const std::string keys[] = {b_->Key(key), b_->Meta(key)};
    const std::string args[] = {b_->Now()};
    return b_->Int(GetScripts().window_size, keys, args);
  }

  absl::StatusOr<int64_t> Increment(std::string_view key, absl::Duration ttl,
                                    int64_t refresh_up_to) override {
    if (auto st = store::CheckCounterArgs("redis", key, ttl); !st.ok()) {
      return st;
    }
    if (auto st = CheckWindowKey(key); !st.ok()) return st;
    const std::string keys[] = {b_->Key(key), b_->Meta(key)};
    const std::string args[] = {b_->Now(), b_->grace, DurationMicros(ttl),
                                StrCat(refresh_up_to)};
    return b_->Int(GetScripts().counter_increment, keys, args);
  }

  absl::StatusOr<int64_t> CounterValue(std::string_view key) override {
    if (key.empty()) return 0;
    const std::string keys[] = {b_->Key(key), b_->Meta(key)};
    const std::string args[] = {b_->Now()};
    return b_->Int(GetScripts().counter_value, keys, args);
  }

  absl::StatusOr<bool> Delete(std::string_view key) override {
    if (key.empty()) return false;
    const std::string keys[] = {b_->Key(key), b_->Meta(key)};
    const std::string args[] = {b_->Now()};
    absl::StatusOr<int64_t> r = b_->Int(GetScripts().key_delete, keys, args);
    if (!r.ok()) return r.status();
    return *r == 1;
  }

 private:
  // Checks, on `server`, that the keys `req` adds there can take members
  // (window_check): kFailedPrecondition if one is a live counter or another
  // type.
  absl::Status Check(size_t server, const WindowRequest& req,
                     const std::vector<size_t>& add_server) const {
    std::vector<std::string> keys;
    absl::flat_hash_map<std::string_view, bool> seen;
    for (size_t i = 0; i < req.add.size(); ++i) {
      if (add_server[i] != server) continue;
      if (!seen.try_emplace(req.add[i].key, true).second) continue;
      keys.push_back(b_->Key(req.add[i].key));
      keys.push_back(b_->Meta(req.add[i].key));
    }
    const std::string args[] = {b_->Now()};
    absl::StatusOr<Reply> r =
        b_->clients[server]->Eval(GetScripts().window_check, keys, args);
    return r.status();
  }

  // Runs window_apply on `server` with the lease `lease_key` (null: none),
  // the adds and read keys of `req` on that server (server_filter SIZE_MAX:
  // all of them), and the reads only if `reads`. The result has one group
  // per read group of `req` (empty where none of its keys is on `server`),
  // or none if `reads` is false or the lease was busy.
  // With `command`, the script call is built there (and an empty result
  // returned) instead of made.
  absl::StatusOr<WindowResult> Run(
      size_t server, const WindowRequest& req, const std::string* lease_key,
      size_t server_filter, const std::vector<size_t>& add_server,
      const std::vector<std::vector<size_t>>& read_server, bool reads,
      Command* command = nullptr) const {
    auto here = [&](size_t s) {
      return server_filter == SIZE_MAX || s == server_filter;
    };
    // KEYS: [lease], then each distinct window key and its meta key.
    std::vector<std::string> keys;
    keys.reserve(1 + 2 * (req.add.size() + req.read_groups.size()));
    if (lease_key != nullptr) keys.push_back(*lease_key);
    absl::flat_hash_map<std::string_view, int> index;
    auto key_index = [&](const std::string& key) {
      auto [it, inserted] =
          index.try_emplace(key, static_cast<int>(index.size()) + 1);
      if (inserted) {
        keys.push_back(b_->Key(key));
        keys.push_back(b_->Meta(key));
      }
      return it->second;
    };

    std::vector<std::string> args;
    args.reserve(10 + 3 * req.add.size() + 8);
    args.push_back(b_->Now());
    args.push_back(b_->grace);
    args.push_back(req.key_ttl > absl::ZeroDuration()
                       ? DurationMicros(req.key_ttl)
                       : std::string("0"));
    args.push_back(req.trim_before == absl::InfinitePast()
                       ? std::string()
                       : StrCat("(", MinScore(req.trim_before)));
    args.push_back(lease_key != nullptr ? req.lease->token : std::string());
    args.push_back(lease_key != nullptr ? DurationMicros(req.lease->ttl)
                                        : std::string("0"));
    args.push_back(MinScore(req.start));
    args.push_back(MaxScore(req.end));
    const size_t nadds_at = args.size();
    args.emplace_back();
    size_t nadds = 0;
    for (size_t i = 0; i < req.add.size(); ++i) {
      if (!here(add_server[i])) continue;
      const WindowEntry& e = req.add[i];
      args.push_back(StrCat(key_index(e.key)));
      args.push_back(MemberScore(e.score));
      args.push_back(e.member);
      ++nadds;
    }
    args[nadds_at] = StrCat(nadds);
    args.push_back(StrCat(reads ? req.read_groups.size() : 0));
    if (reads) {
      for (size_t g = 0; g < req.read_groups.size(); ++g) {
        const size_t count_at = args.size();
        args.emplace_back();
        size_t count = 0;
        for (size_t k = 0; k < req.read_groups[g].size(); ++k) {
          if (!here(read_server[g][k])) continue;
          args.push_back(StrCat(key_index(req.read_groups[g][k])));
          ++count;
        }
        args[count_at] = StrCat(count);
      }
    }
    if (keys.empty()) {
      // Nothing on this server but a lease-free empty request.
      WindowResult empty;
      if (reads) empty.groups.resize(req.read_groups.size());
      return empty;
    }
    if (command != nullptr) {
      *command = EvalCommand(GetScripts().window_apply, keys, args);
      return WindowResult{};
    }

    absl::StatusOr<Reply> r =
        b_->clients[server]->Eval(GetScripts().window_apply, keys, args);
    if (!r.ok()) return r.status();
    return Result(*std::move(r), reads ? req.read_groups.size() : 0);
  }

  // The result of a window_apply script's reply that reads `groups`.
  absl::StatusOr<WindowResult> Result(Reply r, size_t groups) const {
    const Script& script = GetScripts().window_apply;
    if (r.type != Reply::Type::kArray || r.elements.empty() ||
        r.elements[0].type != Reply::Type::kInteger) {
      return b_->Unexpected(script);
    }
    WindowResult result;
    if (r.elements[0].integer == 0) {
      result.lease_acquired = false;
      return result;
    }
    if (r.elements.size() != groups + 1) return b_->Unexpected(script);
    result.groups.reserve(groups);
    for (size_t g = 1; g < r.elements.size(); ++g) {
      std::vector<std::string>& out = result.groups.emplace_back();
      out.reserve(r.elements[g].elements.size());
      for (Reply& m : r.elements[g].elements) out.push_back(std::move(m.str));
    }
    return result;
  }

  std::shared_ptr<const Backend> b_;
};

// ---- QueueStore ----

// A task record as the scripts return it: {id, kind, subject, payload, due,
// attempts, error}.
absl::StatusOr<Task> ToTask(const Backend& b, const Script& script,
                            const Reply& r) {
  if (r.type != Reply::Type::kArray || r.elements.size() < 7) {
    return b.Unexpected(script);
  }
  Task t;
  t.id = r.elements[0].str;
  t.kind = r.elements[1].str;
  if (!absl::SimpleAtoi(r.elements[2].str, &t.subject_id) ||
      !ParseTime(r.elements[4].str, &t.due) ||
      r.elements[5].type != Reply::Type::kInteger) {
    return absl::DataLossError(
        StrCat("redis: task ", t.id, " has an undecodable record"));
  }
  t.payload = r.elements[3].str;
  t.attempts = static_cast<int32_t>(r.elements[5].integer);
  t.last_error = r.elements[6].str;
  return t;
}

class RedisQueueStore final : public QueueStore {
 public:
  explicit RedisQueueStore(std::shared_ptr<const Backend> b)
      : b_(std::move(b)) {}

  absl::Status Enqueue(std::string_view queue, const Task& task) override {
    if (auto st = store::CheckEnqueue("redis", queue, task); !st.ok()) {
      return st;
    }
    const std::string args[] = {
        task.id,        task.kind,          StrCat(task.subject_id),
        task.payload,   TimeText(task.due), DueScore(task.due),
        task.last_error};
    absl::StatusOr<int64_t> r =
        b_->Int(GetScripts().queue_enqueue, Keys(queue), args);
    if (!r.ok()) return r.status();
    if (*r == 0) {
      return absl::AlreadyExistsError(
          StrCat("redis: task ", task.id, " already exists in queue ", queue));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<Delivery>> Dequeue(
      std::string_view queue, absl::Time now,
      absl::Duration visibility) override {
    if (auto st = store::CheckVisibility("redis", visibility); !st.ok()) {
      return st;
    }
    if (queue.empty()) return std::optional<Delivery>();
    const absl::Time visible = now + visibility;
    const std::string args[] = {NowScore(now), TimeText(visible),
                                DueScore(visible)};
    const Script& script = GetScripts().queue_dequeue;
    absl::StatusOr<Reply> r = b_->Eval(script, Keys(queue), args);
    if (!r.ok()) return r.status();
    if (r->is_nil()) return std::optional<Delivery>();
    absl::StatusOr<Task> task = ToTask(*b_, script, *r);
    if (!task.ok()) return task.status();
    Delivery d;
    d.task = *std::move(task);
    if (r->elements.size() < 9 ||
        !ParseTime(r->elements[8].str, &d.visible_until)) {
      return b_->Unexpected(script);
    }
    d.receipt = std::move(r->elements[7].str);
    return std::optional<Delivery>(std::move(d));
  }

  absl::StatusOr<bool> Ack(std::string_view queue,
                           std::string_view receipt) override {
    if (queue.empty() || receipt.empty()) return false;
    const std::string args[] = {std::string(receipt)};
    return Bool(GetScripts().queue_ack, queue, args);
  }

  absl::StatusOr<bool> Retry(std::string_view queue, std::string_view receipt,
                             absl::Time due, std::string_view error) override {
    if (queue.empty() || receipt.empty()) return false;
    const std::string args[] = {std::string(receipt), TimeText(due),
                                DueScore(due), std::string(error), "retry"};
    return Bool(GetScripts().queue_put_back, queue, args);
  }

  absl::StatusOr<bool> Reschedule(std::string_view queue,
                                  std::string_view receipt,
                                  absl::Time due) override {
    if (queue.empty() || receipt.empty()) return false;
    const std::string args[] = {std::string(receipt), TimeText(due),
                                DueScore(due), "", "reschedule"};
    return Bool(GetScripts().queue_put_back, queue, args);
  }

  absl::StatusOr<bool> Bury(std::string_view queue, std::string_view receipt,
                            std::string_view error) override {
    if (queue.empty() || receipt.empty()) return false;
    const std::string args[] = {std::string(receipt), std::string(error)};
    return Bool(GetScripts().queue_bury, queue, args);
  }

  absl::StatusOr<std::vector<Task>> ListDead(std::string_view queue,
                                             size_t limit) override {
    if (queue.empty()) return std::vector<Task>();
    const std::string args[] = {RangeStop(limit)};
    return List(GetScripts().queue_list_dead, queue, args);
  }

  absl::Status Redrive(std::string_view queue, std::string_view task_id,
                       absl::Time due) override {
    if (!queue.empty() && !task_id.empty()) {
      const std::string args[] = {std::string(task_id), TimeText(due),
                                  DueScore(due)};
      absl::StatusOr<bool> r = Bool(GetScripts().queue_redrive, queue, args);
      if (!r.ok()) return r.status();
      if (*r) return absl::OkStatus();
    }
    return absl::NotFoundError(
        StrCat("redis: no dead task ", task_id, " in queue ", queue));
  }

  absl::StatusOr<std::vector<Task>> ListPending(std::string_view queue,
                                                size_t limit) override {
    if (queue.empty()) return std::vector<Task>();
    const std::string args[] = {RangeStop(limit)};
    return List(GetScripts().queue_list_pending, queue, args);
  }

  absl::StatusOr<QueueStats> Stats(std::string_view queue) override {
    QueueStats stats;
    if (queue.empty()) return stats;
    const Script& script = GetScripts().queue_stats;
    absl::StatusOr<Reply> r = b_->Eval(script, Keys(queue), {});
    if (!r.ok()) return r.status();
    if (r->type != Reply::Type::kArray || r->elements.size() != 3) {
      return b_->Unexpected(script);
    }
    stats.pending = r->elements[0].integer;
    stats.in_flight = r->elements[1].integer;
    stats.dead = r->elements[2].integer;
    return stats;
  }

 private:
  // tasks, pending, inflight, dead, seq. The queue name is the hash tag, so
  // a queue's keys live together (one server, one cluster slot).
  std::vector<std::string> Keys(std::string_view queue) const {
    const std::string base =
        StrCat(b_->options.key_prefix, "converge.queue.{", queue, "}.");
    return {StrCat(base, "tasks"), StrCat(base, "pending"),
            StrCat(base, "inflight"), StrCat(base, "dead"),
            StrCat(base, "seq")};
  }

  absl::StatusOr<bool> Bool(const Script& script, std::string_view queue,
                            absl::Span<const std::string> args) {
    absl::StatusOr<int64_t> r = b_->Int(script, Keys(queue), args);
    if (!r.ok()) return r.status();
    return *r == 1;
  }

  absl::StatusOr<std::vector<Task>> List(const Script& script,
                                         std::string_view queue,
                                         absl::Span<const std::string> args) {
    absl::StatusOr<Reply> r = b_->Eval(script, Keys(queue), args);
    if (!r.ok()) return r.status();
    if (r->type != Reply::Type::kArray) return b_->Unexpected(script);
    std::vector<Task> out;
    out.reserve(r->elements.size());
    for (const Reply& e : r->elements) {
      absl::StatusOr<Task> t = ToTask(*b_, script, e);
      if (!t.ok()) return t.status();
      out.push_back(*std::move(t));
    }
    return out;
  }

  std::shared_ptr<const Backend> b_;
};

// ---- URI parsing ----

bool Unescape(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int v = 0;
    for (int j = 1; j <= 2; ++j) {
      const char c = in[i + j];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v |= c - 'A' + 10;
      } else {
        return false;
      }
    }
    out->push_back(static_cast<char>(v));
    i += 2;
  }
  return true;
}

}  // namespace

absl::StatusOr<RedisStores> OpenRedisStores(const RedisOptions& options) {
  auto backend = std::make_shared<Backend>();
  backend->options = options;
  for (size_t i = 0; i <= options.more_servers.size(); ++i) {
    RedisOptions server = options;
    if (i > 0) {
      const RedisServer& more = options.more_servers[i - 1];
      server.host = more.host;
      server.port = more.port;
      server.unix_socket = more.unix_socket;
      server.db = more.db;
    }
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(server);
    if (!client.ok()) {
      if (i == 0) return client.status();
      absl::Status st = client.status();
      return absl::Status(st.code(),
                          StrCat(st.message(), " (more_servers[", i - 1, "])"));
    }
    if (absl::Status st = (*client)->LoadScripts(GetScripts().all());
        !st.ok()) {
      return st;
    }
    backend->clients.push_back(*std::move(client));
  }
  if (options.gc_grace < absl::ZeroDuration()) {
    backend->grace = "-1";
  } else {
    int64_t ms = absl::ToInt64Milliseconds(options.gc_grace);
    if (absl::Milliseconds(ms) < options.gc_grace) ++ms;
    backend->grace = StrCat(ms);
  }
  RedisStores stores;
  stores.lock = std::make_unique<RedisLockStore>(backend);
  stores.window = std::make_unique<RedisWindowStore>(backend);
  stores.queue = std::make_unique<RedisQueueStore>(backend);
  return stores;
}

absl::StatusOr<RedisOptions> ParseRedisUri(std::string_view uri) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("redis: store URI \"", uri, "\": ", why));
  };
  RedisOptions options;
  std::string_view rest;
  bool unix_socket = false;
  if (uri.substr(0, 8) == "redis://") {
    rest = uri.substr(8);
  } else if (uri.substr(0, 7) == "unix://") {
    rest = uri.substr(7);
    unix_socket = true;
  } else {
    return bad("expected redis://host[:port][/db] or unix:///path/to/socket");
  }
  std::string_view query;
  if (size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  // [[user]:password@]
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    std::string_view user = userinfo, password;
    if (size_t colon = userinfo.find(':'); colon != std::string_view::npos) {
      user = userinfo.substr(0, colon);
      password = userinfo.substr(colon + 1);
    } else {
      // "redis://secret@host": a lone word is the password (redis-py).
      password = userinfo;
      user = {};
    }
    if (!Unescape(user, &options.user) ||
        !Unescape(password, &options.password)) {
      return bad("bad percent-escape in the user or password");
    }
  }
  auto number = [&](std::string_view name, std::string_view text, int64_t lo,
                    int64_t hi, int64_t* v) -> absl::Status {
    if (!absl::SimpleAtoi(AV(text), v) || *v < lo || *v > hi) {
      return bad(
          StrCat(name, " \"", text, "\" is not a number in ", lo, "..", hi));
    }
    return absl::OkStatus();
  };
  if (unix_socket) {
    if (rest.empty() || rest[0] != '/') {
      return bad("the socket path must be absolute (unix:///path)");
    }
    if (!Unescape(rest, &options.unix_socket)) {
      return bad("bad percent-escape in the socket path");
    }
  } else {
    std::string_view hostport = rest;
    if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
      hostport = rest.substr(0, slash);
      std::string_view db = rest.substr(slash + 1);
      if (!db.empty()) {
        int64_t v;
        if (auto st = number("db", db, 0, 1 << 30, &v); !st.ok()) return st;
        options.db = static_cast<int>(v);
      }
    }
    // host[:port][,host[:port]...]: the first is the server, the others
    // more_servers.
    bool first = true;
    while (true) {
      const size_t comma = hostport.find(',');
      const std::string_view one = hostport.substr(0, comma);
      std::string_view host = one;
      int port = 6379;
      if (!one.empty() && one[0] == '[') {  // [IPv6]:port
        size_t close = one.find(']');
        if (close == std::string_view::npos) return bad("unclosed '['");
        host = one.substr(1, close - 1);
        std::string_view after = one.substr(close + 1);
        if (!after.empty()) {
          if (after[0] != ':') return bad("expected ':' after ']'");
          int64_t v;
          if (auto st = number("port", after.substr(1), 1, 65535, &v); !st.ok())
            return st;
          port = static_cast<int>(v);
        }
      } else if (size_t colon = one.rfind(':');
                 colon != std::string_view::npos) {
        host = one.substr(0, colon);
        int64_t v;
        if (auto st = number("port", one.substr(colon + 1), 1, 65535, &v);
            !st.ok())
          return st;
        port = static_cast<int>(v);
      }
      if (host.empty()) return bad("empty host");
      if (first) {
        options.host = std::string(host);
        options.port = port;
      } else {
        RedisServer more;
        more.host = std::string(host);
        more.port = port;
        options.more_servers.push_back(std::move(more));
      }
      first = false;
      if (comma == std::string_view::npos) break;
      hostport = hostport.substr(comma + 1);
    }
  }
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query = pair.size() < query.size() ? query.substr(pair.size() + 1)
                                       : std::string_view();
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      return bad(StrCat("parameter \"", pair, "\" has no value"));
    }
    const std::string_view name = pair.substr(0, eq);
    std::string value;
    if (!Unescape(pair.substr(eq + 1), &value)) {
      return bad(StrCat("bad percent-escape in parameter ", name));
    }
    int64_t v = 0;
    if (name == "db") {
      if (auto st = number(name, value, 0, 1 << 30, &v); !st.ok()) return st;
      options.db = static_cast<int>(v);
    } else if (name == "key_prefix") {
      options.key_prefix = value;
    } else if (name == "pool_size") {
      if (auto st = number(name, value, 1, 1 << 16, &v); !st.ok()) return st;
      options.pool_size = static_cast<int>(v);
    } else if (name == "connect_timeout_ms") {
      if (auto st = number(name, value, 1, int64_t{1} << 40, &v); !st.ok())
        return st;
      options.connect_timeout = absl::Milliseconds(v);
    } else if (name == "command_timeout_ms") {
      if (auto st = number(name, value, 0, int64_t{1} << 40, &v); !st.ok())
        return st;
      options.command_timeout = absl::Milliseconds(v);
    } else if (name == "gc_grace_ms") {
      if (auto st = number(name, value, -1, int64_t{1} << 40, &v); !st.ok())
        return st;
      options.gc_grace = v < 0 ? -absl::Milliseconds(1) : absl::Milliseconds(v);
    } else {
      return bad(
          StrCat("unknown parameter \"", name,
                 "\" (known: db, key_prefix, pool_size, connect_timeout_ms, "
                 "command_timeout_ms, gc_grace_ms)"));
    }
  }
  // The db (and the credentials) are every server's.
  for (RedisServer& more : options.more_servers) more.db = options.db;
  return options;
}

}  // namespace converge::redis
