// `converge inspect` and `converge end`: looking at and acting on a store.
//
// Thread safety: run on the calling thread.

#ifndef CONVERGE_TOOLS_CONVERGE_ADMIN_H_
#define CONVERGE_TOOLS_CONVERGE_ADMIN_H_

#include <cstdint>
#include <string>

namespace converge::cli {

// --store and --repo (tools/common/store_uri.h).
struct StoreFlags {
  std::string store_uri;
  std::string repo_uri;  // empty: the store's own repo
};

// $CONVERGE_STORE (or the built-in default) and $CONVERGE_REPO.
StoreFlags DefaultStoreFlags();

// Prints the open instances, the task queue's lengths and its dead letters
// of the store `store` names. Returns the exit status (0, or 1 when the
// store cannot be opened or read).
int RunInspect(const StoreFlags& store);

// Ends instance `converge_id` (and, for a second-level instance, the
// first-level ones linked to it) and says whether it was open. Returns 0,
// or 1 when the instance is unknown or the store fails.
int RunEnd(const StoreFlags& store, int64_t converge_id);

}  // namespace converge::cli

#endif  // CONVERGE_TOOLS_CONVERGE_ADMIN_H_
