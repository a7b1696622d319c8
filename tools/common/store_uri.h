// Opening stores from URIs: shared by the converge command line (--store,
// --repo) and the converged service (its "store" and "repo" settings).
//
// A URI is "<scheme>:<rest>". Known schemes, each when its backend is built:
//   memory:        a fresh, empty in-memory store (converge::memory),
//                  private to this process and gone when it exits.
//   sqlite:PATH    the SQLite store on file PATH (converge::sqlite;
//                  parameters as sqlite::ParseSqliteUri reads them).
//   redis://...    leases, window indexes and task queues on Redis
//   unix://...     (converge::redis; the URI as redis::ParseRedisUri reads
//                  it). Redis keeps no instances: it needs a repo URI.
//   mysql://...    every store on a MySQL or MariaDB database
//                  (converge::mysql; the URI as mysql::ParseMysqlUri reads
//                  it, password included: OpenedStore::uri hides it).
//
// Every store URI gives the four store views a manager takes (lease, queue,
// window index, instance repo), except Redis, which has no repo. A second,
// optional *repo* URI names where the instances and relations live instead:
//
//   OpenStore("redis://10.0.0.5:6379/0", clock, OpenMode::kCreate,
//             "sqlite:/var/lib/converge/converge.db")
//
// takes leases, windows and queues from Redis and the repo from the SQLite
// file. Any store with a repo may serve as the repo (memory, sqlite,
// mysql).
//
// Without --store, the command line uses DefaultStoreUri(): $CONVERGE_STORE,
// else sqlite:converge.db in the current directory (memory: when the SQLite
// store is not built), so that `converge replay` and then `converge inspect`
// look at the same state. Without --repo, DefaultRepoUri(): $CONVERGE_REPO,
// else none.
//
// Thread safety: OpenStore may be called from any thread; the stores it
// returns are as thread-safe as their backend (all of them are safe for
// concurrent use).

#ifndef CONVERGE_TOOLS_COMMON_STORE_URI_H_
#define CONVERGE_TOOLS_COMMON_STORE_URI_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "converge/clock.h"
#include "converge/manager.h"

namespace converge::tools {

// A fresh, empty in-memory store.
inline constexpr std::string_view kMemoryStoreUri = "memory:";

// The store when neither a flag nor $CONVERGE_STORE names one.
#ifdef CONVERGE_TOOLS_WITH_SQLITE
inline constexpr std::string_view kDefaultStoreUri = "sqlite:converge.db";
#else
inline constexpr std::string_view kDefaultStoreUri = kMemoryStoreUri;
#endif

// The environment variables that replace the defaults.
inline constexpr std::string_view kStoreEnvVar = "CONVERGE_STORE";
inline constexpr std::string_view kRepoEnvVar = "CONVERGE_REPO";

// $CONVERGE_STORE if it is set and not empty, else kDefaultStoreUri.
std::string DefaultStoreUri();

// $CONVERGE_REPO if it is set and not empty, else "" (no separate repo).
std::string DefaultRepoUri();

// The schemes this build knows, for messages and help texts: "memory,
// sqlite, redis, unix, mysql".
std::string_view KnownSchemes();

// `uri` with the password of a "scheme://user:password@host" authority
// replaced by "***", for messages and logs; other URIs as they are.
std::string Redacted(std::string_view uri);

// What OpenStore may do with a persistent store that does not exist yet.
enum class OpenMode {
  kCreate,     // create it (replay, the service)
  kMustExist,  // refuse: kNotFound naming it (inspect, end)
};

// An opened store: the four store views a ConvergeManager takes, and the
// objects that own them. The views are valid as long as `owner` lives.
struct OpenedStore {
  Stores stores;
  std::shared_ptr<void> owner;
  // The URIs as given ("STORE", or "STORE with repo REPO"), passwords
  // redacted, for messages.
  std::string uri;
  // True when the state starts empty in every run and keeps nothing after
  // it (memory: everywhere), so that inspect and end can only ever see an
  // empty store.
  bool ephemeral = false;
};

// Opens the store named by `uri` and, when `repo_uri` is not empty, takes
// the instance repo from the store `repo_uri` names instead. `clock` drives
// lease and key expiry and must outlive the store. Returns kInvalidArgument
// for a URI without a scheme or with an unknown one (the message lists the
// known schemes), for a store without a repo (Redis) and no repo URI, or
// for a repo URI whose store has no repo; kNotFound for a store file that
// does not exist under kMustExist; or the backend's error (the message
// names the URI).
absl::StatusOr<OpenedStore> OpenStore(std::string_view uri, const Clock* clock,
                                      OpenMode mode = OpenMode::kCreate,
                                      std::string_view repo_uri = {});

}  // namespace converge::tools

#endif  // CONVERGE_TOOLS_COMMON_STORE_URI_H_
