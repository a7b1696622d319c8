// The synthetic alert storm of the benchmarks, shared by converge_storm_bench
// (memory store) and converge_sqlite_bench: `dimensions` dimensions, each
// with one prepared action (as a host keeps its action objects; each
// submission only sets the id and the time), half of them under `collect`
// (count 1, 300 s) and half under `skip_when_exceed` (count 3, 300 s),
// spread evenly over `seconds` of virtual time.

#ifndef CONVERGE_BENCH_STORM_H_
#define CONVERGE_BENCH_STORM_H_

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/manager.h"

namespace converge::bench {

// Fields of /proc/self/status, in KiB.
inline long ProcStatusKiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) return std::atol(line.c_str() + n + 1);
  }
  return -1;
}

inline double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

inline long Flag(int argc, char** argv, const char* name, long def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  }
  return def;
}

inline std::string StringFlag(int argc, char** argv, const char* name,
                              std::string def) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return def;
}

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2]
                      : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Action id n (1-based) of a storm with hashed ids: a bijection of the
// positive 63-bit ids that scatters consecutive n over the whole range, as
// converged's Alertmanager ids (FNV-1a of fingerprint and startsAt) are.
inline int64_t HashedId(int64_t n) {
  return static_cast<int64_t>(
      (static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15ULL) &
      0x7fffffffffffffffULL);
}

class Storm {
 public:
  Storm(long actions, long dimensions, long seconds)
      : actions_(actions), seconds_(seconds) {
    collect_.is_enabled = true;
    collect_.converge_func = ConvergeFunction::kCollect;
    collect_.timedelta = 300;
    collect_.count = 1;
    collect_.need_biz_converge = false;
    collect_.condition = {{"alert_info", {"self"}}};
    exceed_ = collect_;
    exceed_.converge_func = ConvergeFunction::kSkipWhenExceed;
    exceed_.count = 3;
    groups_.reserve(dimensions);
    prepared_.resize(dimensions);
    for (long d = 0; d < dimensions; ++d) {
      groups_.push_back("1001_1_abnormal_" + std::to_string(1000000 + d));
      Action& a = prepared_[d];
      a.bk_biz_id = 2;
      a.strategy_id = 1001;
      a.signal = "abnormal";
      a.alert_level = 1;
      a.plugin_type = "webhook";
      a.action_config_id = 7;
      a.alerts = {"alert-" + std::to_string(d)};
      a.context["alert_info"] = groups_[d];
    }
  }

  static absl::Time Start() { return absl::FromUnixSeconds(1700000000); }
  long actions() const { return actions_; }
  long dimensions() const { return static_cast<long>(groups_.size()); }
  const std::vector<std::string>& groups() const { return groups_; }

  // Ids in submission order (the default: i + 1, as a processor's
  // auto-increment ids), or HashedId(i + 1).
  void set_hashed_ids(bool hashed) { hashed_ids_ = hashed; }

  // Action i (0-based) of the storm, with its id and create time set;
  // valid until the next call for the same dimension.
  const Action& At(long i) {
    Action& a = prepared_[i % dimensions()];
    a.id = hashed_ids_ ? HashedId(i + 1) : i + 1;
    a.create_time =
        Start() + absl::Seconds(static_cast<double>(i) * seconds_ / actions_);
    return a;
  }
  const ConvergeConfig& ConfigAt(long i) const {
    return (i % dimensions()) % 2 == 0 ? collect_ : exceed_;
  }

 private:
  long actions_;
  long seconds_;
  bool hashed_ids_ = false;
  ConvergeConfig collect_;
  ConvergeConfig exceed_;
  std::vector<std::string> groups_;
  std::vector<Action> prepared_;
};

// Submits the first `actions` actions of `storm` to `manager` (those from
// index `from` on: a storm driven in parts, in order), in batches of
// `batch` (SubmitBatch; 1 = Submit one by one), setting `clock` to each
// action's time (to the last one's for a batch: a host hands a batch of its
// own action objects, so the prepared actions are copied). Counts outcomes
// into `outcomes` (indexed by Outcome) and returns false, printing the
// error, on the first failed decision.
inline bool DriveStorm(Storm& storm, ConvergeManager& manager,
                       VirtualClock& clock, long actions, long batch,
                       long outcomes[5], long from = 0) {
  std::vector<Action> held;
  std::vector<ConvergeManager::BatchItem> items;
  for (long i = from; i < actions;) {
    if (batch <= 1) {
      const Action& a = storm.At(i);
      clock.Set(a.create_time);
      absl::StatusOr<Decision> r = manager.Submit(a, storm.ConfigAt(i));
      if (!r.ok()) {
        std::fprintf(stderr, "action %ld: %s\n", i + 1,
                     r.status().ToString().c_str());
        return false;
      }
      ++outcomes[static_cast<int>(r->outcome)];
      ++i;
      continue;
    }
    held.clear();
    items.clear();
    const long end = std::min(actions, i + batch);
    for (long j = i; j < end; ++j) held.push_back(storm.At(j));
    for (long j = i; j < end; ++j) {
      items.push_back({&held[j - i], &storm.ConfigAt(j)});
    }
    clock.Set(held.back().create_time);
    for (absl::StatusOr<Decision>& r : manager.SubmitBatch(items)) {
      if (!r.ok()) {
        std::fprintf(stderr, "batch at %ld: %s\n", i + 1,
                     r.status().ToString().c_str());
        return false;
      }
      ++outcomes[static_cast<int>(r->outcome)];
    }
    i = end;
  }
  return true;
}

// DriveStorm over one share of the dimensions (d % shares == share), as one
// of `shares` processors side by side, each with its own clock and stores:
// the actions of its dimensions in the storm's order, in batches of `batch`
// (SubmitBatch), its clock set to each batch's last action. As a processor
// does, a batch that failed with an error worth retrying (kAborted: a
// deadlock; kUnavailable: a lock wait, a busy lease) is submitted again
// after a short pause (a few ms, apart per thread), at most 5 times; *retries
// counts them. Its stored decisions come back as they are; its first run's
// window index writes outlive the rollback, so its outcomes may differ from one
// processor's.
inline bool DriveStormShare(Storm& storm, ConvergeManager& manager,
                            VirtualClock& clock, long actions, long batch,
                            long share, long shares, long outcomes[5],
                            long* retries) {
  std::vector<Action> held;
  std::vector<long> at;
  std::vector<ConvergeManager::BatchItem> items;
  auto flush = [&]() -> bool {
    if (held.empty()) return true;
    items.clear();
    for (size_t j = 0; j < held.size(); ++j) {
      items.push_back({&held[j], &storm.ConfigAt(at[j])});
    }
    clock.Set(held.back().create_time);
    for (int attempt = 0;; ++attempt) {
      std::vector<absl::StatusOr<Decision>> got = manager.SubmitBatch(items);
      absl::Status failed;
      for (const absl::StatusOr<Decision>& r : got) {
        if (!r.ok()) {
          failed = r.status();
          break;
        }
      }
      if (!failed.ok()) {
        const bool retry = failed.code() == absl::StatusCode::kAborted ||
                           failed.code() == absl::StatusCode::kUnavailable;
        if (retry && attempt < 5) {
          ++*retries;
          std::this_thread::sleep_for(std::chrono::milliseconds(
              1 +
              static_cast<int>(
                  std::hash<std::thread::id>()(std::this_thread::get_id()) %
                  8) +
              4 * attempt));
          continue;
        }
        std::fprintf(stderr, "batch at %ld: %s\n", at.front() + 1,
                     failed.ToString().c_str());
        return false;
      }
      for (const absl::StatusOr<Decision>& r : got) {
        ++outcomes[static_cast<int>(r->outcome)];
      }
      break;
    }
    held.clear();
    at.clear();
    return true;
  };
  for (long i = 0; i < actions; ++i) {
    if ((i % storm.dimensions()) % shares != share) continue;
    // Storm::At changes only this dimension's prepared action, which no
    // other share touches.
    held.push_back(storm.At(i));
    at.push_back(i);
    if (static_cast<long>(held.size()) >= std::max(batch, 1L) && !flush()) {
      return false;
    }
  }
  return flush();
}

// Submits the first `actions` actions of `storm` one by one (Submit) from
// `threads` threads at once, as a processor's workers do: thread t takes
// the actions of the dimensions d with d % threads == t, in the storm's
// order, so that each dimension sees its actions in that order. `clock`
// moves forward to each action's time, never back: the threads run side by
// side, so an action may be decided a little after its time. Counts
// outcomes like DriveStorm; returns false, printing the error, if any
// decision failed.
inline bool DriveStormThreaded(Storm& storm, ConvergeManager& manager,
                               VirtualClock& clock, long actions, int threads,
                               long outcomes[5]) {
  std::mutex mu;  // guards the clock's moves and the counts
  bool ok = true;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      long mine[5] = {0, 0, 0, 0, 0};
      for (long i = 0; i < actions; ++i) {
        if ((i % storm.dimensions()) % threads != t) continue;
        // Storm::At changes only this dimension's prepared action, which
        // no other thread touches.
        const Action& a = storm.At(i);
        {
          std::lock_guard<std::mutex> lock(mu);
          if (clock.Now() < a.create_time) clock.Set(a.create_time);
        }
        absl::StatusOr<Decision> r = manager.Submit(a, storm.ConfigAt(i));
        if (!r.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          std::fprintf(stderr, "action %ld: %s\n", i + 1,
                       r.status().ToString().c_str());
          ok = false;
          return;
        }
        ++mine[static_cast<int>(r->outcome)];
      }
      std::lock_guard<std::mutex> lock(mu);
      for (int k = 0; k < 5; ++k) outcomes[k] += mine[k];
    });
  }
  for (std::thread& w : workers) w.join();
  return ok;
}

// True if a threaded run decided as many actions as the run `alone`
// (outcome counts: DriveStorm's). Its counts of each outcome may differ a
// little: the threads share one clock, so an action may be decided after
// its time, when its window has moved on. Prints the counts if they do.
inline bool ThreadedMatches(
    const char* name, const long threaded[5], const long alone[5],
    const char* why =
        "actions decided after their time: the threads share "
        "one clock") {
  long a = 0, b = 0;
  bool same = true;
  for (int k = 0; k < 5; ++k) {
    a += threaded[k];
    b += alone[k];
    same = same && threaded[k] == alone[k];
  }
  if (!same) {
    std::printf("  %s: execute %ld, skip %ld against %ld, %ld alone (%s)\n",
                name, threaded[0], threaded[1], alone[0], alone[1], why);
  }
  return a == b;
}

// DriveStormThreaded with threads > 1, else DriveStorm in batches of
// `batch`.
inline bool DriveStormWith(Storm& storm, ConvergeManager& manager,
                           VirtualClock& clock, long actions, long batch,
                           int threads, long outcomes[5]) {
  return threads > 1
             ? DriveStormThreaded(storm, manager, clock, actions, threads,
                                  outcomes)
             : DriveStorm(storm, manager, clock, actions, batch, outcomes);
}

}  // namespace converge::bench

#endif  // CONVERGE_BENCH_STORM_H_
