#include "db.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <thread>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "internal/strings.h"
#include "wal_vfs.h"

namespace converge::sqlite::internal {
namespace {

using converge::internal::AV;
using converge::internal::StrCat;

// ---------------------------------------------------------------------------
// The schema, one migration per version. A migration runs in the same write
// transaction as the schema_version row that records it; never edit a
// released one, add the next.

struct Migration {
  int version;
  const char* description;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, "upstream converge_instance and converge_relation; decisions",
     R"sql(
CREATE TABLE converge_instance (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  is_enabled INTEGER NOT NULL DEFAULT 1,
  is_deleted INTEGER NOT NULL DEFAULT 0,
  create_user TEXT NOT NULL DEFAULT '',
  create_time TEXT NOT NULL,
  update_user TEXT NOT NULL DEFAULT '',
  update_time TEXT NOT NULL,
  is_visible INTEGER NOT NULL DEFAULT 1,
  converge_config TEXT NOT NULL,
  converge_func TEXT,
  converge_type TEXT NOT NULL,
  bk_biz_id INTEGER NOT NULL,
  dimension TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  content TEXT NOT NULL DEFAULT '{}',
  detail TEXT,
  end_time TEXT,
  notify_status TEXT,
  window_seconds INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX converge_instance_open_dimension
  ON converge_instance (dimension) WHERE end_time IS NULL;
CREATE INDEX converge_instance_create_time ON converge_instance (create_time);
CREATE INDEX converge_instance_ended
  ON converge_instance (end_time) WHERE end_time IS NOT NULL;
CREATE TABLE converge_relation (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  converge_id INTEGER NOT NULL,
  related_id INTEGER NOT NULL,
  related_type TEXT NOT NULL,
  is_primary INTEGER NOT NULL DEFAULT 0,
  converge_status TEXT NOT NULL DEFAULT 'skipped',
  alerts TEXT NOT NULL DEFAULT '[]',
  UNIQUE (converge_id, related_id, related_type)
);
CREATE INDEX converge_relation_related
  ON converge_relation (related_id, related_type);
CREATE INDEX converge_relation_executed ON converge_relation (converge_id)
  WHERE related_type = 'action' AND converge_status = 'executed';
CREATE TABLE converge_action_decision (
  action_id INTEGER PRIMARY KEY,
  create_time_ns INTEGER NOT NULL,
  strategy_id INTEGER NOT NULL,
  execute_timeout INTEGER NOT NULL,
  status TEXT NOT NULL,
  status_time_ns INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  converge_id INTEGER,
  is_primary INTEGER NOT NULL,
  decided_at_ns INTEGER NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX converge_action_decision_decided_at
  ON converge_action_decision (decided_at_ns);
)sql"},
    {2, "window index, counters, leases, queue tasks", R"sql(
CREATE TABLE converge_window_key (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  kind INTEGER NOT NULL,
  counter INTEGER NOT NULL DEFAULT 0,
  expires_ns INTEGER NOT NULL
);
CREATE INDEX converge_window_key_expires ON converge_window_key (expires_ns);
CREATE TABLE converge_window_member (
  key_id INTEGER NOT NULL,
  member TEXT NOT NULL,
  score_ns INTEGER NOT NULL,
  PRIMARY KEY (key_id, member)
) WITHOUT ROWID;
CREATE INDEX converge_window_member_score
  ON converge_window_member (key_id, score_ns);
CREATE TABLE converge_lease (
  key TEXT PRIMARY KEY,
  token TEXT NOT NULL,
  expires_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE converge_queue_task (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue TEXT NOT NULL,
  task_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject_id INTEGER NOT NULL,
  payload BLOB NOT NULL,
  due_ns INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  state INTEGER NOT NULL DEFAULT 0,
  ready_ns INTEGER,
  delivery INTEGER NOT NULL DEFAULT 0,
  dead_seq INTEGER,
  UNIQUE (queue, task_id)
);
CREATE INDEX converge_queue_task_ready
  ON converge_queue_task (queue, ready_ns, seq) WHERE state < 2;
CREATE INDEX converge_queue_task_dead
  ON converge_queue_task (queue, dead_seq) WHERE state = 2;
)sql"},
    // A joining decision writes one relation row: with the unique key led
    // by the action (ids grow, so its entries append at the end of the
    // B-tree) and no AUTOINCREMENT (no sqlite_sequence write per row), the
    // row costs one index fewer than version 1's (unique key led by the
    // instance, plus an index by action). Same uniqueness, same columns.
    {3, "converge_relation keyed by the related id; no AUTOINCREMENT",
     R"sql(
CREATE TABLE converge_relation_v3 (
  id INTEGER PRIMARY KEY,
  converge_id INTEGER NOT NULL,
  related_id INTEGER NOT NULL,
  related_type TEXT NOT NULL,
  is_primary INTEGER NOT NULL DEFAULT 0,
  converge_status TEXT NOT NULL DEFAULT 'skipped',
  alerts TEXT NOT NULL DEFAULT '[]',
  UNIQUE (related_id, related_type, converge_id)
);
INSERT INTO converge_relation_v3 (id, converge_id, related_id, related_type,
  is_primary, converge_status, alerts)
  SELECT id, converge_id, related_id, related_type, is_primary,
         converge_status, alerts FROM converge_relation ORDER BY id;
DROP TABLE converge_relation;
ALTER TABLE converge_relation_v3 RENAME TO converge_relation;
DELETE FROM sqlite_sequence WHERE name = 'converge_relation';
CREATE INDEX converge_relation_converge ON converge_relation (converge_id);
CREATE INDEX converge_relation_executed ON converge_relation (converge_id)
  WHERE related_type = 'action' AND converge_status = 'executed';
)sql"},
    // The decided_at index serves one reader, the retention sweep, which
    // looks for decisions of actions that belong to no instance. Most
    // decisions are stored with the action's relation (Join, and a
    // creator's in Create): those go with their instance, so they stay out
    // of the index (member = 1) until the instance is purged (Purge then
    // sets member = 0). A joining decision writes one B-tree page fewer,
    // which is a fifth of a one-by-one commit.
    {4, "decisions stored with a relation stay out of the age index",
     R"sql(
ALTER TABLE converge_action_decision
  ADD COLUMN member INTEGER NOT NULL DEFAULT 0;
DROP INDEX converge_action_decision_decided_at;
CREATE INDEX converge_action_decision_age
  ON converge_action_decision (decided_at_ns) WHERE member = 0;
)sql"},
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion,
              "one migration per schema version");

const char* SynchronousPragma(Synchronous s) {
  switch (s) {
    case Synchronous::kOff:
      return "PRAGMA synchronous = OFF";
    case Synchronous::kNormal:
      return "PRAGMA synchronous = NORMAL";
    case Synchronous::kFull:
      return "PRAGMA synchronous = FULL";
    case Synchronous::kExtra:
      return "PRAGMA synchronous = EXTRA";
  }
  return "PRAGMA synchronous = FULL";
}

std::string Dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

absl::Status PathError(absl::StatusCode code, const std::string& path,
                       std::string_view what) {
  return absl::Status(code, StrCat("sqlite: ", path, ": ", what));
}

// Checks what can be checked before SQLite touches the file, for clearer
// errors than SQLite's own (and so that nothing is written to a file that
// is not a database).
absl::Status PreCheck(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return PathError(absl::StatusCode::kPermissionDenied, path,
                       StrCat("cannot stat: ", std::strerror(errno)));
    }
    const std::string dir = Dir(path);
    struct stat dst;
    if (::stat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode)) {
      return PathError(absl::StatusCode::kNotFound, path,
                       StrCat("directory ", dir, " does not exist"));
    }
    if (::access(dir.c_str(), W_OK) != 0) {
      return PathError(absl::StatusCode::kPermissionDenied, path,
                       StrCat("cannot create the database: directory ", dir,
                              " is not writable (", std::strerror(errno), ")"));
    }
    return absl::OkStatus();
  }
  if (!S_ISREG(st.st_mode)) {
    return PathError(absl::StatusCode::kFailedPrecondition, path,
                     "not a regular file");
  }
  if (st.st_size == 0) return absl::OkStatus();  // an empty database
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return PathError(absl::StatusCode::kPermissionDenied, path,
                     StrCat("cannot read: ", std::strerror(errno)));
  }
  char header[16] = {};
  const size_t n = std::fread(header, 1, sizeof(header), f);
  std::fclose(f);
  if (n < sizeof(header) ||
      std::memcmp(header, "SQLite format 3\0", sizeof(header)) != 0) {
    return PathError(absl::StatusCode::kFailedPrecondition, path,
                     "not a SQLite database (the file does not start with "
                     "the SQLite header); refusing to touch it");
  }
  if (::access(path.c_str(), W_OK) != 0) {
    return PathError(absl::StatusCode::kPermissionDenied, path,
                     StrCat("the database file is not writable (",
                            std::strerror(errno), ")"));
  }
  const std::string dir = Dir(path);
  if (::access(dir.c_str(), W_OK) != 0) {
    // WAL mode keeps <path>-wal and <path>-shm beside the file.
    return PathError(absl::StatusCode::kPermissionDenied, path,
                     StrCat("directory ", dir,
                            " is not writable (SQLite's WAL mode needs its "
                            "-wal and -shm files there): ",
                            std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Reads the schema version: 0 for a new (empty) database. Fails for a
// database with tables but no schema_version, or a schema_version but no
// converge_instance (not ours: schema_version is a common name; every
// version of ours creates both in one transaction).
absl::StatusOr<int> SchemaVersion(Conn& conn) {
  bool has_version_table = false;
  bool has_instance_table = false;
  std::vector<std::string> tables;
  {
    Stmt q(conn,
           "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
           "LIKE 'sqlite_%' ORDER BY name");
    for (;;) {
      absl::StatusOr<bool> row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      std::string name = q.Text(0);
      if (name == "schema_version") has_version_table = true;
      if (name == "converge_instance") has_instance_table = true;
      tables.push_back(std::move(name));
    }
  }
  if (!has_version_table) {
    if (tables.empty()) return 0;
    if (tables.size() > 5) {
      tables.resize(5);
      tables.push_back("...");
    }
    return PathError(
        absl::StatusCode::kFailedPrecondition, conn.db().path(),
        StrCat("not a converge database: it has tables (",
               absl::StrJoin(tables, ", "), ") but no schema_version"));
  }
  if (!has_instance_table) {
    return PathError(absl::StatusCode::kFailedPrecondition, conn.db().path(),
                     "not a converge database: it has a schema_version table "
                     "(another program's?) but no converge_instance");
  }
  Stmt q(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
  absl::StatusOr<bool> row = q.Step();
  if (!row.ok()) return row.status();
  return static_cast<int>(q.Int(0));
}

absl::Status CheckNotNewer(const std::string& path, int version) {
  return sql::CheckNotNewer(StrCat("sqlite: ", path), version, kSchemaVersion,
                            "the file was written by a newer converge");
}

// Applies the migrations after the file's version up to `target`, in one
// write transaction (re-reading the version inside it: another process may
// have migrated meanwhile).
absl::Status Migrate(Db& db, int target) {
  return db.Write([&](Conn& conn) -> absl::Status {
    absl::StatusOr<int> version = SchemaVersion(conn);
    if (!version.ok()) return version.status();
    if (auto st = CheckNotNewer(db.path(), *version); !st.ok()) return st;
    if (*version == 0) {
      if (auto st = conn.Exec(
              "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
              "applied_at TEXT NOT NULL, description TEXT NOT NULL)");
          !st.ok()) {
        return st;
      }
    }
    for (const Migration& m : kMigrations) {
      if (m.version <= *version || m.version > target) continue;
      if (auto st = conn.Exec(m.sql); !st.ok()) return st;
      Stmt ins(conn,
               "INSERT INTO schema_version (version, applied_at, description) "
               "VALUES (?1, ?2, ?3)");
      ins.Bind(1, int64_t{m.version})
          .Bind(2, DateTime(absl::Now()))
          .Bind(3, std::string_view(m.description));
      if (auto st = ins.Run(); !st.ok()) return st;
    }
    return absl::OkStatus();
  });
}

}  // namespace

// ---------------------------------------------------------------------------
// Errors

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CORRUPT:
      return absl::StatusCode::kDataLoss;
    case SQLITE_NOTADB:
    case SQLITE_SCHEMA:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::StatusCode::kPermissionDenied;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CONSTRAINT:
      return absl::StatusCode::kAlreadyExists;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return absl::StatusCode::kInvalidArgument;
    default:
      return absl::StatusCode::kInternal;
  }
}

std::string_view CodeName(int rc) {
  switch (rc & 0xff) {
    case SQLITE_ERROR:
      return "SQLITE_ERROR";
    case SQLITE_INTERNAL:
      return "SQLITE_INTERNAL";
    case SQLITE_PERM:
      return "SQLITE_PERM";
    case SQLITE_ABORT:
      return "SQLITE_ABORT";
    case SQLITE_BUSY:
      return "SQLITE_BUSY";
    case SQLITE_LOCKED:
      return "SQLITE_LOCKED";
    case SQLITE_NOMEM:
      return "SQLITE_NOMEM";
    case SQLITE_READONLY:
      return "SQLITE_READONLY";
    case SQLITE_INTERRUPT:
      return "SQLITE_INTERRUPT";
    case SQLITE_IOERR:
      return "SQLITE_IOERR";
    case SQLITE_CORRUPT:
      return "SQLITE_CORRUPT";
    case SQLITE_NOTFOUND:
      return "SQLITE_NOTFOUND";
    case SQLITE_FULL:
      return "SQLITE_FULL";
    case SQLITE_CANTOPEN:
      return "SQLITE_CANTOPEN";
    case SQLITE_PROTOCOL:
      return "SQLITE_PROTOCOL";
    case SQLITE_SCHEMA:
      return "SQLITE_SCHEMA";
    case SQLITE_TOOBIG:
      return "SQLITE_TOOBIG";
    case SQLITE_CONSTRAINT:
      return "SQLITE_CONSTRAINT";
    case SQLITE_MISMATCH:
      return "SQLITE_MISMATCH";
    case SQLITE_MISUSE:
      return "SQLITE_MISUSE";
    case SQLITE_AUTH:
      return "SQLITE_AUTH";
    case SQLITE_RANGE:
      return "SQLITE_RANGE";
    case SQLITE_NOTADB:
      return "SQLITE_NOTADB";
    default:
      return "SQLITE_?";
  }
}

absl::Status Conn::Error(int rc, std::string_view what) {
  last_error_ = rc;
  std::string message = sqlite3_errmsg(handle_);
  std::string hint;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      hint = StrCat(
          "; another connection held the lock for longer than the "
          "busy timeout (",
          absl::FormatDuration(db_->options().busy_timeout), ")");
      break;
    case SQLITE_CORRUPT:
      hint = "; the database file is damaged";
      break;
    case SQLITE_NOTADB:
      hint = "; the file is not a SQLite database";
      break;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
      hint = "; check that the file and its directory are writable";
      break;
    default:
      break;
  }
  return absl::Status(CodeFor(rc), StrCat("sqlite: ", db_->path(), ": ", what,
                                          ": ", message, " (", CodeName(rc),
                                          ", extended code ", rc, ")", hint));
}

// ---------------------------------------------------------------------------
// Conn and Stmt

Conn::~Conn() {
  for (auto& entry : cache_) sqlite3_finalize(entry.second);
  sqlite3_close_v2(handle_);
}

absl::StatusOr<sqlite3_stmt*> Conn::Prepare(std::string_view sql) {
  auto it = cache_.find(AV(sql));
  if (it != cache_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  const int rc =
      sqlite3_prepare_v3(handle_, sql.data(), static_cast<int>(sql.size()),
                         SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return Error(rc, StrCat("preparing \"", sql.substr(0, 60), "\""));
  }
  cache_.emplace(AV(sql), stmt);
  return stmt;
}

absl::Status Conn::Exec(std::string_view sql) {
  char* err = nullptr;
  const std::string text(sql);
  const int rc = sqlite3_exec(handle_, text.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) {
    return Error(rc, StrCat("\"", sql.substr(0, sql.find('\n', 1)), "\""));
  }
  return absl::OkStatus();
}

absl::Status Conn::RefreshMemo() {
  Stmt q(*this, "PRAGMA data_version");
  absl::StatusOr<bool> row = q.Step();
  if (!row.ok()) return row.status();
  const int64_t version = *row ? q.Int(0) : -1;
  if (version != data_version_ || version < 0 ||
      memo_.open.size() > RepoMemo::kMaxEntries ||
      memo_.state.size() > RepoMemo::kMaxEntries) {
    memo_.Clear();
    data_version_ = version;
  }
  return absl::OkStatus();
}

absl::Status Conn::Run(std::string_view sql) {
  Stmt s(*this, sql);
  return s.Run();
}

Stmt::Stmt(Conn& conn, std::string_view sql) : conn_(conn) {
  absl::StatusOr<sqlite3_stmt*> s = conn.Prepare(sql);
  if (s.ok()) {
    stmt_ = *s;
  } else {
    status_ = s.status();
  }
}

Stmt::~Stmt() {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Stmt& Stmt::Bind(int index, int64_t value) {
  if (stmt_ != nullptr && status_.ok()) {
    const int rc = sqlite3_bind_int64(stmt_, index, value);
    if (rc != SQLITE_OK) status_ = conn_.Error(rc, "binding a value");
  }
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view text) {
  if (stmt_ != nullptr && status_.ok()) {
    // Never a null pointer: an empty text is '' (not NULL).
    const int rc = sqlite3_bind_text64(
        stmt_, index, text.data() != nullptr ? text.data() : "", text.size(),
        SQLITE_TRANSIENT, SQLITE_UTF8);
    if (rc != SQLITE_OK) status_ = conn_.Error(rc, "binding a text");
  }
  return *this;
}

Stmt& Stmt::BindBlob(int index, std::string_view bytes) {
  if (stmt_ != nullptr && status_.ok()) {
    const int rc = sqlite3_bind_blob64(
        stmt_, index, bytes.data() != nullptr ? bytes.data() : "", bytes.size(),
        SQLITE_TRANSIENT);
    if (rc != SQLITE_OK) status_ = conn_.Error(rc, "binding a blob");
  }
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  if (stmt_ != nullptr && status_.ok()) {
    const int rc = sqlite3_bind_null(stmt_, index);
    if (rc != SQLITE_OK) status_ = conn_.Error(rc, "binding null");
  }
  return *this;
}

absl::StatusOr<bool> Stmt::Step() {
  if (!status_.ok()) return status_;
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  status_ = conn_.Error(
      sqlite3_extended_errcode(conn_.handle()),
      StrCat("running \"", std::string_view(sqlite3_sql(stmt_)).substr(0, 60),
             "\""));
  return status_;
}

absl::Status Stmt::Run() {
  for (;;) {
    absl::StatusOr<bool> row = Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

std::string Stmt::Text(int col) const { return std::string(TextView(col)); }

std::string_view Stmt::TextView(int col) const {
  // Blob access, so that bytes come back exactly (no text conversion).
  const void* p = sqlite3_column_blob(stmt_, col);
  const int n = sqlite3_column_bytes(stmt_, col);
  if (p == nullptr || n <= 0) return std::string_view();
  return std::string_view(static_cast<const char*>(p), static_cast<size_t>(n));
}

// ---------------------------------------------------------------------------
// Db

Db::Db(const SqliteOptions& options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : RealClock::Default()),
      pool_([this] { return Connect(); }) {}

Db::~Db() {
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    stopping_ = true;
  }
  checkpoint_cv_.notify_all();
  if (checkpointer_.joinable()) checkpointer_.join();
}

// The most the committing call's RESTART checkpoint waits for readers and
// writers to leave the log (WalHook).
constexpr int kRestartWaitMs = 200;

int Db::BusyMillis() const {
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(options_.busy_timeout),
                        std::numeric_limits<int>::max()));
}

int Db::WalHook(void* arg, sqlite3* handle, const char*, int pages) {
  Db* db = static_cast<Db*>(arg);
  const int64_t threshold = db->options_.checkpoint_pages;
  if (pages < db->last_commit_pages_.exchange(pages)) {
    // The log started over: the last copy's end is not a place in it.
    std::lock_guard<std::mutex> lock(db->checkpoint_mu_);
    db->checkpointed_pages_ = 0;
    ++db->log_generation_;
  }
  if (pages < threshold) return SQLITE_OK;
  if (pages >= 8 * threshold) {
    // The checkpointer fell behind (writers append while it copies, so it
    // never reaches the end of the log), or the log could not start over:
    // a write starts the log over only if the copy had reached its end when
    // the write's snapshot was taken and no checkpoint holds a reader lock
    // at that moment, which a busy checkpointer can keep from happening.
    // Wait for its run, then checkpoint here in RESTART mode: this process's
    // writers wait for this commit, so the copy reaches the end, and SQLite
    // itself starts the log over once readers are off it, so the next write
    // goes to its start. It waits for them (and for another process's
    // writer) at most kRestartWaitMs. Past that it gives up and the log goes
    // on; a reader that stays (a long transaction of another process, a
    // backup) must not stall every commit, so the next RESTART waits until
    // the log has grown by another checkpoint_pages, and the commits in
    // between checkpoint PASSIVE (never waiting).
    std::lock_guard<std::mutex> run(db->checkpoint_run_mu_);
    if (pages < db->restart_retry_at_) {
      (void)sqlite3_wal_checkpoint_v2(
          handle, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
      return SQLITE_OK;
    }
    sqlite3_busy_timeout(handle, std::min(kRestartWaitMs, db->BusyMillis()));
    const int rc = sqlite3_wal_checkpoint_v2(
        handle, nullptr, SQLITE_CHECKPOINT_RESTART, nullptr, nullptr);
    sqlite3_busy_timeout(handle, db->BusyMillis());
    db->restart_retry_at_ = rc == SQLITE_OK ? 0 : pages + threshold;
    return SQLITE_OK;
  }
  std::lock_guard<std::mutex> lock(db->checkpoint_mu_);
  if (db->stopping_) return SQLITE_OK;
  // While writers commit back to back, every copy ends a few commits short
  // of the end of the log, so the log does not start over and stays above
  // the threshold: asking after every commit would run a checkpoint (two
  // fsyncs) per commit or two. Ask once the log has grown by the threshold
  // since the last copy (from its start, once it has started over).
  if (pages >= db->checkpointed_pages_ &&
      pages - db->checkpointed_pages_ < threshold) {
    return SQLITE_OK;
  }
  db->checkpoint_wanted_ = true;
  if (!db->checkpointer_.joinable()) {
    db->checkpointer_ = std::thread([db] { db->CheckpointLoop(); });
  } else {
    db->checkpoint_cv_.notify_one();
  }
  return SQLITE_OK;
}

void Db::CheckpointLoop() {
  std::unique_ptr<Conn> conn;
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  for (;;) {
    checkpoint_cv_.wait(lock, [&] { return checkpoint_wanted_ || stopping_; });
    if (stopping_) return;
    checkpoint_wanted_ = false;
    const uint64_t generation = log_generation_;
    lock.unlock();
    if (conn == nullptr) {
      absl::StatusOr<std::unique_ptr<Conn>> c = Connect();
      if (c.ok()) conn = *std::move(c);
    }
    // Best effort: a failed or partial checkpoint is retried on the next
    // request, and a damaged file shows on the next store call.
    int copied = 0;
    if (conn != nullptr) {
      std::lock_guard<std::mutex> run(checkpoint_run_mu_);
      int log = 0;
      if (sqlite3_wal_checkpoint_v2(conn->handle(), nullptr,
                                    SQLITE_CHECKPOINT_PASSIVE, &log,
                                    &copied) != SQLITE_OK) {
        copied = 0;
      }
    }
    lock.lock();
    // A copy of a log that has started over since is no mark in the new
    // one.
    checkpointed_pages_ =
        generation == log_generation_ ? std::max(copied, 0) : 0;
  }
}

absl::StatusOr<std::unique_ptr<Conn>> Db::Connect() {
  sqlite3* handle = nullptr;
  const int rc = sqlite3_open_v2(
      options_.path.c_str(), &handle,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      options_.coalesce_log_writes ? WalVfsName() : nullptr);
  if (rc != SQLITE_OK) {
    std::string message =
        handle != nullptr ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    sqlite3_close_v2(handle);
    return absl::Status(CodeFor(rc), StrCat("sqlite: ", options_.path,
                                            ": cannot open: ", message, " (",
                                            CodeName(rc), ")"));
  }
  sqlite3_extended_result_codes(handle, 1);
  auto conn = std::make_unique<Conn>(this, handle);
  sqlite3_busy_timeout(handle, BusyMillis());
  if (auto st = conn->Exec(SynchronousPragma(options_.synchronous)); !st.ok()) {
    return st;
  }
  if (options_.checkpoint_pages > 0) {
    if (auto st = conn->Exec("PRAGMA wal_autocheckpoint = 0"); !st.ok()) {
      return st;
    }
    sqlite3_wal_hook(handle, &Db::WalHook, this);
  }
  // A page cache big enough that a batch's dirty pages are not spilled to
  // the WAL before its commit; statement journals in memory.
  if (auto st = conn->Exec(StrCat("PRAGMA cache_size = -", options_.cache_kib,
                                  "; PRAGMA temp_store = MEMORY"));
      !st.ok()) {
    return st;
  }
  return conn;
}

absl::Status Db::EnsureWriter() {
  if (writer_ != nullptr) return absl::OkStatus();
  absl::StatusOr<Lease> lease = Acquire();
  if (!lease.ok()) return lease.status();
  writer_ = lease->Release();
  return absl::OkStatus();
}

void Db::Rollback(Conn& conn) {
  conn.memo().Clear();
  if (sqlite3_get_autocommit(conn.handle()) == 0) {
    const int saved = conn.last_error();
    (void)conn.Exec("ROLLBACK");
    conn.set_last_error(saved);
  }
}

void Db::Backoff(int attempt) {
  // 1, 2, 4, ... 64 ms: SQLite's busy handler already waited for plain
  // lock contention; this covers the cases it does not retry (a stale WAL
  // snapshot, WAL recovery by another connection).
  std::this_thread::sleep_for(
      std::chrono::milliseconds(1 << std::min(attempt, 6)));
}

namespace {
// The batch open on this thread (at most one, whatever the Db).
struct ThreadBatch {
  Db* db = nullptr;
  std::unique_lock<std::mutex> write_lock;
  BatchState state;
};
thread_local ThreadBatch* t_batch = nullptr;
}  // namespace

BatchState* Db::Batch() const {
  return t_batch != nullptr && t_batch->db == this ? &t_batch->state : nullptr;
}

bool Db::InBatch() const { return Batch() != nullptr; }

absl::Status Db::BeginBatch() {
  if (t_batch != nullptr) {
    return absl::FailedPreconditionError(
        StrCat("sqlite: ", path(),
               ": a batch is already open on this thread; commit or "
               "destroy it first"));
  }
  auto batch = std::make_unique<ThreadBatch>();
  batch->db = this;
  batch->write_lock = std::unique_lock<std::mutex>(write_mu_);
  if (absl::Status st = EnsureWriter(); !st.ok()) return st;
  Conn& conn = *writer_;
  const absl::Time deadline = absl::Now() + options_.busy_timeout;
  for (int attempt = 0;; ++attempt) {
    conn.set_last_error(SQLITE_OK);
    absl::Status st = conn.Run("BEGIN IMMEDIATE");
    if (st.ok()) st = conn.RefreshMemo();
    if (st.ok()) break;
    Rollback(conn);
    if (!Busy(conn.last_error())) return st;
    if (absl::Now() >= deadline) return LockTimeout(st);
    Backoff(attempt);
  }
  batch->state.conn = std::move(writer_);
  t_batch = batch.release();
  return absl::OkStatus();
}

absl::Status Db::CommitBatch() {
  if (t_batch == nullptr || t_batch->db != this) {
    return absl::FailedPreconditionError(
        StrCat("sqlite: ", path(), ": no batch is open on this thread"));
  }
  std::unique_ptr<ThreadBatch> batch(t_batch);
  t_batch = nullptr;
  Conn& conn = *batch->state.conn;
  absl::Status st = batch->state.failed;
  if (st.ok()) {
    const absl::Time deadline = absl::Now() + options_.busy_timeout;
    for (int attempt = 0;; ++attempt) {
      conn.set_last_error(SQLITE_OK);
      st = conn.Run("COMMIT");
      // A busy COMMIT leaves the transaction open and may be retried.
      if (st.ok() || !Busy(conn.last_error())) break;
      if (absl::Now() >= deadline) {
        st = LockTimeout(st);
        break;
      }
      Backoff(attempt);
    }
  } else {
    st = absl::Status(st.code(), StrCat("sqlite: ", path(),
                                        ": the batch was rolled back after "
                                        "a failed call: ",
                                        st.message()));
  }
  if (!st.ok()) Rollback(conn);
  writer_ = std::move(batch->state.conn);  // still under the write lock
  return st;
}

void Db::AbortBatch() {
  if (t_batch == nullptr || t_batch->db != this) return;
  std::unique_ptr<ThreadBatch> batch(t_batch);
  t_batch = nullptr;
  Rollback(*batch->state.conn);
  writer_ = std::move(batch->state.conn);  // still under the write lock
}

bool Db::SweepDue() {
  std::lock_guard<std::mutex> lock(sweep_mu_);
  if (++calls_since_sweep_ < 4096) return false;
  calls_since_sweep_ = 0;
  return true;
}

absl::Status Db::Setup(Conn& conn) {
  // Reading the version needs no write: a file from a newer converge, or
  // another program's database, is refused untouched.
  absl::StatusOr<int> version = SchemaVersion(conn);
  if (!version.ok()) return version.status();
  if (auto st = CheckNotNewer(path(), *version); !st.ok()) return st;
  if (options_.check_on_open && *version > 0) {
    Stmt check(conn, "PRAGMA quick_check(5)");
    std::vector<std::string> problems;
    for (;;) {
      absl::StatusOr<bool> row = check.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      std::string line = check.Text(0);
      if (line != "ok") problems.push_back(std::move(line));
    }
    if (!problems.empty()) {
      return PathError(absl::StatusCode::kDataLoss, path(),
                       StrCat("the database file is damaged (PRAGMA "
                              "quick_check: ",
                              absl::StrJoin(problems, "; "), ")"));
    }
  }
  {
    Stmt wal(conn, "PRAGMA journal_mode = WAL");
    absl::StatusOr<bool> row = wal.Step();
    if (!row.ok()) return row.status();
    if (!*row || wal.Text(0) != "wal") {
      return PathError(absl::StatusCode::kFailedPrecondition, path(),
                       StrCat("cannot switch to WAL mode (journal mode stays ",
                              *row ? wal.Text(0) : std::string("unknown"),
                              "); is the file on a network file system?"));
    }
  }
  if (*version < kSchemaVersion) return Migrate(*this, kSchemaVersion);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<Db>> Db::Open(const SqliteOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("sqlite: options.path is empty");
  }
  if (options.path.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        "sqlite: options.path contains a NUL byte");
  }
  if (options.busy_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        StrCat("sqlite: options.busy_timeout must be >= 0, got ",
               absl::FormatDuration(options.busy_timeout)));
  }
  if (options.checkpoint_pages < 0) {
    return absl::InvalidArgumentError(
        StrCat("sqlite: options.checkpoint_pages must be >= 0, got ",
               options.checkpoint_pages));
  }
  if (options.cache_kib < 64) {
    return absl::InvalidArgumentError(StrCat(
        "sqlite: options.cache_kib must be >= 64, got ", options.cache_kib));
  }
  if (auto st = PreCheck(options.path); !st.ok()) return st;
  std::shared_ptr<Db> db(new Db(options));
  absl::StatusOr<Lease> conn = db->Acquire();
  if (!conn.ok()) return conn.status();
  if (auto st = db->Setup(**conn); !st.ok()) return st;
  return db;
}

absl::Status Db::MigrateForTest(const std::string& path, int version) {
  SqliteOptions options;
  options.path = path;
  std::shared_ptr<Db> db(new Db(options));
  absl::StatusOr<Lease> conn = db->Acquire();
  if (!conn.ok()) return conn.status();
  if (auto st = (*conn)->Exec("PRAGMA journal_mode = WAL"); !st.ok()) {
    return st;
  }
  return Migrate(*db, version);
}

}  // namespace converge::sqlite::internal
