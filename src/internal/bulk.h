// Checks on the answers of the stores' bulk calls (InstanceRepo::
// LookupOpenMany, GetActions, WindowStore::ApplyMany): one answer per item
// asked.

#ifndef CONVERGE_SRC_INTERNAL_BULK_H_
#define CONVERGE_SRC_INTERNAL_BULK_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"
#include "internal/strings.h"

namespace converge::internal {

// kInternal naming `call` when it answered `got` of the `asked` `what`.
inline absl::Status CheckAnswered(std::string_view call, size_t got,
                                  size_t asked, std::string_view what) {
  if (got == asked) return absl::OkStatus();
  return absl::InternalError(
      StrCat("converge: ", call, " answered ", got, " of ", asked, " ", what));
}

}  // namespace converge::internal

#endif  // CONVERGE_SRC_INTERNAL_BULK_H_
