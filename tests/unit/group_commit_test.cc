// Group commit (ManagerOptions::group_commit_max): Submit calls of several
// threads at once share one repo transaction, and each still gets the
// decision it would get alone. On a repo without transactions (memory)
// every Submit runs on its own and only the outcomes are checked.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "converge/memory/memory_store.h"
#include "converge/store/errors.h"
#include "converge/store/wrappers.h"
#include "test_util.h"

namespace converge::testing {
namespace {

// Counts the repo's transactions and the decisions written in each (on the
// thread that runs it), and with fail_shared fails the commit of every
// transaction that wrote more than one decision (after rolling it back).
class GroupRepo final : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;

  bool fail_shared = false;
  // The code of the injected commit failure: kInvalidArgument stands for
  // one item's bad value found at the commit (MySQL writes joins then).
  absl::StatusCode fail_code = absl::StatusCode::kUnavailable;
  // Or a conflict (ConflictError): each action then runs alone once.
  bool fail_conflict = false;
  // Set: BeginBatch waits 2 ms (a busy timeout) and fails StoreDownError.
  std::atomic<bool> down{false};
  std::atomic<int> begins_down{0};
  std::atomic<int> batches{0};
  std::atomic<int> commits{0};  // batches committed
  std::atomic<int> largest{0};
  std::atomic<int> injected{0};

  absl::StatusOr<RecordResult> RecordDecision(
      const ActionRecord& record) override {
    ++t_decisions;
    return InstanceRepoWrapper::RecordDecision(record);
  }
  absl::StatusOr<RecordResult> Join(const ActionRecord& record,
                                    const ConvergeRelation& relation) override {
    ++t_decisions;
    return InstanceRepoWrapper::Join(record, relation);
  }
  absl::StatusOr<CreateResult> Create(const CreateRequest& request) override {
    ++t_decisions;
    return InstanceRepoWrapper::Create(request);
  }

  absl::StatusOr<std::unique_ptr<RepoBatch>> BeginBatch() override {
    if (down.load()) {
      ++begins_down;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      return StoreDownError("injected: the database stayed locked");
    }
    absl::StatusOr<std::unique_ptr<RepoBatch>> inner =
        InstanceRepoWrapper::BeginBatch();
    if (!inner.ok() || *inner == nullptr) return inner;
    ++batches;
    t_decisions = 0;
    return std::unique_ptr<RepoBatch>(
        std::make_unique<Batch>(this, *std::move(inner)));
  }

 private:
  class Batch final : public RepoBatch {
   public:
    Batch(GroupRepo* repo, std::unique_ptr<RepoBatch> inner)
        : repo_(repo), inner_(std::move(inner)) {}
    absl::Status Commit() override {
      const int n = t_decisions;
      int seen = repo_->largest.load();
      while (n > seen && !repo_->largest.compare_exchange_weak(seen, n)) {
      }
      if (repo_->fail_shared && n > 1) {
        inner_.reset();  // rolled back
        ++repo_->injected;
        if (repo_->fail_conflict) {
          return ConflictError("injected: the shared commit met a writer");
        }
        return absl::Status(repo_->fail_code, "injected: shared commit failed");
      }
      absl::Status st = inner_->Commit();
      if (st.ok()) ++repo_->commits;
      return st;
    }
    bool ExcludesWriters() const override { return inner_->ExcludesWriters(); }
    void RetriedOnConflict() override { inner_->RetriedOnConflict(); }

   private:
    GroupRepo* repo_;
    std::unique_ptr<RepoBatch> inner_;
  };

  static thread_local int t_decisions;
};

thread_local int GroupRepo::t_decisions = 0;

constexpr int kThreads = 8;
constexpr int kPerThread = 60;

// Thread t's k-th action: id t * 1000 + k, on one of 4 dimensions of its
// own, so that each dimension sees its actions in one order whatever the
// interleaving of the threads.
Action ThreadAction(int t, int k) {
  return Act(t * 1000 + k + 1, 100 + k * 0.01,
             "t" + std::to_string(t) + "-" + std::to_string(k % 4));
}

// What each thread's actions get when decided one by one on a fresh memory
// store: the reference.
std::vector<std::vector<Outcome>> Reference(const ConvergeConfig& rule) {
  VirtualClock clock(T(200));
  memory::MemoryStores stores =
      memory::NewMemoryStores(memory::MemoryOptions{&clock}).value();
  auto manager = ConvergeManager::Create(stores.view(), &clock).value();
  std::vector<std::vector<Outcome>> out(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < kPerThread; ++k) {
      out[t].push_back(manager->Submit(ThreadAction(t, k), rule)->outcome);
    }
  }
  return out;
}

// Runs `body(t)` on kThreads threads started together.
template <typename Body>
void StartTogether(Body body) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      body(t);
    });
  }
  for (auto& th : threads) th.join();
}

// Runs kThreads threads of kPerThread Submits each at once; returns their
// outcomes, failing the test on any error.
std::vector<std::vector<Outcome>> RunThreads(ConvergeManager* manager,
                                             const ConvergeConfig& rule) {
  std::vector<std::vector<Outcome>> out(kThreads);
  std::vector<std::string> errors;
  std::mutex mu;
  StartTogether([&](int t) {
    for (int k = 0; k < kPerThread; ++k) {
      absl::StatusOr<Decision> d = manager->Submit(ThreadAction(t, k), rule);
      if (!d.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        errors.push_back(d.status().ToString());
        out[t].push_back(Outcome::kShield);  // never expected here
        continue;
      }
      out[t].push_back(d->outcome);
    }
  });
  INFO((errors.empty() ? std::string() : errors.front()));
  CHECK(errors.empty());
  return out;
}

TEST_CASE("group commit: threads share transactions, decisions as alone",
          "[concurrency][manager][group_commit]") {
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  const std::vector<std::vector<Outcome>> reference = Reference(rule);

  Env env;
  env.clock.Set(T(200));
  const bool batches = RepoHasBatches(*env.stores.repo);
  GroupRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* s) { s->repo = &repo; });

  CHECK(RunThreads(env.manager.get(), rule) == reference);
  const int total = kThreads * kPerThread;
  if (batches) {
    // Some Submits were decided together: fewer transactions than Submits,
    // and one of them wrote several decisions (at most group_commit_max).
    CHECK(repo.batches.load() < total);
    CHECK(repo.largest.load() > 1);
    CHECK(repo.largest.load() <= ManagerOptions().group_commit_max);
  } else {
    CHECK(repo.batches.load() == 0);
  }
  // Every action has exactly its one decision stored.
  for (int t = 0; t < kThreads; ++t) {
    for (int k = 0; k < kPerThread; ++k) {
      auto rec = env.stores.repo->GetAction(ThreadAction(t, k).id);
      REQUIRE(rec.ok());
      REQUIRE(rec->has_value());
      CHECK((*rec)->decision.outcome == reference[t][k]);
    }
  }
}

TEST_CASE("group commit off: every Submit is a transaction of its own",
          "[concurrency][manager][group_commit]") {
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  ManagerOptions options;
  options.group_commit_max = 1;
  Env env(options);
  env.clock.Set(T(200));
  const bool batches = RepoHasBatches(*env.stores.repo);
  GroupRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* s) { s->repo = &repo; });

  CHECK(RunThreads(env.manager.get(), rule) == Reference(rule));
  // One committed transaction per Submit. (A Submit whose transaction met
  // another writer's runs once more: on MySQL alone, a deadlock between
  // two Submits' lease inserts, say; so batches may be begun a few times
  // more.)
  CHECK(repo.commits.load() == (batches ? kThreads * kPerThread : 0));
  CHECK(repo.batches.load() >= repo.commits.load());
  CHECK(repo.largest.load() <= 1);
}

TEST_CASE("group commit: a failed shared transaction runs each action alone",
          "[concurrency][manager][group_commit]") {
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  Env env;
  env.clock.Set(T(200));
  const bool batches = RepoHasBatches(*env.stores.repo);
  GroupRepo repo(env.stores.repo.get());
  repo.fail_shared = true;  // every commit of more than one decision fails
  env.Rewire([&](Stores* s) { s->repo = &repo; });

  SECTION("a store error") {}
  SECTION("one item's bad value, found at the commit") {
    // Not every item's error: before, each caller of the group got it.
    repo.fail_code = absl::StatusCode::kInvalidArgument;
  }
  SECTION("a conflict with another writer") { repo.fail_conflict = true; }
  // No Submit sees the injected failures: each of their actions was
  // decided again in a transaction of its own, with the same outcome.
  CHECK(RunThreads(env.manager.get(), rule) == Reference(rule));
  if (batches) CHECK(repo.injected.load() > 0);
}

TEST_CASE(
    "group commit: a store that is down fails the group at once, without "
    "running each action again",
    "[concurrency][manager][group_commit]") {
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  Env env;
  env.clock.Set(T(200));
  if (!RepoHasBatches(*env.stores.repo)) return;  // no group commit
  GroupRepo repo(env.stores.repo.get());
  env.Rewire([&](Stores* s) { s->repo = &repo; });
  // One Submit first: the manager learns that the repo has batches.
  REQUIRE(env.manager->Submit(Act(999999, 200, "first"), rule).ok());
  repo.down = true;

  constexpr int kCalls = 40;
  std::atomic<int> down_errors{0};
  StartTogether([&](int t) {
    for (int k = 0; k < kCalls; ++k) {
      absl::StatusOr<Decision> d =
          env.manager->Submit(ThreadAction(t, k), rule);
      if (IsStoreDown(d.status())) ++down_errors;
    }
  });
  // Every call failed with the store's error, and a group that failed
  // began no transaction per action: fewer begins than calls (each begin
  // waits out the store's timeout, so callers queue into groups).
  CHECK(down_errors.load() == kThreads * kCalls);
  CHECK(repo.begins_down.load() < kThreads * kCalls);
  // Nothing was stored.
  CHECK_FALSE(
      env.stores.repo->GetAction(ThreadAction(0, 0).id).value().has_value());
}

// Runs `body` on another thread and waits a minute at most: threads stuck
// in a deadlock cannot be joined, so then it reports `what` and leaves
// (stdio flushed, since _Exit does not).
template <typename Body>
void WithinAMinute(Body body, const char* what) {
  auto run = std::async(std::launch::async, body);
  if (run.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    std::fprintf(stderr, "%s\n", what);
    std::fflush(nullptr);
    std::_Exit(1);
  }
}

TEST_CASE(
    "group commit: a listener callback may Submit, even on the leader's "
    "thread",
    "[concurrency][manager][group_commit]") {
  // A leader runs the callbacks of its group's decisions (its own and the
  // other callers') while it still leads. A Submit from one used to queue
  // behind the thread that runs it, and wait forever.
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  struct Reentrant final : ManagerListener {
    ConvergeManager* manager = nullptr;
    const ConvergeConfig* rule = nullptr;
    std::atomic<int> nested{0};
    std::atomic<int> nested_ok{0};
    void OnDecision(const Decision& d) override {
      if (d.action_id >= 500000) return;  // a nested one
      ++nested;
      const std::string dim = "nested-" + std::to_string(d.action_id);
      if (manager->Submit(Act(500000 + d.action_id, 200, dim), *rule).ok()) {
        ++nested_ok;
      }
    }
  } listener;
  ManagerOptions options;
  options.listener = &listener;
  Env env(options);
  env.clock.Set(T(200));
  listener.manager = env.manager.get();
  listener.rule = &rule;
  constexpr int kCalls = 5;
  std::atomic<int> ok{0};
  WithinAMinute(
      [&] {
        StartTogether([&](int t) {
          for (int k = 0; k < kCalls; ++k) {
            if (env.manager->Submit(ThreadAction(t, k), rule).ok()) ++ok;
          }
        });
      },
      "Submit from a listener callback did not return in 60 s");
  CHECK(ok.load() == kThreads * kCalls);
  CHECK(listener.nested.load() == kThreads * kCalls);
  CHECK(listener.nested_ok.load() == kThreads * kCalls);
  CHECK(env.stores.repo->GetAction(500000 + ThreadAction(3, 2).id)
            .value()
            .has_value());
}

TEST_CASE(
    "group commit: callbacks of two managers that submit to each other do "
    "not wait for each other",
    "[concurrency][manager][group_commit]") {
  // Manager A's callbacks submit to B, and B's to A: a leader of A waiting
  // in a callback for B's group, whose leader waits in a callback for A's.
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  struct Forward final : ManagerListener {
    ConvergeManager* other = nullptr;
    const ConvergeConfig* rule = nullptr;
    int64_t from = 0, to = 0, shift = 0;  // forwards ids in [from, to)
    std::atomic<int> forwarded{0};
    void OnDecision(const Decision& d) override {
      if (d.action_id < from || d.action_id >= to) return;
      const int64_t id = d.action_id + shift;
      if (other->Submit(Act(id, 200, "f-" + std::to_string(id)), *rule).ok()) {
        ++forwarded;
      }
    }
  } to_b, to_a;
  to_b.from = 1;
  to_b.to = 500000;
  to_b.shift = 500000;  // A's own actions go on to B
  to_a.from = 500000;
  to_a.to = 600000;
  to_a.shift = 100000;  // and come back to A once
  ManagerOptions oa, ob;
  oa.listener = &to_b;
  ob.listener = &to_a;
  Env a(oa), b(ob);
  a.clock.Set(T(200));
  b.clock.Set(T(200));
  to_b.other = b.manager.get();
  to_a.other = a.manager.get();
  to_b.rule = to_a.rule = &rule;
  constexpr int kCalls = 4;
  WithinAMinute(
      [&] {
        StartTogether([&](int t) {
          ConvergeManager* m = t % 2 == 0 ? a.manager.get() : b.manager.get();
          for (int k = 0; k < kCalls; ++k) {
            // Odd threads start on B, with ids B forwards to A.
            Action act = ThreadAction(t, k);
            if (t % 2 == 1) act.id += 500000;
            (void)m->Submit(act, rule);
          }
        });
      },
      "callbacks of two managers waited for each other for 60 s");
  CHECK(to_b.forwarded.load() == (kThreads / 2) * kCalls);
  CHECK(to_a.forwarded.load() == kThreads * kCalls);
}

TEST_CASE("group commit: a listener callback that throws strands nobody",
          "[concurrency][manager][group_commit]") {
  // The exception leaves the Submit whose thread ran the callback (maybe a
  // leader deciding others); the group's other callers used to wait for
  // their results, and every later caller for a leader that was gone.
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 3, 3600);
  struct Thrower final : ManagerListener {
    int64_t victim = 0;
    std::atomic<int> thrown{0};
    void OnDecision(const Decision& d) override {
      if (d.action_id == victim && thrown.fetch_add(1) == 0) {
        throw std::runtime_error("listener");
      }
    }
  } listener;
  listener.victim = ThreadAction(2, 3).id;
  ManagerOptions options;
  options.listener = &listener;
  Env env(options);
  env.clock.Set(T(200));
  constexpr int kCalls = 8;
  std::atomic<int> caught{0};
  std::atomic<int> returned{0};
  WithinAMinute(
      [&] {
        StartTogether([&](int t) {
          for (int k = 0; k < kCalls; ++k) {
            try {
              (void)env.manager->Submit(ThreadAction(t, k), rule);
              ++returned;
            } catch (const std::runtime_error&) {
              ++caught;
            }
          }
        });
      },
      "callers waited 60 s after a listener callback threw");
  CHECK(caught.load() == 1);
  CHECK(returned.load() == kThreads * kCalls - 1);
  // Nobody is left leading: the next call is decided.
  CHECK(env.manager->Submit(Act(999999, 200, "after"), rule).ok());
  CHECK(env.stores.repo->GetAction(listener.victim).value().has_value());
}

TEST_CASE("group_commit_max must be >= 1", "[manager][group_commit]") {
  VirtualClock clock(T(0));
  memory::MemoryStores stores =
      memory::NewMemoryStores(memory::MemoryOptions{&clock}).value();
  ManagerOptions options;
  options.group_commit_max = 0;
  absl::StatusOr<std::unique_ptr<ConvergeManager>> m =
      ConvergeManager::Create(stores.view(), &clock, options);
  REQUIRE(absl::IsInvalidArgument(m.status()));
  CHECK_THAT(std::string(m.status().message()),
             Catch::Contains("group_commit_max: must be >= 1, got 0"));
}

}  // namespace
}  // namespace converge::testing
