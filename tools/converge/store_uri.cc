#include "store_uri.h"

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "converge/memory/memory_store.h"
#ifdef CONVERGE_CLI_WITH_SQLITE
#include "converge/sqlite/sqlite_store.h"
#endif

namespace converge::cli {
namespace {

// Debian's abseil has its own absl::string_view (not std::string_view).
absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

absl::StatusOr<OpenedStore> OpenMemory(std::string_view uri,
                                       std::string_view rest,
                                       const Clock* clock) {
  if (!rest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store \"", Av(uri),
        "\": the memory store takes no argument (write \"memory:\")"));
  }
  absl::StatusOr<memory::MemoryStores> stores =
      memory::NewMemoryStores(memory::MemoryOptions{clock});
  if (!stores.ok()) return stores.status();
  auto owner = std::make_shared<memory::MemoryStores>(*std::move(stores));
  OpenedStore opened;
  opened.stores = owner->view();
  opened.owner = std::move(owner);
  opened.uri = std::string(uri);
  opened.ephemeral = true;
  return opened;
}

#ifdef CONVERGE_CLI_WITH_SQLITE
// "sqlite:PATH[?busy_timeout_ms=N&synchronous=...]" (sqlite::ParseStoreUri).
absl::StatusOr<OpenedStore> OpenSqlite(std::string_view uri, const Clock* clock,
                                       OpenMode mode) {
  absl::StatusOr<sqlite::SqliteOptions> options = sqlite::ParseStoreUri(uri);
  if (!options.ok()) return options.status();
  std::error_code ec;
  if (mode == OpenMode::kMustExist &&
      !std::filesystem::exists(options->path, ec)) {
    return absl::NotFoundError(
        absl::StrCat("store \"", Av(uri), "\": no such file ",
                     Av(options->path), " (converge replay creates it)"));
  }
  options->clock = clock;
  absl::StatusOr<sqlite::SqliteStores> stores =
      sqlite::OpenSqliteStores(*options);
  if (!stores.ok()) return stores.status();
  auto owner = std::make_shared<sqlite::SqliteStores>(*std::move(stores));
  OpenedStore opened;
  opened.stores = owner->view();
  opened.owner = std::move(owner);
  opened.uri = std::string(uri);
  return opened;
}
constexpr std::string_view kKnownSchemes = "memory, sqlite";
#else
constexpr std::string_view kKnownSchemes = "memory";
#endif

}  // namespace

std::string DefaultStoreUri() {
  const char* env = std::getenv(std::string(kStoreEnvVar).c_str());
  if (env != nullptr && *env != '\0') return env;
  return std::string(kDefaultStoreUri);
}

absl::StatusOr<OpenedStore> OpenStore(std::string_view uri, const Clock* clock,
                                      OpenMode mode) {
  const size_t colon = uri.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store \"", Av(uri),
        "\": expected <scheme>:<argument>, for example \"memory:\""));
  }
  const std::string_view scheme = uri.substr(0, colon);
  const std::string_view rest = uri.substr(colon + 1);
  // One branch per backend.
  if (scheme == "memory") return OpenMemory(uri, rest, clock);
#ifdef CONVERGE_CLI_WITH_SQLITE
  if (scheme == "sqlite") return OpenSqlite(uri, clock, mode);
#endif
  return absl::InvalidArgumentError(
      absl::StrCat("store \"", Av(uri), "\": unknown scheme \"", Av(scheme),
                   "\" (known: ", Av(kKnownSchemes), ")"));
}

}  // namespace converge::cli
