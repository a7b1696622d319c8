// Internal: one MySQL database shared by the four stores of a set -- a pool
// of connections, transactions with bounded retries, error mapping, and
// the statement interface the shared SQL stores (adapters/sql/src/
// stores.h) are written against: the same as SQLite's (Conn, Stmt with
// "?N" parameters), over the text protocol.
//
// Sessions run with autocommit off and READ COMMITTED: every statement is
// in a transaction that Write() commits; a Read() needs no commit (its
// plain SELECTs take no locks and see the latest committed rows).
//
// Thread safety: Db is safe for concurrent use. A Conn is used by one
// thread at a time (checked out of the pool for one store call, or bound
// to the thread for a batch).

#ifndef CONVERGE_ADAPTERS_MYSQL_SRC_DB_H_
#define CONVERGE_ADAPTERS_MYSQL_SRC_DB_H_

#include <mysql.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/model.h"
#include "converge/mysql/mysql_store.h"
#include "converge/store/errors.h"
#include "internal/strings.h"
#include "memo.h"
#include "pool.h"

namespace converge::mysql::internal {

class Db;

// Error numbers the store acts on.
inline constexpr unsigned kErDupEntry = 1062;
// A NULL in a NOT NULL column: how a script's guarded statement refuses.
inline constexpr unsigned kErBadNull = 1048;

// A row of a result, with Stmt's accessors.
struct ResultRow {
  MYSQL_ROW row;
  unsigned long* lengths;
  int64_t Int(int col) const {
    int64_t v = 0;
    if (row[col] != nullptr)
      (void)absl::SimpleAtoi(converge::internal::AV(TextView(col)), &v);
    return v;
  }
  bool IsNull(int col) const { return row[col] == nullptr; }
  std::string_view TextView(int col) const {
    return row[col] == nullptr ? std::string_view()
                               : std::string_view(row[col], lengths[col]);
  }
  std::string Text(int col) const { return std::string(TextView(col)); }
};
inline constexpr unsigned kErLockWaitTimeout = 1205;
inline constexpr unsigned kErLockDeadlock = 1213;
inline constexpr unsigned kCrServerGoneError = 2006;
inline constexpr unsigned kCrServerLost = 2013;

// Maps a MySQL/MariaDB error number to a status code (house-style.md).
absl::StatusCode CodeFor(unsigned err);
// True for errors after which the connection is unusable.
bool ConnectionLost(unsigned err);

// A statement text parsed once: literal pieces and the parameter (1-based)
// that follows each piece (0: none).
struct Parsed {
  std::vector<std::string> pieces;
  std::vector<int> params;
  int max_param = 0;
};

// One connection.
class Conn {
 public:
  Conn(Db* db, MYSQL* handle) : db_(db), handle_(handle) {}
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  MYSQL* handle() const { return handle_; }
  Db& db() const { return *db_; }

  // The parsed form of `sql` (a string with static storage: the cache keys
  // on its address).
  const Parsed& Parse(const char* sql);
  // Runs a statement without parameters whose rows, if any, are dropped.
  absl::Status Exec(std::string_view sql);
  // Runs `query` (complete text); stores its result, if any, in *result.
  absl::Status Query(const std::string& query, MYSQL_RES** result,
                     int64_t* affected);
  // Runs `statements` in one round trip (a multi-statement query; rows a
  // statement returns are dropped) and appends each statement's changed
  // rows to *affected. The server stops at the first statement that fails:
  // its error is returned and *failed_at is its index.
  absl::Status Script(const std::vector<std::string>& statements,
                      std::vector<int64_t>* affected, size_t* failed_at);
  // As Script, and also: rows(i, row) for each row of each statement i
  // that returns rows (until one call fails; every answer is still read,
  // so that the connection stays in step, and that error is returned); each
  // statement's insert id (mysql_insert_id, 0 if none) appended to
  // *insert_ids; and after CommitWithNext, a COMMIT sent as the script's
  // last statement (then committed(), or commit_failed() as for Query).
  using RowsFn = std::function<absl::Status(size_t, const ResultRow&)>;
  absl::Status ScriptWithRows(std::vector<std::string> statements,
                              const RowsFn& rows,
                              std::vector<int64_t>* affected,
                              std::vector<int64_t>* insert_ids,
                              size_t* failed_at);

  // The memo (sql::RepoMemo). Open instances are kept across transactions
  // (a Join re-checks its instance under a row lock); the instance states
  // are forgotten at the start of each transaction.
  sql::RepoMemo& memo() { return memo_; }
  absl::Status RefreshMemo();

  // Writes of the batch on this connection not yet made (see MysqlRepo in
  // mysql_store.cc): joins (a decision and its relation), creators (the
  // same, primary), decisions without a relation, relations of attached
  // actions. Made together before a repo call that could see them and
  // before the commit.
  struct PendingWrite {
    std::optional<ActionRecord> record;
    std::optional<ConvergeRelation> relation;
    // A join not checked yet (RepoBatch::RetriedOnConflict): written only
    // if its instance is open and the action has no relation, checked by
    // its own statements when written.
    bool unchecked = false;
  };
  struct Deferred {
    std::vector<PendingWrite> joins;
    // The actions of `joins`.
    absl::flat_hash_set<int64_t> actions;
    // Checked in this transaction (MysqlRepo::PrepareJoins, GetActions):
    // instances found open and locked in share mode, and actions found
    // with neither a decision nor a relation (each good for one write).
    absl::flat_hash_set<int64_t> locked_open;
    absl::flat_hash_set<int64_t> unseen;
    // The batch's caller runs it again after an IsConflict error
    // (RepoBatch::RetriedOnConflict): a join may be checked when written.
    bool may_defer_checks = false;
    // Statements sent with the batch's COMMIT, after its joins (a lease's
    // release in a batch that takes the lock store's calls: Db::AsideConn).
    std::vector<std::string> with_commit;
    // Leases this batch took (key, then token, joined by a NUL), whose
    // rows it holds locked until its end.
    absl::flat_hash_set<std::string> leases_taken;
    void Clear() {
      joins.clear();
      actions.clear();
      locked_open.clear();
      unseen.clear();
      may_defer_checks = false;
      with_commit.clear();
      leases_taken.clear();
    }
  };
  Deferred& deferred() { return deferred_; }

  // The MySQL errno of the last failed statement (0 if none failed since
  // the last clear_error()).
  unsigned last_error() const { return last_error_; }
  void clear_error() { last_error_ = 0; }
  void set_last_error(unsigned err) { last_error_ = err; }
  // True once the connection is lost; it is then dropped, not pooled.
  bool broken() const { return broken_; }

  // The next Query (or Stmt, or ScriptWithRows) is the transaction's last:
  // it is sent with the COMMIT, in one round trip (Db::WriteAside with a
  // single write, or a window write's script). Then committed() is true,
  // or commit_failed() if the COMMIT failed or may have run (the client
  // lost the connection). Reset by Db before and after each transaction of
  // Write and WriteAside, and at BeginBatch. No effect on a batch's
  // connection (its COMMIT is CommitBatch's).
  void CommitWithNext() {
    if (!in_batch_) commit_with_next_ = true;
  }
  // Marks the connection as a batch's, from BeginBatch to its end.
  void set_in_batch(bool in_batch) { in_batch_ = in_batch; }
  bool committed() const { return committed_; }
  bool commit_failed() const { return commit_failed_; }
  void ResetCommit() {
    commit_with_next_ = committed_ = commit_failed_ = false;
  }

  // Ends a read's transaction without waiting: sends ROLLBACK, whose answer
  // FinishEnd reads when the connection is next taken from the pool. A
  // transaction left open would keep the metadata locks of every table it
  // read while the connection sits in the pool, and DDL on them (an
  // operator's migration, OPTIMIZE) would wait for it.
  void SendEnd();
  // Reads the answer of SendEnd's ROLLBACK, if one is due. An error marks
  // the connection broken.
  absl::Status FinishEnd();
  // True if the server has closed this idle connection (its socket reads
  // as ready: an EOF or an error packet), so that a call does not spend a
  // retry on it. Call after FinishEnd.
  bool Stale() const;
  // Rows changed by every statement of this connection, in total.
  int64_t total_changes() const { return total_changes_; }
  // Text that may hold any bytes, as a literal: 'escaped' when it is UTF-8
  // (so that it compares with utf8mb4 columns through their indexes),
  // x'hex' otherwise.
  void AppendLiteral(std::string* out, std::string_view text) const;

  // An error status for the last error of this connection: "mysql:
  // <label>: <what>: <message> (errno N)".
  absl::Status Error(std::string_view what);

 private:
  // After a script that ended with its COMMIT failed: could the COMMIT have
  // run? (It failed at the COMMIT itself, or the connection was lost.)
  bool MayHaveCommitted(bool failed_at_commit) const;
  absl::Status Run(const std::vector<std::string>& statements,
                   const RowsFn* rows, std::vector<int64_t>* affected,
                   std::vector<int64_t>* insert_ids, size_t* failed_at);

  Db* db_;
  MYSQL* handle_;
  absl::flat_hash_map<const char*, std::unique_ptr<Parsed>> cache_;
  unsigned last_error_ = 0;
  bool broken_ = false;
  bool end_pending_ = false;
  bool commit_with_next_ = false;
  bool in_batch_ = false;
  bool committed_ = false;
  bool commit_failed_ = false;
  int64_t total_changes_ = 0;
  sql::RepoMemo memo_;
  Deferred deferred_;
};

// A statement in use: binds, runs on the first Step, reads rows.
class Stmt {
 public:
  Stmt(Conn& conn, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Bind(int index, int64_t value);
  Stmt& Bind(int index, std::string_view text);
  Stmt& BindBlob(int index, std::string_view bytes) {
    return Bind(index, bytes);
  }
  Stmt& BindNull(int index);
  Stmt& Bind(int index, std::optional<int64_t> value) {
    return value.has_value() ? Bind(index, *value) : BindNull(index);
  }

  // Runs the statement on the first call; then true while a row is
  // available.
  absl::StatusOr<bool> Step();
  // Runs it (rows, if any, are dropped).
  absl::Status Run();
  // Its text with the bound values, for a script (Conn::Script).
  std::string Text() const;

  int64_t Int(int col) const;
  bool IsNull(int col) const { return row_[col] == nullptr; }
  std::string Text(int col) const { return std::string(TextView(col)); }
  std::string_view TextView(int col) const {
    return row_[col] == nullptr ? std::string_view()
                                : std::string_view(row_[col], lengths_[col]);
  }
  // Rows matched by the statement (CLIENT_FOUND_ROWS), as SQLite's
  // sqlite3_changes: an UPDATE that sets a row to what it held counts it.
  int64_t Changes() const { return affected_; }

 private:
  Conn& conn_;
  const Parsed& parsed_;
  std::vector<std::string> values_;
  bool ran_ = false;
  absl::Status status_;
  MYSQL_RES* result_ = nullptr;
  MYSQL_ROW row_ = nullptr;
  unsigned long* lengths_ = nullptr;
  int64_t affected_ = 0;
};

class Db {
 public:
  // Connects and brings the schema to kSchemaVersion (see OpenMysqlStores).
  static absl::StatusOr<std::shared_ptr<Db>> Open(const MysqlOptions& options);
  ~Db() = default;

  // "user@host:port/db" or "user@socket/db", for messages.
  const std::string& path() const { return label_; }
  const Clock& clock() const { return *clock_; }
  const MysqlOptions& options() const { return options_; }

  // A connection checked out of the pool; returned when destroyed.
  using Lease = sql::ConnPool<Conn>::Lease;
  // Reads the answer of a read's ROLLBACK sent when the connection was
  // returned (Conn::SendEnd), and drops idle connections the server has
  // closed (a restart), so that they cost no retry.
  absl::StatusOr<Lease> Acquire();

  // Runs `fn(Conn&)` (returning absl::Status or absl::StatusOr<T>) and
  // commits; rolled back if fn fails. A deadlock, a lock-wait timeout or a
  // connection lost before the commit runs fn again (on a new connection
  // if needed), at most max_retries times.
  template <typename Fn>
  auto Write(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Transact(true, std::forward<Fn>(fn));
  }
  // Runs `fn(Conn&)` without a commit (plain reads), retried as Write.
  template <typename Fn>
  auto Read(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Transact(false, std::forward<Fn>(fn));
  }

  // The lock, window and queue stores' transactions (sql::SqlStores): as
  // Write and Read, but not part of the thread's batch, which holds only
  // the repo's writes. A lease or a window key is locked for one short
  // transaction (retried on a deadlock), not for a whole batch, whose
  // deadlocks could not be retried; like Redis beside a SQL repo, the
  // window's adds and a lease outlive a batch that rolls back (they are
  // idempotent, and a lease expires). Except in a batch of one decision
  // (RetriedOnConflict, with MysqlOptions::one_transaction): there they
  // run in the batch (AsideConn), so that the decision commits once, and a
  // deadlock or lock-wait timeout fails the batch as a conflict, after
  // which the manager runs it again the way above.
  template <typename Fn>
  auto WriteAside(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Transact(true, std::forward<Fn>(fn), /*batch=*/false);
  }
  template <typename Fn>
  auto ReadAside(Fn&& fn) -> decltype(fn(std::declval<Conn&>())) {
    return Transact(false, std::forward<Fn>(fn), /*batch=*/false);
  }

  // ---- batches (InstanceRepo::BeginBatch) ----
  // A transaction on a connection bound to the calling thread: until
  // CommitBatch or AbortBatch every Write and Read of this thread on this
  // Db runs in it, without retries (a deadlock rolls the whole transaction
  // back in InnoDB: the batch fails and its caller retries it).
  absl::Status BeginBatch();
  absl::Status CommitBatch();
  void AbortBatch();
  bool InBatch() const;
  // The connection of this thread's batch, or null.
  Conn* BatchConn() const;
  // Fails this thread's batch (its commit will return `st`).
  void FailBatch(const absl::Status& st);
  bool BatchFailed() const;
  // Run on the batch's connection before its commit (the deferred joins).
  // It may send the COMMIT itself, with its last writes in one round trip:
  // it then sets *committed.
  using BeforeCommit = std::function<absl::Status(Conn&, bool* committed)>;
  void SetBeforeCommit(BeforeCommit fn) { before_commit_ = std::move(fn); }

  // The thread's batch is run again after a conflict (RepoBatch::
  // RetriedOnConflict): it may check its joins when it writes them, and
  // with MysqlOptions::one_transaction it takes this thread's WriteAside
  // and ReadAside calls too (AsideConn).
  void RetriedOnConflict();
  // The connection of this thread's batch when it takes the aside calls,
  // or null.
  Conn* AsideConn() const;
  // Window-store housekeeping: true about once every 4096 calls.
  bool SweepDue();
  // The sweep (set by the window store), and a sweep fallen due in this
  // thread's batch, made after its commit in a transaction of its own
  // (best effort: a failure waits for the next one).
  using Sweeper = std::function<absl::Status(Conn&)>;
  void SetSweep(Sweeper fn) { sweep_ = std::move(fn); }
  void SweepAfterCommit();

  // Connects a session with the store's settings.
  absl::StatusOr<std::unique_ptr<Conn>> Connect();

 private:
  explicit Db(const MysqlOptions& options);

  // Puts a connection taken with Lease::Release back.
  void Return(std::unique_ptr<Conn> conn) { pool_.Return(std::move(conn)); }
  static void Backoff(int attempt);
  static void Rollback(Conn& conn);
  static bool Retryable(const Conn& conn, bool committing);

  struct BatchState {
    std::unique_ptr<Conn> conn;
    absl::Status failed;
    // Takes the aside calls (RetriedOnConflict).
    bool asides = false;
    // Has run one.
    bool aside_used = false;
    // A sweep fell due in it (SweepAfterCommit).
    bool sweep_after = false;
  };
  BatchState* Batch() const;
  // In a batch that has run aside calls, a deadlock, a lock-wait timeout or
  // a duplicate key that failed it (an aside call's, or a repo write's
  // after it changed rows) is a conflict: `st` as an IsConflict error (the
  // manager runs the batch again, the aside calls then in transactions of
  // their own, and finds what the other writer wrote). Else `st`.
  static absl::Status AsConflict(const BatchState& batch, const Conn& conn,
                                 absl::Status st);

  template <typename Fn>
  auto Transact(bool write, Fn&& fn, bool use_batch = true)
      -> decltype(fn(std::declval<Conn&>())) {
    using Result = decltype(fn(std::declval<Conn&>()));
    BatchState* batch = Batch();
    if (batch != nullptr && !use_batch && !batch->asides) batch = nullptr;
    if (batch != nullptr) {
      if (!batch->failed.ok()) return Result(batch->failed);
      Conn& conn = *batch->conn;
      if (!use_batch) batch->aside_used = true;
      const int64_t before = conn.total_changes();
      conn.clear_error();
      Result r = fn(conn);
      // A refusal before any change leaves the batch as it was (so does a
      // duplicate key: InnoDB undoes that statement alone); a failure
      // after a change, or another server error (a deadlock has rolled the
      // whole transaction back), fails the batch. An aside call's
      // duplicate key (a window key another writer created first), which
      // its own transaction would have retried, fails it as a conflict.
      const unsigned err = conn.last_error();
      if (!StatusOf(r).ok() &&
          (conn.total_changes() != before || (err != 0 && err != kErDupEntry) ||
           (!use_batch && err == kErDupEntry))) {
        batch->failed = AsConflict(*batch, conn, StatusOf(r));
        if (IsConflict(batch->failed)) return Result(batch->failed);
      }
      return r;
    }
    for (int attempt = 0;; ++attempt) {
      absl::StatusOr<Lease> conn = Acquire();
      if (!conn.ok()) return Result(conn.status());
      (*conn)->clear_error();
      (*conn)->ResetCommit();
      absl::Status st = (*conn)->RefreshMemo();
      bool committing = false;
      if (st.ok()) {
        Result r = fn(**conn);
        const bool committed = (*conn)->committed();
        const bool commit_failed = (*conn)->commit_failed();
        (*conn)->ResetCommit();  // nothing of it reaches a later user
        if (StatusOf(r).ok()) {
          if (!write) {
            (*conn)->SendEnd();
            return r;
          }
          if (committed) return r;  // with its last statement
          committing = true;
          (*conn)->clear_error();
          if (mysql_commit((*conn)->handle()) == 0) return r;
          st = (*conn)->Error("COMMIT");
        } else {
          st = StatusOf(r);
          committing = commit_failed;
        }
      }
      if (!(*conn)->broken()) Rollback(**conn);
      if (!Retryable(**conn, committing) || attempt >= options_.max_retries) {
        return Result(st);
      }
      Backoff(attempt);
    }
  }

  static absl::Status StatusOf(const absl::Status& s) { return s; }
  template <typename T>
  static absl::Status StatusOf(const absl::StatusOr<T>& s) {
    return s.status();
  }

  MysqlOptions options_;
  const Clock* clock_;
  std::string label_;
  sql::ConnPool<Conn> pool_;
  std::mutex sweep_mu_;
  uint64_t calls_since_sweep_ = 0;
  BeforeCommit before_commit_;
  Sweeper sweep_;
};

}  // namespace converge::mysql::internal

#endif  // CONVERGE_ADAPTERS_MYSQL_SRC_DB_H_
