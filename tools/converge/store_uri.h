// Opening a store from the --store URI of the converge command line.
//
// A URI is "<scheme>:<rest>". Known schemes:
//   memory:   a fresh, empty in-memory store (converge::memory), private to
//             this process and gone when it exits.
//   sqlite:PATH  the SQLite store on file PATH (converge::sqlite, when it is
//             built; parameters as sqlite::ParseStoreUri reads them).
// Adding a backend is one more branch in OpenStore.
//
// Without --store, replay, inspect and end use DefaultStoreUri():
// $CONVERGE_STORE, else sqlite:converge.db in the current directory (memory:
// when the SQLite store is not built), so that `converge replay` and then
// `converge inspect` look at the same state.
//
// Thread safety: OpenStore may be called from any thread; the stores it
// returns are as thread-safe as their backend (all of them are safe for
// concurrent use).

#ifndef CONVERGE_TOOLS_CONVERGE_STORE_URI_H_
#define CONVERGE_TOOLS_CONVERGE_STORE_URI_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "converge/clock.h"
#include "converge/manager.h"

namespace converge::cli {

// A fresh, empty in-memory store.
inline constexpr std::string_view kMemoryStoreUri = "memory:";

// The --store of replay, inspect and end when neither the flag nor
// $CONVERGE_STORE is given.
#ifdef CONVERGE_CLI_WITH_SQLITE
inline constexpr std::string_view kDefaultStoreUri = "sqlite:converge.db";
#else
inline constexpr std::string_view kDefaultStoreUri = kMemoryStoreUri;
#endif

// The environment variable that replaces kDefaultStoreUri.
inline constexpr std::string_view kStoreEnvVar = "CONVERGE_STORE";

// $CONVERGE_STORE if it is set and not empty, else kDefaultStoreUri.
std::string DefaultStoreUri();

// What OpenStore may do with a persistent store that does not exist yet.
enum class OpenMode {
  kCreate,     // create it (replay)
  kMustExist,  // refuse: kNotFound naming it (inspect, end)
};

// An opened store: the four store views a ConvergeManager takes, and the
// object that owns them. The views are valid as long as `owner` lives.
struct OpenedStore {
  Stores stores;
  std::shared_ptr<void> owner;
  // The URI as given, for messages.
  std::string uri;
  // True when the store starts empty in every run and keeps nothing after
  // it (memory:), so that inspect and end can only ever see an empty store.
  bool ephemeral = false;
};

// Opens the store named by `uri`. `clock` drives lease and key expiry and
// must outlive the store. Returns kInvalidArgument for a URI without a
// scheme or with an unknown one (the message lists the known schemes),
// kNotFound for a store file that does not exist under kMustExist, or the
// backend's error.
absl::StatusOr<OpenedStore> OpenStore(std::string_view uri, const Clock* clock,
                                      OpenMode mode = OpenMode::kCreate);

}  // namespace converge::cli

#endif  // CONVERGE_TOOLS_CONVERGE_STORE_URI_H_
