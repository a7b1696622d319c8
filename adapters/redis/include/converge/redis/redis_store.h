// The Redis store: leases (LockStore), the window index and business
// counters (WindowStore) and task queues (QueueStore) on a Redis server (or
// several, keys spread by hash tag: RedisOptions::more_servers), shared by
// any number of processes on any number of hosts. Instances and
// relations stay in a SQL store (InstanceRepo): SQLite on one host, MySQL
// (adapters/mysql) on many; RedisStores owns both and gives the manager one
// view.
//
// Layout: the window index and counters on upstream's key templates (K2, K3
// sorted sets scored by epoch seconds, K4 an integer string), leases on K5
// (a hash: owner token and expiry), queues under "converge.queue.{<name>}."
// (docs/adapters/redis.md lists every key).
//
// Guarantees: every store call is one Lua script (atomic on the server) and
// one round trip; scripts are loaded once and called by SHA (EVALSHA), and
// loaded again after NOSCRIPT (a restarted or flushed server). A
// WindowStore::Apply -- index adds, trim, key expiry, the dimension lease,
// the window reads -- is one script. Expiry follows `clock`: the scripts
// get its time as an argument and keep every expiry as data (the lease's
// `expires` field, one companion key per expiring index or counter key), so
// a virtual clock is honoured exactly; real Redis TTLs are set as well, for
// garbage collection only (see RedisOptions::gc_grace). Durability is the
// server's: with appendonly yes and appendfsync always a returned call is
// on disk; with everysec up to a second of writes may be lost in a crash of
// the server host.
//
// Errors: messages start with "redis: <server>: ". A server that cannot be
// reached, a dropped connection, a server that is loading its data or is a
// read-only replica is kUnavailable (retry); a command that timed out
// kDeadlineExceeded (the command may or may not have run). Redis error
// replies keep their text; WRONGTYPE (a key of the wrong type) is
// kFailedPrecondition, OOM kResourceExhausted, any other kInternal. A
// connection that failed is discarded; the next call connects again.
//
// Thread safety: every store is safe for concurrent use. A set of stores
// shares one connection pool (RedisOptions::pool_size).

#ifndef CONVERGE_REDIS_REDIS_STORE_H_
#define CONVERGE_REDIS_REDIS_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/clock.h"
#include "converge/manager.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"

namespace converge::redis {

// Told about every round trip of a store call to a server (for metrics, and
// for tests that count round trips); the handshake of a new connection
// (AUTH, SELECT, PING) is not reported. Called on the calling thread, after
// the reply (or the failure); must be thread-safe and quick.
class RedisObserver {
 public:
  virtual ~RedisObserver() = default;
  // `commands` commands were sent in one round trip (more than one: a
  // pipeline); `status` is the connection-level outcome (error replies of
  // single commands are not failures here).
  virtual void OnRoundTrip(int commands, absl::Duration took,
                           const absl::Status& status) = 0;
};

// One more server to spread keys over (RedisOptions::more_servers).
struct RedisServer {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_socket;  // empty: TCP
  int db = 0;
};

struct RedisOptions {
  // TCP endpoint. Default 127.0.0.1:6379. Ignored when unix_socket is set.
  std::string host = "127.0.0.1";
  int port = 6379;
  // Path of the server's unix socket. Empty (the default): TCP.
  std::string unix_socket;
  // AUTH on every new connection. Empty password (the default): no AUTH.
  // Empty user: the default user (AUTH password, Redis before 6 too).
  std::string user;
  std::string password;
  // SELECT on every new connection. Default 0. Must be >= 0.
  int db = 0;
  // Time to establish a connection (TCP connect, AUTH, SELECT). Default 2 s;
  // must be > 0.
  absl::Duration connect_timeout = absl::Seconds(2);
  // Time a command may take before it fails with kDeadlineExceeded (the
  // connection is then dropped). Default 5 s; 0 = no limit.
  absl::Duration command_timeout = absl::Seconds(5);
  // Prepended to every key the stores write (the core's rendered keys, and
  // the queue keys). Default empty: keys exactly as the core renders them
  // (upstream's names under KeySpaceOptions::prefix). Use it to give several
  // deployments, or tests, their own key space on one server.
  std::string key_prefix;
  // Connections kept open; a call waits while all are busy. Default 8; must
  // be >= 1. Connections open lazily (one at OpenRedisStores).
  int pool_size = 8;
  // Time source for lease, index-key and counter expiry. Null (the default):
  // the Redis server's clock (the scripts read TIME), one clock for every
  // process, whatever their hosts' clocks say. Not owned; must outlive the
  // stores. The queue's times are the ones its callers pass in.
  const Clock* clock = nullptr;
  // Every key that expires on `clock` also gets a real Redis TTL: the time
  // it has left on `clock` plus this grace, so that keys nobody touches
  // again (a crashed holder's lease, a quiet dimension's index) are
  // collected by Redis itself. With the server's clock the grace only delays
  // collection. With an injected clock that runs slower than real time (a
  // paused virtual clock) a key could be collected before `clock` says it
  // expired once real time runs more than the grace ahead: raise the grace,
  // or set it negative to set no real TTLs at all. Default 1 minute.
  absl::Duration gc_grace = absl::Minutes(1);
  // Told about every round trip. Not owned; may be null.
  RedisObserver* observer = nullptr;
  // More servers, to spread the load. Empty (the default): the server above
  // holds every key. Otherwise the keys are spread over the server above
  // (server 0) and these (1..n) by their hash tag, as Redis Cluster places
  // them in slots: slot = CRC16(tag) mod 16384 (the whole key when it has no
  // tag), server = slot * (n + 1) / 16384. Every key one script touches is
  // on one server: an index or counter key's companion expiry key goes with
  // it, and a queue's keys share the queue name as their tag. A
  // WindowStore::Apply whose lease and index keys live on different servers
  // runs as one script per server (the lease first), so it is atomic per
  // server, and a join costs one round trip more. AUTH, timeouts and the
  // pool size apply to every server (a pool each). Every process must list
  // the same servers in the same order; changing the list moves keys (drain
  // the queues first).
  std::vector<RedisServer> more_servers;
};

// The Redis stores, plus the InstanceRepo they are combined with. Owns
// them. OpenRedisStores fills lock, queue and window; `repo` is the
// caller's (for example the `repo` of sqlite::OpenSqliteStores):
//
//   auto redis = converge::redis::OpenRedisStores(redis_options).value();
//   auto sql = converge::sqlite::OpenSqliteStores(sqlite_options).value();
//   redis.repo = std::move(sql.repo);  // the SQLite file stays open
//   auto manager = converge::ConvergeManager::Create(redis.view(), &clock);
struct RedisStores {
  std::unique_ptr<LockStore> lock;
  std::unique_ptr<QueueStore> queue;
  std::unique_ptr<WindowStore> window;
  std::unique_ptr<InstanceRepo> repo;  // not Redis: set by the caller

  // Non-owning view for ConvergeManager::Create (repo may still be null).
  Stores view() const {
    return Stores{lock.get(), queue.get(), repo.get(), window.get()};
  }
};

// Connects to the server, checks it (AUTH, SELECT, PING) and loads the
// scripts. Returns kInvalidArgument naming the field for a bad option
// (empty host, port outside 1..65535, db < 0, pool_size < 1,
// connect_timeout <= 0, command_timeout < 0); kUnavailable if the server
// cannot be reached; kDeadlineExceeded if it does not answer in time;
// kPermissionDenied if AUTH is refused; kInvalidArgument if SELECT is.
absl::StatusOr<RedisStores> OpenRedisStores(const RedisOptions& options);

// Parses a store URI into options (clock and observer are left null):
//   redis://[[user]:password@]host[:port][,host[:port]...][/db][?param=...]
//   unix://[[user]:password@]/path/to/redis.sock[?db=N&param=value&...]
// More than one host: the first is the server, the others more_servers
// (same db and credentials). Parameters: db (on redis:// it overrides the
// path's db), key_prefix, pool_size, connect_timeout_ms,
// command_timeout_ms, gc_grace_ms.
// Percent-escapes (%XX) are decoded in the user, password and values. Returns
// kInvalidArgument naming the problem for another scheme, a bad port, db or
// number, or an unknown parameter.
absl::StatusOr<RedisOptions> ParseRedisUri(std::string_view uri);

}  // namespace converge::redis

#endif  // CONVERGE_REDIS_REDIS_STORE_H_
