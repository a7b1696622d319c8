// The MySQL store: every store interface on one MySQL (5.7, 8) or MariaDB
// (10.6+) database, shared by processors on many machines. Built on MariaDB
// Connector/C, which speaks the MySQL protocol.
//
// Layout: upstream's converge_instance and converge_relation tables (same
// names, columns, unique keys and indexes; utf8mb4), plus converge's own
// tables for decisions, the window index and counters, leases and queue
// tasks (docs/adapters/mysql.md has the schema as SQL). The schema is
// versioned (table converge_schema_version): an older schema is migrated on
// open (or only checked, SchemaMode::kCheck), a newer one is refused.
//
// Guarantees: every call is one InnoDB transaction (READ COMMITTED). The
// unique key on the open dimension resolves a creation race; a Join locks
// its instance's row (shared), so an instance cannot end under a join; a
// lease is a row taken by one conditional upsert; Dequeue takes its task
// with SELECT ... FOR UPDATE SKIP LOCKED, so workers never wait on each
// other. Deadlocks (1213), lock-wait timeouts (1205), duplicate keys of a
// concurrent insert (1062) and a connection lost before the commit (2006,
// 2013) are retried up to max_retries times; a
// connection lost during the commit is kUnavailable (the caller retries:
// every write of the repo is idempotent on the action id).
//
// Errors: messages start with "mysql: <label>: " (label: user@host:port/db
// or the socket) and keep the MySQL errno ("(errno 1213)"). The server
// unreachable or gone, a lock wait timeout: kUnavailable; a deadlock that
// outlived the retries: kAborted; a batch whose writes met another
// writer's at its commit: kAborted marked IsConflict (converge/store/
// errors.h), nothing committed; access denied: kPermissionDenied; an
// unknown database: kNotFound; a value too long for its column, or text
// that is not UTF-8 in a utf8mb4 column: kInvalidArgument; a schema newer
// than this library's, or missing in kCheck mode: kFailedPrecondition.
//
// Thread safety: every store is safe for concurrent use. A set of stores
// keeps a pool of connections (one per concurrently calling thread).

#ifndef CONVERGE_MYSQL_MYSQL_STORE_H_
#define CONVERGE_MYSQL_MYSQL_STORE_H_

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

namespace converge::mysql {

// The schema version this library writes and reads.
inline constexpr int kSchemaVersion = 1;

enum class SchemaMode {
  kMigrate,  // create or migrate the schema on open (the default)
  kCheck,    // only check that it is at kSchemaVersion (operators who run
             // the migrations themselves: docs/adapters/mysql.md)
};

struct MysqlOptions {
  // Server. unix_socket, if not empty, is used instead of host and port.
  // Defaults: 127.0.0.1, 3306, no socket.
  std::string host = "127.0.0.1";
  int port = 3306;
  std::string unix_socket;
  // Account. Empty user: the client library's default (the OS user).
  std::string user;
  std::string password;
  // Database (schema) name. Required; it must exist.
  std::string database;
  // Time source for lease, window-key and counter expiry. Null: the real
  // clock. Not owned; must outlive the stores. The repo and the queue take
  // the times their callers pass in. (The server's clock is never used.)
  const Clock* clock = nullptr;
  // Connect, read and write timeouts of each connection (whole seconds,
  // rounded up; 0 = the client library's default). Defaults 5 s, 30 s,
  // 30 s.
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration read_timeout = absl::Seconds(30);
  absl::Duration write_timeout = absl::Seconds(30);
  // innodb_lock_wait_timeout of each session: how long a statement waits
  // for a row lock before 1205 (retried, then kUnavailable). Whole seconds,
  // at least 1. Default 5 s.
  absl::Duration lock_wait_timeout = absl::Seconds(5);
  // Idle connections kept in the pool; more may be open while more threads
  // call at once. Default 8; at least 1.
  int pool_size = 8;
  // Retries of a transaction after a deadlock, a lock-wait timeout, a
  // duplicate key (another transaction inserted the same row first) or a
  // connection lost before its commit. Default 5; 0 = none.
  int max_retries = 5;
  SchemaMode schema = SchemaMode::kMigrate;
  // A Submit on these stores alone (a batch of one: ConvergeManager::Submit)
  // makes its window write, its lease, its follow-up task and its lease's
  // release part of its decision's transaction: one commit for the whole
  // decision instead of three or four. Its window keys and its lease are
  // then row locks until that commit (about a millisecond); a lease found
  // busy, a deadlock or a lock-wait timeout fails that run as a conflict,
  // and the manager runs the Submit again the other way (each store write
  // a short transaction of its own). Off by default: where batches of
  // several (group commit under load, batch processors) write the same
  // window keys, a Submit holding a key can wait for a row such a batch
  // holds while the batch's window write waits for the key, which InnoDB
  // cannot see as a deadlock (it lasts lock_wait_timeout). Turn it on where
  // this database's decisions are made one Submit at a time
  // (ManagerOptions::group_commit_max = 1, no batch processors).
  // docs/adapters/mysql.md ("One transaction per Submit"). Default false.
  bool one_transaction = false;
};

// A set of MySQL stores on one database, sharing its connections. Owns the
// stores; the connections are closed when the last of them is destroyed.
struct MysqlStores {
  std::unique_ptr<LockStore> lock;
  std::unique_ptr<QueueStore> queue;
  std::unique_ptr<InstanceRepo> repo;
  std::unique_ptr<WindowStore> window;

  // Non-owning view for ConvergeManager::Create.
  Stores view() const {
    return Stores{lock.get(), queue.get(), repo.get(), window.get()};
  }
};

// Connects, and creates or migrates (SchemaMode::kMigrate) or checks
// (kCheck) the schema. Returns kInvalidArgument for an empty database
// name, a port outside 1..65535, a negative timeout, a pool_size < 1 or a
// negative max_retries; kUnavailable if the server cannot be reached;
// kPermissionDenied if the account is refused; kNotFound if the database
// does not exist; kFailedPrecondition if the database holds converge
// tables of an unknown layout (upstream tables without
// converge_schema_version), a schema newer than kSchemaVersion, or (kCheck)
// a schema older than it.
absl::StatusOr<MysqlStores> OpenMysqlStores(const MysqlOptions& options);

// Parses a store URI:
//   mysql://[user[:password]@]host[:port]/database[?params]
//   mysql://[user[:password]@]/database?socket=/path/to/mysqld.sock[&...]
// with params connect_timeout_ms, read_timeout_ms, write_timeout_ms,
// lock_wait_timeout_ms, pool_size, max_retries, schema=migrate|check,
// one_transaction=true|false, socket. User and password may be percent-encoded.
// The clock is left null. Returns kInvalidArgument naming the problem for
// another scheme, a missing database, a bad port, an unknown parameter or a bad
// value.
absl::StatusOr<MysqlOptions> ParseMysqlUri(std::string_view uri);

}  // namespace converge::mysql

#endif  // CONVERGE_MYSQL_MYSQL_STORE_H_
