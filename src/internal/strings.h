// Bridges std::string_view (our public API) and absl::string_view: Debian's
// abseil is built with ABSL_OPTION_USE_STD_STRING_VIEW=0, so the two are
// distinct types and absl's string functions do not take std::string_view.

#ifndef CONVERGE_INTERNAL_STRINGS_H_
#define CONVERGE_INTERNAL_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace converge::internal {

inline absl::string_view AV(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

template <typename T>
decltype(auto) AlphaNumArg(const T& v) {
  if constexpr (std::is_same_v<T, std::string_view>) {
    return AV(v);
  } else {
    return (v);
  }
}

// absl::StrCat that also takes std::string_view arguments.
template <typename... Args>
std::string StrCat(const Args&... args) {
  return absl::StrCat(AlphaNumArg(args)...);
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  absl::StrAppend(out, AlphaNumArg(args)...);
}

}  // namespace converge::internal

#endif  // CONVERGE_INTERNAL_STRINGS_H_
