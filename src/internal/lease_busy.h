// The status of an evaluation that found its dimension lease busy (see
// IsLeaseBusy in converge/manager.h).

#ifndef CONVERGE_SRC_INTERNAL_LEASE_BUSY_H_
#define CONVERGE_SRC_INTERNAL_LEASE_BUSY_H_

#include <string>

#include "absl/status/status.h"

namespace converge::internal {

// kUnavailable with `message`, marked as lease-busy.
absl::Status LeaseBusyError(std::string message);

}  // namespace converge::internal

#endif  // CONVERGE_SRC_INTERNAL_LEASE_BUSY_H_
