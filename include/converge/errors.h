// Input errors that carry their field path.
//
// Thread safety: plain functions.

#ifndef CONVERGE_ERRORS_H_
#define CONVERGE_ERRORS_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace converge {

// kInvalidArgument with the message "<prefix><path>: <detail>", carrying
// `path` as a payload: a reader takes the field back with FieldPathOf
// instead of splitting the message, which a path with ": " in a key
// ("action.context.a: b") would split wrongly. The library's checks of an
// action and a config (Submit, Validate, CheckConfig) and the JSON layer
// report bad input so; ConvergeManager::Create's option errors do not.
absl::Status FieldError(std::string_view path, std::string_view detail,
                        std::string_view prefix = "");

// The path of an error made by FieldError, or nullopt.
std::optional<std::string> FieldPathOf(const absl::Status& status);

}  // namespace converge

#endif  // CONVERGE_ERRORS_H_
