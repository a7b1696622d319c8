// Two processes, one SQLite file: two children (two_process_child.cc) run
// the processor on file A over the same 20,000 queued actions at once; one
// child runs it alone on file B, a copy of A made before either ran. The
// final states must be equal: the same instances (type, function,
// dimension, times, config, visibility), the same relations, the same
// decision for every action, the same tasks left in the queue. And each
// file passes PRAGMA integrity_check, has exactly one decision per action,
// no dead letter, nothing in flight, and no task but the perpetual sweep.
//
// Why the processes share a lockstep clock. The processor delivers tasks
// in due order, but it does not order the tasks of one dimension across
// workers: two workers may hold two consecutive actions of one dimension at
// once, and whichever takes the dimension lease first is evaluated first
// (docs/processor.md, "Due order": the lease keeps evaluations one at a
// time, not in order). The decisions then legitimately differ from a serial
// run's: another action creates the instance, another one is the first
// skipped. So exact equality needs the order of each dimension's tasks
// fixed, which the test gets from time, as `converge replay` does: all
// processes read one virtual clock (the instant file, two_process.h), which
// moves to the next due task only when no task is pending at the current
// instant and none is in flight in any process (LockstepQueue in the
// child). Tasks of different instants therefore never overlap, and every
// task runs with the clock at its own due time in every run.
//
// Within one instant the two processes do run tasks concurrently, in any
// order; the workload makes those tasks touch disjoint state, so the order
// cannot matter:
// - an instant holds at most one action per rule; each rule has its own
//   strategy and its own condition values, so the actions of one instant
//   have distinct dimensions, window keys and instances, and only one rule
//   has a second level (whose business state is then touched by at most one
//   action, and the business task that action queues, per instant);
// - follow-up tasks are due at offsets that never fall on an action's whole
//   second nor on each other (two_process.h), so an instant holds actions,
//   or summaries of instances created at one earlier instant (distinct
//   dimensions again, or a first-level instance and the second-level
//   instance that hid it: a hidden instance's summary writes nothing), or
//   re-polls, or approval timeouts, or the sweep alone;
// - nothing is retried or requeued (checked: every child reports zero), so
//   no task moves to an instant the workload did not plan.
// Instance and relation ids are AUTOINCREMENT and differ between the runs
// when two rules create instances at one instant; the comparison names an
// instance by the action (or, for a business instance, the instance) that
// created it.

#include "two_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "converge/manager.h"
#include "converge/processor.h"
#include "converge/sqlite/sqlite_store.h"

#ifndef CONVERGE_TWO_PROCESS_CHILD
#error "CONVERGE_TWO_PROCESS_CHILD must name the child executable"
#endif

namespace converge::sqlite::two_process {
namespace {

namespace fs = std::filesystem;

constexpr int kActions = 20000;
const absl::Time kStart = absl::FromUnixSeconds(1700000000);

// ---- the workload ----

struct Rule {
  ConvergeFunction func;
  int64_t timedelta;
  int64_t count;
  int values;  // distinct alert_info values, so dimensions
  bool second_level = false;
  bool enabled = true;
};

// One rule per function (and a disabled one: illegal config, executes),
// each with its own strategy (100 + index) and its own values ("r<index>-").
const std::vector<Rule>& Rules() {
  static const auto* rules = new std::vector<Rule>{
      {ConvergeFunction::kSkipWhenExceed, 120, 2, 12},
      {ConvergeFunction::kCollect, 180, 1, 10},
      {ConvergeFunction::kDefense, 300, 2, 8},
      {ConvergeFunction::kTrigger, 60, 3, 10},
      {ConvergeFunction::kRelevance, 120, 2, 10},
      {ConvergeFunction::kCollectAlarm, 90, 2, 10},
      {ConvergeFunction::kWaitWhenProceed, 60, 1, 10},
      {ConvergeFunction::kSkipWhenSuccess, 30, 1, 6},
      {ConvergeFunction::kSkipWhenProceed, 120, 2, 10},
      // The business summary: notices to two receivers of one business.
      {ConvergeFunction::kCollect, 60, 1, 6, /*second_level=*/true},
      {ConvergeFunction::kSkipWhenExceed, 60, 1, 4, false, /*enabled=*/false},
  };
  return *rules;
}

ConvergeConfig ConfigOf(const Rule& rule) {
  ConvergeConfig c;
  c.is_enabled = rule.enabled;
  c.converge_func = rule.func;
  c.timedelta = rule.timedelta;
  c.count = rule.count;
  c.condition = {{"alert_info", {Value("self")}}};
  if (rule.second_level) {
    const char* business[] = {"bk_biz_id", "signal", "alert_level",
                              "notice_receiver", "notice_way"};
    auto sub = std::make_shared<ConvergeConfig>();
    sub->is_enabled = true;
    sub->converge_func = ConvergeFunction::kCollectAlarm;
    sub->timedelta = 120;
    sub->count = 2;
    for (const char* key : business) {
      c.condition.push_back({key, {Value("self")}});
      sub->condition.push_back({key, {Value("self")}});
    }
    c.sub_converge_config = std::move(sub);
  }
  return c;
}

struct Workload {
  std::vector<Action> actions;
  std::vector<size_t> rule_of;  // index into Rules()
};

// Instants are whole seconds from kStart; each rule has an action at an
// instant with probability 0.4, so about 4.4 actions an instant and one
// action every 25 s or so per dimension.
Workload MakeWorkload() {
  std::mt19937_64 rng(20240601);
  Workload w;
  for (int64_t second = 0; static_cast<int>(w.actions.size()) < kActions;
       ++second) {
    for (size_t r = 0; r < Rules().size(); ++r) {
      if (rng() % 10 >= 4 || static_cast<int>(w.actions.size()) >= kActions) {
        continue;
      }
      const Rule& rule = Rules()[r];
      const int64_t id = static_cast<int64_t>(w.actions.size()) + 1;
      const uint64_t value = rng() % static_cast<uint64_t>(rule.values);
      Action a;
      a.id = id;
      a.create_time = kStart + absl::Seconds(second);
      a.bk_biz_id = 2;
      a.strategy_id = 100 + static_cast<int64_t>(r);
      a.signal = "abnormal";
      a.alert_level = 1;
      a.plugin_type = rule.second_level ? "notice" : "webhook";
      a.alerts = {absl::StrCat("alert-", r, "-", value)};
      a.shielded = rng() % 100 == 0;
      a.context["alert_info"] = absl::StrCat("r", r, "-g", value);
      if (rule.second_level) {
        a.context["notice_way"] = "mail";
        a.context["notice_receiver"] = value % 2 == 0 ? "alice" : "bob";
      }
      w.actions.push_back(std::move(a));
      w.rule_of.push_back(r);
    }
  }
  return w;
}

// ---- child processes ----

struct Child {
  pid_t pid = -1;
  FILE* in = nullptr;   // the child's stdin
  FILE* out = nullptr;  // the child's stdout
};

Child Spawn(const std::string& db, const std::string& instant) {
  int to_child[2], from_child[2];
  REQUIRE(pipe(to_child) == 0);
  REQUIRE(pipe(from_child) == 0);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // A child must not outlive the test (a timeout, a failed REQUIRE): it
    // would wait for the other's in-flight task forever.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(to_child[0], STDIN_FILENO);
    dup2(from_child[1], STDOUT_FILENO);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    execl(CONVERGE_TWO_PROCESS_CHILD, CONVERGE_TWO_PROCESS_CHILD, db.c_str(),
          instant.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(to_child[0]);
  close(from_child[1]);
  return Child{pid, fdopen(to_child[1], "w"), fdopen(from_child[0], "r")};
}

std::string ReadLine(FILE* f) {
  std::string line;
  for (int c; (c = std::fgetc(f)) != EOF && c != '\n';) {
    line.push_back(static_cast<char>(c));
  }
  return line;
}

struct ChildResult {
  int status = -1;
  std::string last_line;  // "done ..." on success
  std::map<std::string, int64_t> stats;
};

// Starts one child per entry of `dbs` (all with the instant file
// `instant`), lets them go at once, and waits for all. If one fails, the
// others are killed (they would wait for its in-flight task forever).
std::vector<ChildResult> RunChildren(const std::vector<std::string>& dbs,
                                     const std::string& instant) {
  std::vector<Child> children;
  for (const std::string& db : dbs) children.push_back(Spawn(db, instant));
  for (Child& c : children) REQUIRE(ReadLine(c.out) == "ready");
  for (Child& c : children) {
    std::fputs("go\n", c.in);
    std::fflush(c.in);
  }
  std::vector<ChildResult> results(children.size());
  size_t running = children.size();
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    REQUIRE(pid > 0);
    for (size_t i = 0; i < children.size(); ++i) {
      if (children[i].pid != pid) continue;
      results[i].status = status;
      --running;
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        for (size_t j = 0; j < children.size(); ++j) {
          if (j != i && results[j].status == -1) kill(children[j].pid, SIGKILL);
        }
      }
    }
  }
  for (size_t i = 0; i < children.size(); ++i) {
    results[i].last_line = ReadLine(children[i].out);
    std::fclose(children[i].in);
    std::fclose(children[i].out);
    std::vector<std::string> fields = absl::StrSplit(results[i].last_line, ' ');
    for (size_t f = 1; f < fields.size(); ++f) {
      std::vector<std::string> kv = absl::StrSplit(fields[f], '=');
      int64_t n = 0;
      if (kv.size() == 2 && absl::SimpleAtoi(kv[1], &n)) {
        results[i].stats[kv[0]] = n;
      }
    }
  }
  return results;
}

void WriteInstantFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, kInstantFileSize) == 0);
  void* map = mmap(nullptr, kInstantFileSize, PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
  REQUIRE(map != MAP_FAILED);
  auto* shared = new (map) SharedInstant{};
  shared->now_ns.store(absl::ToUnixNanos(kStart));
  shared->in_flight.store(0);
  shared->settled.store(0);
  munmap(map, kInstantFileSize);
  close(fd);
}

// ---- reading a file's final state ----

struct Db {
  explicit Db(const std::string& path) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE,
                            nullptr) == SQLITE_OK);
  }
  ~Db() { sqlite3_close(db); }
  // Every column as text; NULL as "NULL".
  std::vector<std::vector<std::string>> Query(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    INFO(sql);
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    std::vector<std::vector<std::string>> rows;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::vector<std::string>& row = rows.emplace_back();
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        const unsigned char* text = sqlite3_column_text(s, i);
        row.push_back(text == nullptr ? "NULL"
                                      : reinterpret_cast<const char*>(text));
      }
    }
    sqlite3_finalize(s);
    REQUIRE(rc == SQLITE_DONE);
    return rows;
  }
  sqlite3* db = nullptr;
};

struct State {
  std::vector<std::string> instances;  // sorted
  std::vector<std::string> relations;  // sorted
  std::vector<std::string> decisions;  // by action id
  std::vector<std::string> queue;      // tasks left, by task id
  std::string integrity;
  int64_t decided_actions = 0;  // distinct action ids with a decision
};

State ReadState(const std::string& path) {
  Db db(path);
  State st;
  st.integrity = db.Query("PRAGMA integrity_check")[0][0];

  // Names of instances that do not depend on ids: "A<action id>" for an
  // instance an action created, "B<name>" for a business instance created
  // for first-level instance <name>.
  std::map<std::string, std::pair<std::string, std::string>> primary;
  for (const auto& r :
       db.Query("SELECT converge_id, related_type, related_id FROM "
                "converge_relation WHERE is_primary = 1")) {
    INFO("instance " << r[0]);
    REQUIRE(primary.emplace(r[0], std::make_pair(r[1], r[2])).second);
  }
  std::map<std::string, std::string> names;
  std::function<std::string(const std::string&)> name =
      [&](const std::string& id) -> std::string {
    if (id == "NULL") return id;
    if (auto it = names.find(id); it != names.end()) return it->second;
    auto p = primary.find(id);
    INFO("instance " << id << " has no primary relation");
    REQUIRE(p != primary.end());
    std::string n = p->second.first == "action"
                        ? absl::StrCat("A", p->second.second)
                        : absl::StrCat("B", name(p->second.second));
    names[id] = n;
    return n;
  };

  for (auto& r : db.Query(
           "SELECT id, converge_type, converge_func, bk_biz_id, dimension, "
           "description, content, detail, create_time, update_time, "
           "end_time, is_visible, is_enabled, is_deleted, notify_status, "
           "converge_config, window_seconds FROM converge_instance")) {
    const std::string id = r[0];
    r[0] = name(id);
    // An ended instance's dimension is "D fixed at <ts> #<id>".
    const std::string suffix = " #" + id;
    if (r[4].size() > suffix.size() &&
        r[4].compare(r[4].size() - suffix.size(), suffix.size(), suffix) == 0) {
      r[4] = r[4].substr(0, r[4].size() - suffix.size()) + " #" + r[0];
    }
    st.instances.push_back(absl::StrJoin(r, " | "));
  }
  std::sort(st.instances.begin(), st.instances.end());

  for (auto& r :
       db.Query("SELECT converge_id, related_type, related_id, is_primary, "
                "converge_status, alerts FROM converge_relation")) {
    r[0] = name(r[0]);
    if (r[1] == "converge") r[2] = name(r[2]);
    st.relations.push_back(absl::StrJoin(r, " | "));
  }
  std::sort(st.relations.begin(), st.relations.end());

  for (auto& r :
       db.Query("SELECT action_id, outcome, converge_id, is_primary, reason, "
                "decided_at_ns, status, status_time_ns, create_time_ns, "
                "strategy_id, execute_timeout FROM converge_action_decision "
                "ORDER BY action_id")) {
    r[2] = name(r[2]);
    st.decisions.push_back(absl::StrJoin(r, " | "));
  }
  st.decided_actions =
      std::stoll(db.Query("SELECT COUNT(DISTINCT action_id) FROM "
                          "converge_action_decision")[0][0]);

  for (auto& r :
       db.Query("SELECT task_id, kind, state, due_ns, ready_ns, attempts, "
                "last_error FROM converge_queue_task ORDER BY task_id")) {
    st.queue.push_back(absl::StrJoin(r, " | "));
  }
  return st;
}

// Reports the first difference of two sorted lists of rows.
void CheckSame(const char* what, const std::vector<std::string>& a,
               const std::vector<std::string>& b) {
  INFO(what << ": " << a.size() << " in the two-process run, " << b.size()
            << " in the single-process run");
  CHECK(a.size() == b.size());
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (a[i] != b[i]) {
      INFO("first difference at row " << i);
      CHECK(a[i] == b[i]);
      return;
    }
  }
}

void CopyDatabase(const std::string& from, const std::string& to) {
  Db src(from);
  sqlite3* dst = nullptr;
  REQUIRE(sqlite3_open(to.c_str(), &dst) == SQLITE_OK);
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", src.db, "main");
  REQUIRE(b != nullptr);
  CHECK(sqlite3_backup_step(b, -1) == SQLITE_DONE);
  CHECK(sqlite3_backup_finish(b) == SQLITE_OK);
  sqlite3_close(dst);
}

TEST_CASE("two processes on one file decide 20,000 actions as one process does",
          "[sqlite][two_processes]") {
  std::string dir = (fs::temp_directory_path() / "converge-twoproc-XXXXXX");
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string two = dir + "/two.db";
  const std::string one = dir + "/one.db";

  // Queue the workload on one file with the processor's SubmitAction (the
  // clock at the start: the sweep is first due a period later), then copy
  // the file, so that both runs start from the same bytes.
  const Workload w = MakeWorkload();
  {
    VirtualClock clock(kStart);
    SqliteOptions options;
    options.path = two;
    options.clock = &clock;
    options.synchronous = Synchronous::kOff;  // the copy is what counts
    absl::StatusOr<SqliteStores> stores = OpenSqliteStores(options);
    REQUIRE(stores.ok());
    auto manager =
        ConvergeManager::Create(stores->view(), &clock, TestManagerOptions());
    REQUIRE(manager.ok());
    auto processor = Processor::Create(manager->get(), TestProcessorOptions());
    REQUIRE(processor.ok());
    for (size_t i = 0; i < w.actions.size(); ++i) {
      const Action& a = w.actions[i];
      absl::Status st =
          (*processor)
              ->SubmitAction(a, ConfigOf(Rules()[w.rule_of[i]]), a.create_time);
      INFO("action " << a.id << ": " << st);
      REQUIRE(st.ok());
    }
  }
  CopyDatabase(two, one);
  WriteInstantFile(two + ".instant");
  WriteInstantFile(one + ".instant");

  const std::vector<ChildResult> pair =
      RunChildren({two, two}, two + ".instant");
  const std::vector<ChildResult> single = RunChildren({one}, one + ".instant");

  // Every child finished cleanly; nothing failed or was delivered twice.
  int64_t processed_two = 0, requeued_two = 0;
  for (const auto* results : {&pair, &single}) {
    for (const ChildResult& r : *results) {
      INFO("child: " << r.last_line);
      REQUIRE(WIFEXITED(r.status));
      REQUIRE(WEXITSTATUS(r.status) == 0);
      REQUIRE(r.stats.size() == 6);
      CHECK(r.stats.at("retried") == 0);
      CHECK(r.stats.at("dead") == 0);
      CHECK(r.stats.at("stale") == 0);
      CHECK(r.stats.at("errors") == 0);
    }
  }
  for (const ChildResult& r : pair) {
    // Both processes took part.
    CHECK(r.stats.at("processed") > 0);
    processed_two += r.stats.at("processed");
    requeued_two += r.stats.at("requeued");
  }
  // The same tasks ran, each once; and the same requeues (re-polls of
  // sleeping actions, approvals not yet due): none after lease contention,
  // which the single process cannot meet.
  CHECK(processed_two == single[0].stats.at("processed"));
  CHECK(requeued_two == single[0].stats.at("requeued"));
  WARN("tasks run: " << pair[0].stats.at("processed") << " + "
                     << pair[1].stats.at("processed") << " by two processes, "
                     << single[0].stats.at("processed") << " by one");

  const State a = ReadState(two);
  const State b = ReadState(one);
  for (const State* s : {&a, &b}) {
    CHECK(s->integrity == "ok");
    CHECK(s->decided_actions == kActions);
    CHECK(s->decisions.size() == static_cast<size_t>(kActions));
    // Nothing in flight, nothing dead, nothing pending but the sweep.
    REQUIRE(s->queue.size() == 1);
    CHECK(s->queue[0].rfind("sweep | sweep | 0 | ", 0) == 0);
  }
  CheckSame("instances", a.instances, b.instances);
  CheckSame("relations", a.relations, b.relations);
  CheckSame("decisions", a.decisions, b.decisions);
  CheckSame("queue", a.queue, b.queue);

  // The workload did converge, on every path: instances of both levels,
  // ended (all of them, by the end: the sweep runs on until the last
  // approval timeout), skips, approvals that timed out, sleeps that ran or
  // timed out, shields and illegal configs.
  std::map<std::string, int> reasons, outcomes;
  for (const std::string& d : b.decisions) {
    std::vector<std::string> f = absl::StrSplit(d, " | ");
    ++outcomes[f[1]];
    ++reasons[f[4]];
  }
  std::string summary;
  for (const auto& [k, n] : outcomes) absl::StrAppend(&summary, k, "=", n, " ");
  for (const auto& [k, n] : reasons) absl::StrAppend(&summary, k, "=", n, " ");
  INFO(summary);
  CHECK(outcomes["execute"] > 0);
  CHECK(outcomes["skip"] > 0);
  CHECK(outcomes["shield"] > 0);
  CHECK(reasons["converge_config.is_enabled is missing or false"] > 0);
  CHECK(outcomes["approval"] == 0);  // every approval timed out
  CHECK(reasons["approval timed out"] > 0);
  CHECK(reasons["sleep timed out"] > 0);
  CHECK(reasons["the instance it waited on has ended"] > 0);
  int business = 0, ended = 0;
  for (const std::string& i : b.instances) {
    business += i.rfind("B", 0) == 0 ? 1 : 0;
    ended += i.find(" fixed at ") != std::string::npos ? 1 : 0;
  }
  CHECK(business > 0);
  CHECK(ended == static_cast<int>(b.instances.size()));
}

}  // namespace
}  // namespace converge::sqlite::two_process
