// Internal: one SQLite database file shared by the four stores of a set --
// a pool of connections with their cached prepared statements, transactions
// with busy retries, error mapping, and the versioned schema.
//
// Thread safety: Db is safe for concurrent use. A Conn is used by one
// thread at a time (it is checked out of the pool for the duration of one
// store call).

#ifndef CONVERGE_ADAPTERS_SQLITE_SRC_DB_H_
#define CONVERGE_ADAPTERS_SQLITE_SRC_DB_H_

#include <sqlite3.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "codec.h"
#include "converge/clock.h"
#include "converge/sqlite/sqlite_store.h"
#include "converge/store/errors.h"
#include "converge/store/instance_repo.h"
#include "memo.h"
#include "pool.h"

namespace converge::sqlite::internal {

class Db;

using RepoMemo = sql::RepoMemo;

class Conn;

// The batch open on a thread (Db::BeginBatch).
struct BatchState {
  std::unique_ptr<Conn> conn;
  // Set when a call failed after it had changed rows: the batch can only
  // be rolled back.
  absl::Status failed;
};

// One connection and its statement cache.
class Conn {
 public:
  Conn(Db* db, sqlite3* handle) : db_(db), handle_(handle) {}
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  sqlite3* handle() const { return handle_; }
  Db& db() const { return *db_; }

  // The cached statement for `sql` (a string with static storage: the
  // cache keys on its text), reset and with no bindings.
  absl::StatusOr<sqlite3_stmt*> Prepare(std::string_view sql);
  // Runs statements without results (BEGIN, COMMIT, PRAGMA ... = x, DDL).
  absl::Status Exec(std::string_view sql);
  // Runs one cached statement without results (`sql` has static storage,
  // as for Prepare): BEGIN, COMMIT, SAVEPOINT on the hot path.
  absl::Status Run(std::string_view sql);

  // The memo of this connection (see RepoMemo). Valid inside a
  // transaction started by Db (Write, Read, a batch).
  RepoMemo& memo() { return memo_; }
  // Reads PRAGMA data_version and clears the memo if another connection
  // committed since the last call. Run at the start of each transaction.
  absl::Status RefreshMemo();

  // The primary result code of the last failed call on this connection
  // (SQLITE_BUSY, ...), SQLITE_OK if none failed.
  int last_error() const { return last_error_; }
  void set_last_error(int rc) { last_error_ = rc; }

  // An error status for result code `rc` of this connection: "sqlite:
  // <path>: <what>: <message> (SQLITE_X)", with the code mapped (see
  // StatusFor).
  absl::Status Error(int rc, std::string_view what);

 private:
  Db* db_;
  sqlite3* handle_;
  absl::flat_hash_map<absl::string_view, sqlite3_stmt*> cache_;
  int last_error_ = SQLITE_OK;
  RepoMemo memo_;
  int64_t data_version_ = -1;
};

// A prepared statement in use: binds, steps, reads columns, and resets the
// statement when it goes out of scope.
class Stmt {
 public:
  // Prepares `sql` on `conn`; check ok() (or let Step report the error).
  Stmt(Conn& conn, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int index, int64_t value);
  Stmt& Bind(int index, std::string_view text);
  Stmt& BindBlob(int index, std::string_view bytes);
  Stmt& BindNull(int index);
  Stmt& Bind(int index, std::optional<int64_t> value) {
    return value.has_value() ? Bind(index, *value) : BindNull(index);
  }

  // Steps once: true if a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to the end (statements without result rows, or whose rows are
  // not read).
  absl::Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }
  std::string Text(int col) const;
  std::string_view TextView(int col) const;

  // Rows changed by the last Run (sqlite3_changes).
  int64_t Changes() const { return sqlite3_changes64(conn_.handle()); }

 private:
  Conn& conn_;
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status status_;
};

// Maps a SQLite result code to a status code (house-style.md, "Errors").
absl::StatusCode CodeFor(int rc);
// "SQLITE_BUSY" and the like, for messages.
std::string_view CodeName(int rc);

class Db {
 public:
  // Opens the file and brings its schema to kSchemaVersion (see
  // OpenSqliteStores for every error).
  static absl::StatusOr<std::shared_ptr<Db>> Open(const SqliteOptions& options);
  ~Db();

  const std::string& path() const { return options_.path; }
  const Clock& clock() const { return *clock_; }
  const SqliteOptions& options() const { return options_; }

  // A connection checked out of the pool; returned when destroyed.
  using Lease = sql::ConnPool<Conn>::Lease;
  absl::StatusOr<Lease> Acquire() { return pool_.Acquire(); }

  // Runs `fn(Conn&)` (returning absl::Status or absl::StatusOr<T>) in a
  // write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back if fn
  // fails. Writers of this process take turns on a mutex first, so that
  // they never wait on each other through SQLite's sleeping busy handler.
  // A transaction that meets SQLITE_BUSY is retried until busy_timeout has
  // passed; then the error is returned (kUnavailable).
  template <typename Fn>
  auto Write(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Transact("BEGIN IMMEDIATE", true, std::forward<Fn>(fn));
  }

  // Runs `fn(Conn&)` in a read transaction (one snapshot).
  template <typename Fn>
  auto Read(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Transact("BEGIN", false, std::forward<Fn>(fn));
  }

  // The lock, window and queue stores' transactions (sql::SqlStores): as
  // Write and Read, part of the thread's batch like the repo's (the file's
  // one write lock serializes them anyway).
  template <typename Fn>
  auto WriteAside(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Write(std::forward<Fn>(fn));
  }
  template <typename Fn>
  auto ReadAside(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Read(std::forward<Fn>(fn));
  }

  // ---- batches (InstanceRepo::BeginBatch) ----
  // Opens a write transaction (BEGIN IMMEDIATE, retried while busy as
  // Write does) on a connection bound to the calling thread. Until
  // CommitBatch or AbortBatch, every Write and Read this thread makes on
  // this Db runs in it: a Read sees the batch's writes, and a Write runs in
  // a savepoint, so that a failed call undoes only its own writes. The
  // process's write mutex is held for the batch's duration. Returns
  // kFailedPrecondition if a batch is already open on this thread.
  absl::Status BeginBatch();
  // Commits the batch of this thread; on failure it is rolled back.
  absl::Status CommitBatch();
  // Rolls the batch of this thread back (no-op without one).
  void AbortBatch();
  bool InBatch() const;

  // Window-store housekeeping: true about once every 4096 calls.
  bool SweepDue();

  // Test hook: creates or migrates the schema of `path` up to `version`
  // (< kSchemaVersion makes an "older file"), with no other checks.
  static absl::Status MigrateForTest(const std::string& path, int version);

 private:
  explicit Db(const SqliteOptions& options);

  absl::StatusOr<std::unique_ptr<Conn>> Connect();
  absl::Status Setup(Conn& conn);
  // Real-time pause between attempts of a busy transaction.
  static void Backoff(int attempt);

  template <typename Fn>
  auto Transact(std::string_view begin, bool write, Fn&& fn)
      -> decltype(fn(std::declval<Conn&>())) {
    using Result = decltype(fn(std::declval<Conn&>()));
    if (BatchState* batch = Batch(); batch != nullptr) {
      // In a batch: no savepoint per call (they cost a quarter of a
      // batch's time). A call that fails before it changed anything
      // leaves the batch as it was, which is how every expected refusal
      // (kAlreadyExists, kFailedPrecondition, ...) fails: checks come
      // before writes. A call that fails after it changed rows cannot be
      // undone alone, so the batch is failed: every later call and the
      // commit return that error, and the batch is rolled back.
      //
      // SQLite itself rolls the whole transaction back on some errors (an
      // I/O error, a full disk in a statement without a statement journal)
      // and goes back to autocommit, without changing total_changes: a
      // failed call, read or write, that leaves no transaction open fails
      // the batch too, so that later calls cannot commit one statement at
      // a time, nor trust a memo filled by rolled-back work.
      if (!batch->failed.ok()) return Result(batch->failed);
      Conn& conn = *batch->conn;
      const int64_t before = sqlite3_total_changes64(conn.handle());
      Result r = fn(conn);
      if (!StatusOf(r).ok() &&
          ((write && sqlite3_total_changes64(conn.handle()) != before) ||
           sqlite3_get_autocommit(conn.handle()) != 0)) {
        batch->failed = StatusOf(r);
        conn.memo().Clear();
      }
      return r;
    }
    // Writes run on the writer connection, reads on one of the pool.
    std::unique_lock<std::mutex> lock(write_mu_, std::defer_lock);
    std::optional<Lease> pooled;
    Conn* conn = nullptr;
    if (write) {
      lock.lock();
      if (absl::Status st = EnsureWriter(); !st.ok()) return Result(st);
      conn = writer_.get();
    } else {
      absl::StatusOr<Lease> lease = Acquire();
      if (!lease.ok()) return Result(lease.status());
      pooled.emplace(*std::move(lease));
      conn = &**pooled;
    }
    const absl::Time deadline = absl::Now() + options_.busy_timeout;
    for (int attempt = 0;; ++attempt) {
      conn->set_last_error(SQLITE_OK);
      absl::Status st = conn->Run(begin);
      if (st.ok()) st = conn->RefreshMemo();
      if (st.ok()) {
        Result r = fn(*conn);
        if (StatusOf(r).ok()) {
          st = conn->Run("COMMIT");
          if (st.ok()) return r;
        } else {
          st = StatusOf(r);
        }
        Rollback(*conn);
      }
      if (!Busy(conn->last_error())) return Result(st);
      if (absl::Now() >= deadline) return Result(LockTimeout(st));
      Backoff(attempt);
    }
  }

  static absl::Status StatusOf(const absl::Status& s) { return s; }
  template <typename T>
  static absl::Status StatusOf(const absl::StatusOr<T>& s) {
    return s.status();
  }
  static bool Busy(int rc) {
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
  }
  // A busy error past the busy timeout: another connection holds a lock on
  // the database
  // (StoreDownError: any call now would wait and fail the same way).
  static absl::Status LockTimeout(const absl::Status& busy) {
    return StoreDownError(std::string(busy.message()));
  }
  static void Rollback(Conn& conn);
  // The batch of the calling thread on this Db, or null.
  BatchState* Batch() const;

  SqliteOptions options_;
  const Clock* clock_;
  sql::ConnPool<Conn> pool_;
  std::mutex write_mu_;
  // The connection every write of this process runs on (guarded by
  // write_mu_; a batch holds it until it commits). One writing connection
  // keeps its page cache: SQLite drops a connection's whole cache when
  // another connection has committed since its last transaction, and two
  // writers taking turns would reread every page they touch.
  std::unique_ptr<Conn> writer_;
  // Opens writer_ if it is not open. Under write_mu_.
  absl::Status EnsureWriter();
  std::mutex sweep_mu_;
  uint64_t calls_since_sweep_ = 0;

  // options_.busy_timeout in milliseconds, as sqlite3_busy_timeout takes it.
  int BusyMillis() const;

  // WAL checkpoints (SqliteOptions::checkpoint_pages): a commit that leaves
  // the WAL at checkpoint_pages or more wakes the checkpointer thread,
  // which copies the WAL back into the database (PASSIVE: it never blocks
  // writers or readers) on its own connection, so that commits do not pay
  // for it. A WAL eight times that size is checkpointed by the committing
  // connection itself (RESTART mode), so that it stays bounded when the
  // checkpointer falls behind or keeps the log from starting over.
  static int WalHook(void* db, sqlite3* handle, const char* name, int pages);
  void CheckpointLoop();
  std::mutex checkpoint_mu_;
  std::mutex checkpoint_run_mu_;  // held while a checkpoint runs
  // The log size (pages) from which the committing call tries a RESTART
  // checkpoint again after one gave up (WalHook). Under checkpoint_run_mu_.
  int64_t restart_retry_at_ = 0;
  std::condition_variable checkpoint_cv_;
  // The log size (pages) the checkpointer's last run copied up to: the
  // next run is asked for once the log has grown checkpoint_pages past it,
  // not after every commit while a busy writer keeps the log from starting
  // over. Set back to 0 when the log starts over (a commit's log smaller
  // than the last commit's), and log_generation_ counted up, so that a run
  // that was copying the old log does not set it. Under checkpoint_mu_.
  int64_t checkpointed_pages_ = 0;
  uint64_t log_generation_ = 0;
  // The log size after this process's last commit (WalHook).
  std::atomic<int> last_commit_pages_{0};
  bool checkpoint_wanted_ = false;
  bool stopping_ = false;
  std::thread checkpointer_;
};

// ---- value encodings (adapters/sql/src/codec.h) ----

using sql::FromNanos;
using sql::Nanos;
using sql::ParseDateTime;
// Upstream datetime columns: "YYYY-MM-DD HH:MM:SS.fffffffff" UTC.
inline std::string DateTime(absl::Time t) { return sql::DateTime(t, 9); }

}  // namespace converge::sqlite::internal

#endif  // CONVERGE_ADAPTERS_SQLITE_SRC_DB_H_
