#include "converge/mysql/mysql_store.h"

#include <mysqld_error.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "converge/store/errors.h"
#include "db.h"
#include "internal/strings.h"
#include "stores.h"

namespace converge::mysql {
namespace {

using converge::internal::AV;
using converge::internal::StrAppend;
using converge::internal::StrCat;
using internal::Conn;
using internal::Db;
using internal::Stmt;

// ---------------------------------------------------------------------------
// MySQL's side of the shared stores (adapters/sql/src/stores.h).

// Keys of the window index and of leases may be longer than an index can
// hold (a context value may have 4 KiB): they are looked up by their MD5
// (a stored generated column with the unique index) and compared in full.
#define CONVERGE_KEY_IS(t) t "key_hash = UNHEX(MD5(?1)) AND " t "`key` = ?1"

struct MysqlBackend : sql::CommonSql {
  using Db = internal::Db;
  using Conn = internal::Conn;
  using Stmt = internal::Stmt;
  static constexpr std::string_view kName = "mysql";
  // Another process may create an instance at any time: "none open" is
  // never remembered; "open" is (a Join re-checks it under a row lock).
  static constexpr bool kMemoNegative = false;
  // Dequeue skips rows other workers hold (SKIP LOCKED); no probe needed.
  static constexpr bool kProbeBeforeDequeue = false;
  // Upstream's text columns are utf8mb4.
  static constexpr bool kUtf8Text = true;
  // A batch locks rows, not the database (RepoBatch::ExcludesWriters).
  static constexpr bool kBatchExcludesWriters = false;
  // Every statement is a round trip to the server (sql::CommonSql).
  static constexpr bool kFewerRoundTrips = true;
  static constexpr unsigned kErBadNull = internal::kErBadNull;
  // converge_queue_task: queue, task_id, kind VARBINARY(255), last_error
  // BLOB.
  static constexpr size_t kMaxTaskName = 255;
  static constexpr size_t kMaxTaskError = 65535;
  // converge_instance (upstream's columns): dimension VARCHAR(128),
  // description and content TEXT, bk_biz_id INT. Refused before the
  // insert: a server error would fail a whole batch.
  static constexpr size_t kMaxDimensionChars = 128;
  static constexpr size_t kMaxTextBytes = 65535;
  static constexpr int64_t kMinBizId = -2147483648LL;
  static constexpr int64_t kMaxBizId = 2147483647LL;

  static constexpr const char kLeaseAcquire[] =
      // Assignments run left to right: token first (taken if free,
      // expired or ours), then the expiry if the token is now ours, then
      // the answer: LAST_INSERT_ID(id) if the row is ours, 0 if not (the
      // id itself is left as it was). An insert reports its new id. So
      // mysql_insert_id() says who holds the lease without a second
      // statement.
      "INSERT INTO converge_lease (`key`, token, expires_ns) VALUES (?1, "
      "?2, ?3) ON DUPLICATE KEY UPDATE token = IF(token = VALUES(token) OR "
      "expires_ns <= ?4, VALUES(token), token), expires_ns = IF(token = "
      "VALUES(token), VALUES(expires_ns), expires_ns), id = IF(token = "
      "VALUES(token), LAST_INSERT_ID(id), id + LAST_INSERT_ID(0))";
  static constexpr const char kLeaseRelease[] =
      "DELETE FROM converge_lease WHERE " CONVERGE_KEY_IS("") " AND token = ?2";
  static constexpr const char kLeaseExtend[] =
      "UPDATE converge_lease SET expires_ns = ?3 WHERE " CONVERGE_KEY_IS(
          "") " AND token = ?2 AND expires_ns > ?4";
  // Only writes look keys up: the row is locked until the commit (a
  // counter's read-modify-write, a key's expiry), as SQLite's write lock
  // does for the whole file. Two writers creating the same key collide on
  // its unique hash (1062) and the loser runs again.
  static constexpr const char kFindKey[] =
      "SELECT id, kind, counter, expires_ns FROM converge_window_key "
      "WHERE " CONVERGE_KEY_IS("") " FOR UPDATE";
  static constexpr const char kReadMembers[] =
      "SELECT m.member FROM converge_window_key k JOIN "
      "converge_window_member m ON m.key_id = k.id WHERE " CONVERGE_KEY_IS("k.") " AND k.kind = 0 AND k.expires_ns > ?2 AND m.score_ns "
                     "BETWEEN ?3 AND ?4";
  static constexpr const char kLiveIndexKeyId[] =
      "SELECT id FROM converge_window_key WHERE " CONVERGE_KEY_IS(
          "") " AND kind = 0 AND expires_ns > ?2";
  static constexpr const char kKeySize[] =
      "SELECT COUNT(*) FROM converge_window_key k JOIN "
      "converge_window_member m ON m.key_id = k.id WHERE " CONVERGE_KEY_IS(
          "k.") " AND k.kind = 0 AND k.expires_ns > ?2";
  static constexpr const char kCounterValue[] =
      "SELECT counter FROM converge_window_key WHERE " CONVERGE_KEY_IS(
          "") " AND kind = 1 AND expires_ns > ?2";
  static constexpr const char kUpsertMember[] =
      "INSERT INTO converge_window_member (key_id, member, score_ns) VALUES "
      "(?1, ?2, ?3) ON DUPLICATE KEY UPDATE score_ns = VALUES(score_ns)";
  // MySQL takes no LIMIT in an IN subquery, nor the target table in a
  // subquery of a DELETE or UPDATE: a derived table is materialized first.
  static constexpr const char kSweepMembers[] =
      "DELETE FROM converge_window_member WHERE key_id IN (SELECT id FROM "
      "(SELECT id FROM converge_window_key WHERE expires_ns <= ?1 LIMIT "
      "1000) AS dead)";
  static constexpr const char kSweepKeys[] =
      "DELETE FROM converge_window_key WHERE id IN (SELECT id FROM (SELECT "
      "id FROM converge_window_key WHERE expires_ns <= ?1 LIMIT 1000) AS "
      "dead) AND NOT EXISTS (SELECT 1 FROM converge_window_member m WHERE "
      "m.key_id = converge_window_key.id)";
  static constexpr const char kSweepLeases[] =
      "DELETE FROM converge_lease WHERE expires_ns <= ?1 LIMIT 1000";
  static constexpr const char kInsertRelation[] =
      "INSERT IGNORE INTO converge_relation (converge_id, related_id, "
      "related_type, is_primary, converge_status, alerts) VALUES (?1, ?2, "
      "?3, ?4, ?5, ?6)";
  static constexpr const char kInsertActionIgnore[] =
      "INSERT IGNORE INTO converge_action_decision (action_id, "
      "create_time_ns, strategy_id, execute_timeout, status, "
      "status_time_ns, outcome, converge_id, is_primary, decided_at_ns, "
      "reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
  // Shared lock: the instance cannot end before this transaction does.
  static constexpr const char kStateOf[] =
      "SELECT end_time IS NULL, converge_type FROM converge_instance WHERE "
      "id = ?1 LOCK IN SHARE MODE";
  // The rewrite keeps within upstream's VARCHAR(128): a long dimension is
  // cut before the suffix, whose "#<id>" keeps it unique.
  static constexpr const char kEnd[] =
      "UPDATE converge_instance SET end_time = ?2, update_time = ?2, "
      "dimension = CONCAT(LEFT(dimension, 128 - CHAR_LENGTH(?3)), ?3) "
      "WHERE id = ?1 AND end_time IS NULL";
  static constexpr const char kEndVisible[] =
      "UPDATE converge_instance SET end_time = ?2, update_time = ?2, "
      "dimension = CONCAT(LEFT(dimension, 128 - CHAR_LENGTH(?3)), ?3) "
      "WHERE id = ?1 AND end_time IS NULL AND is_visible = 1";
  // Link's and Create's members: locked for the update that hides them
  // (a shared lock then an update would deadlock with a concurrent End).
  static constexpr const char kLockState[] =
      "SELECT end_time IS NULL, converge_type FROM converge_instance WHERE "
      "id = ?1 FOR UPDATE";
  static constexpr const char kPurgeActions[] =
      "DELETE FROM converge_action_decision WHERE action_id IN (SELECT "
      "action_id FROM (SELECT a.action_id FROM converge_action_decision a "
      "WHERE a.decided_at_ns < ?1 AND NOT EXISTS (SELECT 1 FROM "
      "converge_relation r WHERE r.related_id = a.action_id AND "
      "r.related_type = 'action') AND NOT EXISTS (SELECT 1 FROM "
      "converge_instance i WHERE i.id = a.converge_id) ORDER BY a.action_id "
      "LIMIT ?2) AS doomed)";
  static constexpr const char kEnqueue[] =
      "INSERT IGNORE INTO converge_queue_task (queue, task_id, kind, "
      "subject_id, payload, due_ns, attempts, last_error, state, ready_ns) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, 0, ?6)";
  static constexpr const char kDequeueSelect[] =
      "SELECT seq, delivery, task_id, kind, subject_id, payload, due_ns, "
      "attempts, last_error FROM converge_queue_task WHERE queue = ?1 AND "
      "state < 2 AND ready_ns <= ?2 ORDER BY ready_ns, seq LIMIT 1 FOR "
      "UPDATE SKIP LOCKED";
  static constexpr const char kBury[] =
      "UPDATE converge_queue_task SET state = 2, ready_ns = NULL, "
      "last_error = ?4, delivery = delivery + 1, dead_seq = (SELECT n FROM "
      "(SELECT COALESCE(MAX(dead_seq), 0) + 1 AS n FROM converge_queue_task "
      "WHERE queue = ?3 AND state = 2) AS next) WHERE seq = ?1 AND delivery "
      "= ?2 AND queue = ?3 AND state = 1";

  static absl::StatusOr<bool> TryAcquireIn(Conn& conn, std::string_view key,
                                           std::string_view token,
                                           int64_t expires_ns, int64_t now_ns) {
    Stmt up(conn, kLeaseAcquire);
    up.Bind(1, key).Bind(2, token).Bind(3, expires_ns).Bind(4, now_ns);
    if (auto st = up.Run(); !st.ok()) return st;
    // Inserted or ours: the row's id; held by another token: 0. The row is
    // locked by this transaction either way.
    return LastInsertId(conn) != 0;
  }
  // A row of a Conn::Query result, with Stmt's accessors.
  using ResultRow = internal::ResultRow;
  // The relations of ids [from, to) with their types, to be filtered by
  // type by the caller: a related_type condition in the statement lets the
  // optimizer pick the related_type index (nearly every row is 'action')
  // over related_id when the list is long (more than
  // eq_range_index_dive_limit values are estimated from sampled index
  // statistics), and then it reads the whole table: 50 to 80 ms a
  // statement instead of 5 in some runs of the benchmark with three
  // processors.
  template <typename It>
  static std::string RelatedSql(It from, It to) {
    std::string sql =
        "SELECT related_id, related_type FROM converge_relation WHERE "
        "related_id IN (";
    AppendIds(&sql, from, to);
    sql += ")";
    return sql;
  }

  // Runs `sql` and calls fn(const ResultRow&) for each row, until one
  // returns an error.
  template <typename Fn>
  static absl::Status ForEachRow(Conn& conn, const std::string& sql, Fn&& fn) {
    MYSQL_RES* res = nullptr;
    if (auto st = conn.Query(sql, &res, nullptr); !st.ok()) return st;
    absl::Status st;
    while (MYSQL_ROW row = mysql_fetch_row(res)) {
      st = fn(ResultRow{row, mysql_fetch_lengths(res)});
      if (!st.ok()) break;
    }
    mysql_free_result(res);
    return st;
  }

  // Appends the ids [from, to) separated by commas (an IN list).
  template <typename It>
  static void AppendIds(std::string* sql, It from, It to) {
    for (It it = from; it != to; ++it) {
      StrAppend(sql, it == from ? "" : ",", *it);
    }
  }

  // Calls fn(from, to) for each run of up to 1,000 of `items`, until one
  // returns an error.
  template <typename T, typename Fn>
  static absl::Status InChunks(const T& items, Fn&& fn) {
    constexpr size_t kChunk = 1000;
    const size_t n = std::size(items);
    for (size_t at = 0; at < n; at += kChunk) {
      auto from = std::begin(items) + static_cast<ptrdiff_t>(at);
      auto to =
          std::begin(items) + static_cast<ptrdiff_t>(std::min(n, at + kChunk));
      if (auto st = fn(from, to); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  // ---- the batch's deferred writes (Conn::Deferred; sql::SqlStores'
  // Create calls these) ----

  // True if `conn` runs this thread's batch and found `action` with
  // neither a decision nor a relation in it (MysqlRepo::GetActions,
  // PrepareJoins); then the action is taken out of that set.
  static bool TakeUnseen(Conn& conn, int64_t action) {
    return conn.db().BatchConn() == &conn &&
           conn.deferred().unseen.erase(action) == 1;
  }
  // Defers a decision and/or a relation to the batch's next flush.
  static void Defer(Conn& conn, const ActionRecord* record,
                    const ConvergeRelation* relation) {
    Conn::Deferred& d = conn.deferred();
    Conn::PendingWrite& w = d.joins.emplace_back();
    if (record != nullptr) {
      w.record = *record;
      d.actions.insert(record->id);
    }
    if (relation != nullptr) {
      w.relation = *relation;
      if (relation->related_type == ConvergeType::kAction) {
        d.actions.insert(relation->related_id);
      }
    }
  }
  // Of `ids`, in their order, the actions decided to execute that have no
  // relation of type action: one statement per 1,000.
  static absl::StatusOr<std::vector<int64_t>> ExecutedUnrelated(
      Conn& conn, absl::Span<const int64_t> ids) {
    absl::flat_hash_set<int64_t> found;
    absl::Status st = InChunks(ids, [&](auto from, auto to) {
      std::string sql =
          "SELECT a.action_id FROM converge_action_decision a WHERE "
          "a.action_id IN (";
      AppendIds(&sql, from, to);
      StrAppend(&sql, ") AND a.outcome = '", ToString(Outcome::kExecute),
                "' AND NOT EXISTS (SELECT 1 FROM converge_relation r WHERE "
                "r.related_id = a.action_id AND r.related_type = 'action')");
      return ForEachRow(conn, sql, [&](const ResultRow& row) {
        found.insert(row.Int(0));
        return absl::OkStatus();
      });
    });
    if (!st.ok()) return st;
    std::vector<int64_t> out;
    for (int64_t id : ids) {
      if (found.contains(id)) out.push_back(id);
    }
    return out;
  }
  // Inserts `relations` (new: their instance was created in this
  // transaction): deferred in a batch, else one statement per 1,000.
  static absl::Status InsertRelations(
      Conn& conn, absl::Span<const ConvergeRelation> relations) {
    if (conn.db().BatchConn() == &conn) {
      for (const ConvergeRelation& rel : relations) Defer(conn, nullptr, &rel);
      return absl::OkStatus();
    }
    return InChunks(relations, [&](auto from, auto to) {
      std::string sql =
          "INSERT INTO converge_relation (converge_id, related_id, "
          "related_type, is_primary, converge_status, alerts) VALUES ";
      for (auto it = from; it != to; ++it) {
        StrAppend(&sql, it == from ? "(" : ",(", it->converge_id, ",",
                  it->related_id, ",'", ToString(it->related_type), "',",
                  it->is_primary ? 1 : 0, ",'", ToString(it->converge_status),
                  "',");
        conn.AppendLiteral(&sql, sql::AlertsJson(it->alerts));
        sql += ")";
      }
      return conn.Exec(sql);
    });
  }

  // QueueStore::EnqueueMany's inserts: one INSERT IGNORE per 1,000 tasks or
  // per MiB of text, whichever comes first (a task already queued is left
  // as it is; a payload may be large, and a statement must stay under the
  // server's max_allowed_packet).
  static absl::Status EnqueueRows(Conn& conn, std::string_view queue,
                                  absl::Span<const Task> tasks) {
    constexpr size_t kRows = 1000;
    constexpr size_t kBytes = 1 << 20;
    static constexpr char kHead[] =
        "INSERT IGNORE INTO converge_queue_task (queue, task_id, kind, "
        "subject_id, payload, due_ns, attempts, last_error, state, ready_ns) "
        "VALUES ";
    std::string sql;
    size_t rows = 0;
    for (const Task& t : tasks) {
      const std::string due = StrCat(sql::Nanos(t.due));
      sql += rows == 0 ? StrCat(kHead, "(") : ",(";
      conn.AppendLiteral(&sql, queue);
      sql += ",";
      conn.AppendLiteral(&sql, t.id);
      sql += ",";
      conn.AppendLiteral(&sql, t.kind);
      StrAppend(&sql, ",", t.subject_id, ",");
      conn.AppendLiteral(&sql, t.payload);
      StrAppend(&sql, ",", due, ",0,");
      conn.AppendLiteral(&sql, t.last_error);
      StrAppend(&sql, ",0,", due, ")");
      if (++rows == kRows || sql.size() >= kBytes) {
        if (auto st = conn.Exec(sql); !st.ok()) return st;
        sql.clear();
        rows = 0;
      }
    }
    return rows == 0 ? absl::OkStatus() : conn.Exec(sql);
  }

  // LockStore::ReleaseMany's deletes: the leases' rows found (and locked)
  // by their keys' hashes, then those held by the given tokens deleted by
  // id; two statements per 1,000 leases.
  static absl::StatusOr<size_t> ReleaseLeases(
      Conn& conn,
      absl::Span<const std::pair<std::string, std::string>> leases) {
    absl::flat_hash_map<std::string_view, std::vector<std::string_view>> tokens;
    for (const auto& [key, token] : leases) tokens[key].push_back(token);
    size_t released = 0;
    absl::Status st = InChunks(leases, [&](auto from, auto to) {
      std::string sql =
          "SELECT id, `key`, token FROM converge_lease WHERE key_hash IN (";
      for (auto it = from; it != to; ++it) {
        sql += it == from ? "UNHEX(MD5(" : ",UNHEX(MD5(";
        conn.AppendLiteral(&sql, it->first);
        sql += "))";
      }
      sql += ") FOR UPDATE";
      std::string ids;
      absl::Status found = ForEachRow(conn, sql, [&](const ResultRow& row) {
        auto it = tokens.find(row.TextView(1));
        if (it != tokens.end() &&
            std::find(it->second.begin(), it->second.end(), row.TextView(2)) !=
                it->second.end()) {
          StrAppend(&ids, ids.empty() ? "" : ",", row.Int(0));
        }
        return absl::OkStatus();
      });
      if (!found.ok() || ids.empty()) return found;
      int64_t n = 0;
      if (auto del = conn.Query(
              StrCat("DELETE FROM converge_lease WHERE id IN (", ids, ")"),
              nullptr, &n);
          !del.ok()) {
        return del;
      }
      released += static_cast<size_t>(n);
      return absl::OkStatus();
    });
    if (!st.ok()) return st;
    return released;
  }
  static int64_t LastInsertId(Conn& conn) {
    return static_cast<int64_t>(mysql_insert_id(conn.handle()));
  }
  static bool IsConstraint(Conn& conn) {
    return conn.last_error() == ER_DUP_ENTRY;
  }
  static int64_t Limit(size_t limit) {
    return limit == 0 || limit > static_cast<size_t>(
                                     std::numeric_limits<int64_t>::max())
               ? std::numeric_limits<int64_t>::max()
               : static_cast<int64_t>(limit);
  }
  // DATETIME(6): microseconds.
  static std::string DateTime(absl::Time t) { return sql::DateTime(t, 6); }
};

#undef CONVERGE_KEY_IS

using Stores = sql::SqlStores<MysqlBackend>;

// ---------------------------------------------------------------------------
// The repo, with joins deferred inside a batch.
//
// In a storm almost every decision is a join of an open instance whose
// outcome can no longer change: the manager looks the instance up (the
// memo answers) and joins it. Written one by one, a join costs four
// statements; inside a batch MysqlRepo asks in one statement whether the
// instance is still open (locking its row in share mode, so that no End
// can come before the commit) and whether the action has a decision or a
// relation already (a redelivery, an ended instance: the plain path, which
// returns the stored decision or the refusal), keeps the join, and writes
// all the joins of the batch together before the commit, or before a repo
// call that could see them (one about a pending action or the executed
// members of a joined instance; any other write): one multi-row INSERT per
// 1,000 decisions and per 1,000 relations, the last ones sent with the
// COMMIT. A conflict
// found then (the same action decided by another process in between) fails
// the batch (IsConflict): nothing is committed and the caller submits the
// batch again, which then sees the other writer's work. A join whose
// instance this transaction already knows to have ended is refused at
// once, as outside a batch. In a batch that the manager runs again after a
// conflict (RepoBatch::RetriedOnConflict: a Submit), a join that finds no
// other join pending (the first; or the first after a flush) is not checked
// in the call but by its own writes (WriteJoins): one round trip for the
// check, the writes and the commit.

class MysqlRepo final : public InstanceRepo {
 public:
  // Is instance ?2 open (its row locked in share mode against an End until
  // the commit), and has action ?1 a decision or a relation already?
  static constexpr const char kJoinCheck[] =
      "SELECT i.end_time IS NULL, EXISTS (SELECT 1 FROM "
      "converge_action_decision WHERE action_id = ?1), EXISTS (SELECT 1 FROM "
      "converge_relation WHERE related_id = ?1 AND related_type = 'action') "
      "FROM converge_instance i WHERE i.id = ?2 LOCK IN SHARE MODE";

  explicit MysqlRepo(std::shared_ptr<Db> db) : db_(db), inner_(db) {
    db->SetBeforeCommit([](Conn& conn, bool* committed) {
      return WriteJoins(conn, committed);
    });
  }

  absl::StatusOr<RecordResult> Join(const ActionRecord& record,
                                    const ConvergeRelation& rel) override {
    Conn* conn = db_->BatchConn();
    if (conn == nullptr || db_->BatchFailed()) return inner_.Join(record, rel);
    if (auto st = store::CheckJoin(MysqlBackend::kName, record, rel);
        !st.ok()) {
      return st;
    }
    if (auto st = Stores::CheckAlerts(rel.alerts); !st.ok()) return st;
    Conn::Deferred& d = conn->deferred();
    sql::RepoMemo& memo = conn->memo();
    // Whatever the route, the action is decided from here on (or refused):
    // it is no longer one found undecided.
    const bool unseen = d.unseen.erase(record.id) == 1;
    auto state = memo.state.find(rel.converge_id);
    if (d.actions.contains(record.id) ||
        (state != memo.state.end() && !state->second.open)) {
      // The action twice in one batch, or an instance known to have ended:
      // the plain path gives the exact answer.
      if (auto st = Flush(); !st.ok()) return st;
      return inner_.Join(record, rel);
    }
    bool unchecked = false;
    if (d.locked_open.contains(rel.converge_id) && unseen) {
      // Checked with the batch's other joins (PrepareJoins).
    } else if (d.may_defer_checks && d.joins.empty() &&
               (record.decision.outcome == Outcome::kSkip ||
                record.decision.outcome == Outcome::kExecute)) {
      // No other join pending (the batch's first, or the first since a
      // flush), and the caller runs the batch again after a conflict:
      // checked when written (WriteJoins). Alone in its batch
      // (Submit), the join's check, writes and commit are one round trip.
      // (Not a sleep or an approval: the manager enqueues their follow-up
      // task before the commit, and a refused join would leave it behind.)
      unchecked = true;
    } else {
      // One round trip instead of the plain join's four: is the instance
      // still open (locked open until the commit), and has the action a
      // decision or a relation already (a redelivery)? Anything but "open,
      // neither" takes the plain path, which gives the stored decision or
      // the refusal.
      Stmt q(*conn, kJoinCheck);
      q.Bind(1, record.id).Bind(2, rel.converge_id);
      absl::StatusOr<bool> row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row || q.Int(0) == 0 || q.Int(1) != 0 || q.Int(2) != 0) {
        if (auto st = Flush(); !st.ok()) return st;
        return inner_.Join(record, rel);
      }
      if (state == memo.state.end()) {
        memo.state[rel.converge_id] =
            sql::RepoMemo::State{true, ConvergeType::kAction};
      }
    }
    d.actions.insert(record.id);
    d.joins.push_back(Conn::PendingWrite{record, rel, unchecked});
    d.joins.back().record->decision.converge_id = rel.converge_id;
    if (rel.converge_status == ConvergeStatus::kExecuted) {
      Stores::MemoExecuted(&memo, rel.converge_id, 1);
    }
    RecordResult result{record, true};
    result.record.decision.converge_id = rel.converge_id;
    return result;
  }

  // The hot path's look-up needs no flush: it reads the memo or the
  // instance row, which pending joins do not change (the executed count
  // they add is in the memo already).
  absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
      std::string_view dimension) override {
    return inner_.LookupOpen(dimension);
  }

  // LookupOpen of each: the memo's answers, and one statement per 1,000 of
  // the other dimensions.
  absl::StatusOr<std::vector<std::optional<OpenInstanceRef>>> LookupOpenMany(
      absl::Span<const std::string> dimensions) override {
    using Out = std::vector<std::optional<OpenInstanceRef>>;
    return db_->Read([&](Conn& conn) -> absl::StatusOr<Out> {
      sql::RepoMemo& memo = conn.memo();
      Out out(dimensions.size());
      absl::flat_hash_map<std::string_view, std::vector<size_t>> asked;
      for (size_t i = 0; i < dimensions.size(); ++i) {
        if (auto it = memo.open.find(AV(dimensions[i]));
            it != memo.open.end()) {
          out[i] = it->second;
        } else {
          asked[dimensions[i]].push_back(i);
        }
      }
      std::vector<std::string_view> keys;
      for (const auto& [dim, at] : asked) keys.push_back(dim);
      absl::Status st = MysqlBackend::InChunks(keys, [&](auto from, auto to) {
        std::string sql =
            "SELECT i.dimension, i.id, i.create_time, (SELECT COUNT(*) FROM "
            "converge_relation r WHERE r.converge_id = i.id AND "
            "r.related_type = 'action' AND r.converge_status = 'executed'), "
            "i.end_time IS NULL FROM converge_instance i WHERE i.dimension "
            "IN (";
        for (auto it = from; it != to; ++it) {
          if (it != from) sql += ",";
          conn.AppendLiteral(&sql, *it);
        }
        sql += ")";
        return MysqlBackend::ForEachRow(
            conn, sql, [&](const MysqlBackend::ResultRow& row) -> absl::Status {
              auto at = asked.find(row.TextView(0));
              if (at == asked.end() || row.Int(4) == 0) return absl::OkStatus();
              absl::StatusOr<absl::Time> created =
                  Stores::Column(sql::ParseDateTime(row.TextView(2)), conn.db(),
                                 "converge_instance");
              if (!created.ok()) return created.status();
              const OpenInstanceRef ref{row.Int(1), *created, row.Int(3)};
              for (size_t i : at->second) out[i] = ref;
              memo.dimension_of[ref.id] = std::string(at->first);
              memo.open[AV(at->first)] = ref;
              return absl::OkStatus();
            });
      });
      if (!st.ok()) return st;
      return out;
    });
  }

  // GetAction of each, in one statement per 1,000 ids.
  absl::StatusOr<std::vector<std::optional<ActionRecord>>> GetActions(
      absl::Span<const int64_t> action_ids) override {
    using Out = std::vector<std::optional<ActionRecord>>;
    if (auto st = FlushIfPending(action_ids); !st.ok()) return st;
    return db_->Read([&](Conn& conn) -> absl::StatusOr<Out> {
      absl::flat_hash_map<int64_t, ActionRecord> found;
      absl::Status st = MysqlBackend::InChunks(action_ids, [&](auto from,
                                                               auto to) {
        std::string sql = CONVERGE_SQL_SELECT_ACTION " WHERE action_id IN (";
        MysqlBackend::AppendIds(&sql, from, to);
        sql += ")";
        return MysqlBackend::ForEachRow(
            conn, sql, [&](const MysqlBackend::ResultRow& row) -> absl::Status {
              absl::StatusOr<ActionRecord> r =
                  Stores::ActionFromRow(row, conn.db());
              if (!r.ok()) return r.status();
              found[r->id] = *std::move(r);
              return absl::OkStatus();
            });
      });
      if (!st.ok()) return st;
      std::vector<int64_t> undecided;
      if (&conn == db_->BatchConn()) {
        for (int64_t id : action_ids) {
          if (!found.contains(id)) undecided.push_back(id);
        }
      }
      if (!undecided.empty()) {
        // Which of the undecided have no relation either: their decision
        // or creation is then written with the batch's joins
        // (Conn::Deferred::unseen).
        absl::flat_hash_set<int64_t> related;
        st = MysqlBackend::InChunks(undecided, [&](auto from, auto to) {
          std::string sql = MysqlBackend::RelatedSql(from, to);
          return MysqlBackend::ForEachRow(
              conn, sql, [&](const MysqlBackend::ResultRow& row) {
                if (row.TextView(1) == "action") related.insert(row.Int(0));
                return absl::OkStatus();
              });
        });
        if (!st.ok()) return st;
        for (int64_t id : undecided) {
          if (!related.contains(id) && !conn.deferred().actions.contains(id)) {
            conn.deferred().unseen.insert(id);
          }
        }
      }
      Out out;
      out.reserve(action_ids.size());
      for (int64_t id : action_ids) {
        auto it = found.find(id);
        if (it == found.end()) {
          out.emplace_back();
        } else {
          out.emplace_back(it->second);
        }
      }
      return out;
    });
  }

  // Checks the batch's coming joins in two statements: which instances
  // are open (locked in share mode until the commit, as kJoinCheck locks
  // each), and which actions have a decision or a relation already. A
  // Join of an action found with neither to an instance found open then
  // needs no statement of its own.
  absl::Status PrepareJoins(
      absl::Span<const std::pair<int64_t, int64_t>> joins) override {
    Conn* conn = db_->BatchConn();
    if (conn == nullptr || db_->BatchFailed() || joins.empty()) {
      return absl::OkStatus();
    }
    Conn::Deferred& d = conn->deferred();
    sql::RepoMemo& memo = conn->memo();
    std::vector<int64_t> instances, actions;
    absl::flat_hash_set<int64_t> seen;
    for (const auto& [action, instance] : joins) {
      actions.push_back(action);
      if (seen.insert(instance).second) instances.push_back(instance);
    }
    absl::flat_hash_set<int64_t> open, decided;
    absl::Status st =
        MysqlBackend::InChunks(instances, [&](auto from, auto to) {
          // By primary key: left to itself the optimizer may read the
          // end_time index instead, locking every open instance, and wait
          // for other processors' batches that create instances.
          std::string sql =
              "SELECT id FROM converge_instance FORCE INDEX (PRIMARY) WHERE "
              "id IN (";
          MysqlBackend::AppendIds(&sql, from, to);
          sql +=
              ") AND end_time IS NULL AND converge_type = 'action' LOCK IN "
              "SHARE MODE";
          return MysqlBackend::ForEachRow(
              *conn, sql, [&](const MysqlBackend::ResultRow& row) {
                open.insert(row.Int(0));
                return absl::OkStatus();
              });
        });
    if (st.ok()) {
      st = MysqlBackend::InChunks(actions, [&](auto from, auto to) {
        std::string ids;
        MysqlBackend::AppendIds(&ids, from, to);
        const std::string sql = StrCat(
            "SELECT action_id, 'action' FROM converge_action_decision WHERE "
            "action_id IN (",
            ids, ") UNION ALL ", MysqlBackend::RelatedSql(from, to));
        return MysqlBackend::ForEachRow(
            *conn, sql, [&](const MysqlBackend::ResultRow& row) {
              if (row.TextView(1) == "action") decided.insert(row.Int(0));
              return absl::OkStatus();
            });
      });
    }
    if (!st.ok()) {
      db_->FailBatch(st);
      return st;
    }
    for (int64_t id : open) {
      d.locked_open.insert(id);
      if (!memo.state.contains(id)) {
        memo.state[id] = sql::RepoMemo::State{true, ConvergeType::kAction};
      }
    }
    for (int64_t id : actions) {
      if (!decided.contains(id) && !d.actions.contains(id)) d.unseen.insert(id);
    }
    return absl::OkStatus();
  }

#define CONVERGE_FLUSHED(call)                \
  if (auto st = Flush(); !st.ok()) return st; \
  return inner_.call

  // Calls that read or write rows of given actions or instances flush
  // only when a pending join is about one of them: the slow path's calls
  // between the joins of a batch then leave the joins pending, and they
  // are written together.
  absl::StatusOr<std::optional<ActionRecord>> GetAction(
      int64_t action_id) override {
    if (auto st = FlushIfPending({action_id}); !st.ok()) return st;
    return inner_.GetAction(action_id);
  }
  absl::StatusOr<RecordResult> RecordDecision(
      const ActionRecord& record) override {
    if (auto st = FlushIfPending({record.id}); !st.ok()) return st;
    if (Conn* conn = db_->BatchConn();
        conn != nullptr && !db_->BatchFailed() &&
        conn->deferred().unseen.contains(record.id)) {
      // Found undecided by this batch: written with its joins.
      if (auto st = store::CheckRecord(MysqlBackend::kName, record); !st.ok())
        return st;
      conn->deferred().unseen.erase(record.id);
      RecordResult result{record, true};
      result.record.decision.converge_id =
          Stores::InstanceIdOrNull(record.decision.converge_id);
      MysqlBackend::Defer(*conn, &result.record, nullptr);
      return result;
    }
    Forget(record.id);
    return inner_.RecordDecision(record);
  }
  absl::Status SetActionStatus(int64_t action_id, ActionStatus status,
                               absl::Time at) override {
    if (auto st = FlushIfPending({action_id}); !st.ok()) return st;
    return inner_.SetActionStatus(action_id, status, at);
  }
  absl::StatusOr<bool> UpdateDecision(int64_t action_id, Outcome expected,
                                      const Decision& decision) override {
    if (auto st = FlushIfPending({action_id}); !st.ok()) return st;
    return inner_.UpdateDecision(action_id, expected, decision);
  }
  absl::StatusOr<CreateResult> Create(const CreateRequest& request) override {
    // The creator and the candidates to attach (actions, or instances of a
    // second-level create, which pending joins never touch).
    std::vector<int64_t> actions = request.attach_candidates;
    if (request.creator.has_value()) actions.push_back(request.creator->id);
    if (auto st = FlushIfPending(actions); !st.ok()) return st;
    absl::StatusOr<CreateResult> created = inner_.Create(request);
    if (created.ok() && request.creator.has_value()) {
      Forget(request.creator->id);
    }
    return created;
  }
  absl::StatusOr<std::optional<ConvergeInstance>> FindOpen(
      std::string_view dimension) override {
    CONVERGE_FLUSHED(FindOpen(dimension));
  }
  // Pending writes are decisions and relations, never instance rows.
  absl::StatusOr<ConvergeInstance> GetInstance(int64_t id) override {
    return inner_.GetInstance(id);
  }
  // In one statement per 1,000 ids.
  absl::StatusOr<std::vector<ConvergeInstance>> GetInstances(
      absl::Span<const int64_t> ids) override {
    using Out = std::vector<ConvergeInstance>;
    return db_->Read([&](Conn& conn) -> absl::StatusOr<Out> {
      absl::flat_hash_map<int64_t, ConvergeInstance> found;
      absl::Status st = MysqlBackend::InChunks(ids, [&](auto from, auto to) {
        std::string sql = "SELECT " CONVERGE_INSTANCE_COLUMNS
                          " FROM converge_instance WHERE id IN (";
        MysqlBackend::AppendIds(&sql, from, to);
        sql += ")";
        return MysqlBackend::ForEachRow(
            conn, sql, [&](const MysqlBackend::ResultRow& row) -> absl::Status {
              absl::StatusOr<ConvergeInstance> inst =
                  Stores::InstanceFromRow(row, *db_);
              if (!inst.ok()) return inst.status();
              found[inst->id] = *std::move(inst);
              return absl::OkStatus();
            });
      });
      if (!st.ok()) return st;
      Out out;
      out.reserve(ids.size());
      for (int64_t id : ids) {
        auto it = found.find(id);
        if (it == found.end()) {
          return absl::NotFoundError(StrCat("mysql: no instance ", id));
        }
        out.push_back(it->second);
      }
      return out;
    });
  }
  absl::StatusOr<bool> End(int64_t id, absl::Time now) override {
    return EndIf(id, now, false);
  }
  absl::StatusOr<bool> EndVisible(int64_t id, absl::Time now) override {
    return EndIf(id, now, true);
  }
  absl::StatusOr<bool> EndIf(int64_t id, absl::Time now, bool visible_only) {
    // Joins of this instance are written first (it was open for them).
    if (auto st = FlushIfPending({}, id); !st.ok()) return st;
    absl::StatusOr<bool> ended =
        visible_only ? inner_.EndVisible(id, now) : inner_.End(id, now);
    if (Conn* conn = db_->BatchConn(); conn != nullptr && ended.ok()) {
      if (*ended || !visible_only) {
        // Ended (by this transaction, and locked, or before): a later join
        // of it in the batch is refused at once.
        conn->memo().state[id] = sql::RepoMemo::State{false, {}};
      } else {
        // Not ended by EndVisible: ended before, or hidden and still open.
        // The memo does not know which; it reads the row again.
        conn->memo().state.erase(id);
      }
    }
    return ended;
  }
  absl::Status SetVisible(int64_t id, bool visible) override {
    CONVERGE_FLUSHED(SetVisible(id, visible));
  }
  absl::StatusOr<std::vector<ConvergeInstance>> ListOpen(
      size_t limit) override {
    CONVERGE_FLUSHED(ListOpen(limit));
  }
  absl::StatusOr<std::vector<ConvergeInstance>> ListOpenAfter(
      int64_t after_id, size_t limit) override {
    CONVERGE_FLUSHED(ListOpenAfter(after_id, limit));
  }
  absl::StatusOr<std::vector<ConvergeInstance>> ListEndedAfter(
      int64_t after_id, size_t limit) override {
    CONVERGE_FLUSHED(ListEndedAfter(after_id, limit));
  }
  absl::StatusOr<OpenCounts> CountOpen() override {
    CONVERGE_FLUSHED(CountOpen());
  }
  absl::StatusOr<PurgeResult> Purge(absl::Time before, size_t limit) override {
    CONVERGE_FLUSHED(Purge(before, limit));
  }
  absl::StatusOr<std::vector<ConvergeRelation>> Relations(
      int64_t converge_id) override {
    if (auto st = FlushIfPending({}, converge_id); !st.ok()) return st;
    return inner_.Relations(converge_id);
  }
  absl::StatusOr<std::vector<ConvergeRelation>> RelationsAfter(
      int64_t converge_id, int64_t after_id, size_t limit) override {
    if (auto st = FlushIfPending({}, converge_id); !st.ok()) return st;
    return inner_.RelationsAfter(converge_id, after_id, limit);
  }
  absl::StatusOr<std::optional<int64_t>> ConvergeOf(
      int64_t first_level_id) override {
    CONVERGE_FLUSHED(ConvergeOf(first_level_id));
  }
  absl::StatusOr<std::vector<MemberStatus>> ExecutedMembers(
      int64_t converge_id) override {
    if (auto st = FlushIfPending({}, converge_id); !st.ok()) return st;
    return inner_.ExecutedMembers(converge_id);
  }
  absl::StatusOr<int64_t> CountExecuted(int64_t converge_id) override {
    if (auto st = FlushIfPending({}, converge_id); !st.ok()) return st;
    return inner_.CountExecuted(converge_id);
  }
  absl::StatusOr<std::vector<ConvergeRelation>> Link(
      int64_t converge_id,
      absl::Span<const ConvergeRelation> relations) override {
    CONVERGE_FLUSHED(Link(converge_id, relations));
  }
  // The ids without a relation of `type`, in one statement per 1,000 ids
  // (the shared store asks id by id).
  absl::StatusOr<std::vector<int64_t>> Unrelated(absl::Span<const int64_t> ids,
                                                 ConvergeType type) override {
    // Pending joins add relations of type action only.
    if (type == ConvergeType::kAction) {
      if (auto st = FlushIfPending(ids); !st.ok()) return st;
    }
    if (ids.size() < 2) return inner_.Unrelated(ids, type);
    return db_->Read([&](Conn& conn) -> absl::StatusOr<std::vector<int64_t>> {
      absl::flat_hash_set<int64_t> related;
      constexpr size_t kChunk = 1000;
      for (size_t at = 0; at < ids.size(); at += kChunk) {
        const std::string sql = MysqlBackend::RelatedSql(
            ids.begin() + at, ids.begin() + std::min(ids.size(), at + kChunk));
        MYSQL_RES* res = nullptr;
        if (auto st = conn.Query(sql, &res, nullptr); !st.ok()) return st;
        const std::string_view wanted = ToString(type);
        while (MYSQL_ROW row = mysql_fetch_row(res)) {
          const unsigned long* len = mysql_fetch_lengths(res);
          int64_t v = 0;
          if (row[0] != nullptr && row[1] != nullptr &&
              std::string_view(row[1], len[1]) == wanted &&
              absl::SimpleAtoi(row[0], &v)) {
            related.insert(v);
          }
        }
        mysql_free_result(res);
      }
      std::vector<int64_t> out;
      out.reserve(ids.size());
      for (int64_t id : ids) {
        if (!related.contains(id)) out.push_back(id);
      }
      return out;
    });
  }
  absl::StatusOr<std::unique_ptr<RepoBatch>> BeginBatch() override {
    return inner_.BeginBatch();
  }
#undef CONVERGE_FLUSHED

 private:
  // The action is decided: no longer one the batch found undecided.
  void Forget(int64_t action) {
    if (Conn* conn = db_->BatchConn(); conn != nullptr) {
      conn->deferred().unseen.erase(action);
    }
  }

  // Writes this thread's pending joins (no-op outside a batch or without
  // any); a failure fails the batch.
  absl::Status Flush() {
    Conn* conn = db_->BatchConn();
    if (conn == nullptr || conn->deferred().joins.empty()) {
      return absl::OkStatus();
    }
    absl::Status st = WriteJoins(*conn, nullptr);
    if (!st.ok()) db_->FailBatch(st);
    return st;
  }

  // Flushes when a pending join is about one of `actions` or joins
  // instance `instance` (0: none).
  absl::Status FlushIfPending(absl::Span<const int64_t> actions,
                              int64_t instance = 0) {
    Conn* conn = db_->BatchConn();
    if (conn == nullptr || conn->deferred().joins.empty()) {
      return absl::OkStatus();
    }
    const Conn::Deferred& d = conn->deferred();
    bool touched = false;
    for (int64_t id : actions) touched = touched || d.actions.contains(id);
    if (instance != 0) {
      for (const Conn::PendingWrite& j : d.joins) {
        touched = touched || (j.relation.has_value() &&
                              j.relation->converge_id == instance);
      }
    }
    return touched ? Flush() : absl::OkStatus();
  }

  static absl::Status Conflict(Conn& conn, std::string_view what) {
    return ConflictError(StrCat(
        "mysql: ", conn.db().path(), ": the batch's joins met another writer (",
        what, "); the batch is rolled back: submit it again"));
  }

  static constexpr const char kDecisionColumns[] =
      "INSERT INTO converge_action_decision (action_id, create_time_ns, "
      "strategy_id, execute_timeout, status, status_time_ns, outcome, "
      "converge_id, is_primary, decided_at_ns, reason) ";
  static constexpr const char kRelationColumns[] =
      "INSERT INTO converge_relation (converge_id, related_id, related_type, "
      "is_primary, converge_status, alerts) ";

  static void AppendDecision(Conn& conn, std::string* sql,
                             const ActionRecord& r) {
    StrAppend(sql, r.id, ",", sql::Nanos(r.create_time), ",", r.strategy_id,
              ",", r.execute_timeout, ",'", ToString(r.status), "',",
              sql::Nanos(r.status_time), ",'", ToString(r.decision.outcome),
              "',");
    const std::optional<int64_t> id =
        Stores::InstanceIdOrNull(r.decision.converge_id);
    if (id.has_value()) {
      StrAppend(sql, *id);
    } else {
      *sql += "NULL";
    }
    StrAppend(sql, ",", r.decision.primary ? 1 : 0, ",",
              sql::Nanos(r.decision.decided_at), ",");
    conn.AppendLiteral(sql, r.decision.reason);
  }

  static void AppendRelation(Conn& conn, std::string* sql,
                             const ConvergeRelation& rel) {
    StrAppend(sql, rel.converge_id, ",");
    AppendRelationAfterId(conn, sql, rel);
  }

  // Its values after the converge_id.
  static void AppendRelationAfterId(Conn& conn, std::string* sql,
                                    const ConvergeRelation& rel) {
    StrAppend(sql, rel.related_id, ",'", ToString(rel.related_type), "',",
              rel.is_primary ? 1 : 0, ",'", ToString(rel.converge_status),
              "',");
    conn.AppendLiteral(sql, sql::AlertsJson(rel.alerts));
  }

  // The statements of an unchecked join: its decision, written only if the
  // instance is open (its row locked in share mode until the commit, as
  // kJoinCheck locks it) and the action has no relation (a decision stored
  // before fails it on its key); then its relation, whose converge_id is
  // NULL (error 1048, a NOT NULL column) unless the decision was written
  // (ROW_COUNT(), in MySQL and MariaDB the changed rows of the statement
  // before, is read before this one writes), so that a refused join stops
  // the script before its COMMIT. The relation check is a LEFT JOIN rather
  // than NOT EXISTS: a subquery costs the server about twice as much here.
  static void UncheckedJoin(Conn& conn, const Conn::PendingWrite& w,
                            std::vector<std::string>* script) {
    const ActionRecord& r = *w.record;
    const ConvergeRelation& rel = *w.relation;
    std::string decision = StrCat(kDecisionColumns, "SELECT ");
    AppendDecision(conn, &decision, r);
    StrAppend(&decision,
              " FROM converge_instance i LEFT JOIN converge_relation r ON "
              "r.related_id = ",
              r.id,
              " AND r.related_type = 'action' WHERE i.id = ", rel.converge_id,
              " AND i.end_time IS NULL AND r.id IS NULL LOCK IN SHARE MODE");
    std::string relation =
        StrCat(kRelationColumns, "VALUES (IF(ROW_COUNT() = 1, ",
               rel.converge_id, ", NULL),");
    AppendRelationAfterId(conn, &relation, rel);
    relation += ")";
    script->push_back(std::move(decision));
    script->push_back(std::move(relation));
  }

  // Writes the pending joins: per 1,000, one multi-row INSERT of decisions
  // and one of relations, sent together (an unchecked join first, with
  // statements of its own). With `committed`, the COMMIT goes with the last
  // of them (a join one by one: one round trip for its writes and the
  // commit) and *committed is set. A duplicate key (another writer decided
  // or related one of the actions in between) fails its statement, and
  // with it the rest: nothing is committed. An unchecked join found not
  // possible (its instance ended, the action related or decided meanwhile)
  // stops the script before the COMMIT too, and is an IsConflict error
  // after which the manager runs the batch again (checking its joins at
  // once); the connection forgets what it remembered of open instances.
  static absl::Status WriteJoins(Conn& conn, bool* committed) {
    Conn::Deferred& d = conn.deferred();
    if (d.joins.empty()) {
      if (committed == nullptr || d.with_commit.empty()) {
        return absl::OkStatus();
      }
      // No joins: the statements for the commit (lease releases) and it.
      std::vector<std::string> script = std::move(d.with_commit);
      d.with_commit.clear();
      script.push_back("COMMIT");
      std::vector<int64_t> affected;
      size_t failed_at = 0;
      if (absl::Status st = conn.Script(script, &affected, &failed_at);
          !st.ok()) {
        return st;
      }
      *committed = true;
      return absl::OkStatus();
    }
    constexpr size_t kChunk = 1000;
    std::vector<std::string> script;
    std::vector<const char*> what;
    std::vector<int64_t> affected;
    for (size_t at = 0; at < d.joins.size(); at += kChunk) {
      const size_t end = std::min(d.joins.size(), at + kChunk);
      std::string decisions = StrCat(kDecisionColumns, "VALUES ");
      std::string relations = StrCat(kRelationColumns, "VALUES ");
      int64_t records = 0, rels = 0;
      const Conn::PendingWrite* unchecked = nullptr;
      script.clear();
      what.clear();
      for (size_t i = at; i < end; ++i) {
        const Conn::PendingWrite& w = d.joins[i];
        if (w.unchecked) {
          unchecked = &w;
          UncheckedJoin(conn, w, &script);
          what.insert(what.end(), 2, nullptr);  // Refused, below
          continue;
        }
        if (w.record.has_value()) {
          decisions += records++ == 0 ? "(" : ",(";
          AppendDecision(conn, &decisions, *w.record);
          decisions += ")";
        }
        if (w.relation.has_value()) {
          relations += rels++ == 0 ? "(" : ",(";
          AppendRelation(conn, &relations, *w.relation);
          relations += ")";
        }
      }
      if (records > 0) {
        script.push_back(std::move(decisions));
        what.push_back("an action decided was decided meanwhile");
      }
      if (rels > 0) {
        script.push_back(std::move(relations));
        what.push_back("a relation written exists already");
      }
      const bool commit = committed != nullptr && end == d.joins.size();
      if (commit) {
        for (std::string& sql : d.with_commit) {
          script.push_back(std::move(sql));
          what.push_back(nullptr);
        }
        d.with_commit.clear();
        script.push_back("COMMIT");
        what.push_back(nullptr);
      }
      size_t failed_at = 0;
      affected.clear();
      absl::Status st = conn.Script(script, &affected, &failed_at);
      if (!st.ok()) {
        const unsigned err = conn.last_error();
        if (unchecked != nullptr && failed_at < 2 &&
            (err == internal::kErDupEntry || err == internal::kErBadNull)) {
          return Refused(conn, *unchecked,
                         err == internal::kErDupEntry
                             ? "the action was decided or related meanwhile"
                             : "its instance has ended, or the action was "
                               "related meanwhile");
        }
        if (err == internal::kErDupEntry && what[failed_at] != nullptr) {
          return Conflict(conn, what[failed_at]);
        }
        return st;
      }
      if (commit) *committed = true;
    }
    d.joins.clear();
    d.actions.clear();
    return absl::OkStatus();
  }

  // An unchecked join that could not be written (WriteJoins).
  static absl::Status Refused(Conn& conn, const Conn::PendingWrite& w,
                              std::string_view why) {
    conn.memo().Clear();
    return ConflictError(StrCat(
        "mysql: ", conn.db().path(), ": the join of action ", w.record->id,
        " to instance ", w.relation->converge_id, " was refused when written (",
        why, "); the batch is rolled back: submit it again"));
  }

  std::shared_ptr<Db> db_;
  Stores::Repo inner_;
};

// ---------------------------------------------------------------------------
// The schema, one migration per version. MySQL commits each DDL statement
// on its own, so a migration is not atomic: its statements are written to
// be run again (IF NOT EXISTS), and a named lock keeps two processes from
// migrating at once. "{BIN}" is the exact (binary, no pad) collation of the
// server: utf8mb4_nopad_bin on MariaDB, utf8mb4_0900_bin on MySQL 8.

struct Migration {
  int version;
  const char* description;
  std::vector<const char*> statements;
};

const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1,
       "upstream converge_instance and converge_relation; decisions, window "
       "index, counters, leases, queue tasks",
       {
           R"sql(CREATE TABLE IF NOT EXISTS converge_instance (
  id BIGINT NOT NULL AUTO_INCREMENT,
  is_enabled TINYINT(1) NOT NULL DEFAULT 1,
  is_deleted TINYINT(1) NOT NULL DEFAULT 0,
  create_user VARCHAR(32) NOT NULL DEFAULT '',
  create_time DATETIME(6) NOT NULL,
  update_user VARCHAR(32) NOT NULL DEFAULT '',
  update_time DATETIME(6) NOT NULL,
  is_visible TINYINT(1) NOT NULL DEFAULT 1,
  converge_config LONGTEXT NOT NULL,
  converge_func VARCHAR(128) NULL,
  converge_type VARCHAR(64) NOT NULL,
  bk_biz_id INT NOT NULL,
  dimension VARCHAR(128) COLLATE {BIN} NOT NULL,
  description TEXT NOT NULL,
  content TEXT NOT NULL,
  detail TEXT NULL,
  end_time DATETIME(6) NULL,
  notify_status VARCHAR(4) NULL,
  window_seconds BIGINT NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY converge_instance_dimension (dimension),
  KEY converge_instance_create_time (create_time),
  KEY converge_instance_converge_func (converge_func),
  KEY converge_instance_converge_type (converge_type),
  KEY converge_instance_bk_biz_id (bk_biz_id),
  KEY converge_instance_end_time (end_time)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)sql",
           R"sql(CREATE TABLE IF NOT EXISTS converge_relation (
  id BIGINT NOT NULL AUTO_INCREMENT,
  converge_id BIGINT NOT NULL,
  related_id BIGINT NOT NULL,
  related_type VARCHAR(64) NOT NULL,
  is_primary TINYINT(1) NOT NULL DEFAULT 0,
  converge_status VARCHAR(32) NOT NULL DEFAULT 'skipped',
  alerts LONGTEXT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY converge_relation_converge_id_related_id_related_type
    (converge_id, related_id, related_type),
  KEY converge_relation_converge_id (converge_id),
  KEY converge_relation_related_id (related_id),
  KEY converge_relation_related_type (related_type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)sql",
           R"sql(CREATE TABLE IF NOT EXISTS converge_action_decision (
  action_id BIGINT NOT NULL,
  create_time_ns BIGINT NOT NULL,
  strategy_id BIGINT NOT NULL,
  execute_timeout BIGINT NOT NULL,
  status VARCHAR(32) NOT NULL,
  status_time_ns BIGINT NOT NULL,
  outcome VARCHAR(32) NOT NULL,
  converge_id BIGINT NULL,
  is_primary TINYINT(1) NOT NULL,
  decided_at_ns BIGINT NOT NULL,
  reason BLOB NOT NULL,
  PRIMARY KEY (action_id),
  KEY converge_action_decision_decided_at (decided_at_ns)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)sql",
           R"sql(CREATE TABLE IF NOT EXISTS converge_window_key (
  id BIGINT NOT NULL AUTO_INCREMENT,
  `key` BLOB NOT NULL,
  key_hash BINARY(16) AS (UNHEX(MD5(`key`))) STORED,
  kind TINYINT NOT NULL,
  counter BIGINT NOT NULL DEFAULT 0,
  expires_ns BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY converge_window_key_hash (key_hash),
  KEY converge_window_key_expires (expires_ns)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)sql",
           R"sql(CREATE TABLE IF NOT EXISTS converge_window_member (
  key_id BIGINT NOT NULL,
  member VARBINARY(255) NOT NULL,
  score_ns BIGINT NOT NULL,
  PRIMARY KEY (key_id, member),
  KEY converge_window_member_score (key_id, score_ns)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)sql",
           R"sql(CREATE TABLE IF NOT EXISTS converge_lease (
  id BIGINT NOT NULL AUTO_INCREMENT,
  `key` BLOB NOT NULL,
  key_hash BINARY(16) AS (UNHEX(MD5(`key`))) STORED,
  token VARBINARY(255) NOT NULL,
  expires_ns BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY converge_lease_key_hash (key_hash),
  KEY converge_lease_expires (expires_ns)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)sql",
           R"sql(CREATE TABLE IF NOT EXISTS converge_queue_task (
  seq BIGINT NOT NULL AUTO_INCREMENT,
  queue VARBINARY(255) NOT NULL,
  task_id VARBINARY(255) NOT NULL,
  kind VARBINARY(255) NOT NULL,
  subject_id BIGINT NOT NULL,
  payload LONGBLOB NOT NULL,
  due_ns BIGINT NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  last_error BLOB NOT NULL,
  state TINYINT NOT NULL DEFAULT 0,
  ready_ns BIGINT NULL,
  delivery BIGINT NOT NULL DEFAULT 0,
  dead_seq BIGINT NULL,
  PRIMARY KEY (seq),
  UNIQUE KEY converge_queue_task_id (queue, task_id),
  KEY converge_queue_task_ready (queue, ready_ns, seq),
  KEY converge_queue_task_dead (queue, dead_seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4)sql",
       }},
  };
  return kMigrations;
}

// The version recorded in converge_schema_version: 0 for a database
// without converge tables. A database with upstream's tables but no version
// table is not ours (bkmonitor's own): refused.
absl::StatusOr<int> SchemaVersion(Conn& conn) {
  std::vector<std::string> tables;
  {
    Stmt q(conn,
           "SELECT table_name FROM information_schema.tables WHERE "
           "table_schema = DATABASE() AND table_name LIKE 'converge\\_%' "
           "ORDER BY table_name");
    for (;;) {
      absl::StatusOr<bool> row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      tables.push_back(q.Text(0));
    }
  }
  bool has_version = false;
  for (const std::string& t : tables) {
    if (t == "converge_schema_version") has_version = true;
  }
  if (!has_version) {
    if (tables.empty()) return 0;
    return absl::FailedPreconditionError(StrCat(
        "mysql: ", conn.db().path(), ": the database has converge tables (",
        absl::StrJoin(tables, ", "),
        ") but no converge_schema_version: they are not converge's (an "
        "existing bkmonitor database?); give converge a database of its "
        "own (docs/adapters/mysql.md)"));
  }
  Stmt q(conn, "SELECT COALESCE(MAX(version), 0) FROM converge_schema_version");
  absl::StatusOr<bool> row = q.Step();
  if (!row.ok()) return row.status();
  return static_cast<int>(q.Int(0));
}

absl::Status CheckNotNewer(Conn& conn, int version) {
  return sql::CheckNotNewer(StrCat("mysql: ", conn.db().path()), version,
                            kSchemaVersion,
                            "the database was migrated by a newer converge");
}

absl::StatusOr<std::string> ExactCollation(Conn& conn) {
  Stmt q(conn, "SELECT VERSION()");
  absl::StatusOr<bool> row = q.Step();
  if (!row.ok()) return row.status();
  const std::string version = *row ? q.Text(0) : std::string();
  if (version.find("MariaDB") != std::string::npos) return "utf8mb4_nopad_bin";
  if (!version.empty() && version[0] >= '8') return "utf8mb4_0900_bin";
  return "utf8mb4_bin";  // MySQL 5.7: no NO PAD binary collation
}

absl::Status Migrate(Conn& conn, int target) {
  // A named lock is server-wide and its name at most 64 characters: the
  // database's, hashed (48 characters whatever the name).
  //
  // It waits up to kMigrationLockWait for another process's migration, in
  // GET_LOCK calls that each end well within the connection's read timeout
  // (at most 5 s, half the read timeout): one call of 60 s would outlast
  // the default read timeout of 30 s, and the client would drop the
  // connection as dead while the server still waited.
  {
    constexpr absl::Duration kMigrationLockWait = absl::Seconds(60);
    const int64_t per_call = std::clamp<int64_t>(
        absl::ToInt64Seconds(conn.db().options().read_timeout / 2), 0, 5);
    const absl::Time deadline = absl::Now() + kMigrationLockWait;
    for (;;) {
      // A fixed text: the connection caches statements by its address.
      Stmt q(conn,
             "SELECT GET_LOCK(CONCAT('converge.schema.', MD5(DATABASE())), "
             "?1)");
      q.Bind(1, per_call);
      absl::StatusOr<bool> row = q.Step();
      if (!row.ok()) return row.status();
      if (*row && q.Int(0) == 1) break;
      if (absl::Now() >= deadline) {
        return absl::UnavailableError(
            StrCat("mysql: ", conn.db().path(),
                   ": another process kept migrating the schema for ",
                   absl::FormatDuration(kMigrationLockWait)));
      }
      // A read timeout under 2 s: GET_LOCK(..., 0) tries once; wait here.
      if (per_call == 0) absl::SleepFor(absl::Milliseconds(100));
    }
  }
  auto migrate = [&]() -> absl::Status {
    absl::StatusOr<int> version = SchemaVersion(conn);
    if (!version.ok()) return version.status();
    if (auto st = CheckNotNewer(conn, *version); !st.ok()) return st;
    if (*version >= target) return absl::OkStatus();
    absl::StatusOr<std::string> bin = ExactCollation(conn);
    if (!bin.ok()) return bin.status();
    if (auto st = conn.Exec(
            "CREATE TABLE IF NOT EXISTS converge_schema_version (version INT "
            "NOT NULL PRIMARY KEY, applied_at DATETIME(6) NOT NULL, "
            "description VARCHAR(255) NOT NULL) ENGINE=InnoDB DEFAULT "
            "CHARSET=utf8mb4");
        !st.ok()) {
      return st;
    }
    for (const Migration& m : Migrations()) {
      if (m.version <= *version || m.version > target) continue;
      for (const char* sql : m.statements) {
        if (auto st = conn.Exec(absl::StrReplaceAll(sql, {{"{BIN}", *bin}}));
            !st.ok()) {
          return st;
        }
      }
      Stmt ins(conn,
               "INSERT INTO converge_schema_version (version, applied_at, "
               "description) VALUES (?1, UTC_TIMESTAMP(6), ?2)");
      ins.Bind(1, int64_t{m.version}).Bind(2, std::string_view(m.description));
      if (auto st = ins.Run(); !st.ok()) return st;
      if (mysql_commit(conn.handle()) != 0) return conn.Error("COMMIT");
    }
    return absl::OkStatus();
  };
  absl::Status st = migrate();
  Stmt unlock(
      conn, "SELECT RELEASE_LOCK(CONCAT('converge.schema.', MD5(DATABASE())))");
  (void)unlock.Run();
  (void)mysql_commit(conn.handle());
  return st;
}

absl::Status SetupSchema(Db& db, int target) {
  absl::StatusOr<Db::Lease> conn = db.Acquire();
  if (!conn.ok()) return conn.status();
  absl::StatusOr<int> version = SchemaVersion(**conn);
  if (!version.ok()) return version.status();
  if (auto st = CheckNotNewer(**conn, *version); !st.ok()) return st;
  (void)mysql_commit((*conn)->handle());  // end the read's transaction
  if (*version == target) return absl::OkStatus();
  if (db.options().schema == SchemaMode::kCheck) {
    return absl::FailedPreconditionError(
        StrCat("mysql: ", db.path(), ": schema version ", *version,
               ", this library needs ", target,
               " (SchemaMode::kCheck: apply the migrations of "
               "docs/adapters/mysql.md, or open with SchemaMode::kMigrate)"));
  }
  return Migrate(**conn, target);
}

absl::Status CheckOptions(const MysqlOptions& o) {
  auto bad = [](std::string_view what) {
    return absl::InvalidArgumentError(StrCat("mysql: options.", what));
  };
  if (o.database.empty()) return bad("database is empty");
  if (o.unix_socket.empty() && (o.port < 1 || o.port > 65535)) {
    return bad(StrCat("port must be in 1..65535, got ", o.port));
  }
  if (o.unix_socket.empty() && o.host.empty()) {
    return bad("host is empty (and no unix_socket)");
  }
  for (const auto& [name, d] : {std::pair<std::string_view, absl::Duration>{
                                    "connect_timeout", o.connect_timeout},
                                {"read_timeout", o.read_timeout},
                                {"write_timeout", o.write_timeout},
                                {"lock_wait_timeout", o.lock_wait_timeout}}) {
    if (d < absl::ZeroDuration()) {
      return bad(StrCat(name, " must be >= 0, got ", absl::FormatDuration(d)));
    }
  }
  if (o.pool_size < 1) {
    return bad(StrCat("pool_size must be >= 1, got ", o.pool_size));
  }
  if (o.max_retries < 0) {
    return bad(StrCat("max_retries must be >= 0, got ", o.max_retries));
  }
  for (const std::string* s :
       {&o.host, &o.unix_socket, &o.user, &o.password, &o.database}) {
    if (s->find('\0') != std::string::npos) {
      return bad("a string option contains a NUL byte");
    }
  }
  return absl::OkStatus();
}

// Percent-decoding of the user and password of a URI.
absl::StatusOr<std::string> Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int v = 0;
    if (i + 2 >= s.size()) {
      return absl::InvalidArgumentError("bad percent escape");
    }
    for (int k = 1; k <= 2; ++k) {
      const char c = s[i + k];
      v *= 16;
      if (c >= '0' && c <= '9') {
        v += c - '0';
      } else if (c >= 'a' && c <= 'f') {
        v += c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        v += c - 'A' + 10;
      } else {
        return absl::InvalidArgumentError("bad percent escape");
      }
    }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

}  // namespace

namespace internal {

absl::StatusOr<std::shared_ptr<Db>> Db::Open(const MysqlOptions& options) {
  if (auto st = CheckOptions(options); !st.ok()) return st;
  std::shared_ptr<Db> db(new Db(options));
  if (auto st = SetupSchema(*db, kSchemaVersion); !st.ok()) return st;
  return db;
}

}  // namespace internal

absl::StatusOr<MysqlStores> OpenMysqlStores(const MysqlOptions& options) {
  absl::StatusOr<std::shared_ptr<Db>> db = Db::Open(options);
  if (!db.ok()) return db.status();
  MysqlStores stores;
  stores.lock = std::make_unique<Stores::Lock>(*db);
  stores.window = std::make_unique<Stores::Window>(*db);
  stores.repo = std::make_unique<MysqlRepo>(*db);
  stores.queue = std::make_unique<Stores::Queue>(*db);
  return stores;
}

absl::StatusOr<MysqlOptions> ParseMysqlUri(std::string_view uri) {
  constexpr std::string_view kScheme = "mysql://";
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        StrCat("mysql: store URI \"", uri, "\": ", why));
  };
  if (uri.substr(0, kScheme.size()) != kScheme) {
    return bad("does not start with mysql://");
  }
  std::string_view rest = uri.substr(kScheme.size());
  std::string_view query;
  if (const size_t q = rest.find('?'); q != std::string_view::npos) {
    query = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  MysqlOptions options;
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    std::string_view user = userinfo, password;
    if (const size_t colon = userinfo.find(':');
        colon != std::string_view::npos) {
      user = userinfo.substr(0, colon);
      password = userinfo.substr(colon + 1);
    }
    absl::StatusOr<std::string> u = Unescape(user);
    absl::StatusOr<std::string> p = Unescape(password);
    if (!u.ok() || !p.ok()) return bad("bad percent escape in the user info");
    options.user = *u;
    options.password = *p;
  }
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 == rest.size()) {
    return bad("no database (mysql://host:port/DATABASE)");
  }
  options.database = std::string(rest.substr(slash + 1));
  std::string_view hostport = rest.substr(0, slash);
  if (!hostport.empty()) {
    std::string_view host = hostport;
    if (const size_t colon = hostport.rfind(':');
        colon != std::string_view::npos && hostport.back() != ']') {
      host = hostport.substr(0, colon);
      int port;
      if (!absl::SimpleAtoi(AV(hostport.substr(colon + 1)), &port) ||
          port < 1 || port > 65535) {
        return bad("port must be a number in 1..65535");
      }
      options.port = port;
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    if (!host.empty()) options.host = std::string(host);
  }
  for (absl::string_view param : absl::StrSplit(AV(query), '&')) {
    if (param.empty()) continue;
    const size_t eq = param.find('=');
    const absl::string_view name = param.substr(0, eq);
    const absl::string_view value = eq == absl::string_view::npos
                                        ? absl::string_view()
                                        : param.substr(eq + 1);
    auto bad_param = [&](std::string_view why) {
      return bad(StrCat("parameter ",
                        std::string_view(name.data(), name.size()), ": ", why));
    };
    auto millis = [&](absl::Duration* out) -> absl::Status {
      int64_t ms;
      if (!absl::SimpleAtoi(value, &ms) || ms < 0) {
        return bad_param("expected a number of milliseconds >= 0");
      }
      *out = absl::Milliseconds(ms);
      return absl::OkStatus();
    };
    absl::Status st;
    if (name == "socket") {
      if (value.empty()) return bad_param("expected a path");
      options.unix_socket = std::string(value);
    } else if (name == "connect_timeout_ms") {
      st = millis(&options.connect_timeout);
    } else if (name == "read_timeout_ms") {
      st = millis(&options.read_timeout);
    } else if (name == "write_timeout_ms") {
      st = millis(&options.write_timeout);
    } else if (name == "lock_wait_timeout_ms") {
      st = millis(&options.lock_wait_timeout);
    } else if (name == "pool_size") {
      if (!absl::SimpleAtoi(value, &options.pool_size) ||
          options.pool_size < 1) {
        return bad_param("expected a number >= 1");
      }
    } else if (name == "max_retries") {
      if (!absl::SimpleAtoi(value, &options.max_retries) ||
          options.max_retries < 0) {
        return bad_param("expected a number >= 0");
      }
    } else if (name == "schema") {
      if (value == "migrate") {
        options.schema = SchemaMode::kMigrate;
      } else if (value == "check") {
        options.schema = SchemaMode::kCheck;
      } else {
        return bad_param("expected migrate or check");
      }
    } else if (name == "one_transaction") {
      if (value == "true" || value == "1") {
        options.one_transaction = true;
      } else if (value == "false" || value == "0") {
        options.one_transaction = false;
      } else {
        return bad_param("expected true or false");
      }
    } else {
      return bad_param(
          "unknown (known: socket, connect_timeout_ms, read_timeout_ms, "
          "write_timeout_ms, lock_wait_timeout_ms, pool_size, max_retries, "
          "schema, one_transaction)");
    }
    if (!st.ok()) return st;
  }
  return options;
}

}  // namespace converge::mysql
