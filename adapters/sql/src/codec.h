// Internal: how the SQL stores (converge::sqlite, converge::mysql) encode
// records as column values -- times, upstream's JSON columns, enums -- and
// the checks their migrations share. Not installed.
//
// Thread safety: plain functions.

#ifndef CONVERGE_ADAPTERS_SQL_SRC_CODEC_H_
#define CONVERGE_ADAPTERS_SQL_SRC_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "converge/model.h"
#include "internal/strings.h"

namespace converge::sql {

// Nanoseconds since the Unix epoch, saturating at the int64 range (the
// infinite times map to its ends).
int64_t Nanos(absl::Time t);
absl::Time FromNanos(int64_t nanos);

// Upstream datetime columns: "YYYY-MM-DD HH:MM:SS.<fraction>" UTC with
// `digits` fractional digits (9 for SQLite's text, 6 for MySQL's
// DATETIME(6)), fixed width so that text order is time order.
std::string DateTime(absl::Time t, int digits = 9);
absl::StatusOr<absl::Time> ParseDateTime(std::string_view text);

// converge_relation.alerts: a JSON list of strings. Strings are written
// byte for byte and read back allowing invalid UTF-8.
std::string AlertsJson(const std::vector<std::string>& alerts);
absl::StatusOr<std::vector<std::string>> ParseAlerts(std::string_view text);

// converge_instance.converge_config as upstream stores it: the effective
// config with the computed converged_condition map inside. `store` is the
// message prefix ("sqlite").
absl::StatusOr<std::string> ConfigJson(std::string_view store,
                                       const ConvergeInstance& inst);
absl::Status ParseConfigColumn(std::string_view text, ConvergeInstance* inst);

// True if `text` is valid UTF-8 (what a utf8mb4 column accepts).
bool IsUtf8(std::string_view text);

// A column value that does not parse back is damage: kDataLoss naming the
// place ("sqlite: <path>: converge_instance 5: ...").
template <typename T>
absl::StatusOr<T> Column(absl::StatusOr<T> parsed, std::string_view prefix,
                         std::string_view where) {
  if (parsed.ok()) return parsed;
  return absl::DataLossError(
      internal::StrCat(prefix, ": ", where, ": ", parsed.status().message()));
}

// Enums as their upstream spellings; an unknown one is damage.
template <typename T>
absl::StatusOr<T> ParseEnum(absl::StatusOr<T> parsed, std::string_view column,
                            std::string_view text) {
  if (parsed.ok()) return parsed;
  return absl::DataLossError(
      internal::StrCat("unknown ", column, " \"", text, "\" in the database"));
}

// ---- migrations ----

// A schema version `found` above `supported` is refused:
// kFailedPrecondition "<prefix>: schema version N is newer than this
// library's schema version M (<written_by>); refusing to open it".
absl::Status CheckNotNewer(std::string_view prefix, int found, int supported,
                           std::string_view written_by);

}  // namespace converge::sql

#endif  // CONVERGE_ADAPTERS_SQL_SRC_CODEC_H_
