// Temporary directories for tests.

#ifndef CONVERGE_TESTS_SUPPORT_TEMP_DIR_H_
#define CONVERGE_TESTS_SUPPORT_TEMP_DIR_H_

#include <stdlib.h>

#include <string>

#include "absl/status/statusor.h"

namespace converge::testing {

// A fresh directory $TMPDIR/<what>-XXXXXX (mkdtemp).
inline absl::StatusOr<std::string> MakeTestTempDir(const char* what) {
  const char* tmp = getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + what +
      "-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError("mkdtemp failed for " + pattern);
  }
  return pattern;
}

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_TEMP_DIR_H_
