#include "converge/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "db.h"
#include "internal/strings.h"
#include "stores.h"

namespace converge::sqlite {
namespace {

using converge::internal::AV;
using converge::internal::StrCat;

// SQLite's side of the shared stores (adapters/sql/src/stores.h): its
// connection types, its dialect and its memo policy.
struct SqliteBackend : sql::CommonSql {
  using Db = internal::Db;
  using Conn = internal::Conn;
  using Stmt = internal::Stmt;
  static constexpr std::string_view kName = "sqlite";
  // The memo holds while no other connection committed (PRAGMA
  // data_version), so "no open instance" may be remembered too.
  static constexpr bool kMemoNegative = true;
  // An idle queue is polled without taking the file's write lock.
  static constexpr bool kProbeBeforeDequeue = true;
  // Text columns keep any bytes.
  static constexpr bool kUtf8Text = false;
  // A batch holds the file's write lock (RepoBatch::ExcludesWriters).
  static constexpr bool kBatchExcludesWriters = true;
  // Schema version 4: decisions stored with a relation stay out of the
  // age index (see migration 4 in db.cc).
  static constexpr bool kMemberColumn = true;

  static constexpr const char kLeaseAcquire[] =
      "INSERT INTO converge_lease (key, token, expires_ns) "
      "VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET "
      "token = excluded.token, expires_ns = excluded.expires_ns "
      "WHERE converge_lease.token = excluded.token "
      "OR converge_lease.expires_ns <= ?4";
  static constexpr const char kUpsertMember[] =
      "INSERT INTO converge_window_member (key_id, member, score_ns) "
      "VALUES (?1, ?2, ?3) ON CONFLICT (key_id, member) DO UPDATE SET "
      "score_ns = excluded.score_ns";
  static constexpr const char kSweepMembers[] =
      "DELETE FROM converge_window_member WHERE key_id IN (SELECT "
      "id FROM converge_window_key WHERE expires_ns <= ?1 LIMIT "
      "1000)";
  static constexpr const char kSweepKeys[] =
      "DELETE FROM converge_window_key WHERE id IN (SELECT id FROM "
      "converge_window_key WHERE expires_ns <= ?1 LIMIT 1000) AND NOT "
      "EXISTS (SELECT 1 FROM converge_window_member m WHERE "
      "m.key_id = converge_window_key.id)";
  static constexpr const char kSweepLeases[] =
      "DELETE FROM converge_lease WHERE key IN (SELECT key FROM "
      "converge_lease WHERE expires_ns <= ?1 LIMIT 1000)";
  static constexpr const char kInsertRelation[] =
      "INSERT OR IGNORE INTO converge_relation (converge_id, related_id, "
      "related_type, is_primary, converge_status, alerts) VALUES (?1, "
      "?2, ?3, ?4, ?5, ?6)";
  static constexpr const char kStateOf[] =
      "SELECT end_time IS NULL, converge_type FROM converge_instance "
      "WHERE id = ?1";
  // Writes hold the database's write lock: no row lock is needed.
  static constexpr const char* kLockState = kStateOf;
  static constexpr const char kEnd[] =
      "UPDATE converge_instance SET end_time = ?2, update_time = ?2, "
      "dimension = dimension || ?3 WHERE id = ?1 AND end_time IS "
      "NULL";
  static constexpr const char kEndVisible[] =
      "UPDATE converge_instance SET end_time = ?2, update_time = ?2, "
      "dimension = dimension || ?3 WHERE id = ?1 AND end_time IS "
      "NULL AND is_visible = 1";
  // `member = 0` in the text: the partial index converge_action_decision_age
  // holds only those rows.
  static constexpr const char kPurgeActions[] =
      "DELETE FROM converge_action_decision WHERE action_id IN ("
      "SELECT a.action_id FROM converge_action_decision a WHERE "
      "a.member = 0 AND a.decided_at_ns < ?1 AND NOT EXISTS (SELECT 1 FROM "
      "converge_relation r WHERE r.related_id = a.action_id AND "
      "r.related_type = 'action') AND NOT EXISTS (SELECT 1 FROM "
      "converge_instance i WHERE i.id = a.converge_id) ORDER BY "
      "a.action_id LIMIT ?2)";
  static constexpr const char kEnqueue[] =
      "INSERT INTO converge_queue_task (queue, task_id, kind, "
      "subject_id, payload, due_ns, attempts, last_error, state, "
      "ready_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, 0, ?6) ON "
      "CONFLICT (queue, task_id) DO NOTHING";
  static constexpr const char kBury[] =
      "UPDATE converge_queue_task SET state = 2, ready_ns = NULL, "
      "last_error = ?4, delivery = delivery + 1, dead_seq = (SELECT "
      "COALESCE(MAX(dead_seq), 0) + 1 FROM converge_queue_task WHERE "
      "queue = ?3 AND state = 2) WHERE seq = ?1 AND delivery = ?2 AND "
      "queue = ?3 AND state = 1";
  static constexpr const char kPurgeMembersLoose[] =
      "UPDATE converge_action_decision SET member = 0 WHERE member = 1 AND "
      "action_id IN (SELECT related_id FROM converge_relation WHERE "
      "converge_id = ?1 AND related_type = 'action')";
  static constexpr const char kInsertAction[] =
      "INSERT INTO converge_action_decision (action_id, create_time_ns, "
      "strategy_id, execute_timeout, status, status_time_ns, outcome, "
      "converge_id, is_primary, decided_at_ns, reason, member) VALUES (?1, "
      "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
  static constexpr const char kInsertActionIgnore[] =
      "INSERT OR IGNORE INTO converge_action_decision (action_id, "
      "create_time_ns, strategy_id, execute_timeout, status, "
      "status_time_ns, outcome, converge_id, is_primary, decided_at_ns, "
      "reason, member) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
      "?11, ?12)";

  // Taken if free, expired, or already ours; the conflict clause's WHERE
  // leaves another holder's unexpired lease alone (0 rows changed).
  static absl::StatusOr<bool> TryAcquireIn(Conn& conn, std::string_view key,
                                           std::string_view token,
                                           int64_t expires_ns, int64_t now_ns) {
    Stmt up(conn, kLeaseAcquire);
    up.Bind(1, key).Bind(2, token).Bind(3, expires_ns).Bind(4, now_ns);
    if (auto st = up.Run(); !st.ok()) return st;
    return up.Changes() == 1;
  }
  static int64_t LastInsertId(Conn& conn) {
    return sqlite3_last_insert_rowid(conn.handle());
  }
  static bool IsConstraint(Conn& conn) {
    return (conn.last_error() & 0xff) == SQLITE_CONSTRAINT;
  }
  static int64_t Limit(size_t limit) {
    return limit == 0 || limit > static_cast<size_t>(
                                     std::numeric_limits<int64_t>::max())
               ? -1  // SQLite: no limit
               : static_cast<int64_t>(limit);
  }
  static std::string DateTime(absl::Time t) { return sql::DateTime(t, 9); }
};

using Stores = sql::SqlStores<SqliteBackend>;
using internal::Db;

}  // namespace

absl::StatusOr<SqliteStores> OpenSqliteStores(const SqliteOptions& options) {
  absl::StatusOr<std::shared_ptr<Db>> db = Db::Open(options);
  if (!db.ok()) return db.status();
  SqliteStores stores;
  stores.lock = std::make_unique<Stores::Lock>(*db);
  stores.window = std::make_unique<Stores::Window>(*db);
  stores.repo = std::make_unique<Stores::Repo>(*db);
  stores.queue = std::make_unique<Stores::Queue>(*db);
  return stores;
}

absl::StatusOr<SqliteOptions> ParseSqliteUri(std::string_view uri) {
  constexpr std::string_view kScheme = "sqlite:";
  if (uri.substr(0, kScheme.size()) != kScheme) {
    return absl::InvalidArgumentError(
        StrCat("sqlite: store URI \"", uri, "\" does not start with sqlite:"));
  }
  std::string_view rest = uri.substr(kScheme.size());
  if (rest.substr(0, 2) == "//") rest.remove_prefix(2);
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  if (rest.empty()) {
    return absl::InvalidArgumentError(
        StrCat("sqlite: store URI \"", uri, "\" has no path"));
  }
  SqliteOptions options;
  options.path = std::string(rest);
  if (query.empty()) return options;
  for (absl::string_view param : absl::StrSplit(AV(query), '&')) {
    const size_t eq = param.find('=');
    const absl::string_view name = param.substr(0, eq);
    const absl::string_view value = eq == absl::string_view::npos
                                        ? absl::string_view()
                                        : param.substr(eq + 1);
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(
          StrCat("sqlite: store URI \"", uri, "\": parameter ",
                 std::string_view(name.data(), name.size()), ": ", why));
    };
    if (name == "busy_timeout_ms") {
      int64_t ms;
      if (!absl::SimpleAtoi(value, &ms) || ms < 0) {
        return bad("expected a number of milliseconds >= 0");
      }
      options.busy_timeout = absl::Milliseconds(ms);
    } else if (name == "synchronous") {
      if (value == "off") {
        options.synchronous = Synchronous::kOff;
      } else if (value == "normal") {
        options.synchronous = Synchronous::kNormal;
      } else if (value == "full") {
        options.synchronous = Synchronous::kFull;
      } else if (value == "extra") {
        options.synchronous = Synchronous::kExtra;
      } else {
        return bad("expected off, normal, full or extra");
      }
    } else if (name == "cache_kib") {
      int64_t kib;
      if (!absl::SimpleAtoi(value, &kib) || kib < 64) {
        return bad("expected a number of KiB >= 64");
      }
      options.cache_kib = kib;
    } else if (name == "checkpoint_pages") {
      int64_t pages;
      if (!absl::SimpleAtoi(value, &pages) || pages < 0) {
        return bad("expected a number of pages >= 0");
      }
      options.checkpoint_pages = pages;
    } else if (name == "check_on_open" || name == "coalesce_log_writes") {
      bool& flag = name == "check_on_open" ? options.check_on_open
                                           : options.coalesce_log_writes;
      if (value == "1" || value == "true") {
        flag = true;
      } else if (value == "0" || value == "false") {
        flag = false;
      } else {
        return bad("expected 0 or 1");
      }
    } else {
      return bad(
          "unknown (known: busy_timeout_ms, synchronous, cache_kib, "
          "checkpoint_pages, check_on_open, coalesce_log_writes)");
    }
  }
  return options;
}

}  // namespace converge::sqlite
