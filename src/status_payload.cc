#include "absl/strings/cord.h"
#include "converge/manager.h"
#include "converge/store/errors.h"
#include "internal/lease_busy.h"

namespace converge {
namespace {
constexpr char kLeaseBusyUrl[] = "type.googleapis.com/converge.LeaseBusy";
constexpr char kStoreDownUrl[] = "type.googleapis.com/converge.StoreDown";
}  // namespace

namespace internal {
absl::Status LeaseBusyError(std::string message) {
  absl::Status st = absl::UnavailableError(message);
  st.SetPayload(kLeaseBusyUrl, absl::Cord("1"));
  return st;
}
}  // namespace internal

absl::Status StoreDownError(std::string message) {
  absl::Status st = absl::UnavailableError(message);
  st.SetPayload(kStoreDownUrl, absl::Cord("1"));
  return st;
}

bool IsStoreDown(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kStoreDownUrl).has_value();
}

bool IsLeaseBusy(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kLeaseBusyUrl).has_value();
}

}  // namespace converge
