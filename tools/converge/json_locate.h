// Finding where a field is in a JSON text, to name its line in error
// messages (Boost.JSON values do not remember where they came from).
//
// Thread safety: free functions without shared state.

#ifndef CONVERGE_TOOLS_CONVERGE_JSON_LOCATE_H_
#define CONVERGE_TOOLS_CONVERGE_JSON_LOCATE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace converge::cli {

// One step of a path: an object key or an array index.
using PathStep = std::variant<std::string, size_t>;

// Parses a field path as the error messages write it: keys separated by
// '.', array indices in brackets ("cases[1].input[0].converge_config.count").
// A key with a '.' or a '[' in it cannot be told apart; LocatePath then
// finds the nearest enclosing field it can.
std::vector<PathStep> ParsePath(std::string_view path);

// A 1-based line and column.
struct TextPosition {
  size_t line = 1;
  size_t column = 1;
};

// The position of the value at `path` in the JSON text `text` (which must
// be valid JSON), or of the deepest enclosing value found when the path
// does not lead all the way (a missing key names its object).
TextPosition LocatePath(std::string_view text,
                        const std::vector<PathStep>& path);

// The line and column of byte offset `offset` in `text`.
TextPosition PositionOf(std::string_view text, size_t offset);

}  // namespace converge::cli

#endif  // CONVERGE_TOOLS_CONVERGE_JSON_LOCATE_H_
