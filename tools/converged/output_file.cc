#include "output_file.h"

#include <utility>

#include "absl/strings/str_cat.h"

#ifdef CONVERGED_WITH_SQLITE
#include <errno.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstring>

namespace converge::service {
namespace {

constexpr int64_t kSchemaVersion = 1;

constexpr const char kSchema[] =
    "CREATE TABLE IF NOT EXISTS converged_meta (name TEXT PRIMARY KEY, "
    "value INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS converged_output (seq INTEGER PRIMARY KEY, "
    "kind INTEGER NOT NULL, line TEXT NOT NULL);";

}  // namespace

struct OutputFile::Handle {
  sqlite3* db = nullptr;
  sqlite3_stmt* insert = nullptr;
  sqlite3_stmt* set_meta = nullptr;
  sqlite3_stmt* trim = nullptr;
  std::string path;

  ~Handle() {
    sqlite3_finalize(insert);
    sqlite3_finalize(set_meta);
    sqlite3_finalize(trim);
    sqlite3_close_v2(db);
  }

  // The status of SQLite result `rc` in doing `what`.
  absl::Status Error(int rc, const std::string& what) const {
    const std::string message =
        absl::StrCat("outputs.file ", path, ": ", what, ": ",
                     db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    switch (rc & 0xff) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return absl::FailedPreconditionError(absl::StrCat(
            message,
            " (the file is in use by another process or connection: give "
            "each converged an outputs file of its own, not the store's)"));
      case SQLITE_NOTADB:
      case SQLITE_CORRUPT:
        return absl::DataLossError(message);
      case SQLITE_READONLY:
      case SQLITE_PERM:
        return absl::PermissionDeniedError(message);
      default:
        return absl::UnavailableError(message);
    }
  }

  absl::Status Exec(const char* sql, const std::string& what) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? absl::OkStatus() : Error(rc, what);
  }

  absl::Status Prepare(const char* sql, sqlite3_stmt** stmt) {
    const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                      stmt, nullptr);
    return rc == SQLITE_OK ? absl::OkStatus() : Error(rc, "preparing");
  }

  // Runs `stmt` to its end and resets it.
  absl::Status Run(sqlite3_stmt* stmt, const std::string& what) {
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
  }

  absl::Status SetMeta(const char* name, int64_t value) {
    sqlite3_bind_text(set_meta, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(set_meta, 2, value);
    return Run(set_meta, absl::StrCat("writing ", name));
  }

  // The meta value `name`, or `fallback` when it is not there.
  absl::StatusOr<int64_t> Meta(const char* name, int64_t fallback) {
    sqlite3_stmt* q = nullptr;
    const int prc = sqlite3_prepare_v2(
        db, "SELECT value FROM converged_meta WHERE name = ?1", -1, &q,
        nullptr);
    if (prc != SQLITE_OK) return Error(prc, "preparing");
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int64_t value = fallback;
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
      value = sqlite3_column_int64(q, 0);
      rc = sqlite3_step(q);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return Error(rc, absl::StrCat("reading ", name));
    return value;
  }
};

OutputFile::OutputFile(std::string path, std::unique_ptr<Handle> h)
    : path_(std::move(path)), h_(std::move(h)) {}

OutputFile::~OutputFile() = default;

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::Open(
    const std::string& path, int64_t keep, int64_t new_epoch, State* state) {
  // The file and its -wal are written in its directory: say so before
  // SQLite's "unable to open database file".
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  if (path.empty() || path == ":memory:" || path.rfind("file:", 0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "outputs.file: expected the path of a file, got \"", path, "\""));
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    const int err = errno;
    const std::string start =
        absl::StrCat("outputs.file ", path, ": its directory ", dir);
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat(start, " does not exist"));
    }
    if (err == EACCES || err == EROFS || err == EPERM) {
      return absl::PermissionDeniedError(
          absl::StrCat(start,
                       " is not writable (the file and its -wal are written "
                       "there): ",
                       std::strerror(err)));
    }
    return absl::FailedPreconditionError(
        absl::StrCat(start, " cannot be used: ", std::strerror(err)));
  }
  auto h = std::make_unique<Handle>();
  h->path = path;
  const int rc = sqlite3_open_v2(
      path.c_str(), &h->db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) return h->Error(rc, "opening");
  sqlite3_extended_result_codes(h->db, 1);
  // A second process fails at once (busy timeout 0) rather than waiting.
  sqlite3_busy_timeout(h->db, 0);
  // EXCLUSIVE before the first read: the write lock, once taken, is kept,
  // and the WAL index lives in this process's memory.
  absl::Status st = h->Exec("PRAGMA locking_mode = EXCLUSIVE", "setting it up");
  if (!st.ok()) return st;
  {
    // A damaged file is refused before anything is written to it.
    sqlite3_stmt* q = nullptr;
    if (st = h->Prepare("PRAGMA quick_check(1)", &q); !st.ok()) return st;
    const int step = sqlite3_step(q);
    std::string verdict;
    if (step == SQLITE_ROW && sqlite3_column_text(q, 0) != nullptr) {
      verdict = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    if (step != SQLITE_ROW) return h->Error(step, "checking it");
    if (verdict != "ok") {
      return absl::DataLossError(absl::StrCat("outputs.file ", path,
                                              " is damaged (PRAGMA "
                                              "quick_check: ",
                                              verdict, ")"));
    }
  }
  {
    // Another program's file (a converge store's above all) is not taken
    // over.
    sqlite3_stmt* q = nullptr;
    if (st = h->Prepare("SELECT name FROM sqlite_master WHERE type = 'table' "
                        "AND name NOT IN ('converged_meta', "
                        "'converged_output') ORDER BY name LIMIT 1",
                        &q);
        !st.ok()) {
      return st;
    }
    const int step = sqlite3_step(q);
    std::string other;
    if (step == SQLITE_ROW && sqlite3_column_text(q, 0) != nullptr) {
      other = reinterpret_cast<const char*>(sqlite3_column_text(q, 0));
    }
    sqlite3_finalize(q);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
      return h->Error(step, "reading its schema");
    }
    if (!other.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "outputs.file ", path,
          other.rfind("converge_", 0) == 0
              ? std::string(" holds a converge store")
              : absl::StrCat(" holds tables of another program (", other, ")"),
          "; give the outputs a file of their own"));
    }
  }
  if (st = h->Exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL",
                   "setting it up");
      !st.ok()) {
    return st;
  }
  if (st = h->Exec("BEGIN IMMEDIATE", "locking it"); !st.ok()) return st;
  auto fail = [&](absl::Status s) {
    sqlite3_exec(h->db, "ROLLBACK", nullptr, nullptr, nullptr);
    return s;
  };
  if (st = h->Exec(kSchema, "creating its tables"); !st.ok()) return fail(st);
  if (st = h->Prepare("INSERT OR REPLACE INTO converged_meta (name, value) "
                      "VALUES (?1, ?2)",
                      &h->set_meta);
      !st.ok()) {
    return fail(st);
  }
  absl::StatusOr<int64_t> version = h->Meta("schema_version", 0);
  if (!version.ok()) return fail(version.status());
  if (*version > kSchemaVersion) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat("outputs.file ", path, " has schema version ", *version,
                     ", newer than this converged supports (", kSchemaVersion,
                     "); use a newer converged or another file")));
  }
  if (*version == 0) {
    for (const auto& [name, value] :
         {std::pair<const char*, int64_t>{"schema_version", kSchemaVersion},
          {"epoch", new_epoch},
          {"last_seq", 0},
          {"webhook_cursor", 0}}) {
      if (st = h->SetMeta(name, value); !st.ok()) return fail(st);
    }
  }
  absl::StatusOr<int64_t> epoch = h->Meta("epoch", new_epoch);
  absl::StatusOr<int64_t> last = h->Meta("last_seq", 0);
  absl::StatusOr<int64_t> cursor = h->Meta("webhook_cursor", 0);
  for (const absl::StatusOr<int64_t>* v : {&epoch, &last, &cursor}) {
    if (!v->ok()) return fail(v->status());
  }
  if (*last < 0 || *cursor < 0 || *cursor > *last) {
    return fail(absl::DataLossError(
        absl::StrCat("outputs.file ", path, " is damaged (last_seq ", *last,
                     ", webhook_cursor ", *cursor, ")")));
  }
  state->epoch = *epoch;
  state->last_seq = *last;
  state->webhook_cursor = *cursor;
  state->outputs.clear();
  sqlite3_stmt* q = nullptr;
  if (st = h->Prepare("SELECT seq, kind, line FROM converged_output WHERE "
                      "seq > ?1 ORDER BY seq",
                      &q);
      !st.ok()) {
    return fail(st);
  }
  sqlite3_bind_int64(q, 1, *last - keep);
  int step;
  while ((step = sqlite3_step(q)) == SQLITE_ROW) {
    StoredOutput o;
    o.seq = sqlite3_column_int64(q, 0);
    o.kind = sqlite3_column_int(q, 1);
    const unsigned char* text = sqlite3_column_text(q, 2);
    const int bytes = sqlite3_column_bytes(q, 2);
    // Every line is one JSON object.
    if (o.kind < 0 || o.kind > 2 || text == nullptr || bytes < 2 ||
        text[0] != '{' || text[bytes - 1] != '}' || o.seq > *last ||
        o.seq <= 0) {
      sqlite3_finalize(q);
      return fail(absl::DataLossError(absl::StrCat(
          "outputs.file ", path, ": output ", o.seq, " is damaged (kind ",
          o.kind, ", last_seq ", *last, ")")));
    }
    o.line.assign(reinterpret_cast<const char*>(text),
                  static_cast<size_t>(bytes));
    state->outputs.push_back(std::move(o));
  }
  sqlite3_finalize(q);
  if (step != SQLITE_DONE) return fail(h->Error(step, "reading its outputs"));
  if (st = h->Exec("COMMIT", "committing"); !st.ok()) return fail(st);
  if (st = h->Prepare("INSERT INTO converged_output (seq, kind, line) "
                      "VALUES (?1, ?2, ?3)",
                      &h->insert);
      !st.ok()) {
    return st;
  }
  if (st = h->Prepare("DELETE FROM converged_output WHERE seq <= ?1", &h->trim);
      !st.ok()) {
    return st;
  }
  return std::unique_ptr<OutputFile>(new OutputFile(path, std::move(h)));
}

absl::Status OutputFile::Write(absl::Span<const StoredOutput> outputs,
                               int64_t last_seq, int64_t webhook_cursor,
                               int64_t keep) {
  Handle& h = *h_;
  // A transaction a failed ROLLBACK left open would fail every BEGIN.
  if (!sqlite3_get_autocommit(h.db)) {
    sqlite3_exec(h.db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  if (absl::Status st = h.Exec("BEGIN IMMEDIATE", "beginning a write");
      !st.ok()) {
    return st;
  }
  absl::Status st;
  for (const StoredOutput& o : outputs) {
    sqlite3_bind_int64(h.insert, 1, o.seq);
    sqlite3_bind_int(h.insert, 2, o.kind);
    sqlite3_bind_text(h.insert, 3, o.line.data(),
                      static_cast<int>(o.line.size()), SQLITE_STATIC);
    st = h.Run(h.insert, absl::StrCat("writing output ", o.seq));
    sqlite3_clear_bindings(h.insert);
    if (!st.ok()) break;
  }
  if (st.ok()) st = h.SetMeta("last_seq", last_seq);
  if (st.ok()) st = h.SetMeta("webhook_cursor", webhook_cursor);
  if (st.ok()) {
    sqlite3_bind_int64(h.trim, 1, last_seq - keep);
    st = h.Run(h.trim, "deleting old outputs");
  }
  if (st.ok()) st = h.Exec("COMMIT", "committing");
  if (!st.ok()) sqlite3_exec(h.db, "ROLLBACK", nullptr, nullptr, nullptr);
  return st;
}

}  // namespace converge::service

#else  // !CONVERGED_WITH_SQLITE

namespace converge::service {
namespace {

absl::Status NoSqlite() {
  return absl::UnimplementedError(
      "outputs.file needs SQLite, and this converged was built "
      "without it (apt-get install libsqlite3-dev, then rebuild)");
}

}  // namespace

struct OutputFile::Handle {};

OutputFile::OutputFile(std::string path, std::unique_ptr<Handle> h)
    : path_(std::move(path)), h_(std::move(h)) {}

OutputFile::~OutputFile() = default;

absl::StatusOr<std::unique_ptr<OutputFile>> OutputFile::Open(const std::string&,
                                                             int64_t, int64_t,
                                                             State*) {
  return NoSqlite();
}

absl::Status OutputFile::Write(absl::Span<const StoredOutput>, int64_t, int64_t,
                               int64_t) {
  return NoSqlite();
}

}  // namespace converge::service

#endif  // CONVERGED_WITH_SQLITE
