// Internal: what a SQL repo remembers of instances per connection (see
// RepoMemo). Not installed.

#ifndef CONVERGE_ADAPTERS_SQL_SRC_MEMO_H_
#define CONVERGE_ADAPTERS_SQL_SRC_MEMO_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "converge/store/instance_repo.h"
#include "converge/types.h"

namespace converge::sql {

// What the repo remembers of the instances, per connection: the open
// instance of a dimension (with its executed count) and the state of an
// instance, so that the hot path does not query them on every call. How
// long it stays valid is the backend's business: SQLite keeps it while no
// other connection has committed (PRAGMA data_version); MySQL keeps only
// open instances (a Join checks the instance under a row lock) and
// forgets states at the start of each transaction. The repo updates it at
// the end of each successful write that changes what it holds, and a
// rolled back transaction clears it.
struct RepoMemo {
  struct State {
    bool open = false;
    ConvergeType type = ConvergeType::kAction;
  };
  // Open instance by dimension (nullopt: none is open).
  absl::flat_hash_map<std::string, std::optional<OpenInstanceRef>> open;
  // Dimension of the instances in `open`, by id.
  absl::flat_hash_map<int64_t, std::string> dimension_of;
  // State of existing instances by id.
  absl::flat_hash_map<int64_t, State> state;

  void Clear() {
    open.clear();
    dimension_of.clear();
    state.clear();
  }
  // Bounded: past this many dimensions it starts over.
  static constexpr size_t kMaxEntries = 1 << 16;
};

}  // namespace converge::sql

#endif  // CONVERGE_ADAPTERS_SQL_SRC_MEMO_H_
