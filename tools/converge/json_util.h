// Small Boost.JSON helpers shared by the CLI's readers (events.cc,
// rule_test.cc).
//
// Thread safety: free functions without shared state.

#ifndef CONVERGE_TOOLS_CONVERGE_JSON_UTIL_H_
#define CONVERGE_TOOLS_CONVERGE_JSON_UTIL_H_

#include <boost/json.hpp>
#include <string_view>

#include "absl/strings/string_view.h"

namespace converge::cli {

// Debian's abseil has its own absl::string_view (not std::string_view).
inline absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }
inline std::string_view ToStd(boost::json::string_view s) {
  return {s.data(), s.size()};
}

// The JSON type of `v` as error messages name it.
inline std::string_view KindName(const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::null:
      return "null";
    case boost::json::kind::bool_:
      return "bool";
    case boost::json::kind::int64:
    case boost::json::kind::uint64:
      return "integer";
    case boost::json::kind::double_:
      return "float";
    case boost::json::kind::string:
      return "string";
    case boost::json::kind::array:
      return "array";
    case boost::json::kind::object:
      return "object";
  }
  return "unknown";
}

}  // namespace converge::cli

#endif  // CONVERGE_TOOLS_CONVERGE_JSON_UTIL_H_
