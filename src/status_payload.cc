#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "converge/errors.h"
#include "converge/manager.h"
#include "converge/store/errors.h"
#include "internal/lease_busy.h"
#include "internal/strings.h"

namespace converge {
namespace {
constexpr char kLeaseBusyUrl[] = "type.googleapis.com/converge.LeaseBusy";
constexpr char kStoreDownUrl[] = "type.googleapis.com/converge.StoreDown";
constexpr char kConflictUrl[] = "type.googleapis.com/converge.Conflict";
constexpr char kFieldPathUrl[] = "type.googleapis.com/converge.FieldPath";
}  // namespace

absl::Status FieldError(std::string_view path, std::string_view detail,
                        std::string_view prefix) {
  absl::Status st =
      absl::InvalidArgumentError(internal::StrCat(prefix, path, ": ", detail));
  st.SetPayload(kFieldPathUrl, absl::Cord(internal::AV(path)));
  return st;
}

std::optional<std::string> FieldPathOf(const absl::Status& status) {
  absl::optional<absl::Cord> path = status.GetPayload(kFieldPathUrl);
  if (!path.has_value()) return std::nullopt;
  return std::string(*path);
}

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

absl::Status ConflictError(std::string message) {
  absl::Status st = absl::AbortedError(message);
  st.SetPayload(kConflictUrl, absl::Cord("1"));
  return st;
}

bool IsConflict(const absl::Status& status) {
  return status.code() == absl::StatusCode::kAborted &&
         status.GetPayload(kConflictUrl).has_value();
}

bool IsLeaseBusy(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(kLeaseBusyUrl).has_value();
}

}  // namespace converge
