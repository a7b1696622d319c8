#include "converge/config.h"

#include "absl/strings/str_cat.h"
#include "internal/strings.h"

namespace converge {
namespace {

absl::Status NonNegative(std::string_view path, std::string_view field,
                         int64_t v) {
  if (v >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      internal::StrCat(path, ".", field, ": must be >= 0, got ", v));
}

}  // namespace

absl::Status ValidateConfig(const ConvergeConfig& config,
                            std::string_view path) {
  if (auto s = NonNegative(path, "timedelta", config.timedelta); !s.ok()) {
    return s;
  }
  if (auto s = NonNegative(path, "max_timedelta", config.max_timedelta);
      !s.ok()) {
    return s;
  }
  if (auto s = NonNegative(path, "count", config.count); !s.ok()) return s;
  for (size_t i = 0; i < config.condition.size(); ++i) {
    if (config.condition[i].dimension.empty()) {
      return absl::InvalidArgumentError(internal::StrCat(
          path, ".condition[", i, "].dimension: must not be empty"));
    }
  }
  if (config.sub_converge_config != nullptr) {
    return ValidateConfig(*config.sub_converge_config,
                          internal::StrCat(path, ".sub_converge_config"));
  }
  return absl::OkStatus();
}

}  // namespace converge
