// The SQLite store: every store interface on one database file, the
// embedded, persistent default. State survives a restart, and several
// processes may open the same file.
//
// Layout: upstream's converge_instance and converge_relation tables (same
// columns, converge_config as upstream-compatible JSON), plus converge's own
// tables for decisions, the window index and counters, leases and queue
// tasks (docs/adapters/sqlite.md lists them). The file is in WAL mode; its
// schema is versioned (table schema_version): an older file is migrated on
// open, a file written by a newer converge is refused.
//
// Guarantees: every call is one transaction. Write transactions start with
// BEGIN IMMEDIATE, so check-then-write steps (a lease, Create's "one open
// instance per dimension", "one decision per action") are atomic across
// threads and processes; a UNIQUE index on the dimension of open instances
// backs Create up in the database itself. With the default synchronous FULL
// a decision that has been returned is committed and survives a crash or a
// power loss.
//
// Errors: messages start with "sqlite: <path>: " and keep SQLite's code.
// A lock held by another connection for longer than busy_timeout is
// kUnavailable (retry later); a damaged file kDataLoss; a file that is not a
// converge SQLite database, or whose schema is newer than this library's,
// kFailedPrecondition; a file or directory that cannot be written
// kPermissionDenied.
//
// Thread safety: every store is safe for concurrent use. A set of stores
// keeps a pool of connections (one per concurrently calling thread); writes
// of one process are serialized in the process before they compete for the
// file's write lock.

#ifndef CONVERGE_SQLITE_SQLITE_STORE_H_
#define CONVERGE_SQLITE_SQLITE_STORE_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/manager.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge::sqlite {

// The schema version this library writes; files at an older version are
// migrated to it on open.
inline constexpr int kSchemaVersion = 4;

// PRAGMA synchronous (https://sqlite.org/pragma.html#pragma_synchronous).
enum class Synchronous {
  kOff,     // no fsync: for tests; a power loss may corrupt the file
  kNormal,  // WAL: survives a process crash; a power loss may lose the last
            // transactions (never corrupts)
  kFull,    // every commit is fsynced before it returns (the default)
  kExtra,   // FULL, and the directory is synced too
};

struct SqliteOptions {
  // Path of the database file. Required. A missing file is created with the
  // current schema (its directory must exist).
  std::string path;
  // Time source for lease, window-key and counter expiry. Null: the real
  // clock. Not owned; must outlive the stores. The times the repo and the
  // queue store are the ones their callers pass in.
  const Clock* clock = nullptr;
  // How long a call waits for a lock another connection (another process)
  // holds before it returns kUnavailable. Default 5 s; 0 = fail at once.
  // Real time, whatever `clock` is.
  absl::Duration busy_timeout = absl::Seconds(5);
  // Default kFull: a decision that has been returned is committed.
  Synchronous synchronous = Synchronous::kFull;
  // Page cache per connection, in KiB (PRAGMA cache_size = -N). A batch
  // whose dirty pages exceed it spills them to the WAL before its commit.
  // Default 32 MiB; at least 64.
  int64_t cache_kib = 32 * 1024;
  // WAL checkpoints: once a commit leaves the write-ahead log at this many
  // pages (4 KiB each) or more, a background thread of the store copies it
  // back into the database file without blocking readers or writers, so
  // that commits do not pay for it; at eight times this size the committing
  // call checkpoints itself in RESTART mode, so that the next write starts
  // the log over, which bounds it: it waits at most 200 ms (or busy_timeout
  // if shorter) for readers to leave the log, and meanwhile the writers of
  // this and other processes wait; if a reader stays, the log goes on and
  // the next try is when it has grown by another checkpoint_pages. 0:
  // SQLite's own
  // automatic checkpoint, run by the committing call at 1,000 pages.
  // Default 1,000.
  int64_t checkpoint_pages = 1000;
  // Runs PRAGMA quick_check on open, so that a damaged file is refused at
  // once (kDataLoss) rather than on the first call that reads the damaged
  // page. Its cost grows with the file (about a second per few hundred MB).
  // Default true.
  bool check_on_open = true;
  // Writes a transaction's write-ahead-log frames with one system call
  // (SQLite writes two per page: the frame header, then the page) through a
  // VFS over the default one. The frames are all in the log before SQLite
  // publishes the commit, so readers and crashes see what they would see
  // without it; one by one, 18% to 25% more decisions per second in the
  // benchmark. Default
  // true; false opens the file on the default VFS as it is.
  bool coalesce_log_writes = true;
};

// A set of SQLite stores on one file, sharing its connections. Owns the
// stores; the file is closed when the last of them is destroyed.
struct SqliteStores {
  std::unique_ptr<LockStore> lock;
  std::unique_ptr<QueueStore> queue;
  std::unique_ptr<InstanceRepo> repo;
  std::unique_ptr<WindowStore> window;

  // Non-owning view for ConvergeManager::Create.
  Stores view() const {
    return Stores{lock.get(), queue.get(), repo.get(), window.get()};
  }
};

// Opens (creating or migrating if needed) the database at options.path.
// Returns kInvalidArgument for an empty path, a negative busy_timeout or
// checkpoint_pages, or a cache_kib under 64;
// kNotFound if the directory does not exist; kPermissionDenied if the file
// or its directory cannot be written; kFailedPrecondition if the file is not
// a SQLite database, is a SQLite database of something else (tables but no
// schema_version), or has a schema newer than kSchemaVersion; kDataLoss if
// the file is damaged; kUnavailable if another connection holds the write
// lock for longer than busy_timeout while the schema must be created or
// migrated. On any error nothing is written to the file.
absl::StatusOr<SqliteStores> OpenSqliteStores(const SqliteOptions& options);

// Parses a store URI: "sqlite:PATH" (PATH relative or absolute;
// "sqlite://PATH" is accepted too), optionally followed by
// "?busy_timeout_ms=N&synchronous=off|normal|full|extra&cache_kib=N&
// checkpoint_pages=N&check_on_open=0|1&coalesce_log_writes=0|1".
// The clock is left null. Returns kInvalidArgument naming the problem for
// another scheme, an empty path, an unknown parameter or a bad value.
absl::StatusOr<SqliteOptions> ParseSqliteUri(std::string_view uri);

}  // namespace converge::sqlite

#endif  // CONVERGE_SQLITE_SQLITE_STORE_H_
