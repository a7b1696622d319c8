#include "db.h"

#include <errmsg.h>
#include <mysqld_error.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <thread>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "codec.h"
#include "converge/store/errors.h"
#include "internal/strings.h"

namespace converge::mysql::internal {

namespace {

using converge::internal::AV;
using converge::internal::StrCat;

// The client library's own errors: 2000 to 2999, and MariaDB Connector/C's
// 5000 to 5999. The server's run below 2000, and on MySQL 5.7 and 8 and
// MariaDB also from 3000 and 4000 up.
bool IsClientError(unsigned err) {
  return (err >= CR_MIN_ERROR && err <= CR_MAX_ERROR) ||
         (err >= CER_MIN_ERROR && err <= CER_MAX_ERROR);
}

unsigned Secs(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  return static_cast<unsigned>(std::min<int64_t>(
      absl::ToInt64Seconds(absl::Ceil(d, absl::Seconds(1))), 365 * 24 * 3600));
}

// The batch open on this thread (at most one, whatever the Db).
struct ThreadBatch {
  Db* db = nullptr;
  void* state = nullptr;
};
thread_local ThreadBatch t_batch;

}  // namespace

// ---------------------------------------------------------------------------
// Errors

bool ConnectionLost(unsigned err) {
  switch (err) {
    case CR_SERVER_GONE_ERROR:
    case CR_SERVER_LOST:
    case CR_CONNECTION_ERROR:
    case CR_CONN_HOST_ERROR:
    case CR_SERVER_LOST_EXTENDED:
    case ER_SERVER_SHUTDOWN:
    case ER_CONNECTION_KILLED:
    case ER_QUERY_INTERRUPTED:
      return true;
    default:
      return false;
  }
}

absl::StatusCode CodeFor(unsigned err) {
  if (ConnectionLost(err)) return absl::StatusCode::kUnavailable;
  switch (err) {
    case CR_UNKNOWN_HOST:
    case ER_CON_COUNT_ERROR:
    case ER_TOO_MANY_USER_CONNECTIONS:
    case ER_LOCK_WAIT_TIMEOUT:
    case ER_OUT_OF_RESOURCES:
      return absl::StatusCode::kUnavailable;
    case ER_LOCK_DEADLOCK:
      return absl::StatusCode::kAborted;
    case ER_STATEMENT_TIMEOUT:
      return absl::StatusCode::kDeadlineExceeded;
    case ER_ACCESS_DENIED_ERROR:
    case ER_DBACCESS_DENIED_ERROR:
    case ER_TABLEACCESS_DENIED_ERROR:
    case ER_COLUMNACCESS_DENIED_ERROR:
    case ER_SPECIFIC_ACCESS_DENIED_ERROR:
    case ER_READ_ONLY_MODE:
    case ER_OPTION_PREVENTS_STATEMENT:
      return absl::StatusCode::kPermissionDenied;
    case ER_BAD_DB_ERROR:
      return absl::StatusCode::kNotFound;
    case ER_DUP_ENTRY:
      return absl::StatusCode::kAlreadyExists;
    case ER_DATA_TOO_LONG:
    case ER_TRUNCATED_WRONG_VALUE_FOR_FIELD:
    case ER_WARN_DATA_OUT_OF_RANGE:
    case ER_TRUNCATED_WRONG_VALUE:
    case ER_INVALID_CHARACTER_STRING:
    case ER_NET_PACKET_TOO_LARGE:
      return absl::StatusCode::kInvalidArgument;
    case ER_NO_SUCH_TABLE:
    case ER_BAD_FIELD_ERROR:
      return absl::StatusCode::kFailedPrecondition;
    case ER_RECORD_FILE_FULL:
    case ER_DISK_FULL:
      return absl::StatusCode::kResourceExhausted;
    default:
      return absl::StatusCode::kInternal;
  }
}

absl::Status Conn::Error(std::string_view what) {
  last_error_ = mysql_errno(handle_);
  if (ConnectionLost(last_error_)) broken_ = true;
  std::string hint;
  switch (last_error_) {
    case ER_LOCK_WAIT_TIMEOUT:
      hint =
          StrCat("; a row lock was held for longer than lock_wait_timeout (",
                 absl::FormatDuration(db_->options().lock_wait_timeout), ")");
      break;
    case ER_LOCK_DEADLOCK:
      hint = StrCat("; rolled back (a call outside a batch runs again up to ",
                    db_->options().max_retries,
                    " times first; a batch is not run again by the store)");
      break;
    case ER_NO_SUCH_TABLE:
      hint = "; is the schema in place (SchemaMode::kMigrate)?";
      break;
    default:
      break;
  }
  return absl::Status(
      CodeFor(last_error_),
      StrCat("mysql: ", db_->path(), ": ", what, ": ", mysql_error(handle_),
             " (errno ", last_error_, ")", hint));
}

// ---------------------------------------------------------------------------
// Conn and Stmt

Conn::~Conn() { mysql_close(handle_); }

const Parsed& Conn::Parse(const char* sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) return *it->second;
  auto p = std::make_unique<Parsed>();
  std::string piece;
  // "?N" outside quotes is parameter N.
  char quote = 0;
  for (const char* c = sql; *c != '\0'; ++c) {
    if (quote != 0) {
      if (*c == quote) quote = 0;
      piece += *c;
      continue;
    }
    if (*c == '\'' || *c == '"' || *c == '`') {
      quote = *c;
      piece += *c;
      continue;
    }
    if (*c == '?' && c[1] >= '0' && c[1] <= '9') {
      int n = 0;
      while (c[1] >= '0' && c[1] <= '9') {
        n = n * 10 + (c[1] - '0');
        ++c;
      }
      p->pieces.push_back(std::move(piece));
      piece.clear();
      p->params.push_back(n);
      p->max_param = std::max(p->max_param, n);
      continue;
    }
    piece += *c;
  }
  p->pieces.push_back(std::move(piece));
  p->params.push_back(0);
  return *cache_.emplace(sql, std::move(p)).first->second;
}

absl::Status Conn::Query(const std::string& query, MYSQL_RES** result,
                         int64_t* affected) {
  if (commit_with_next_) {
    commit_with_next_ = false;
    std::vector<int64_t> changed;
    size_t failed_at = 0;
    absl::Status st = Script({query, "COMMIT"}, &changed, &failed_at);
    if (!st.ok()) {
      // Sent together: a connection lost before either answer may have
      // run the COMMIT as well.
      commit_failed_ = MayHaveCommitted(failed_at == 1);
      return st;
    }
    committed_ = true;
    if (result != nullptr) *result = nullptr;
    if (affected != nullptr) *affected = changed[0];
    return absl::OkStatus();
  }
  if (mysql_real_query(handle_, query.data(), query.size()) != 0) {
    return Error(
        StrCat("running \"", std::string_view(query).substr(0, 60), "\""));
  }
  if (mysql_field_count(handle_) > 0) {
    MYSQL_RES* res = mysql_store_result(handle_);
    if (res == nullptr) {
      return Error(StrCat("reading the rows of \"",
                          std::string_view(query).substr(0, 60), "\""));
    }
    if (result != nullptr) {
      *result = res;
    } else {
      mysql_free_result(res);
    }
    if (affected != nullptr) *affected = 0;
    return absl::OkStatus();
  }
  const my_ulonglong n = mysql_affected_rows(handle_);
  const int64_t changed =
      n == static_cast<my_ulonglong>(-1) ? 0 : static_cast<int64_t>(n);
  total_changes_ += changed;
  if (affected != nullptr) *affected = changed;
  return absl::OkStatus();
}

absl::Status Conn::Script(const std::vector<std::string>& statements,
                          std::vector<int64_t>* affected, size_t* failed_at) {
  return Run(statements, nullptr, affected, nullptr, failed_at);
}

absl::Status Conn::ScriptWithRows(std::vector<std::string> statements,
                                  const RowsFn& rows,
                                  std::vector<int64_t>* affected,
                                  std::vector<int64_t>* insert_ids,
                                  size_t* failed_at) {
  if (!commit_with_next_) {
    return Run(statements, &rows, affected, insert_ids, failed_at);
  }
  commit_with_next_ = false;
  statements.push_back("COMMIT");
  const size_t before = affected->size();
  absl::Status st = Run(statements, &rows, affected, insert_ids, failed_at);
  if (affected->size() - before == statements.size()) {
    // Every answer read, the COMMIT's too: committed (an error of `rows`
    // alone is returned as it is).
    committed_ = true;
    affected->pop_back();
    if (insert_ids != nullptr) insert_ids->pop_back();
    return st;
  }
  commit_failed_ = MayHaveCommitted(*failed_at + 1 == statements.size());
  return st;
}

bool Conn::MayHaveCommitted(bool failed_at_commit) const {
  // The server stops a script at its first error, so an error it sent
  // (a deadlock, a duplicate, even "shutting down" or "killed") before the
  // COMMIT means the COMMIT did not run; a connection lost on the client's
  // side (IsClientError) may have come after it ran.
  return failed_at_commit ||
         (ConnectionLost(last_error_) && IsClientError(last_error_));
}

absl::Status Conn::Run(const std::vector<std::string>& statements,
                       const RowsFn* rows, std::vector<int64_t>* affected,
                       std::vector<int64_t>* insert_ids, size_t* failed_at) {
  *failed_at = 0;
  if (statements.empty()) return absl::OkStatus();
  auto failed = [&](size_t i) {
    *failed_at = i;
    return Error(StrCat("running \"",
                        std::string_view(statements[i]).substr(0, 60), "\""));
  };
  const std::string text = absl::StrJoin(statements, ";");
  if (mysql_real_query(handle_, text.data(), text.size()) != 0) {
    return failed(0);
  }
  absl::Status row_error;
  for (size_t i = 0;; ++i) {
    if (mysql_field_count(handle_) > 0) {
      MYSQL_RES* res = mysql_store_result(handle_);
      if (res == nullptr) {
        // A server's error (as a refused join's) ends the script and leaves the
        // connection in step; a client's (IsClientError) may not.
        absl::Status st = failed(i);
        if (IsClientError(last_error_)) broken_ = true;
        return st;
      }
      if (rows != nullptr && *rows) {
        while (row_error.ok()) {
          MYSQL_ROW row = mysql_fetch_row(res);
          if (row == nullptr) break;
          row_error = (*rows)(i, ResultRow{row, mysql_fetch_lengths(res)});
        }
      }
      mysql_free_result(res);
      affected->push_back(0);
      if (insert_ids != nullptr) insert_ids->push_back(0);
    } else {
      const my_ulonglong n = mysql_affected_rows(handle_);
      const int64_t changed =
          n == static_cast<my_ulonglong>(-1) ? 0 : static_cast<int64_t>(n);
      total_changes_ += changed;
      affected->push_back(changed);
      if (insert_ids != nullptr) {
        insert_ids->push_back(static_cast<int64_t>(mysql_insert_id(handle_)));
      }
    }
    const int next = mysql_next_result(handle_);
    if (next < 0) break;
    if (next > 0) return failed(std::min(i + 1, statements.size() - 1));
  }
  return row_error;
}

absl::Status Conn::Exec(std::string_view sql) {
  return Query(std::string(sql), nullptr, nullptr);
}

absl::Status Conn::RefreshMemo() {
  memo_.state.clear();
  if (memo_.open.size() > sql::RepoMemo::kMaxEntries) memo_.Clear();
  return absl::OkStatus();
}

void Conn::AppendLiteral(std::string* out, std::string_view text) const {
  if (sql::IsUtf8(text)) {
    const size_t at = out->size();
    out->resize(at + 2 * text.size() + 3);
    (*out)[at] = '\'';
    const unsigned long n = mysql_real_escape_string(
        handle_, out->data() + at + 1, text.data(), text.size());
    out->resize(at + 1 + n);
    out->push_back('\'');
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("x'");
  for (unsigned char c : text) {
    out->push_back(kHex[c >> 4]);
    out->push_back(kHex[c & 15]);
  }
  out->push_back('\'');
}

Stmt::Stmt(Conn& conn, const char* sql)
    : conn_(conn), parsed_(conn.Parse(sql)) {
  values_.assign(parsed_.max_param, "NULL");
}

Stmt::~Stmt() {
  if (result_ != nullptr) mysql_free_result(result_);
}

Stmt& Stmt::Bind(int index, int64_t value) {
  values_[index - 1] = StrCat(value);
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view text) {
  std::string& v = values_[index - 1];
  v.clear();
  conn_.AppendLiteral(&v, text);
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  values_[index - 1] = "NULL";
  return *this;
}

std::string Stmt::Text() const {
  std::string query;
  size_t size = 0;
  for (const std::string& p : parsed_.pieces) size += p.size();
  for (const std::string& v : values_) size += v.size();
  query.reserve(size + 16);
  for (size_t i = 0; i < parsed_.pieces.size(); ++i) {
    query += parsed_.pieces[i];
    if (parsed_.params[i] > 0) query += values_[parsed_.params[i] - 1];
  }
  return query;
}

absl::StatusOr<bool> Stmt::Step() {
  if (!status_.ok()) return status_;
  if (!ran_) {
    ran_ = true;
    status_ = conn_.Query(Text(), &result_, &affected_);
    if (!status_.ok()) return status_;
  }
  if (result_ == nullptr) return false;
  row_ = mysql_fetch_row(result_);
  if (row_ == nullptr) return false;
  lengths_ = mysql_fetch_lengths(result_);
  return true;
}

absl::Status Stmt::Run() {
  absl::StatusOr<bool> row = Step();
  return row.ok() ? absl::OkStatus() : row.status();
}

int64_t Stmt::Int(int col) const {
  if (row_[col] == nullptr) return 0;
  int64_t v = 0;
  (void)absl::SimpleAtoi(absl::string_view(row_[col], lengths_[col]), &v);
  return v;
}

// ---------------------------------------------------------------------------
// Db

Db::Db(const MysqlOptions& options)
    : options_(options),
      clock_(options.clock != nullptr ? options.clock : RealClock::Default()),
      pool_([this] { return Connect(); },
            static_cast<size_t>(std::max(options.pool_size, 1))) {
  std::string where = options.unix_socket.empty()
                          ? StrCat(options.host, ":", options.port)
                          : options.unix_socket;
  label_ = options.user.empty()
               ? StrCat(where, "/", options.database)
               : StrCat(options.user, "@", where, "/", options.database);
}

absl::StatusOr<std::unique_ptr<Conn>> Db::Connect() {
  MYSQL* h = mysql_init(nullptr);
  if (h == nullptr) {
    return absl::ResourceExhaustedError(
        StrCat("mysql: ", label_, ": mysql_init failed (out of memory)"));
  }
  auto conn = std::make_unique<Conn>(this, h);
  unsigned connect = Secs(options_.connect_timeout);
  unsigned read = Secs(options_.read_timeout);
  unsigned write = Secs(options_.write_timeout);
  if (connect > 0) mysql_options(h, MYSQL_OPT_CONNECT_TIMEOUT, &connect);
  if (read > 0) mysql_options(h, MYSQL_OPT_READ_TIMEOUT, &read);
  if (write > 0) mysql_options(h, MYSQL_OPT_WRITE_TIMEOUT, &write);
  mysql_options(h, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  my_bool no = 0;
  mysql_options(h, MYSQL_OPT_RECONNECT, &no);  // we reconnect ourselves
  const bool socket = !options_.unix_socket.empty();
  if (mysql_real_connect(
          h, socket ? nullptr : options_.host.c_str(),
          options_.user.empty() ? nullptr : options_.user.c_str(),
          options_.password.c_str(), options_.database.c_str(),
          socket ? 0 : static_cast<unsigned>(options_.port),
          socket ? options_.unix_socket.c_str() : nullptr,
          CLIENT_FOUND_ROWS | CLIENT_MULTI_STATEMENTS) == nullptr) {
    absl::Status st = conn->Error("cannot connect");
    if (ConnectionLost(mysql_errno(h)) || mysql_errno(h) == CR_UNKNOWN_HOST) {
      // The server cannot be reached: any call now would fail so, each
      // after the connect timeout.
      return StoreDownError(std::string(st.message()));
    }
    return st;
  }
  if (auto st = conn->Exec(StrCat(
          "SET SESSION autocommit = 0, SESSION innodb_lock_wait_timeout = ",
          std::max(1u, Secs(options_.lock_wait_timeout)),
          ", SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,"
          "NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO'"
          // IN lists of up to 1,000 values (a batch's chunks) estimated by
          // index dives, not by sampled statistics: with the default (200)
          // a table growing fast could look as if a key had few distinct
          // values, and a lookup of 333 relations by related_id ran as a
          // full scan (17 ms instead of 1) in benchmark runs with three
          // processors.
          ", SESSION eq_range_index_dive_limit = 1001"));
      !st.ok()) {
    return st;
  }
  if (auto st =
          conn->Exec("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
      !st.ok()) {
    return st;
  }
  return conn;
}

void Conn::SendEnd() {
  static constexpr char kRollback[] = "ROLLBACK";
  if (mysql_send_query(handle_, kRollback, sizeof(kRollback) - 1) != 0) {
    (void)Error("ROLLBACK");
    broken_ = true;  // the transaction may be open: do not pool it
    return;
  }
  end_pending_ = true;
}

absl::Status Conn::FinishEnd() {
  if (!end_pending_) return absl::OkStatus();
  end_pending_ = false;
  if (mysql_read_query_result(handle_) != 0) {
    absl::Status st = Error("ROLLBACK");
    broken_ = true;
    return st;
  }
  return absl::OkStatus();
}

bool Conn::Stale() const {
  const my_socket fd = mysql_get_socket(handle_);
  if (fd < 0) return true;
  pollfd p{};
  p.fd = fd;
  p.events = POLLIN | POLLRDHUP;
  return poll(&p, 1, 0) != 0;
}

absl::StatusOr<Db::Lease> Db::Acquire() {
  // At most every pooled connection, then a new one (which has no answer
  // due and is not stale).
  for (int tries = 0;; ++tries) {
    absl::StatusOr<Lease> lease = pool_.Acquire();
    if (!lease.ok()) return lease.status();
    const bool ended = (*lease)->FinishEnd().ok();
    if ((ended && !(*lease)->Stale()) || tries > options_.pool_size) {
      // A failed ROLLBACK answer after that many tries: the caller meets
      // the broken connection and its error.
      return lease;
    }
    // Dropped: a broken connection is not pooled again.
    std::unique_ptr<Conn> dead = lease->Release();
  }
}

void Db::Rollback(Conn& conn) {
  conn.memo().Clear();
  conn.deferred().Clear();
  const unsigned saved = conn.last_error();
  if (mysql_rollback(conn.handle()) != 0) (void)conn.Error("ROLLBACK");
  // Keep the error that failed the transaction, for Retryable.
  conn.set_last_error(saved);
}

bool Db::Retryable(const Conn& conn, bool committing) {
  const unsigned err = conn.last_error();
  // A duplicate key: another transaction inserted the same row first (a
  // window key, a decision); run again, the row is read this time.
  if (err == ER_LOCK_DEADLOCK || err == ER_LOCK_WAIT_TIMEOUT ||
      err == ER_DUP_ENTRY) {
    return true;
  }
  // A connection lost before the commit was sent: the server rolled the
  // transaction back. Lost during the commit: the outcome is unknown.
  return ConnectionLost(err) && !committing;
}

void Db::Backoff(int attempt) {
  // 1, 2, 4, ... 64 ms, jittered, so that transactions that collided do
  // not collide again in step.
  thread_local uint64_t seed =
      std::hash<std::thread::id>()(std::this_thread::get_id());
  seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  const int64_t base = int64_t{1000} << std::min(attempt, 6);
  const int64_t jitter = static_cast<int64_t>((seed >> 33) % base);
  std::this_thread::sleep_for(std::chrono::microseconds(base / 2 + jitter));
}

Db::BatchState* Db::Batch() const {
  return t_batch.db == this ? static_cast<BatchState*>(t_batch.state) : nullptr;
}

bool Db::InBatch() const { return Batch() != nullptr; }

Conn* Db::BatchConn() const {
  BatchState* b = Batch();
  return b != nullptr ? b->conn.get() : nullptr;
}

void Db::FailBatch(const absl::Status& st) {
  if (BatchState* b = Batch(); b != nullptr && b->failed.ok()) b->failed = st;
}

bool Db::BatchFailed() const {
  BatchState* b = Batch();
  return b != nullptr && !b->failed.ok();
}

absl::Status Db::BeginBatch() {
  if (t_batch.db != nullptr) {
    return absl::FailedPreconditionError(
        StrCat("mysql: ", label_,
               ": a batch is already open on this thread; commit or "
               "destroy it first"));
  }
  absl::StatusOr<Lease> lease = Acquire();
  if (!lease.ok()) return lease.status();
  auto state = std::make_unique<BatchState>();
  (*lease)->clear_error();
  if (auto st = (*lease)->RefreshMemo(); !st.ok()) return st;
  (*lease)->deferred().Clear();
  (*lease)->ResetCommit();
  (*lease)->set_in_batch(true);
  state->conn = lease->Release();
  t_batch.db = this;
  t_batch.state = state.release();
  return absl::OkStatus();
}

absl::Status Db::CommitBatch() {
  if (t_batch.db != this) {
    return absl::FailedPreconditionError(
        StrCat("mysql: ", label_, ": no batch is open on this thread"));
  }
  std::unique_ptr<BatchState> batch(static_cast<BatchState*>(t_batch.state));
  t_batch = ThreadBatch{};
  Conn& conn = *batch->conn;
  absl::Status st = batch->failed;
  bool committed = false;
  if (st.ok() && before_commit_) {
    conn.clear_error();
    st = AsConflict(*batch, conn, before_commit_(conn, &committed));
  }
  if (!st.ok()) {
    // The same error (its code and its marks: IsConflict), said whole.
    absl::Status said(st.code(), StrCat("mysql: ", label_,
                                        ": the batch was rolled back after "
                                        "a failed write: ",
                                        st.message()));
    st.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
      said.SetPayload(url, payload);
    });
    st = std::move(said);
  } else if (!committed) {
    conn.clear_error();
    if (mysql_commit(conn.handle()) != 0) {
      st = AsConflict(*batch, conn, conn.Error("COMMIT"));
    }
  }
  if (!st.ok() && !conn.broken()) Rollback(conn);
  // What the batch checked holds only in its transaction.
  conn.deferred().Clear();
  conn.set_in_batch(false);
  if (st.ok() && batch->sweep_after && sweep_) {
    conn.clear_error();
    const bool swept = sweep_(conn).ok() && mysql_commit(conn.handle()) == 0;
    if (!swept && !conn.broken()) Rollback(conn);
  }
  Return(std::move(batch->conn));
  return st;
}

void Db::AbortBatch() {
  if (t_batch.db != this) return;
  std::unique_ptr<BatchState> batch(static_cast<BatchState*>(t_batch.state));
  t_batch = ThreadBatch{};
  if (!batch->conn->broken()) Rollback(*batch->conn);
  batch->conn->deferred().Clear();
  batch->conn->set_in_batch(false);
  Return(std::move(batch->conn));
}

void Db::RetriedOnConflict() {
  if (BatchState* b = Batch(); b != nullptr) {
    b->conn->deferred().may_defer_checks = true;
    b->asides = options_.one_transaction;
  }
}

Conn* Db::AsideConn() const {
  BatchState* b = Batch();
  return b != nullptr && b->asides ? b->conn.get() : nullptr;
}

absl::Status Db::AsConflict(const BatchState& batch, const Conn& conn,
                            absl::Status st) {
  if (st.ok() || !batch.aside_used || IsConflict(st)) return st;
  const unsigned err = conn.last_error();
  if (err != ER_LOCK_DEADLOCK && err != ER_LOCK_WAIT_TIMEOUT &&
      err != ER_DUP_ENTRY) {
    return st;
  }
  return ConflictError(
      StrCat(st.message(),
             "; the decision's transaction, which held its window keys and "
             "lease, is rolled back and runs again"));
}

void Db::SweepAfterCommit() {
  if (BatchState* b = Batch(); b != nullptr) b->sweep_after = true;
}

bool Db::SweepDue() {
  std::lock_guard<std::mutex> lock(sweep_mu_);
  if (++calls_since_sweep_ < 4096) return false;
  calls_since_sweep_ = 0;
  return true;
}

}  // namespace converge::mysql::internal
