// The storm of converge_storm_bench on the SQLite store, one by one and in
// batches, beside the raw ceiling measured in the same run: plain inserts
// into a table of the same shape as converge_action_decision (the row every
// decision writes), through the same SQLite library, file system and
// synchronous setting.
//
// Phases, each on a fresh file in --dir:
//   raw batched      N rows, --batch rows per transaction     (sync FULL)
//   storm batched    N actions, SubmitBatch of --batch         (sync FULL)
//   raw batched, storm batched: the same                     (sync NORMAL)
//   raw one-by-one   N rows, one transaction each              (sync NORMAL)
//   storm one-by-one N actions, Submit each                    (sync NORMAL)
//   the same with coalesce_log_writes off (2 writes a frame) (sync NORMAL)
//   storm threads    N actions, Submit each, from --threads threads at
//                    once (group commit)                       (sync NORMAL)
//   raw one-by-one   --durable-actions rows                    (sync FULL)
//   storm one-by-one --durable-actions actions, same shape     (sync FULL)
//   storm threads    the same from --threads threads           (sync FULL)
//   raw join rows    N times the rows a joining decision writes into
//                    converge's own schema (decision, relation look-up,
//                    relation), in batches: the floor of the schema
//   storm batched, hashed ids  the batched storm with action ids scattered
//                    over the 63-bit range (converged's Alertmanager ids
//                    are hashes), and the raw join rows with the same ids:
//                    each row lands on a random page of the decision table
//                    and of the relation's unique index

// With synchronous NORMAL (WAL) every returned decision is committed and
// survives a crash of the process; with FULL it also survives a power loss,
// at the cost of one fsync per commit, which the raw FULL row shows.
//
// Usage: converge_sqlite_bench [--actions N] [--dimensions N] [--seconds S]
//                              [--batch B] [--durable-actions M] [--dir DIR]
//                              [--threads T] [--checkpoint-pages P]
//                              [--coalesce-log-writes 0|1]
//                              [--only batched|batched-normal|hashed|one|
//                                      durable|threads]
// Defaults: 200,000 actions over 2,000 dimensions in 600 s (100 actions per
// dimension, as the memory benchmark), batches of 1,000, 5,000 durable
// actions, 8 threads, files in $TMPDIR (or /tmp).

#include <sqlite3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "converge/manager.h"
#include "converge/sqlite/sqlite_store.h"
#include "storm.h"

namespace {

using converge::bench::Flag;
using converge::bench::HashedId;
using converge::bench::Seconds;
using converge::bench::Storm;
using converge::bench::StringFlag;

void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    (void)::unlink((path + suffix).c_str());
  }
}

bool Check(int rc, sqlite3* db, const char* what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return true;
  std::fprintf(stderr, "raw: %s: %s\n", what, sqlite3_errmsg(db));
  return false;
}

// Inserts `rows` rows into a table shaped like converge_action_decision, in
// transactions of `per_txn` rows. Returns rows/s, or -1 on error.
double RawInserts(const std::string& path, const char* sync, long rows,
                  long per_txn) {
  RemoveDb(path);
  sqlite3* db = nullptr;
  if (!Check(sqlite3_open(path.c_str(), &db), db, "open")) return -1;
  const std::string setup = std::string(
                                "PRAGMA journal_mode = WAL; PRAGMA "
                                "synchronous = ") +
                            sync +
                            ";"
                            "CREATE TABLE decision (action_id INTEGER "
                            "PRIMARY KEY, create_time_ns INTEGER NOT NULL, "
                            "strategy_id INTEGER NOT NULL, execute_timeout "
                            "INTEGER NOT NULL, status TEXT NOT NULL, "
                            "status_time_ns INTEGER NOT NULL, outcome TEXT "
                            "NOT NULL, converge_id INTEGER, is_primary "
                            "INTEGER NOT NULL, decided_at_ns INTEGER NOT "
                            "NULL, reason TEXT NOT NULL);"
                            "CREATE INDEX decision_decided_at ON decision "
                            "(decided_at_ns);";
  if (!Check(sqlite3_exec(db, setup.c_str(), nullptr, nullptr, nullptr), db,
             "schema")) {
    sqlite3_close(db);
    return -1;
  }
  sqlite3_stmt* ins = nullptr;
  sqlite3_stmt* begin = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO decision VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                     "?7, ?8, ?9, ?10, ?11)",
                     -1, &ins, nullptr);
  sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, nullptr);
  sqlite3_prepare_v2(db, "COMMIT", -1, &commit, nullptr);
  bool ok = true;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < rows && ok; i += per_txn) {
    ok = Check(sqlite3_step(begin), db, "begin");
    sqlite3_reset(begin);
    for (long j = i; j < std::min(rows, i + per_txn) && ok; ++j) {
      const int64_t t = 1700000000000000000 + j * 3000000;
      sqlite3_bind_int64(ins, 1, j + 1);
      sqlite3_bind_int64(ins, 2, t);
      sqlite3_bind_int64(ins, 3, 1001);
      sqlite3_bind_int64(ins, 4, 0);
      sqlite3_bind_text(ins, 5, "skipped", -1, SQLITE_STATIC);
      sqlite3_bind_int64(ins, 6, t);
      sqlite3_bind_text(ins, 7, "skip", -1, SQLITE_STATIC);
      sqlite3_bind_int64(ins, 8, j / 100 + 1);
      sqlite3_bind_int64(ins, 9, 0);
      sqlite3_bind_int64(ins, 10, t);
      sqlite3_bind_text(ins, 11, "joined", -1, SQLITE_STATIC);
      ok = Check(sqlite3_step(ins), db, "insert");
      sqlite3_reset(ins);
    }
    ok = ok && Check(sqlite3_step(commit), db, "commit");
    sqlite3_reset(commit);
  }
  const double s = Seconds(std::chrono::steady_clock::now() - t0);
  sqlite3_finalize(ins);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  RemoveDb(path);
  return ok ? rows / s : -1;
}

// The rows a joining decision writes, into converge's own schema (created
// by opening the file as a store): the decision, the look-up for an
// existing relation, and the relation, `per_txn` decisions per
// transaction; action ids j + 1, or HashedId(j + 1) if `hashed`. Returns
// decisions/s, or -1 on error.
double RawJoinRows(const std::string& path, long rows, long per_txn,
                   long dimensions, bool hashed) {
  RemoveDb(path);
  {
    converge::sqlite::SqliteOptions options;
    options.path = path;
    if (!converge::sqlite::OpenSqliteStores(options).ok()) return -1;
  }
  sqlite3* db = nullptr;
  if (!Check(sqlite3_open(path.c_str(), &db), db, "open")) return -1;
  sqlite3_exec(db,
               "PRAGMA synchronous = FULL; PRAGMA cache_size = -32768; "
               "PRAGMA temp_store = MEMORY",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* dec = nullptr;
  sqlite3_stmt* has = nullptr;
  sqlite3_stmt* rel = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO converge_action_decision (action_id, "
                     "create_time_ns, strategy_id, execute_timeout, status, "
                     "status_time_ns, outcome, converge_id, is_primary, "
                     "decided_at_ns, reason, member) VALUES (?1, ?2, ?3, ?4, "
                     "?5, ?6, ?7, ?8, ?9, ?10, ?11, 1) ON CONFLICT "
                     "(action_id) DO NOTHING",
                     -1, &dec, nullptr);
  sqlite3_prepare_v2(db,
                     "SELECT 1 FROM converge_relation WHERE related_id = ?1 "
                     "AND related_type = 'action' LIMIT 1",
                     -1, &has, nullptr);
  sqlite3_prepare_v2(db,
                     "INSERT INTO converge_relation (converge_id, related_id, "
                     "related_type, is_primary, converge_status, alerts) "
                     "VALUES (?1, ?2, 'action', 0, 'skipped', ?3)",
                     -1, &rel, nullptr);
  bool ok = dec != nullptr && has != nullptr && rel != nullptr;
  if (!ok) std::fprintf(stderr, "raw: prepare: %s\n", sqlite3_errmsg(db));
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < rows && ok; i += per_txn) {
    ok = Check(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr),
               db, "begin");
    for (long j = i; j < std::min(rows, i + per_txn) && ok; ++j) {
      const int64_t t = 1700000000000000000 + j * 3000000;
      const int64_t id = hashed ? HashedId(j + 1) : j + 1;
      sqlite3_bind_int64(has, 1, id);
      ok = Check(sqlite3_step(has), db, "select");
      sqlite3_reset(has);
      sqlite3_bind_int64(dec, 1, id);
      sqlite3_bind_int64(dec, 2, t);
      sqlite3_bind_int64(dec, 3, 1001);
      sqlite3_bind_int64(dec, 4, 0);
      sqlite3_bind_text(dec, 5, "skipped", -1, SQLITE_STATIC);
      sqlite3_bind_int64(dec, 6, t);
      sqlite3_bind_text(dec, 7, "skip", -1, SQLITE_STATIC);
      // The storm's order: action j is dimension j % dimensions's.
      sqlite3_bind_int64(dec, 8, j % dimensions + 1);
      sqlite3_bind_int64(dec, 9, 0);
      sqlite3_bind_int64(dec, 10, t);
      sqlite3_bind_text(dec, 11, "joined", -1, SQLITE_STATIC);
      ok = ok && Check(sqlite3_step(dec), db, "insert decision");
      sqlite3_reset(dec);
      sqlite3_bind_int64(rel, 1, j % dimensions + 1);
      sqlite3_bind_int64(rel, 2, id);
      sqlite3_bind_text(rel, 3, "[\"alert-1\"]", -1, SQLITE_STATIC);
      ok = ok && Check(sqlite3_step(rel), db, "insert relation");
      sqlite3_reset(rel);
    }
    ok = ok && Check(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), db,
                     "commit");
  }
  const double s = Seconds(std::chrono::steady_clock::now() - t0);
  sqlite3_finalize(dec);
  sqlite3_finalize(has);
  sqlite3_finalize(rel);
  sqlite3_close(db);
  RemoveDb(path);
  return ok ? rows / s : -1;
}

struct StormRun {
  double rate = -1;
  long outcomes[5] = {0, 0, 0, 0, 0};
};

// The first `actions` actions of `storm` on a fresh SQLite file, in batches
// of `batch` (1 = Submit one by one), or with `threads` > 1 one by one from
// that many threads at once (group commit).
// --checkpoint-pages N: SqliteOptions::checkpoint_pages of the converge
// phases (-1: the store's default).
long g_checkpoint_pages = -1;
// --coalesce-log-writes 0|1: SqliteOptions::coalesce_log_writes of the
// converge phases but the one that measures its absence.
bool g_coalesce = true;

StormRun RunStorm(Storm& storm, const std::string& path,
                  converge::sqlite::Synchronous sync, long actions, long batch,
                  int threads = 1, bool coalesce = g_coalesce) {
  StormRun run;
  RemoveDb(path);
  converge::VirtualClock clock(Storm::Start());
  converge::sqlite::SqliteOptions options;
  options.path = path;
  options.clock = &clock;
  options.synchronous = sync;
  if (g_checkpoint_pages >= 0) options.checkpoint_pages = g_checkpoint_pages;
  options.coalesce_log_writes = coalesce;
  auto stores = converge::sqlite::OpenSqliteStores(options);
  if (!stores.ok()) {
    std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
    return run;
  }
  auto manager = converge::ConvergeManager::Create(stores->view(), &clock);
  if (!manager.ok()) {
    std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
    return run;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (!converge::bench::DriveStormWith(storm, **manager, clock, actions, batch,
                                       threads, run.outcomes)) {
    return StormRun{};
  }
  run.rate = actions / Seconds(std::chrono::steady_clock::now() - t0);
  return run;
}

void Report(const char* name, double rate, double ceiling) {
  std::printf("%-34s %10.0f /s   ratio to raw %.3f\n", name, rate,
              ceiling > 0 ? rate / ceiling : 0.0);
}

void Outcomes(const char* name, const StormRun& run) {
  std::printf("  %s outcomes: execute %ld, skip %ld\n", name, run.outcomes[0],
              run.outcomes[1]);
}

}  // namespace

int main(int argc, char** argv) {
  const long actions = Flag(argc, argv, "--actions", 200000);
  const long dimensions = Flag(argc, argv, "--dimensions", 2000);
  const long seconds = Flag(argc, argv, "--seconds", 600);
  const long batch = Flag(argc, argv, "--batch", 1000);
  const long durable = Flag(argc, argv, "--durable-actions", 5000);
  const long threads = Flag(argc, argv, "--threads", 8);
  g_checkpoint_pages = Flag(argc, argv, "--checkpoint-pages", -1);
  g_coalesce = Flag(argc, argv, "--coalesce-log-writes", 1) != 0;
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir =
      StringFlag(argc, argv, "--dir", tmp != nullptr ? tmp : "/tmp");
  if (actions <= 0 || dimensions <= 0 || seconds <= 0 || batch <= 1 ||
      durable <= 0 || durable > actions || threads < 2 || threads > 256) {
    std::fprintf(stderr,
                 "converge_sqlite_bench: flags must be > 0, --batch > 1, "
                 "--durable-actions <= --actions and --threads 2..256\n");
    return 2;
  }
  const std::string path =
      dir + "/converge-sqlite-bench-" + std::to_string(::getpid()) + ".db";
  Storm storm(actions, dimensions, seconds);
  std::printf(
      "storm: %ld actions, %ld dimensions, %ld s of virtual time; SQLite %s\n",
      actions, dimensions, seconds, sqlite3_libversion());

  using converge::sqlite::Synchronous;
  const int nthreads = static_cast<int>(threads);
  // --only batched|batched-normal|hashed|one|durable|threads: one storm
  // phase, for profiling.
  const std::string only = StringFlag(argc, argv, "--only", "");
  Storm hashed_storm(actions, dimensions, seconds);
  hashed_storm.set_hashed_ids(true);
  if (!only.empty()) {
    const StormRun run =
        only == "batched"
            ? RunStorm(storm, path, Synchronous::kFull, actions, batch)
        : only == "batched-normal"
            ? RunStorm(storm, path, Synchronous::kNormal, actions, batch)
        : only == "hashed"
            ? RunStorm(hashed_storm, path, Synchronous::kFull, actions, batch)
        : only == "one"
            ? RunStorm(storm, path, Synchronous::kNormal, actions, 1)
        : only == "threads"
            ? RunStorm(storm, path, Synchronous::kNormal, actions, 1, nthreads)
            : RunStorm(storm, path, Synchronous::kFull, durable, 1);
    RemoveDb(path);
    if (run.rate < 0) return 1;
    Report(only.c_str(), run.rate, 0);
    return 0;
  }
  const double raw_batched = RawInserts(path, "FULL", actions, batch);
  const StormRun batched =
      RunStorm(storm, path, Synchronous::kFull, actions, batch);
  // Batches with the one-by-one line's durability (a returned decision
  // survives a process crash): no fsync per batch.
  const double raw_batched_normal = RawInserts(path, "NORMAL", actions, batch);
  const StormRun batched_normal =
      RunStorm(storm, path, Synchronous::kNormal, actions, batch);
  const double raw_one = RawInserts(path, "NORMAL", actions, 1);
  const StormRun one = RunStorm(storm, path, Synchronous::kNormal, actions, 1);
  // The same without coalesced log writes: SQLite's own two writes a frame.
  const StormRun one_plain =
      RunStorm(storm, path, Synchronous::kNormal, actions, 1, 1, false);
  const StormRun threaded =
      RunStorm(storm, path, Synchronous::kNormal, actions, 1, nthreads);
  // The durable storm keeps the storm's shape (actions per dimension) on
  // fewer actions.
  Storm durable_storm(durable, std::max(1L, durable * dimensions / actions),
                      seconds);
  const double raw_full = RawInserts(path, "FULL", durable, 1);
  const StormRun full =
      RunStorm(durable_storm, path, Synchronous::kFull, durable, 1);
  const StormRun full_threaded =
      RunStorm(durable_storm, path, Synchronous::kFull, durable, 1, nthreads);
  const double raw_join = RawJoinRows(path, actions, batch, dimensions, false);
  const StormRun hashed =
      RunStorm(hashed_storm, path, Synchronous::kFull, actions, batch);
  const double raw_join_hashed =
      RawJoinRows(path, actions, batch, dimensions, true);
  RemoveDb(path);
  bool failed = false;
  for (const auto& [name, rate] :
       std::initializer_list<std::pair<const char*, double>>{
           {"raw batched", raw_batched},
           {"batched", batched.rate},
           {"raw batched NORMAL", raw_batched_normal},
           {"batched NORMAL", batched_normal.rate},
           {"raw one", raw_one},
           {"one", one.rate},
           {"one, 2 writes a frame", one_plain.rate},
           {"threads", threaded.rate},
           {"raw durable", raw_full},
           {"durable", full.rate},
           {"durable threads", full_threaded.rate},
           {"raw join", raw_join},
           {"hashed", hashed.rate},
           {"raw join hashed", raw_join_hashed}}) {
    if (rate < 0) {
      std::fprintf(stderr, "converge_sqlite_bench: phase %s failed\n", name);
      failed = true;
    }
  }
  if (failed) return 1;
  std::printf("-- batches of %ld, synchronous FULL\n", batch);
  Report("raw inserts", raw_batched, raw_batched);
  Report("converge SubmitBatch", batched.rate, raw_batched);
  Report("raw rows of a join (schema floor)", raw_join, raw_batched);
  std::printf("-- batches of %ld, synchronous NORMAL\n", batch);
  Report("raw inserts", raw_batched_normal, raw_batched_normal);
  Report("converge SubmitBatch", batched_normal.rate, raw_batched_normal);
  std::printf("-- batches of %ld, synchronous FULL, hashed action ids\n",
              batch);
  Report("raw rows of a join (schema floor)", raw_join_hashed, raw_join_hashed);
  Report("converge SubmitBatch", hashed.rate, raw_join_hashed);
  std::printf("-- one by one, synchronous NORMAL (survives a process crash)\n");
  Report("raw inserts, 1 per transaction", raw_one, raw_one);
  Report("converge Submit", one.rate, raw_one);
  Report("converge Submit, 2 writes a frame", one_plain.rate, raw_one);
  const std::string threads_name =
      "converge Submit, " + std::to_string(threads) + " threads";
  Report(threads_name.c_str(), threaded.rate, raw_one);
  std::printf("-- one by one, synchronous FULL (fsync per commit), %ld\n",
              durable);
  Report("raw inserts, 1 per transaction", raw_full, raw_full);
  Report("converge Submit", full.rate, raw_full);
  Report(threads_name.c_str(), full_threaded.rate, raw_full);
  Outcomes("batched", batched);
  Outcomes("one-by-one", one);
  Outcomes("threads", threaded);
  Outcomes("hashed ids", hashed);
  Outcomes("batched, synchronous NORMAL", batched_normal);
  Outcomes("one-by-one, 2 writes a frame", one_plain);
  Outcomes("one-by-one, synchronous FULL", full);
  Outcomes("threads, synchronous FULL", full_threaded);
  const bool threads_ok =
      converge::bench::ThreadedMatches("threads", threaded.outcomes,
                                       one.outcomes) &&
      converge::bench::ThreadedMatches("threads, synchronous FULL",
                                       full_threaded.outcomes, full.outcomes);
  if (batched.outcomes[0] != one.outcomes[0] ||
      hashed.outcomes[0] != one.outcomes[0] ||
      hashed.outcomes[1] != one.outcomes[1] ||
      batched.outcomes[1] != one.outcomes[1] ||
      one_plain.outcomes[0] != one.outcomes[0] ||
      batched_normal.outcomes[0] != one.outcomes[0] ||
      batched_normal.outcomes[1] != one.outcomes[1] ||
      one_plain.outcomes[1] != one.outcomes[1] || !threads_ok) {
    std::fprintf(stderr,
                 "batched, one-by-one and hashed-id outcomes differ, or the "
                 "threads decided a different number of actions\n");
    return 1;
  }
  return 0;
}
