#include "absl/strings/cord.h"
#include "converge/manager.h"
#include "internal/lease_busy.h"

namespace converge {
namespace {
constexpr char kLeaseBusyUrl[] = "type.googleapis.com/converge.LeaseBusy";
}  // namespace

namespace internal {
absl::Status LeaseBusyError(std::string message) {
  absl::Status st = absl::UnavailableError(message);
  st.SetPayload(kLeaseBusyUrl, absl::Cord("1"));
  return st;
}
}  // namespace internal

bool IsLeaseBusy(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kLeaseBusyUrl).has_value();
}

}  // namespace converge
