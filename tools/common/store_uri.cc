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
#include "absl/strings/str_replace.h"
#include "converge/memory/memory_store.h"
#ifdef CONVERGE_TOOLS_WITH_SQLITE
#include "converge/sqlite/sqlite_store.h"
#endif
#ifdef CONVERGE_TOOLS_WITH_REDIS
#include "converge/redis/redis_store.h"
#endif
#ifdef CONVERGE_TOOLS_WITH_MYSQL
#include "converge/mysql/mysql_store.h"
#endif

namespace converge::tools {
namespace {

// Debian's abseil has its own absl::string_view (not std::string_view).
absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

std::string GetEnv(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  return value != nullptr ? std::string(value) : std::string();
}

// `stores` owned by `owner`, as an OpenedStore.
template <typename T>
OpenedStore Opened(std::string_view uri, T stores, bool ephemeral) {
  auto owner = std::make_shared<T>(std::move(stores));
  OpenedStore opened;
  opened.stores = owner->view();
  opened.owner = std::move(owner);
  opened.uri = std::string(uri);
  opened.ephemeral = ephemeral;
  return opened;
}

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
  return Opened(uri, *std::move(stores), /*ephemeral=*/true);
}

#ifdef CONVERGE_TOOLS_WITH_SQLITE
// "sqlite:PATH[?busy_timeout_ms=N&synchronous=...]" (sqlite::ParseSqliteUri).
absl::StatusOr<OpenedStore> OpenSqlite(std::string_view uri, const Clock* clock,
                                       OpenMode mode) {
  absl::StatusOr<sqlite::SqliteOptions> options = sqlite::ParseSqliteUri(uri);
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
  return Opened(uri, *std::move(stores), /*ephemeral=*/false);
}
#endif

#ifdef CONVERGE_TOOLS_WITH_REDIS
// "redis://..." or "unix://..." (redis::ParseRedisUri). No repo.
absl::StatusOr<OpenedStore> OpenRedis(std::string_view uri,
                                      const Clock* clock) {
  absl::StatusOr<redis::RedisOptions> options = redis::ParseRedisUri(uri);
  if (!options.ok()) {
    return absl::Status(
        options.status().code(),
        absl::StrCat("store \"", Av(uri), "\": ", options.status().message()));
  }
  options->clock = clock;
  absl::StatusOr<redis::RedisStores> stores = redis::OpenRedisStores(*options);
  if (!stores.ok()) return stores.status();
  return Opened(uri, *std::move(stores), /*ephemeral=*/false);
}
#endif

#ifdef CONVERGE_TOOLS_WITH_MYSQL
// "mysql://..." (mysql::ParseMysqlUri). kMustExist changes nothing: the
// database must exist either way, and an empty one is what replay would
// have left before its first action.
absl::StatusOr<OpenedStore> OpenMysql(std::string_view uri,
                                      const Clock* clock) {
  absl::StatusOr<mysql::MysqlOptions> options = mysql::ParseMysqlUri(uri);
  if (!options.ok()) {
    return absl::Status(
        options.status().code(),
        absl::StrCat("store \"", Av(uri), "\": ", options.status().message()));
  }
  options->clock = clock;
  absl::StatusOr<mysql::MysqlStores> stores = mysql::OpenMysqlStores(*options);
  if (!stores.ok()) return stores.status();
  return Opened(uri, *std::move(stores), /*ephemeral=*/false);
}
#endif

// The scheme of `uri`, or kInvalidArgument.
absl::StatusOr<std::string_view> SchemeOf(std::string_view uri) {
  const size_t colon = uri.find(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store \"", Av(uri),
        "\": expected <scheme>:<argument>, for example \"memory:\""));
  }
  return uri.substr(0, colon);
}

// Whether a store of `scheme` keeps instances and relations.
bool HasRepo(std::string_view scheme) {
  return scheme != "redis" && scheme != "unix";
}

// One branch per backend.
absl::StatusOr<OpenedStore> OpenOne(std::string_view uri, const Clock* clock,
                                    OpenMode mode) {
  absl::StatusOr<std::string_view> parsed = SchemeOf(uri);
  if (!parsed.ok()) return parsed.status();
  const std::string_view scheme = *parsed;
  const size_t colon = scheme.size();
  if (scheme == "memory") return OpenMemory(uri, uri.substr(colon + 1), clock);
#ifdef CONVERGE_TOOLS_WITH_SQLITE
  if (scheme == "sqlite") return OpenSqlite(uri, clock, mode);
#endif
#ifdef CONVERGE_TOOLS_WITH_REDIS
  if (scheme == "redis" || scheme == "unix") return OpenRedis(uri, clock);
#endif
#ifdef CONVERGE_TOOLS_WITH_MYSQL
  if (scheme == "mysql") return OpenMysql(uri, clock);
#endif
  return absl::InvalidArgumentError(
      absl::StrCat("store \"", Av(uri), "\": unknown scheme \"", Av(scheme),
                   "\" (known: ", Av(KnownSchemes()), ")"));
}

// The store and the repo's store, kept alive together.
struct Combined {
  std::shared_ptr<void> store;
  std::shared_ptr<void> repo;
};

}  // namespace

std::string DefaultStoreUri() {
  std::string env = GetEnv(kStoreEnvVar);
  return env.empty() ? std::string(kDefaultStoreUri) : env;
}

std::string DefaultRepoUri() { return GetEnv(kRepoEnvVar); }

std::string_view KnownSchemes() {
  static const std::string* const known = [] {
    auto* s = new std::string("memory");
#ifdef CONVERGE_TOOLS_WITH_SQLITE
    s->append(", sqlite");
#endif
#ifdef CONVERGE_TOOLS_WITH_REDIS
    s->append(", redis, unix");
#endif
#ifdef CONVERGE_TOOLS_WITH_MYSQL
    s->append(", mysql");
#endif
    return s;
  }();
  return *known;
}

std::string Redacted(std::string_view uri) {
  // scheme://user:password@host...: the password goes. The user info ends
  // at the last '@' before the query, as the parsers read it (a password
  // may hold '/', '#' or '@'); without a ':' it is all secret (Redis's
  // redis://PASSWORD@host).
  const size_t scheme_end = uri.find("://");
  if (scheme_end == std::string_view::npos) return std::string(uri);
  const size_t authority = scheme_end + 3;
  const std::string_view head = uri.substr(0, uri.find('?'));
  const size_t at = head.rfind('@');
  if (at == std::string_view::npos || at < authority) return std::string(uri);
  const std::string_view info = head.substr(authority, at - authority);
  const size_t colon = info.find(':');
  const size_t keep = colon == std::string_view::npos ? 0 : colon + 1;
  return absl::StrCat(Av(uri.substr(0, authority + keep)), "***",
                      Av(uri.substr(at)));
}

namespace {

absl::StatusOr<OpenedStore> OpenStoreImpl(std::string_view uri,
                                          const Clock* clock, OpenMode mode,
                                          std::string_view repo_uri) {
  // Both URIs are checked before anything is opened.
  absl::StatusOr<std::string_view> scheme = SchemeOf(uri);
  if (!scheme.ok()) return scheme.status();
  if (repo_uri.empty() && !HasRepo(*scheme)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store \"", Av(uri),
        "\" keeps no instances and relations: name a repo for them "
        "(--repo, $CONVERGE_REPO or the \"repo\" setting), for example "
        "\"sqlite:converge.db\""));
  }
  if (!repo_uri.empty()) {
    absl::StatusOr<std::string_view> repo_scheme = SchemeOf(repo_uri);
    if (!repo_scheme.ok()) return repo_scheme.status();
    if (!HasRepo(*repo_scheme)) {
      return absl::InvalidArgumentError(
          absl::StrCat("repo \"", Av(repo_uri),
                       "\" keeps no instances and relations (use a sqlite: "
                       "file, a mysql:// database, or memory:)"));
    }
  }
  absl::StatusOr<OpenedStore> store = OpenOne(uri, clock, mode);
  if (!store.ok()) return store.status();
  if (repo_uri.empty()) return store;
  absl::StatusOr<OpenedStore> repo = OpenOne(repo_uri, clock, mode);
  if (!repo.ok()) return repo.status();
  OpenedStore opened;
  opened.stores = store->stores;
  opened.stores.repo = repo->stores.repo;
  opened.uri = absl::StrCat(Av(store->uri), " with repo ", Av(repo->uri));
  opened.ephemeral = store->ephemeral && repo->ephemeral;
  opened.owner = std::make_shared<Combined>(
      Combined{std::move(store->owner), std::move(repo->owner)});
  return opened;
}

// `text` with every occurrence of `uri` redacted.
std::string Scrub(std::string text, std::string_view uri) {
  if (uri.empty()) return text;
  const std::string safe = Redacted(uri);
  if (safe == uri) return text;
  return absl::StrReplaceAll(text, {{Av(uri), safe}});
}

}  // namespace

absl::StatusOr<OpenedStore> OpenStore(std::string_view uri, const Clock* clock,
                                      OpenMode mode,
                                      std::string_view repo_uri) {
  // One place that keeps passwords out of what callers print: the URIs of
  // an opened store, and any message that repeats a URI (parsers do).
  absl::StatusOr<OpenedStore> opened =
      OpenStoreImpl(uri, clock, mode, repo_uri);
  if (!opened.ok()) {
    std::string message(opened.status().message());
    message = Scrub(Scrub(std::move(message), uri), repo_uri);
    return absl::Status(opened.status().code(), message);
  }
  opened->uri = Scrub(Scrub(std::move(opened->uri), uri), repo_uri);
  return opened;
}

}  // namespace converge::tools
