// The storm of converge_storm_bench on the MySQL store (MySQL alone), one
// by one and in batches, beside the raw ceilings measured in the same run on
// the same server: inserts into a table of converge_relation's shape (its
// columns, unique key and indexes; the row every joining decision writes),
// single rows one transaction each, and 1,000-row INSERT IGNORE statements.
//
// Phases, each on a fresh database:
//   one by one         --one-actions raw rows, one autocommitted INSERT
//                      each, and the storm's --one-actions actions, Submit
//                      each, in --rounds turns (raw part, storm part, ...);
//                      in the same turns, as many joins' statements sent
//                      without converge (a decision and a relation row with
//                      their COMMIT in one round trip): plain INSERTs, and
//                      checked as the store writes a Submit's join (the
//                      instance open, the action unrelated), for the floor
//                      a join's own statements set
//   batched            --actions raw rows, INSERT IGNORE of --batch rows
//                      each, and the storm's --actions actions, SubmitBatch
//                      of --batch, in --rounds turns
//   split one-by-one   the one-by-one storm on Redis + MySQL: leases,
//                      window index and queue on Redis, instances,
//                      relations and decisions on MySQL (the recommended
//                      split for a fleet; built when the Redis adapter is)
//   split batched      the batched storm on Redis + MySQL
//   workers            the batched storm from --workers W processors side
//                      by side (each its own stores, manager and clock, a
//                      share of the dimensions, batches of --batch / W; a
//                      batch that failed with a deadlock or a lock wait is
//                      submitted again); 0 or 1 skips it
// Taking turns, the raw line and the storm see the same disk over the same
// minutes: on a shared machine the fsync latency drifts within a run, and
// run one after the other their ratio moved by a third between runs. The
// ratio of each turn is printed for its spread.
//
// The server: --mysql URI (an existing server; the URI's database is used
// as a prefix for the bench's databases, which it creates and drops), or
// else a mariadbd of its own in a temporary folder on a unix socket
// (tests/support/mysql_server.h), started with durable settings
// (innodb_flush_log_at_trx_commit=1, doublewrite on) unless --fast 1 keeps
// the tests' settings (flush at most once a second, no doublewrite). The
// settings used are printed. Redis for the split phases: --redis URI, or
// else a redis-server of its own (appendonly yes; appendfsync always, or
// everysec with --fast 1); --split 0 skips them.
//
// Usage: converge_mysql_bench [--actions N] [--one-actions M]
//                             [--dimensions D] [--seconds S] [--batch B]
//                             [--rounds R] [--mysql URI] [--fast 0|1]
//                             [--redis URI] [--split 0|1] [--workers W]
//                             [--one-transaction 0|1]
// Defaults: 100,000 actions batched and 5,000 one by one, over 2,000
// dimensions in 600 s (the storm's shape), batches of 1,000, 5 rounds, 2
// workers, MysqlOptions' defaults (--one-transaction 1 sets
// MysqlOptions::one_transaction for MySQL alone; also
// ?one_transaction=true in --mysql URI).

#include <mysql.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "converge/manager.h"
#include "converge/mysql/mysql_store.h"
#include "storm.h"
#include "support/mysql_server.h"
#include "support/temp_dir.h"
#ifdef CONVERGE_BENCH_WITH_REDIS
#include "converge/redis/redis_store.h"
#include "support/redis_server.h"
#endif

namespace {

using converge::bench::Flag;
using converge::bench::Seconds;
using converge::bench::Storm;
using converge::bench::StringFlag;
using converge::mysql::MysqlOptions;

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// A connection of the bench's own (the raw phases and admin statements).
MYSQL* Connect(const MysqlOptions& o, const std::string& database) {
  MYSQL* h = mysql_init(nullptr);
  const bool socket = !o.unix_socket.empty();
  if (mysql_real_connect(h, socket ? nullptr : o.host.c_str(),
                         o.user.empty() ? nullptr : o.user.c_str(),
                         o.password.c_str(),
                         database.empty() ? nullptr : database.c_str(),
                         socket ? 0 : static_cast<unsigned>(o.port),
                         socket ? o.unix_socket.c_str() : nullptr,
                         CLIENT_MULTI_STATEMENTS) == nullptr) {
    std::fprintf(stderr, "connect: %s\n", mysql_error(h));
    mysql_close(h);
    return nullptr;
  }
  return h;
}

bool Exec(MYSQL* h, const std::string& sql) {
  if (mysql_real_query(h, sql.data(), sql.size()) != 0) {
    std::fprintf(stderr, "\"%.80s\": %s\n", sql.c_str(), mysql_error(h));
    return false;
  }
  // Every statement's answer (a script has several).
  for (;;) {
    if (MYSQL_RES* r = mysql_store_result(h); r != nullptr) {
      mysql_free_result(r);
    }
    const int next = mysql_next_result(h);
    if (next < 0) break;
    if (next > 0) {
      std::fprintf(stderr, "\"%.80s\": %s\n", sql.c_str(), mysql_error(h));
      return false;
    }
  }
  return true;
}

std::string Variable(MYSQL* h, const char* name) {
  const std::string q = absl::StrCat("SELECT @@", name);
  if (mysql_real_query(h, q.data(), q.size()) != 0) return "?";
  MYSQL_RES* r = mysql_store_result(h);
  std::string v = "?";
  if (r != nullptr) {
    if (MYSQL_ROW row = mysql_fetch_row(r); row != nullptr && row[0]) {
      v = row[0];
    }
    mysql_free_result(r);
  }
  return v;
}

// converge_relation's shape (mysql_store.cc, migration 1).
constexpr char kRelationTable[] =
    "CREATE TABLE bench_relation (id BIGINT NOT NULL AUTO_INCREMENT, "
    "converge_id BIGINT NOT NULL, related_id BIGINT NOT NULL, related_type "
    "VARCHAR(64) NOT NULL, is_primary TINYINT(1) NOT NULL DEFAULT 0, "
    "converge_status VARCHAR(32) NOT NULL DEFAULT 'skipped', alerts LONGTEXT "
    "NOT NULL, PRIMARY KEY (id), UNIQUE KEY u (converge_id, related_id, "
    "related_type), KEY c (converge_id), KEY r (related_id), KEY t "
    "(related_type)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

std::string Row(long i) {
  return absl::StrCat("(", i / 100 + 1, ", ", i + 1,
                      ", 'action', 0, 'skipped', '[\"alert-", i % 2000,
                      "\"]')");
}

// A join's two rows without converge: bench_decision has
// converge_action_decision's shape, bench_join_relation converge_relation's
// (apart from the raw line's table, which stays its own size), and
// bench_instance holds 100 open instances.
constexpr char kDecisionTable[] =
    "CREATE TABLE bench_decision (action_id BIGINT NOT NULL, create_time_ns "
    "BIGINT NOT NULL, strategy_id BIGINT NOT NULL, execute_timeout BIGINT NOT "
    "NULL, status VARCHAR(32) NOT NULL, status_time_ns BIGINT NOT NULL, "
    "outcome VARCHAR(32) NOT NULL, converge_id BIGINT NULL, is_primary "
    "TINYINT(1) NOT NULL, decided_at_ns BIGINT NOT NULL, reason BLOB NOT "
    "NULL, PRIMARY KEY (action_id), KEY d (decided_at_ns)) ENGINE=InnoDB "
    "DEFAULT CHARSET=utf8mb4";
constexpr char kInstanceTable[] =
    "CREATE TABLE bench_instance (id BIGINT NOT NULL AUTO_INCREMENT, "
    "end_time DATETIME(6) NULL, PRIMARY KEY (id), KEY e (end_time)) "
    "ENGINE=InnoDB";

// The statements of joins [from, to) as the MySQL store writes a join
// submitted alone, each with its COMMIT in one round trip, without
// converge's code: `checked`, the decision's INSERT ... SELECT that checks
// the instance open (locked in share mode) and the action unrelated, and
// the relation guarded by ROW_COUNT() (mysql_store.cc, UncheckedJoin);
// else two plain INSERTs. Returns the seconds taken, or -1 on error.
double JoinStatements(MYSQL* h, long from, long to, bool checked) {
  // The store's session settings (mysql/src/db.cc).
  if (!Exec(h,
            "SET SESSION autocommit = 0; SET SESSION TRANSACTION ISOLATION "
            "LEVEL READ COMMITTED")) {
    return -1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  // Action ids apart from the raw rows' (related_id = i + 1).
  const int64_t base = checked ? 2000000000 : 1000000000;
  for (long i = from; i < to; ++i) {
    const int64_t id = base + i;
    const long c = i % 100 + 1;
    const std::string values =
        absl::StrCat(id,
                     ", 1700000000000000000, 1001, 0, 'converged', "
                     "1700000000000000000, 'skip', ",
                     c, ", 0, 1700000000000000000, 'skipped'");
    const std::string relation = absl::StrCat(
        "INSERT INTO bench_join_relation (converge_id, related_id, "
        "related_type, "
        "is_primary, converge_status, alerts) VALUES (",
        checked ? absl::StrCat("IF(ROW_COUNT() = 1, ", c, ", NULL)")
                : absl::StrCat(c),
        ", ", id, ", 'action', 0, 'skipped', '[\"alert-", i % 2000, "\"]')");
    std::string sql =
        "INSERT INTO bench_decision (action_id, create_time_ns, strategy_id, "
        "execute_timeout, status, status_time_ns, outcome, converge_id, "
        "is_primary, decided_at_ns, reason) ";
    if (checked) {
      absl::StrAppend(&sql, "SELECT ", values,
                      " FROM bench_instance i LEFT JOIN bench_join_relation r "
                      "ON "
                      "r.related_id = ",
                      id, " AND r.related_type = 'action' WHERE i.id = ", c,
                      " AND i.end_time IS NULL AND r.id IS NULL LOCK IN "
                      "SHARE MODE");
    } else {
      absl::StrAppend(&sql, "VALUES (", values, ")");
    }
    absl::StrAppend(&sql, "; ", relation, "; COMMIT");
    if (!Exec(h, sql)) return -1;
  }
  const double s = Seconds(std::chrono::steady_clock::now() - t0);
  if (!Exec(h,
            "SET SESSION autocommit = 1; SET SESSION TRANSACTION ISOLATION "
            "LEVEL REPEATABLE READ")) {
    return -1;
  }
  return s;
}

// Inserts rows [from, to) in statements of `per_statement` rows (1: plain
// INSERT; more: INSERT IGNORE), each autocommitted, into bench_relation;
// returns the seconds taken, or -1 on error.
double RawInserts(MYSQL* h, long from, long to, long per_statement) {
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = from; i < to; i += per_statement) {
    std::string sql = per_statement == 1 ? "INSERT INTO" : "INSERT IGNORE INTO";
    sql +=
        " bench_relation (converge_id, related_id, related_type, is_primary, "
        "converge_status, alerts) VALUES ";
    for (long j = i; j < std::min(to, i + per_statement); ++j) {
      if (j > i) sql += ", ";
      sql += Row(j);
    }
    if (!Exec(h, sql)) return -1;
  }
  return Seconds(std::chrono::steady_clock::now() - t0);
}

struct StormRun {
  double rate = -1;
  long outcomes[5] = {0, 0, 0, 0, 0};
  long retries = 0;  // batches submitted again (RunWorkers)
};

// Drives the first `actions` actions of `storm` through a manager on
// `stores`, in batches of `batch` (1: Submit one by one).
StormRun Drive(Storm& storm, const converge::Stores& stores,
               converge::VirtualClock& clock, long actions, long batch) {
  StormRun run;
  auto manager = converge::ConvergeManager::Create(stores, &clock);
  if (!manager.ok()) {
    std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
    return run;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (!converge::bench::DriveStorm(storm, **manager, clock, actions, batch,
                                   run.outcomes)) {
    return StormRun{};
  }
  run.rate = actions / Seconds(std::chrono::steady_clock::now() - t0);
  return run;
}

// A raw line and the storm on MySQL alone, run in turns: `rounds` parts of
// each (raw rows [from, to), then the storm's actions [from, to)), so that
// both see the same server and disk over the same minutes (this shared
// machine's fsync latency drifts by a third within a run). Rates are over
// all parts; the ratio of each part is kept for its spread.
struct Paired {
  double raw = -1;
  // One by one: JoinStatements' rates, plain and checked.
  double plain_join = -1, checked_join = -1;
  StormRun storm;
  double min_ratio = 0, max_ratio = 0;
  long turns = 0;  // run (parts smaller than a batch are merged)
};

Paired RunPaired(MYSQL* raw, long per_statement, Storm& storm, MysqlOptions o,
                 long actions, long batch, long rounds) {
  Paired out;
  if (!Exec(raw, "DROP TABLE IF EXISTS bench_relation") ||
      !Exec(raw, kRelationTable)) {
    return out;
  }
  const bool joins = per_statement == 1;
  if (joins) {
    if (!Exec(raw, "DROP TABLE IF EXISTS bench_decision") ||
        !Exec(raw, "DROP TABLE IF EXISTS bench_instance") ||
        !Exec(raw, "DROP TABLE IF EXISTS bench_join_relation") ||
        !Exec(raw, kDecisionTable) || !Exec(raw, kInstanceTable) ||
        !Exec(raw, "CREATE TABLE bench_join_relation LIKE bench_relation")) {
      return out;
    }
    std::string rows = "INSERT INTO bench_instance (end_time) VALUES (NULL)";
    for (int k = 1; k < 100; ++k) rows += ", (NULL)";
    if (!Exec(raw, rows)) return out;
  }
  converge::VirtualClock clock(Storm::Start());
  o.clock = &clock;
  auto stores = converge::mysql::OpenMysqlStores(o);
  if (!stores.ok()) {
    std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
    return out;
  }
  auto manager = converge::ConvergeManager::Create(stores->view(), &clock);
  if (!manager.ok()) {
    std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
    return out;
  }
  const long unit = std::max(batch, per_statement);
  double raw_s = 0, storm_s = 0, plain_s = 0, checked_s = 0;
  for (long r = 0; r < rounds; ++r) {
    const long from = actions * r / rounds / unit * unit;
    const long to =
        r + 1 == rounds ? actions : actions * (r + 1) / rounds / unit * unit;
    if (to <= from) continue;
    const double rs = RawInserts(raw, from, to, per_statement);
    if (rs < 0) return Paired{};
    if (joins) {
      const double ps = JoinStatements(raw, from, to, false);
      const double cs = JoinStatements(raw, from, to, true);
      if (ps < 0 || cs < 0) return Paired{};
      plain_s += ps;
      checked_s += cs;
    }
    const auto t0 = std::chrono::steady_clock::now();
    if (!converge::bench::DriveStorm(storm, **manager, clock, to, batch,
                                     out.storm.outcomes, from)) {
      return Paired{};
    }
    const double ss = Seconds(std::chrono::steady_clock::now() - t0);
    const double ratio = rs / ss;  // (to-from)/ss over (to-from)/rs
    out.min_ratio = out.turns == 0 ? ratio : std::min(out.min_ratio, ratio);
    out.max_ratio = out.turns == 0 ? ratio : std::max(out.max_ratio, ratio);
    ++out.turns;
    raw_s += rs;
    storm_s += ss;
  }
  (void)Exec(raw, "DROP TABLE bench_relation");
  if (joins) {
    (void)Exec(raw, "DROP TABLE bench_decision");
    (void)Exec(raw, "DROP TABLE bench_instance");
    (void)Exec(raw, "DROP TABLE bench_join_relation");
    out.plain_join = actions / plain_s;
    out.checked_join = actions / checked_s;
  }
  out.raw = actions / raw_s;
  out.storm.rate = actions / storm_s;
  return out;
}

// The batched storm from `workers` threads at once, each a processor of
// its own (its stores, manager and clock) batching its share of the
// dimensions (DriveStormShare), on database o.database. The rate is over
// all actions, from the start of the first to the end of the last.
StormRun RunWorkers(Storm& storm, const MysqlOptions& o, long actions,
                    long batch, long workers) {
  struct Worker {
    converge::VirtualClock clock{Storm::Start()};
    std::optional<converge::mysql::MysqlStores> stores;
    std::unique_ptr<converge::ConvergeManager> manager;
    long outcomes[5] = {0, 0, 0, 0, 0};
    long retries = 0;
    bool ok = false;
  };
  std::vector<Worker> w(workers);
  for (Worker& x : w) {
    MysqlOptions mine = o;
    mine.clock = &x.clock;
    auto stores = converge::mysql::OpenMysqlStores(mine);
    if (!stores.ok()) {
      std::fprintf(stderr, "%s\n", stores.status().ToString().c_str());
      return StormRun{};
    }
    x.stores.emplace(*std::move(stores));
    auto manager =
        converge::ConvergeManager::Create(x.stores->view(), &x.clock);
    if (!manager.ok()) {
      std::fprintf(stderr, "%s\n", manager.status().ToString().c_str());
      return StormRun{};
    }
    x.manager = *std::move(manager);
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (long t = 0; t < workers; ++t) {
    threads.emplace_back([&, t] {
      Worker& x = w[t];
      x.ok = converge::bench::DriveStormShare(storm, *x.manager, x.clock,
                                              actions, batch, t, workers,
                                              x.outcomes, &x.retries);
    });
  }
  for (std::thread& t : threads) t.join();
  StormRun run;
  for (const Worker& x : w) {
    if (!x.ok) return StormRun{};
    for (int k = 0; k < 5; ++k) run.outcomes[k] += x.outcomes[k];
    run.retries += x.retries;
  }
  run.rate = actions / Seconds(std::chrono::steady_clock::now() - t0);
  return run;
}

#ifdef CONVERGE_BENCH_WITH_REDIS
// The storm on Redis (leases, window index, queue; keys under a prefix of
// this run's own) with the repo on MySQL (database o.database).
StormRun RunSplitStorm(Storm& storm, converge::redis::RedisOptions r,
                       MysqlOptions o, long actions, long batch) {
  converge::VirtualClock clock(Storm::Start());
  r.clock = &clock;
  r.key_prefix = absl::StrCat("bench.", getpid(), ".", o.database, ".");
  o.clock = &clock;
  auto redis = converge::redis::OpenRedisStores(r);
  auto mysql = converge::mysql::OpenMysqlStores(o);
  if (!redis.ok() || !mysql.ok()) {
    std::fprintf(
        stderr, "%s\n",
        (redis.ok() ? mysql.status() : redis.status()).ToString().c_str());
    return StormRun{};
  }
  redis->repo = std::move(mysql->repo);
  return Drive(storm, redis->view(), clock, actions, batch);
}
#endif

void Report(const char* name, double rate, double ceiling) {
  std::printf("%-36s %10.0f /s   ratio to raw %.3f\n", name, rate,
              ceiling > 0 ? rate / ceiling : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  const long actions = Flag(argc, argv, "--actions", 100000);
  const long one = Flag(argc, argv, "--one-actions", 5000);
  const long dimensions = Flag(argc, argv, "--dimensions", 2000);
  const long seconds = Flag(argc, argv, "--seconds", 600);
  const long batch = Flag(argc, argv, "--batch", 1000);
  const long rounds = Flag(argc, argv, "--rounds", 5);
  const long workers = Flag(argc, argv, "--workers", 2);
  const long one_transaction = Flag(argc, argv, "--one-transaction", -1);
  const bool fast = Flag(argc, argv, "--fast", 0) != 0;
  const std::string uri = StringFlag(argc, argv, "--mysql", "");
  const std::string redis_uri = StringFlag(argc, argv, "--redis", "");
#ifdef CONVERGE_BENCH_WITH_REDIS
  const bool split = Flag(argc, argv, "--split", 1) != 0;
#else
  if (Flag(argc, argv, "--split", 0) != 0 || !redis_uri.empty()) {
    std::fprintf(stderr,
                 "converge_mysql_bench: built without the Redis adapter "
                 "(--split and --redis need it)\n");
    return 2;
  }
#endif
  if (actions <= 0 || one <= 0 || dimensions <= 0 || seconds <= 0 ||
      batch <= 1 || rounds <= 0 || workers < 0 || workers > 64) {
    std::fprintf(stderr,
                 "converge_mysql_bench: counts must be > 0, --batch > 1 and "
                 "--workers 0 to 64\n");
    return 2;
  }

  // The server.
  MysqlOptions base;
  std::string prefix = "converge_bench";
  converge::testing::MysqlServerInfo own;
  std::string own_dir;
  if (!uri.empty()) {
    auto parsed = converge::mysql::ParseMysqlUri(uri);
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
      return 2;
    }
    base = *parsed;
    prefix = base.database;
  } else {
    auto dir = converge::testing::MakeTestTempDir("converge-mysql-bench");
    if (!dir.ok()) return 1;
    own_dir = *dir;
    std::vector<std::string> durable;
    if (!fast) {
      durable = {"--innodb-flush-log-at-trx-commit=1", "--innodb-doublewrite=1",
                 "--innodb-flush-method=fsync",
                 "--innodb-buffer-pool-size=512M"};
    }
    auto started =
        converge::testing::StartMysqlServer(own_dir, true, 0, durable);
    if (!started.ok()) {
      std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
      return 1;
    }
    own = *started;
    base.unix_socket = own.socket;
    base.user = converge::testing::kTestMysqlUser;
    base.password = converge::testing::kTestMysqlPassword;
  }
  struct Cleanup {
    converge::testing::MysqlServerInfo* own;
    std::string dir;
    ~Cleanup() {
      if (own->pid > 0) (void)converge::testing::StopMysqlServer(own->pid);
      if (!dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      }
    }
  } cleanup{&own, own_dir};

  MYSQL* admin = Connect(base, "");
  if (admin == nullptr) return 1;
  std::printf(
      "server: %s (%s), innodb_flush_log_at_trx_commit=%s, "
      "innodb_flush_method=%s, innodb_doublewrite=%s, log_bin=%s, buffer "
      "pool %s MiB%s\n",
      Variable(admin, "version").c_str(),
      base.unix_socket.empty()
          ? absl::StrCat("tcp ", base.host, ":", base.port).c_str()
          : "unix socket",
      Variable(admin, "innodb_flush_log_at_trx_commit").c_str(),
      Variable(admin, "innodb_flush_method").c_str(),
      Variable(admin, "innodb_doublewrite").c_str(),
      Variable(admin, "log_bin").c_str(),
      std::to_string(
          std::atoll(Variable(admin, "innodb_buffer_pool_size").c_str()) >> 20)
          .c_str(),
      uri.empty() ? (fast ? "; the bench's own server, test settings (--fast)"
                          : "; the bench's own server, durable settings")
                  : "");
  if (one_transaction >= 0) base.one_transaction = one_transaction != 0;
  std::printf(
      "storm: %ld actions batched, %ld one by one, %ld dimensions, %ld s of "
      "virtual time, batches of %ld, one_transaction=%s; load average %s\n",
      actions, one, dimensions, seconds, batch,
      base.one_transaction ? "true" : "false", LoadAverage().c_str());

  auto fresh = [&](const char* what) -> std::string {
    const std::string db = absl::StrCat(prefix, "_", what, "_", getpid());
    if (!Exec(admin, "DROP DATABASE IF EXISTS " + db) ||
        !Exec(admin, "CREATE DATABASE " + db + " CHARACTER SET utf8mb4")) {
      return "";
    }
    return db;
  };
  auto drop = [&](const std::string& db) {
    (void)Exec(admin, "DROP DATABASE IF EXISTS " + db);
  };

  // Raw ceilings, on a connection of their own with autocommit (each
  // statement its own transaction).
  const std::string raw_db = fresh("raw");
  if (raw_db.empty()) return 1;
  MYSQL* raw = Connect(base, raw_db);
  if (raw == nullptr) return 1;
  struct RawCleanup {  // after the raw lines, or on an early way out
    MYSQL* raw;
    std::function<void()> drop;
    void Run() {
      if (raw == nullptr) return;
      mysql_close(raw);
      raw = nullptr;
      drop();
    }
    ~RawCleanup() { Run(); }
  } raw_cleanup{raw, [&] { drop(raw_db); }};
  Storm storm_one(one, std::max(1L, one * dimensions / actions), seconds);
  MysqlOptions o = base;
  o.database = fresh("one");
  if (o.database.empty()) return 1;
  const Paired one_run = RunPaired(raw, 1, storm_one, o, one, 1, rounds);
  drop(o.database);

  Storm storm(actions, dimensions, seconds);
  o.database = fresh("batched");
  if (o.database.empty()) return 1;
  const Paired batched =
      RunPaired(raw, batch, storm, o, actions, batch, rounds);
  drop(o.database);
  // The batched storm from `workers` threads (processors side by side),
  // each batching its own dimensions, on a fresh database.
  StormRun threaded;
  if (workers > 1) {
    o.database = fresh("workers");
    if (o.database.empty()) return 1;
    // Each worker's batches span the time of one thread's (a processor
    // batches what arrives in a while, and gets its share of it): batches
    // of batch / workers. Batches of `batch` would hold several actions
    // of a dimension each, which are decided one by one.
    threaded =
        RunWorkers(storm, o, actions, std::max(2L, batch / workers), workers);
    drop(o.database);
    if (threaded.rate < 0) return 1;
  }
  raw_cleanup.Run();
  const double raw_one = one_run.raw;
  const double raw_batched = batched.raw;

  // Redis + MySQL.
  StormRun split_one, split_batched;
#ifdef CONVERGE_BENCH_WITH_REDIS
  converge::testing::RedisServerInfo own_redis;
  struct StopRedis {
    converge::testing::RedisServerInfo* own;
    ~StopRedis() {
      if (own->pid > 0) (void)converge::testing::StopRedisServer(own->pid);
    }
  } stop_redis{&own_redis};
  if (split) {
    converge::redis::RedisOptions r;
    if (!redis_uri.empty()) {
      auto parsed = converge::redis::ParseRedisUri(redis_uri);
      if (!parsed.ok()) {
        std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
        return 2;
      }
      r = *parsed;
    } else {
      const std::string redis_dir =
          (own_dir.empty() ? std::string("/tmp") : own_dir) + "/redis-" +
          std::to_string(getpid());
      std::filesystem::create_directories(redis_dir);
      auto started = converge::testing::StartRedisServer(
          redis_dir, true, 0, {"--appendfsync", fast ? "everysec" : "always"});
      if (!started.ok()) {
        std::fprintf(stderr, "%s\n", started.status().ToString().c_str());
        return 1;
      }
      own_redis = *started;
      r.port = own_redis.port;
    }
    r.command_timeout = absl::Seconds(30);
    std::printf("split: Redis %s\n",
                redis_uri.empty()
                    ? (fast ? "own redis-server, appendonly yes, appendfsync "
                              "everysec"
                            : "own redis-server, appendonly yes, appendfsync "
                              "always")
                    : redis_uri.c_str());
    o.database = fresh("split_one");
    if (o.database.empty()) return 1;
    split_one = RunSplitStorm(storm_one, r, o, one, 1);
    drop(o.database);
    o.database = fresh("split_batched");
    if (o.database.empty()) return 1;
    split_batched = RunSplitStorm(storm, r, o, actions, batch);
    drop(o.database);
    if (split_one.rate < 0 || split_batched.rate < 0) return 1;
  }
#endif
  mysql_close(admin);

  if (raw_one < 0 || raw_batched < 0 || one_run.storm.rate < 0 ||
      batched.storm.rate < 0) {
    return 1;
  }
  std::printf(
      "-- one by one (one transaction each); raw and MySQL alone in %ld "
      "turns\n",
      one_run.turns);
  Report("raw single-row INSERT", raw_one, raw_one);
  std::printf("  a join's statements without converge (same turns):\n");
  Report("  2 plain INSERTs + COMMIT", one_run.plain_join, raw_one);
  Report("  checked, as a Submit's join", one_run.checked_join, raw_one);
  Report("converge Submit", one_run.storm.rate, raw_one);
  std::printf("  ratio of each turn: %.3f to %.3f\n", one_run.min_ratio,
              one_run.max_ratio);
  if (split_one.rate > 0) {
    Report("converge Submit, Redis + MySQL", split_one.rate, raw_one);
  }
  std::printf("-- batches of %ld; raw and MySQL alone in %ld turns\n", batch,
              batched.turns);
  Report("raw 1,000-row INSERT IGNORE", raw_batched, raw_batched);
  Report("converge SubmitBatch", batched.storm.rate, raw_batched);
  std::printf("  ratio of each turn: %.3f to %.3f\n", batched.min_ratio,
              batched.max_ratio);
  if (split_batched.rate > 0) {
    Report("converge SubmitBatch, Redis + MySQL", split_batched.rate,
           raw_batched);
  }
  if (threaded.rate > 0) {
    char name[64];
    std::snprintf(name, sizeof name, "converge SubmitBatch, %ld workers",
                  workers);
    std::printf("  %ld workers side by side, each with batches of %ld:\n",
                workers, std::max(2L, batch / workers));
    Report(name, threaded.rate, raw_batched);
    std::printf(
        "  batches the workers submitted again (kAborted or kUnavailable: "
        "deadlocks, lock waits): %ld\n",
        threaded.retries);
  }
  std::printf("  batched outcomes: execute %ld, skip %ld\n",
              batched.storm.outcomes[0], batched.storm.outcomes[1]);
  if (threaded.rate > 0 &&
      !converge::bench::ThreadedMatches(
          "workers", threaded.outcomes, batched.storm.outcomes,
          "batches submitted again saw their first run's window writes")) {
    std::fprintf(stderr, "the workers decided %s actions than one thread\n",
                 "a different number of");
    return 1;
  }
  if (split_batched.rate > 0) {
    std::printf("  split batched outcomes: execute %ld, skip %ld\n",
                split_batched.outcomes[0], split_batched.outcomes[1]);
    if (split_batched.outcomes[0] != batched.storm.outcomes[0] ||
        split_batched.outcomes[1] != batched.storm.outcomes[1] ||
        split_one.outcomes[0] != one_run.storm.outcomes[0] ||
        split_one.outcomes[1] != one_run.storm.outcomes[1]) {
      std::fprintf(stderr, "MySQL and Redis + MySQL outcomes differ\n");
      return 1;
    }
  }
  std::printf(
      "targets: batched >= 30,000/s: %s by one processor%s; one-by-one >= "
      "50%% of raw: %s; load average now %s\n",
      batched.storm.rate >= 30000 ? "met" : "NOT met",
      threaded.rate <= 0       ? ""
      : threaded.rate >= 30000 ? ", met by the workers"
                               : ", NOT met by the workers",
      one_run.storm.rate >= 0.5 * raw_one ? "met" : "NOT met",
      LoadAverage().c_str());
  return 0;
}
