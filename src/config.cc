#include "converge/config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "converge/errors.h"
#include "internal/strings.h"

namespace converge {
namespace {

// `path` of the top config, `depth` sub configs down: the text is made only
// for an error (Submit checks every action's config).
std::string PathAt(std::string_view path, int depth) {
  std::string out(path);
  for (int i = 0; i < depth; ++i) out += ".sub_converge_config";
  return out;
}

absl::Status NonNegative(std::string_view path, int depth,
                         std::string_view field, int64_t v) {
  if (v >= 0) return absl::OkStatus();
  return FieldError(internal::StrCat(PathAt(path, depth), ".", field),
                    internal::StrCat("must be >= 0, got ", v));
}

absl::Status ValidateAt(const ConvergeConfig& config, std::string_view path,
                        int depth) {
  if (auto s = NonNegative(path, depth, "timedelta", config.timedelta);
      !s.ok()) {
    return s;
  }
  if (auto s = NonNegative(path, depth, "max_timedelta", config.max_timedelta);
      !s.ok()) {
    return s;
  }
  if (auto s = NonNegative(path, depth, "count", config.count); !s.ok()) {
    return s;
  }
  for (size_t i = 0; i < config.condition.size(); ++i) {
    if (config.condition[i].dimension.empty()) {
      return FieldError(internal::StrCat(PathAt(path, depth), ".condition[", i,
                                         "].dimension"),
                        "must not be empty");
    }
  }
  if (config.sub_converge_config != nullptr) {
    return ValidateAt(*config.sub_converge_config, path, depth + 1);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateConfig(const ConvergeConfig& config,
                            std::string_view path) {
  return ValidateAt(config, path, 0);
}

}  // namespace converge
