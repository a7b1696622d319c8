// Internal: the four stores written once for every SQL backend
// (converge::sqlite, converge::mysql), as templates over a backend B that
// supplies the connection types and its dialect:
//
//   B::Db     Write(fn) / Read(fn) transactions of the repo, WriteAside /
//             ReadAside those of the lock, window and queue stores (in
//             SQLite part of the thread's batch too; in MySQL never, so
//             that their row locks are not held for a whole batch),
//             batches (BeginBatch, CommitBatch, AbortBatch), clock(),
//             path(), SweepDue()
//   B::Conn   one connection: memo() (RepoMemo), db()
//   B::Stmt   Stmt(conn, sql), Bind(i, v), Step(), Run(), Int/Text/
//             TextView/IsNull(col), Changes()
//   B::kName  "sqlite", the message prefix
//   B::k...   the statement texts (CommonSql holds those both dialects
//             share; a dialect derives from it and overrides the others)
//   hooks     TryAcquireIn, LastInsertId, IsConstraint, Limit, DateTime;
//             flags kMemoNegative, kProbeBeforeDequeue, kUtf8Text,
//             kBatchExcludesWriters, kMemberColumn
//
// Templates rather than virtual calls, so that SQLite's hot path costs what
// it did when it was written for SQLite alone. Not installed.
//
// Thread safety: the stores are safe for concurrent use (B::Db is).

#ifndef CONVERGE_ADAPTERS_SQL_SRC_STORES_H_
#define CONVERGE_ADAPTERS_SQL_SRC_STORES_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "codec.h"
#include "converge/store/checks.h"
#include "converge/store/errors.h"
#include "converge/store/instance_repo.h"
#include "converge/store/lock_store.h"
#include "converge/store/queue_store.h"
#include "converge/store/window_store.h"
#include "internal/strings.h"
#include "memo.h"

namespace converge::sql {

// The statements both dialects run as they are ("?N" parameters; `key`
// quoted, as MySQL needs it and SQLite accepts it).
using internal::AV;
using internal::StrAppend;
using internal::StrCat;
using RepoMemo = sql::RepoMemo;

struct CommonSql {
  // A dialect whose statements cost a round trip each (MySQL) sets it: a
  // decision is inserted before its stored one is looked for (the insert
  // fails on the primary key when there is one), and Create checks the
  // open dimension, the creator's decision and its relation in one
  // statement (kCreateCheck).
  static constexpr bool kFewerRoundTrips = false;
  // The most bytes a queue task's queue name, id and kind, and its
  // last_error, may hold (0: no limit). MySQL's columns are bounded, and
  // its INSERT IGNORE would cut a longer value short instead of refusing
  // it: Enqueue refuses it with kInvalidArgument first.
  static constexpr size_t kMaxTaskName = 0;
  static constexpr size_t kMaxTaskError = 0;
  // The decision table has a `member` column (SQLite, schema version 4):
  // 1 for a decision stored with the action's relation to its instance
  // (Join, Create's creator), which the retention sweep then finds through
  // that instance, not by its age. kInsertAction and kInsertActionIgnore
  // take it as ?12, and Purge sets it back to 0 before it deletes an
  // instance's relations (kPurgeMembersLoose).
  static constexpr bool kMemberColumn = false;
  static constexpr const char kCreateCheck[] =
      "SELECT EXISTS (SELECT 1 FROM converge_instance WHERE dimension = ?1 "
      "AND end_time IS NULL), EXISTS (SELECT 1 FROM converge_action_decision "
      "WHERE action_id = ?2), EXISTS (SELECT 1 FROM converge_relation WHERE "
      "related_id = ?2 AND related_type = 'action')";
#define CONVERGE_INSTANCE_COLUMNS                                         \
  "id, converge_type, converge_func, bk_biz_id, dimension, description, " \
  "content, create_time, end_time, is_visible, converge_config, "         \
  "window_seconds"
  static constexpr const char kFindOpen[] =
      "SELECT " CONVERGE_INSTANCE_COLUMNS
      " FROM converge_instance WHERE dimension = ?1 AND end_time IS NULL";
  static constexpr const char kGetInstance[] =
      "SELECT " CONVERGE_INSTANCE_COLUMNS
      " FROM converge_instance WHERE id = ?1";
  static constexpr const char kListOpenAfter[] =
      "SELECT " CONVERGE_INSTANCE_COLUMNS
      " FROM converge_instance WHERE end_time IS NULL AND id > ?1 ORDER BY id "
      "LIMIT ?2";
  static constexpr const char kListEndedAfter[] =
      "SELECT " CONVERGE_INSTANCE_COLUMNS
      " FROM converge_instance WHERE end_time IS NOT NULL AND id > ?1 ORDER "
      "BY id LIMIT ?2";
  static constexpr const char kInsertAction[] =
      "INSERT INTO converge_action_decision (action_id, create_time_ns, "
      "strategy_id, execute_timeout, status, status_time_ns, outcome, "
      "converge_id, is_primary, decided_at_ns, reason) VALUES (?1, ?2, ?3, "
      "?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
  // The type is part of the text, not a parameter: a parameter compared
  // with a column of a partial index's WHERE (SQLite's
  // converge_relation_executed) makes SQLite re-prepare the statement on
  // every run.
  static constexpr const char kHasActionRelation[] =
      "SELECT 1 FROM converge_relation WHERE related_id = ?1 AND "
      "related_type = 'action' LIMIT 1";
  static constexpr const char kConvergeOf[] =
      "SELECT converge_id FROM converge_relation WHERE related_id = ?1 AND "
      "related_type = 'converge' ORDER BY converge_id DESC LIMIT 1";
  static constexpr const char kHasConvergeRelation[] =
      "SELECT 1 FROM converge_relation WHERE related_id = ?1 AND "
      "related_type = 'converge' LIMIT 1";
  static constexpr const char kDequeueSelect[] =
      "SELECT seq, delivery, task_id, kind, subject_id, payload, due_ns, "
      "attempts, last_error FROM converge_queue_task WHERE queue = ?1 AND "
      "state < 2 AND ready_ns <= ?2 ORDER BY ready_ns, seq LIMIT 1";
  static constexpr const char kDequeueUpdate[] =
      "UPDATE converge_queue_task SET state = 1, ready_ns = ?2, delivery = "
      "delivery + 1, attempts = attempts + 1 WHERE seq = ?1";
  static constexpr const char kLeaseRelease[] =
      "DELETE FROM converge_lease WHERE `key` = ?1 AND token = ?2";
  // Every unexpired lease; ListLeases filters by prefix and orders by bytes
  // itself (a collation may not).
  static constexpr const char kLeasesLive[] =
      "SELECT `key`, token, expires_ns FROM converge_lease WHERE "
      "expires_ns > ?1";
  static constexpr const char kLeaseExtend[] =
      "UPDATE converge_lease SET expires_ns = ?3 WHERE `key` = ?1 AND "
      "token = ?2 AND expires_ns > ?4";
  static constexpr const char kFindKey[] =
      "SELECT id, kind, counter, expires_ns FROM converge_window_key "
      "WHERE `key` = ?1";
  static constexpr const char kDeleteKeyMembers[] =
      "DELETE FROM converge_window_member WHERE key_id = ?1";
  static constexpr const char kDeleteKey[] =
      "DELETE FROM converge_window_key WHERE id = ?1";
  static constexpr const char kNewKey[] =
      "INSERT INTO converge_window_key (`key`, kind, counter, expires_ns) "
      "VALUES (?1, ?2, 0, ?3)";
  static constexpr const char kSetKeyExpiry[] =
      "UPDATE converge_window_key SET expires_ns = ?2 WHERE id = ?1";
  static constexpr const char kReadMembers[] =
      "SELECT m.member FROM converge_window_key k JOIN "
      "converge_window_member m ON m.key_id = k.id WHERE "
      "k.`key` = ?1 AND k.kind = 0 AND k.expires_ns > ?2 AND "
      "m.score_ns BETWEEN ?3 AND ?4";
  // WindowRequest::intersect (Window::Intersect).
  static constexpr const char kLiveIndexKeyId[] =
      "SELECT id FROM converge_window_key WHERE `key` = ?1 AND kind = 0 AND "
      "expires_ns > ?2";
  static constexpr const char kCountMembersUpTo[] =
      "SELECT COUNT(*) FROM (SELECT 1 FROM converge_window_member WHERE "
      "key_id = ?1 AND score_ns BETWEEN ?2 AND ?3 LIMIT ?4) AS capped";
  static constexpr const char kMembersInWindow[] =
      "SELECT member FROM converge_window_member WHERE key_id = ?1 AND "
      "score_ns BETWEEN ?2 AND ?3";
  static constexpr const char kMemberInWindow[] =
      "SELECT 1 FROM converge_window_member WHERE key_id = ?1 AND "
      "member = ?2 AND score_ns BETWEEN ?3 AND ?4";
  static constexpr const char kRemoveMember[] =
      "DELETE FROM converge_window_member WHERE key_id = ?1 AND "
      "member = ?2";
  static constexpr const char kKeySize[] =
      "SELECT COUNT(*) FROM converge_window_key k JOIN "
      "converge_window_member m ON m.key_id = k.id WHERE k.`key` = ?1 "
      "AND k.kind = 0 AND k.expires_ns > ?2";
  static constexpr const char kSetCounter[] =
      "UPDATE converge_window_key SET counter = ?2, expires_ns = ?3 "
      "WHERE id = ?1";
  static constexpr const char kCounterValue[] =
      "SELECT counter FROM converge_window_key WHERE `key` = ?1 AND "
      "kind = 1 AND expires_ns > ?2";
  static constexpr const char kTrimMembers[] =
      "DELETE FROM converge_window_member WHERE key_id = ?1 AND "
      "score_ns < ?2";
  static constexpr const char kDropIfEmpty[] =
      "DELETE FROM converge_window_key WHERE id = ?1 AND NOT EXISTS "
      "(SELECT 1 FROM converge_window_member WHERE key_id = ?1)";
// The columns ActionFromRow reads.
#define CONVERGE_SQL_SELECT_ACTION                                   \
  "SELECT action_id, create_time_ns, strategy_id, execute_timeout, " \
  "status, status_time_ns, outcome, converge_id, is_primary, "       \
  "decided_at_ns, reason FROM converge_action_decision"
  static constexpr const char kLoadAction[] =
      CONVERGE_SQL_SELECT_ACTION " WHERE action_id = ?1";
  static constexpr const char kHide[] =
      "UPDATE converge_instance SET is_visible = 0, update_time = ?2 "
      "WHERE id = ?1";
  static constexpr const char kSetActionStatus[] =
      "UPDATE converge_action_decision SET status = ?2, "
      "status_time_ns = ?3 WHERE action_id = ?1";
  static constexpr const char kUpdateDecision[] =
      "UPDATE converge_action_decision SET outcome = ?3, "
      "converge_id = ?4, is_primary = ?5, status = ?6, "
      "decided_at_ns = ?7, status_time_ns = ?7, reason = ?8 WHERE "
      "action_id = ?1 AND outcome = ?2";
  static constexpr const char kActionExists[] =
      "SELECT 1 FROM converge_action_decision WHERE action_id = ?1";
  static constexpr const char kOpenExists[] =
      "SELECT 1 FROM converge_instance WHERE dimension = ?1 AND "
      "end_time IS NULL";
  static constexpr const char kInsertInstance[] =
      "INSERT INTO converge_instance (create_time, update_time, "
      "is_visible, converge_config, converge_func, converge_type, "
      "bk_biz_id, dimension, description, content, window_seconds) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
  static constexpr const char kLookupOpen[] =
      "SELECT i.id, i.create_time, (SELECT COUNT(*) FROM "
      "converge_relation r WHERE r.converge_id = i.id AND "
      "r.related_type = 'action' AND r.converge_status = "
      "'executed') FROM converge_instance i WHERE i.dimension = "
      "?1 AND i.end_time IS NULL";
  static constexpr const char kSetVisible[] =
      "UPDATE converge_instance SET is_visible = ?2, update_time = "
      "?3 WHERE id = ?1";
  static constexpr const char kCountOpen[] =
      "SELECT converge_type, COUNT(*) FROM converge_instance WHERE "
      "end_time IS NULL GROUP BY converge_type";
  static constexpr const char kPurgeSelectInstances[] =
      "SELECT id FROM converge_instance WHERE end_time IS NOT NULL "
      "AND end_time < ?1 ORDER BY id LIMIT ?2";
  static constexpr const char kPurgeRelations[] =
      "DELETE FROM converge_relation WHERE converge_id = ?1";
  static constexpr const char kPurgeInstance[] =
      "DELETE FROM converge_instance WHERE id = ?1";
  static constexpr const char kRelations[] =
      "SELECT id, related_id, related_type, is_primary, "
      "converge_status, alerts FROM converge_relation WHERE "
      "converge_id = ?1 ORDER BY id";
  static constexpr const char kRelationsAfter[] =
      "SELECT id, related_id, related_type, is_primary, "
      "converge_status, alerts FROM converge_relation WHERE "
      "converge_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
  static constexpr const char kExecutedMembers[] =
      "SELECT r.related_id, a.status, a.status_time_ns FROM "
      "converge_relation r LEFT JOIN converge_action_decision a ON "
      "a.action_id = r.related_id WHERE r.converge_id = ?1 AND "
      "r.related_type = 'action' AND r.converge_status = 'executed' "
      "ORDER BY r.related_id";
  static constexpr const char kCountExecuted[] =
      "SELECT COUNT(*) FROM converge_relation WHERE converge_id = ?1 "
      "AND related_type = 'action' AND converge_status = 'executed'";
  static constexpr const char kDequeueProbe[] =
      "SELECT 1 FROM converge_queue_task WHERE queue = ?1 AND "
      "state < 2 AND ready_ns <= ?2 LIMIT 1";
  static constexpr const char kAck[] =
      "DELETE FROM converge_queue_task WHERE seq = ?1 AND "
      "delivery = ?2 AND queue = ?3 AND state = 1";
  static constexpr const char kRetry[] =
      "UPDATE converge_queue_task SET state = 0, due_ns = ?4, "
      "ready_ns = ?4, last_error = ?5, delivery = delivery + 1 "
      "WHERE seq = ?1 AND delivery = ?2 AND queue = ?3 AND state = 1";
  static constexpr const char kReschedule[] =
      "UPDATE converge_queue_task SET state = 0, due_ns = ?4, "
      "ready_ns = ?4, attempts = 0, last_error = '', delivery = "
      "delivery + 1 WHERE seq = ?1 AND delivery = ?2 AND queue = ?3 "
      "AND state = 1";
  static constexpr const char kListDead[] =
      "SELECT task_id, kind, subject_id, payload, due_ns, attempts, "
      "last_error FROM converge_queue_task WHERE queue = ?1 AND state "
      "= 2 ORDER BY dead_seq, seq LIMIT ?2";
  static constexpr const char kRedrive[] =
      "UPDATE converge_queue_task SET state = 0, due_ns = ?3, "
      "ready_ns = ?3, attempts = 0, dead_seq = NULL WHERE queue = ?1 "
      "AND task_id = ?2 AND state = 2";
  static constexpr const char kStats[] =
      "SELECT state, COUNT(*) FROM converge_queue_task WHERE queue = "
      "?1 GROUP BY state";
};

// Marks the next statement on `conn` as its transaction's last, to be sent
// with the COMMIT where the connection can (MySQL's Conn::CommitWithNext).
template <typename C>
void CommitWithNext(C& conn) {
  if constexpr (requires { conn.CommitWithNext(); }) conn.CommitWithNext();
}

template <typename B>
struct SqlStores {
  using Conn = typename B::Conn;
  using Stmt = typename B::Stmt;
  using Db = typename B::Db;

  // A column value that does not parse back: kDataLoss
  // "<name>: <path>: <where>: ...".
  template <typename T>
  static absl::StatusOr<T> Column(absl::StatusOr<T> parsed, const Db& db,
                                  std::string_view where) {
    if (parsed.ok()) return parsed;
    return sql::Column(std::move(parsed), StrCat(B::kName, ": ", db.path()),
                       where);
  }

  // Backends whose text columns are utf8mb4 (B::kUtf8Text) refuse text
  // that is not UTF-8 rather than store it mangled.
  static absl::Status CheckText(std::string_view column,
                                std::string_view text) {
    if (IsUtf8(text)) return absl::OkStatus();
    return absl::InvalidArgumentError(
        StrCat(B::kName, ": ", column,
               " is not valid UTF-8, which the utf8mb4 column cannot hold"));
  }
  static absl::Status CheckAlerts(const std::vector<std::string>& alerts) {
    if constexpr (B::kUtf8Text) {
      for (const std::string& a : alerts) {
        if (auto st = CheckText("alerts", a); !st.ok()) return st;
      }
    }
    return absl::OkStatus();
  }

  // ---------------------------------------------------------------------------
  // Shared lease logic (LockStore and WindowStore::Apply).

  static int64_t Expiry(absl::Time now, absl::Duration ttl) {
    return Nanos(now + ttl);
  }

  static absl::StatusOr<bool> TryAcquireIn(Conn& conn, std::string_view key,
                                           std::string_view token,
                                           absl::Duration ttl, absl::Time now) {
    return B::TryAcquireIn(conn, key, token, Expiry(now, ttl), Nanos(now));
  }

  // The connection of this thread's repo batch if it takes the lock,
  // window and queue stores' calls (MySQL's one_transaction), or null.
  static Conn* AsideConn(const Db& db) {
    if constexpr (requires { db.AsideConn(); }) {
      return db.AsideConn();
    } else {
      return nullptr;
    }
  }

  // Window-store housekeeping due (Db::SweepDue). In a batch that takes
  // the stores' calls it is made after the batch's commit instead
  // (Db::SweepAfterCommit), so that its deletes do not hold their rows
  // until the decision commits.
  static bool SweepDue(Db& db) {
    if (!db.SweepDue()) return false;
    if constexpr (requires { db.SweepAfterCommit(); }) {
      if (AsideConn(db) != nullptr) {
        db.SweepAfterCommit();
        return false;
      }
    }
    return true;
  }

  // A lease this thread's batch took (AsideConn), by key and token.
  static std::string TakenLease(std::string_view key, std::string_view token) {
    return StrCat(key, std::string_view("\0", 1), token);
  }
  static void NoteTaken(Db& db, std::string_view key, std::string_view token) {
    if constexpr (requires(Conn & c) { c.deferred().leases_taken; }) {
      if (Conn* conn = AsideConn(db); conn != nullptr) {
        conn->deferred().leases_taken.insert(TakenLease(key, token));
      }
    }
  }

  // A lease found busy in a batch that takes the stores' calls: waiting
  // for it would hold the window keys the batch has locked, so the batch
  // fails as a conflict and the manager runs it again without them.
  static absl::Status BusyInBatch(Db& db, std::string_view key) {
    absl::Status st = ConflictError(
        StrCat(B::kName, ": ", db.path(), ": lease ", key,
               " is busy; the decision's transaction is rolled back and "
               "runs again"));
    if constexpr (requires { db.FailBatch(st); }) db.FailBatch(st);
    return st;
  }

  class Lock final : public LockStore {
   public:
    explicit Lock(std::shared_ptr<Db> db) : db_(std::move(db)) {}

    absl::StatusOr<bool> TryAcquire(std::string_view key,
                                    std::string_view token,
                                    absl::Duration ttl) override {
      if (auto st = store::CheckLeaseArgs(B::kName, key, token, ttl); !st.ok())
        return st;
      absl::StatusOr<bool> taken = db_->WriteAside([&](Conn& conn) {
        return TryAcquireIn(conn, key, token, ttl, db_->clock().Now());
      });
      if (taken.ok() && AsideConn(*db_) != nullptr) {
        if (!*taken) return BusyInBatch(*db_, key);
        NoteTaken(*db_, key, token);
      }
      return taken;
    }

    // In a batch that takes this store's calls, the release of a lease
    // the batch took is its DELETE sent with the batch's COMMIT: the lease
    // is the batch's (its row locked by it) until then. Any other release
    // is made in the batch at once (it too takes effect at the commit).
    absl::StatusOr<bool> Release(std::string_view key,
                                 std::string_view token) override {
      if (auto st = store::CheckLeaseArgs(B::kName, key, token, std::nullopt);
          !st.ok())
        return st;
      if constexpr (requires(Conn & c) { c.deferred().leases_taken; }) {
        if (Conn* conn = AsideConn(*db_);
            conn != nullptr &&
            conn->deferred().leases_taken.erase(TakenLease(key, token)) > 0) {
          if (db_->BatchFailed()) return false;  // rolled back with it
          Stmt del(*conn, B::kLeaseRelease);
          del.Bind(1, key).Bind(2, token);
          conn->deferred().with_commit.push_back(del.Text());
          return true;
        }
      }
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        return ReleaseOne(conn, key, token);
      });
    }

    // A batch that holds the backend's one write lock (SQLite) takes every
    // write of the thread; MySQL's only in a Submit (AsideConn).
    bool ReleasesWithRepoBatch() const override {
      if constexpr (B::kBatchExcludesWriters) {
        return db_->InBatch();
      } else {
        return AsideConn(*db_) != nullptr;
      }
    }

    // One lease's release, the transaction's only statement (MySQL: sent
    // with the COMMIT).
    static absl::StatusOr<bool> ReleaseOne(Conn& conn, std::string_view key,
                                           std::string_view token) {
      CommitWithNext(conn);
      Stmt del(conn, B::kLeaseRelease);
      del.Bind(1, key).Bind(2, token);
      if (auto st = del.Run(); !st.ok()) return st;
      return del.Changes() == 1;
    }

    // In one transaction (MySQL: one statement).
    absl::StatusOr<size_t> ReleaseMany(
        absl::Span<const std::pair<std::string, std::string>> leases) override {
      // An invalid pair is skipped (its error returned after the others
      // are released).
      absl::Status invalid;
      std::vector<std::pair<std::string, std::string>> valid;
      for (const auto& [key, token] : leases) {
        if (auto st = store::CheckLeaseArgs(B::kName, key, token, std::nullopt);
            !st.ok()) {
          if (invalid.ok()) invalid = st;
        } else {
          valid.emplace_back(key, token);
        }
      }
      if (valid.empty()) {
        if (!invalid.ok()) return invalid;
        return size_t{0};
      }
      absl::StatusOr<size_t> released =
          db_->WriteAside([&](Conn& conn) -> absl::StatusOr<size_t> {
            if constexpr (B::kFewerRoundTrips) {
              if (valid.size() == 1) {
                absl::StatusOr<bool> one =
                    ReleaseOne(conn, valid[0].first, valid[0].second);
                if (!one.ok()) return one.status();
                return size_t{*one ? 1u : 0u};
              }
              return B::ReleaseLeases(conn, valid);
            } else {
              size_t n = 0;
              for (const auto& [key, token] : valid) {
                Stmt del(conn, B::kLeaseRelease);
                del.Bind(1, key).Bind(2, token);
                if (auto st = del.Run(); !st.ok()) return st;
                n += del.Changes() == 1 ? 1 : 0;
              }
              return n;
            }
          });
      if (released.ok() && !invalid.ok()) return invalid;
      return released;
    }

    absl::StatusOr<bool> Extend(std::string_view key, std::string_view token,
                                absl::Duration ttl) override {
      if (auto st = store::CheckLeaseArgs(B::kName, key, token, ttl); !st.ok())
        return st;
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        const absl::Time now = db_->clock().Now();
        Stmt up(conn, B::kLeaseExtend);
        up.Bind(1, key)
            .Bind(2, token)
            .Bind(3, Expiry(now, ttl))
            .Bind(4, Nanos(now));
        if (auto st = up.Run(); !st.ok()) return st;
        return up.Changes() == 1;
      });
    }

    absl::StatusOr<std::vector<LeaseInfo>> ListLeases(std::string_view prefix,
                                                      size_t limit) override {
      return db_->ReadAside(
          [&](Conn& conn) -> absl::StatusOr<std::vector<LeaseInfo>> {
            Stmt q(conn, B::kLeasesLive);
            q.Bind(1, Nanos(db_->clock().Now()));
            std::vector<LeaseInfo> out;
            for (;;) {
              absl::StatusOr<bool> row = q.Step();
              if (!row.ok()) return row.status();
              if (!*row) break;
              const std::string_view key = q.TextView(0);
              if (key.substr(0, prefix.size()) != prefix) continue;
              out.push_back(LeaseInfo{std::string(key), q.Text(1),
                                      absl::FromUnixNanos(q.Int(2))});
            }
            return store::SortAndLimitLeases(std::move(out), limit);
          });
    }

   private:
    std::shared_ptr<Db> db_;
  };

  // ---------------------------------------------------------------------------
  // Window store. converge_window_key holds every key, an index (kind 0) or a
  // counter (kind 1), with its expiry (NULL: never); converge_window_member
  // the members of index keys. An expired key is dead: reads skip it and the
  // next write to it starts afresh. expires_ns is kNever for keys that never
  // expire.

  static constexpr int64_t kIndex = 0;
  static constexpr int64_t kCounter = 1;
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

  struct KeyRow {
    int64_t id = 0;
    int64_t kind = kIndex;
    int64_t counter = 0;
    int64_t expires = kNever;
    bool Live(int64_t now) const { return expires > now; }
  };

  static absl::StatusOr<std::optional<KeyRow>> FindKey(Conn& conn,
                                                       std::string_view key) {
    Stmt q(conn, B::kFindKey);
    q.Bind(1, key);
    absl::StatusOr<bool> row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<KeyRow>();
    KeyRow k;
    k.id = q.Int(0);
    k.kind = q.Int(1);
    k.counter = q.Int(2);
    k.expires = q.Int(3);
    return std::optional<KeyRow>(k);
  }

  static absl::Status DeleteKey(Conn& conn, int64_t id) {
    Stmt members(conn, B::kDeleteKeyMembers);
    members.Bind(1, id);
    if (auto st = members.Run(); !st.ok()) return st;
    Stmt key(conn, B::kDeleteKey);
    key.Bind(1, id);
    return key.Run();
  }

  // Makes `key` a live key of `kind` with no members and counter 0, replacing
  // a dead one. Returns its id.
  static absl::StatusOr<int64_t> NewKey(Conn& conn, std::string_view key,
                                        const std::optional<KeyRow>& old,
                                        int64_t kind, int64_t expires) {
    if (old.has_value()) {
      if (auto st = DeleteKey(conn, old->id); !st.ok()) return st;
    }
    Stmt ins(conn, B::kNewKey);
    ins.Bind(1, key).Bind(2, kind).Bind(3, expires);
    if (auto st = ins.Run(); !st.ok()) return st;
    return B::LastInsertId(conn);
  }

  static absl::Status SetKeyExpiry(Conn& conn, int64_t id, int64_t expires) {
    Stmt up(conn, B::kSetKeyExpiry);
    up.Bind(1, id).Bind(2, expires);
    return up.Run();
  }

  class Window final : public WindowStore {
   public:
    explicit Window(std::shared_ptr<Db> db) : db_(std::move(db)) {
      if constexpr (requires(Db & d) { d.SetSweep(nullptr); }) {
        db_->SetSweep([db = db_.get()](Conn& conn) {
          return Sweep(conn, Nanos(db->clock().Now()));
        });
      }
    }

    absl::StatusOr<WindowResult> Apply(const WindowRequest& req) override {
      if (auto st = store::CheckWindowRequest(B::kName, req); !st.ok())
        return st;
      auto body = [&](Conn& conn) { return ApplyIn(conn, req); };
      if (req.add.empty() && !req.lease.has_value())
        return db_->ReadAside(body);
      absl::StatusOr<WindowResult> r;
      if constexpr (B::kFewerRoundTrips) {
        r = db_->WriteAside([&](Conn& conn) -> absl::StatusOr<WindowResult> {
          return ApplyScripted(conn, req);
        });
      } else {
        r = db_->WriteAside(body);
      }
      if (r.ok() && req.lease.has_value() && AsideConn(*db_) != nullptr) {
        if (!r->lease_acquired) return BusyInBatch(*db_, req.lease->key);
        NoteTaken(*db_, req.lease->key, req.lease->token);
      }
      return r;
    }

    // In one transaction: one commit for all of them.
    absl::StatusOr<std::vector<WindowResult>> ApplyMany(
        absl::Span<const WindowRequest> requests) override {
      for (const WindowRequest& req : requests) {
        if (auto st = store::CheckWindowRequest(B::kName, req); !st.ok())
          return st;
      }
      return db_->WriteAside(
          [&](Conn& conn) -> absl::StatusOr<std::vector<WindowResult>> {
            if constexpr (B::kFewerRoundTrips) {
              if (requests.size() > 1 && Disjoint(requests)) {
                return ApplyManyBulk(conn, requests);
              }
            }
            std::vector<WindowResult> out;
            out.reserve(requests.size());
            for (const WindowRequest& req : requests) {
              absl::StatusOr<WindowResult> r = ApplyIn(conn, req);
              if (!r.ok()) return r.status();
              out.push_back(*std::move(r));
            }
            return out;
          });
    }

    // True if no two of `requests` add to the same key or take the same
    // lease: then applying all their adds first changes no request's own
    // writes.
    static bool Disjoint(absl::Span<const WindowRequest> requests) {
      absl::flat_hash_map<std::string_view, size_t> writer;
      absl::flat_hash_set<std::string_view> leases;
      for (size_t r = 0; r < requests.size(); ++r) {
        for (const WindowEntry& e : requests[r].add) {
          if (writer.try_emplace(e.key, r).first->second != r) return false;
        }
        if (requests[r].lease.has_value() &&
            !leases.insert(requests[r].lease->key).second) {
          return false;
        }
      }
      return true;
    }

    // ApplyMany where every statement is a round trip (MySQL), for
    // Disjoint requests: a few multi-row statements for all of them (the
    // keys' rows, their members, the trims, the leases, the reads),
    // whatever their number.
    absl::StatusOr<std::vector<WindowResult>> ApplyManyBulk(
        Conn& conn, absl::Span<const WindowRequest> requests) {
      const absl::Time now = db_->clock().Now();
      const int64_t now_ns = Nanos(now);
      std::vector<WindowResult> out(requests.size());
      // The keys written (each by one request) and their rows.
      struct Written {
        std::string_view key;
        size_t request;
        int64_t expires;
        int64_t id = 0;
      };
      std::vector<Written> keys;
      absl::flat_hash_map<std::string_view, size_t> key_index;
      bool leases = false;
      for (size_t r = 0; r < requests.size(); ++r) {
        const WindowRequest& req = requests[r];
        const int64_t expires = req.key_ttl > absl::ZeroDuration()
                                    ? Expiry(now, req.key_ttl)
                                    : kNever;
        for (const WindowEntry& e : req.add) {
          if (key_index.try_emplace(e.key, keys.size()).second) {
            keys.push_back(Written{e.key, r, expires});
          }
        }
        leases = leases || req.lease.has_value();
      }
      auto literal_list = [&](std::string* sql, auto from, auto to,
                              auto&& text) {
        for (auto it = from; it != to; ++it) {
          if (it != from) *sql += ",";
          *sql += "UNHEX(MD5(";
          conn.AppendLiteral(sql, text(*it));
          *sql += "))";
        }
      };
      auto run = [&](const std::string& sql) -> absl::StatusOr<int64_t> {
        int64_t n = 0;
        if (auto st = conn.Query(sql, nullptr, &n); !st.ok()) return st;
        return n;
      };
      auto key_of = [](const Written& w) { return w.key; };
      if (!keys.empty()) {
        // The rows of the keys, locked; a live counter refuses the call
        // before anything is written, and a dead key starts afresh.
        std::vector<int64_t> dead;
        absl::Status st = B::InChunks(keys, [&](auto from, auto to) {
          std::string sql =
              "SELECT id, kind, expires_ns, `key` FROM converge_window_key "
              "WHERE key_hash IN (";
          literal_list(&sql, from, to, key_of);
          sql += ") FOR UPDATE";
          return B::ForEachRow(conn, sql, [&](const auto& row) -> absl::Status {
            auto it = key_index.find(row.TextView(3));
            if (it == key_index.end()) return absl::OkStatus();
            if (row.Int(2) <= now_ns) {
              dead.push_back(row.Int(0));
            } else if (row.Int(1) == kCounter) {
              return absl::FailedPreconditionError(
                  StrCat(B::kName, ": key ", it->first,
                         " is a counter, not a window index"));
            }
            keys[it->second].id = row.Int(0);
            return absl::OkStatus();
          });
        });
        if (!st.ok()) return st;
        if (!dead.empty()) {
          std::string sql =
              "DELETE FROM converge_window_member WHERE key_id IN (";
          for (size_t i = 0; i < dead.size(); ++i) {
            StrAppend(&sql, i == 0 ? "" : ",", dead[i]);
          }
          sql += ")";
          if (auto n = run(sql); !n.ok()) return n.status();
        }
        std::vector<std::string_view> fresh;
        st = B::InChunks(keys, [&](auto from, auto to) {
          std::string sql =
              "INSERT INTO converge_window_key (`key`, kind, counter, "
              "expires_ns) VALUES ";
          for (auto it = from; it != to; ++it) {
            sql += it == from ? "(" : ",(";
            conn.AppendLiteral(&sql, it->key);
            StrAppend(&sql, ",0,0,", it->expires, ")");
            if (it->id == 0) fresh.push_back(it->key);
          }
          sql +=
              " ON DUPLICATE KEY UPDATE kind = 0, counter = 0, expires_ns = "
              "VALUES(expires_ns)";
          return run(sql).status();
        });
        if (!st.ok()) return st;
        st = B::InChunks(fresh, [&](auto from, auto to) {
          std::string sql =
              "SELECT id, `key` FROM converge_window_key WHERE key_hash IN (";
          literal_list(&sql, from, to, [](std::string_view k) { return k; });
          sql += ")";
          return B::ForEachRow(conn, sql, [&](const auto& row) {
            if (auto it = key_index.find(row.TextView(1));
                it != key_index.end()) {
              keys[it->second].id = row.Int(0);
            }
            return absl::OkStatus();
          });
        });
        if (!st.ok()) return st;
        for (const Written& w : keys) {
          if (w.id == 0) {
            return absl::InternalError(StrCat(B::kName, ": ", db_->path(),
                                              ": key ", w.key,
                                              " has no row after its insert"));
          }
        }
        // The members, then the trims (a key left without members goes).
        std::vector<const WindowEntry*> entries;
        for (const WindowRequest& req : requests) {
          for (const WindowEntry& e : req.add) entries.push_back(&e);
        }
        st = B::InChunks(entries, [&](auto from, auto to) {
          std::string sql =
              "INSERT INTO converge_window_member (key_id, member, score_ns) "
              "VALUES ";
          for (auto it = from; it != to; ++it) {
            StrAppend(&sql, it == from ? "(" : ",(",
                      keys[key_index.at((*it)->key)].id, ",");
            conn.AppendLiteral(&sql, (*it)->member);
            StrAppend(&sql, ",", Nanos((*it)->score), ")");
          }
          sql += " ON DUPLICATE KEY UPDATE score_ns = VALUES(score_ns)";
          return run(sql).status();
        });
        if (!st.ok()) return st;
        std::vector<const Written*> trimmed;
        for (const Written& w : keys) {
          if (requests[w.request].trim_before != absl::InfinitePast()) {
            trimmed.push_back(&w);
          }
        }
        st = B::InChunks(trimmed, [&](auto from, auto to) -> absl::Status {
          // Each key's cutoff from a derived table, joined on the
          // (key_id, score_ns) index: OR'ed conditions cost a scan.
          std::string sql = "DELETE m FROM converge_window_member m JOIN (";
          std::string ids;
          for (auto it = from; it != to; ++it) {
            StrAppend(&sql, it == from ? "SELECT " : " UNION ALL SELECT ",
                      (*it)->id, it == from ? " AS k, " : ", ",
                      Nanos(requests[(*it)->request].trim_before),
                      it == from ? " AS c" : "");
            StrAppend(&ids, it == from ? "" : ",", (*it)->id);
          }
          sql += ") t ON m.key_id = t.k AND m.score_ns < t.c";
          absl::StatusOr<int64_t> n = run(sql);
          if (!n.ok()) return n.status();
          if (*n == 0) return absl::OkStatus();
          return run(StrCat("DELETE FROM converge_window_key WHERE id IN (",
                            ids,
                            ") AND NOT EXISTS (SELECT 1 FROM "
                            "converge_window_member m WHERE m.key_id = "
                            "converge_window_key.id)"))
              .status();
        });
        if (!st.ok()) return st;
      }
      if ((!keys.empty() || leases) && SweepDue(*db_)) {
        if (auto st = Sweep(conn, now_ns); !st.ok()) return st;
      }
      // The leases: taken where free, expired or ours; then read back.
      std::vector<size_t> leased;
      for (size_t r = 0; r < requests.size(); ++r) {
        if (requests[r].lease.has_value()) leased.push_back(r);
      }
      absl::flat_hash_map<std::string, std::string> holder;
      auto lease_key = [&](size_t r) -> std::string_view {
        return requests[r].lease->key;
      };
      absl::Status st = B::InChunks(leased, [&](auto from, auto to) {
        std::string sql =
            "INSERT INTO converge_lease (`key`, token, expires_ns) VALUES ";
        for (auto it = from; it != to; ++it) {
          const LeaseRequest& l = *requests[*it].lease;
          sql += it == from ? "(" : ",(";
          conn.AppendLiteral(&sql, l.key);
          sql += ",";
          conn.AppendLiteral(&sql, l.token);
          StrAppend(&sql, ",", Expiry(now, l.ttl), ")");
        }
        StrAppend(&sql,
                  " ON DUPLICATE KEY UPDATE token = IF(token = VALUES(token) "
                  "OR expires_ns <= ",
                  now_ns,
                  ", VALUES(token), token), expires_ns = IF(token = "
                  "VALUES(token), VALUES(expires_ns), expires_ns)");
        if (auto n = run(sql); !n.ok()) return n.status();
        std::string read =
            "SELECT `key`, token FROM converge_lease WHERE key_hash IN (";
        literal_list(&read, from, to, lease_key);
        read += ")";
        return B::ForEachRow(conn, read, [&](const auto& row) {
          holder[row.Text(0)] = row.Text(1);
          return absl::OkStatus();
        });
      });
      if (!st.ok()) return st;
      // The reads: one statement for every request's plain groups.
      struct Read {
        size_t request;
        size_t group;
        int64_t lo;
        int64_t hi;
      };
      absl::flat_hash_map<std::string_view, std::vector<Read>> reads;
      std::vector<absl::flat_hash_set<std::string>> seen;
      std::vector<std::pair<size_t, size_t>> seen_of;  // (request, group)
      for (size_t r = 0; r < requests.size(); ++r) {
        const WindowRequest& req = requests[r];
        if (req.lease.has_value()) {
          auto it = holder.find(AV(req.lease->key));
          out[r].lease_acquired =
              it != holder.end() && it->second == req.lease->token;
          if (!out[r].lease_acquired) continue;
        }
        const int64_t lo = Nanos(req.start);
        const int64_t hi = Nanos(req.end);
        if (req.intersect && req.read_groups.size() > 1) {
          absl::StatusOr<std::vector<std::string>> both =
              Intersect(conn, req.read_groups, now_ns, lo, hi);
          if (!both.ok()) return both.status();
          out[r].groups.push_back(*std::move(both));
          continue;
        }
        out[r].groups.resize(req.read_groups.size());
        if (lo > hi) continue;
        for (size_t g = 0; g < req.read_groups.size(); ++g) {
          for (const std::string& key : req.read_groups[g]) {
            reads[key].push_back(Read{r, g, lo, hi});
          }
        }
      }
      std::vector<std::string_view> read_keys;
      for (const auto& [key, unused] : reads) read_keys.push_back(key);
      // Groups of several keys drop the members they meet twice.
      absl::flat_hash_map<std::pair<size_t, size_t>,
                          absl::flat_hash_set<std::string>>
          dedup;
      st = B::InChunks(read_keys, [&](auto from, auto to) {
        std::string sql =
            "SELECT k.`key`, m.member, m.score_ns FROM converge_window_key k "
            "JOIN converge_window_member m ON m.key_id = k.id WHERE k.kind = "
            "0 AND k.expires_ns > ";
        StrAppend(&sql, now_ns, " AND k.key_hash IN (");
        literal_list(&sql, from, to, [](std::string_view k) { return k; });
        sql += ")";
        return B::ForEachRow(conn, sql, [&](const auto& row) {
          auto it = reads.find(row.TextView(0));
          if (it == reads.end()) return absl::OkStatus();
          const int64_t score = row.Int(2);
          for (const Read& rd : it->second) {
            if (score < rd.lo || score > rd.hi) continue;
            const WindowRequest& req = requests[rd.request];
            std::vector<std::string>& group = out[rd.request].groups[rd.group];
            if (req.read_groups[rd.group].size() > 1 &&
                !dedup[{rd.request, rd.group}].insert(row.Text(1)).second) {
              continue;
            }
            group.push_back(row.Text(1));
          }
          return absl::OkStatus();
        });
      });
      if (!st.ok()) return st;
      return out;
    }

    // Apply of one request where every statement is a round trip (MySQL).
    // The statements of its adds, its lease and its plain reads do not
    // depend on one another's answers (keys are named by their hash, not
    // by ids read first), so they go as one script, with the COMMIT unless
    // a sweep is due or an intersection is read (Intersect, after it):
    //   the keys' rows, locked;
    //   the members of the keys that are dead (they start afresh);
    //   the keys, upserted live; a live counter among them sets its kind
    //     to NULL, which the NOT NULL column refuses (error 1048): the
    //     script stops having removed nothing but dead keys' members, and
    //     ApplyIn refuses the request with the key's name;
    //   each member, upserted; the trims; keys left empty (only when an
    //     added score is older than the trim: otherwise each key keeps its
    //     new member);
    //   the lease (kLeaseAcquire: its insert id says whether it is ours);
    //   the members of every read key in the window, one SELECT.
    absl::StatusOr<WindowResult> ApplyScripted(Conn& conn,
                                               const WindowRequest& req) {
      const absl::Time now = db_->clock().Now();
      const int64_t now_ns = Nanos(now);
      const bool intersect = req.intersect && req.read_groups.size() > 1;
      const int64_t lo = Nanos(req.start);
      const int64_t hi = Nanos(req.end);
      // Distinct and sorted: two writers upserting the same new keys lock
      // them in one order.
      std::vector<std::string_view> keys;
      for (const WindowEntry& e : req.add) keys.push_back(e.key);
      std::sort(keys.begin(), keys.end());
      keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
      auto key_list = [&](std::string* sql, std::string_view t, auto&& names) {
        StrAppend(sql, t, "key_hash IN (");
        bool first = true;
        for (std::string_view k : names) {
          *sql += first ? "UNHEX(MD5(" : ",UNHEX(MD5(";
          conn.AppendLiteral(sql, k);
          *sql += "))";
          first = false;
        }
        StrAppend(sql, ") AND ", t, "`key` IN (");
        first = true;
        for (std::string_view k : names) {
          if (!first) *sql += ",";
          conn.AppendLiteral(sql, k);
          first = false;
        }
        *sql += ")";
      };
      std::vector<std::string> script;
      size_t upsert_at = SIZE_MAX, lease_at = SIZE_MAX, read_at = SIZE_MAX;
      if (!keys.empty()) {
        // Locked first, as FindKey does: two writers that both read a key
        // in share mode (the DELETE below) and then upsert it deadlock.
        std::string lock = "SELECT id FROM converge_window_key WHERE ";
        key_list(&lock, "", keys);
        lock += " FOR UPDATE";
        script.push_back(std::move(lock));
        std::string dead =
            "DELETE m FROM converge_window_member m JOIN converge_window_key "
            "k ON m.key_id = k.id WHERE ";
        key_list(&dead, "k.", keys);
        StrAppend(&dead, " AND k.expires_ns <= ", now_ns);
        script.push_back(std::move(dead));
        const int64_t expires = req.key_ttl > absl::ZeroDuration()
                                    ? Expiry(now, req.key_ttl)
                                    : kNever;
        std::string upsert =
            "INSERT INTO converge_window_key (`key`, kind, counter, "
            "expires_ns) VALUES ";
        for (size_t i = 0; i < keys.size(); ++i) {
          upsert += i == 0 ? "(" : ",(";
          conn.AppendLiteral(&upsert, keys[i]);
          StrAppend(&upsert, ",", kIndex, ",0,", expires, ")");
        }
        StrAppend(&upsert,
                  " ON DUPLICATE KEY UPDATE kind = IF(kind = ", kCounter,
                  " AND expires_ns > ", now_ns, ", NULL, ", kIndex,
                  "), counter = 0, expires_ns = VALUES(expires_ns)");
        upsert_at = script.size();
        script.push_back(std::move(upsert));
        bool may_empty = false;
        for (const WindowEntry& e : req.add) {
          std::string member =
              "INSERT INTO converge_window_member (key_id, member, "
              "score_ns) SELECT id, ";
          conn.AppendLiteral(&member, e.member);
          StrAppend(&member, ", ", Nanos(e.score),
                    " FROM converge_window_key WHERE ");
          key_list(
              &member, "",
              std::initializer_list<std::string_view>{std::string_view(e.key)});
          member += " ON DUPLICATE KEY UPDATE score_ns = VALUES(score_ns)";
          script.push_back(std::move(member));
          may_empty = may_empty || e.score < req.trim_before;
        }
        if (req.trim_before != absl::InfinitePast()) {
          std::string trim =
              "DELETE m FROM converge_window_member m JOIN "
              "converge_window_key k ON m.key_id = k.id WHERE ";
          key_list(&trim, "k.", keys);
          StrAppend(&trim, " AND m.score_ns < ", Nanos(req.trim_before));
          script.push_back(std::move(trim));
        }
        if (may_empty) {
          std::string drop =
              "DELETE k FROM converge_window_key k LEFT JOIN "
              "converge_window_member m ON m.key_id = k.id WHERE ";
          key_list(&drop, "k.", keys);
          drop += " AND m.key_id IS NULL";
          script.push_back(std::move(drop));
        }
      }
      if (req.lease.has_value()) {
        Stmt lease(conn, B::kLeaseAcquire);
        lease.Bind(1, req.lease->key)
            .Bind(2, req.lease->token)
            .Bind(3, Expiry(now, req.lease->ttl))
            .Bind(4, now_ns);
        lease_at = script.size();
        script.push_back(lease.Text());
      }
      // Every read key, once.
      std::vector<std::string_view> read_keys;
      KeyMembers found;
      if (!intersect && lo <= hi) {
        for (const auto& group : req.read_groups) {
          for (const std::string& key : group) {
            if (found.try_emplace(key).second) read_keys.push_back(key);
          }
        }
      }
      if (!read_keys.empty()) {
        std::string read =
            "SELECT k.`key`, m.member FROM converge_window_key k JOIN "
            "converge_window_member m ON m.key_id = k.id WHERE ";
        key_list(&read, "k.", read_keys);
        StrAppend(&read, " AND k.kind = ", kIndex, " AND k.expires_ns > ",
                  now_ns, " AND m.score_ns BETWEEN ", lo, " AND ", hi);
        read_at = script.size();
        script.push_back(std::move(read));
      }
      // A request too large for one packet (max_allowed_packet is 4 MiB
      // on MySQL 5.7) goes statement by statement.
      size_t bytes = 0;
      for (const std::string& sql : script) bytes += sql.size() + 1;
      if (bytes > kMaxScriptBytes) return ApplyIn(conn, req);
      const bool sweep = SweepDue(*db_);
      if (!sweep && !intersect) CommitWithNext(conn);
      std::vector<int64_t> affected, insert_ids;
      size_t failed_at = 0;
      absl::Status st = conn.ScriptWithRows(
          std::move(script),
          [&](size_t i, const auto& row) -> absl::Status {
            if (i != read_at) return absl::OkStatus();
            auto it = found.find(row.TextView(0));
            if (it != found.end()) it->second.push_back(row.Text(1));
            return absl::OkStatus();
          },
          &affected, &insert_ids, &failed_at);
      if (!st.ok()) {
        if (failed_at == upsert_at && conn.last_error() == B::kErBadNull) {
          return ApplyIn(conn, req);  // a live counter: refused by name
        }
        return st;
      }
      if (sweep) {
        if (auto swept = Sweep(conn, now_ns); !swept.ok()) return swept;
      }
      WindowResult result;
      if (lease_at != SIZE_MAX && insert_ids[lease_at] == 0) {
        result.lease_acquired = false;
        return result;
      }
      if (intersect) {
        if (auto st = ReadIntersection(conn, req, now_ns, &result); !st.ok())
          return st;
        return result;
      }
      FillGroups(req, found, lo, hi, &result);
      return result;
    }

    static constexpr size_t kMaxScriptBytes = size_t{1} << 20;

    // The members each read key has in the window.
    using KeyMembers =
        absl::flat_hash_map<std::string_view, std::vector<std::string>>;

    // The result's groups from their keys' members in the window (none if
    // the window is empty): a group of several keys without the members it
    // meets twice.
    static void FillGroups(const WindowRequest& req, const KeyMembers& found,
                           int64_t lo, int64_t hi, WindowResult* result) {
      result->groups.reserve(req.read_groups.size());
      for (const auto& group : req.read_groups) {
        std::vector<std::string>& out = result->groups.emplace_back();
        if (lo > hi) continue;
        absl::flat_hash_set<std::string_view> seen;
        for (const std::string& key : group) {
          auto it = found.find(key);
          if (it == found.end()) continue;
          for (const std::string& member : it->second) {
            if (group.size() == 1 || seen.insert(member).second) {
              out.push_back(member);
            }
          }
        }
      }
    }

    // WindowRequest::intersect over several groups: their intersection,
    // as the result's one group.
    static absl::Status ReadIntersection(Conn& conn, const WindowRequest& req,
                                         int64_t now_ns, WindowResult* result) {
      absl::StatusOr<std::vector<std::string>> both = Intersect(
          conn, req.read_groups, now_ns, Nanos(req.start), Nanos(req.end));
      if (!both.ok()) return both.status();
      result->groups.push_back(*std::move(both));
      return absl::OkStatus();
    }

    // Apply's work, in the caller's transaction.
    absl::StatusOr<WindowResult> ApplyIn(Conn& conn, const WindowRequest& req) {
      {
        const absl::Time now = db_->clock().Now();
        const int64_t now_ns = Nanos(now);
        if (auto st = AddAll(conn, req, now, now_ns); !st.ok()) return st;
        // After the adds, which refuse a counter key before they write
        // anything: a refusal inside a batch must leave it as it was, and a
        // sweep that had deleted expired rows first would fail the batch.
        if ((!req.add.empty() || req.lease.has_value()) && SweepDue(*db_)) {
          if (auto st = Sweep(conn, now_ns); !st.ok()) return st;
        }
        WindowResult result;
        if (req.lease.has_value()) {
          absl::StatusOr<bool> got = TryAcquireIn(
              conn, req.lease->key, req.lease->token, req.lease->ttl, now);
          if (!got.ok()) return got.status();
          if (!*got) {
            result.lease_acquired = false;
            return result;
          }
        }
        const int64_t lo = Nanos(req.start);
        const int64_t hi = Nanos(req.end);
        if (req.intersect && req.read_groups.size() > 1) {
          if (auto st = ReadIntersection(conn, req, now_ns, &result); !st.ok())
            return st;
          return result;
        }
        KeyMembers found;
        if (lo <= hi) {
          for (const auto& group : req.read_groups) {
            for (const std::string& key : group) {
              auto [it, fresh] = found.try_emplace(key);
              if (!fresh) continue;
              Stmt q(conn, B::kReadMembers);
              q.Bind(1, key).Bind(2, now_ns).Bind(3, lo).Bind(4, hi);
              for (;;) {
                absl::StatusOr<bool> row = q.Step();
                if (!row.ok()) return row.status();
                if (!*row) break;
                it->second.push_back(q.Text(0));
              }
            }
          }
        }
        FillGroups(req, found, lo, hi, &result);
        return result;
      }
    }

    absl::StatusOr<bool> Remove(std::string_view key,
                                std::string_view member) override {
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        const int64_t now = Nanos(db_->clock().Now());
        absl::StatusOr<std::optional<KeyRow>> k = FindKey(conn, key);
        if (!k.ok()) return k.status();
        if (!k->has_value() || !(*k)->Live(now) || (*k)->kind != kIndex) {
          return false;
        }
        Stmt del(conn, B::kRemoveMember);
        del.Bind(1, (*k)->id).Bind(2, member);
        if (auto st = del.Run(); !st.ok()) return st;
        if (del.Changes() == 0) return false;
        if (auto st = DropIfEmpty(conn, (*k)->id); !st.ok()) return st;
        return true;
      });
    }

    absl::StatusOr<int64_t> Size(std::string_view key) override {
      return db_->ReadAside([&](Conn& conn) -> absl::StatusOr<int64_t> {
        Stmt q(conn, B::kKeySize);
        q.Bind(1, key).Bind(2, Nanos(db_->clock().Now()));
        absl::StatusOr<bool> row = q.Step();
        if (!row.ok()) return row.status();
        return q.Int(0);
      });
    }

    absl::StatusOr<int64_t> Increment(std::string_view key, absl::Duration ttl,
                                      int64_t refresh_up_to) override {
      if (auto st = store::CheckCounterArgs(B::kName, key, ttl); !st.ok()) {
        return st;
      }
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<int64_t> {
        const absl::Time now = db_->clock().Now();
        const int64_t now_ns = Nanos(now);
        absl::StatusOr<std::optional<KeyRow>> k = FindKey(conn, key);
        if (!k.ok()) return k.status();
        const bool live = k->has_value() && (*k)->Live(now_ns);
        if (live && (*k)->kind == kIndex) {
          return absl::FailedPreconditionError(StrCat(
              B::kName, ": key ", key, " is a window index, not a counter"));
        }
        int64_t id;
        int64_t value;
        int64_t expires = kNever;
        if (live) {
          id = (*k)->id;
          value = (*k)->counter + 1;
          expires = (*k)->expires;
        } else {
          absl::StatusOr<int64_t> made =
              NewKey(conn, key, *k, kCounter, kNever);
          if (!made.ok()) return made.status();
          id = *made;
          value = 1;
        }
        if (value <= refresh_up_to) expires = Expiry(now, ttl);
        Stmt up(conn, B::kSetCounter);
        up.Bind(1, id).Bind(2, value).Bind(3, expires);
        if (auto st = up.Run(); !st.ok()) return st;
        return value;
      });
    }

    absl::StatusOr<int64_t> CounterValue(std::string_view key) override {
      return db_->ReadAside([&](Conn& conn) -> absl::StatusOr<int64_t> {
        Stmt q(conn, B::kCounterValue);
        q.Bind(1, key).Bind(2, Nanos(db_->clock().Now()));
        absl::StatusOr<bool> row = q.Step();
        if (!row.ok()) return row.status();
        return *row ? q.Int(0) : 0;
      });
    }

    absl::StatusOr<bool> Delete(std::string_view key) override {
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        absl::StatusOr<std::optional<KeyRow>> k = FindKey(conn, key);
        if (!k.ok()) return k.status();
        if (!k->has_value()) return false;
        const bool live = (*k)->Live(Nanos(db_->clock().Now()));
        if (auto st = DeleteKey(conn, (*k)->id); !st.ok()) return st;
        return live;
      });
    }

   private:
    // WindowRequest::intersect: the members scored within [lo, hi] in every
    // group. Reads the group with the fewest members in the window (counted
    // with a growing cap, so a key that many dimensions share is never read
    // whole) and looks each of its members up in the other groups by primary
    // key: the cost follows the smallest group, not the largest.
    static absl::StatusOr<std::vector<std::string>> Intersect(
        Conn& conn, const std::vector<std::vector<std::string>>& groups,
        int64_t now_ns, int64_t lo, int64_t hi) {
      std::vector<std::string> out;
      if (lo > hi) return out;
      // The live index keys of each group; a group without one is empty.
      std::vector<std::vector<int64_t>> ids(groups.size());
      for (size_t g = 0; g < groups.size(); ++g) {
        for (const std::string& key : groups[g]) {
          Stmt q(conn, B::kLiveIndexKeyId);
          q.Bind(1, key).Bind(2, now_ns);
          absl::StatusOr<bool> row = q.Step();
          if (!row.ok()) return row.status();
          if (*row) ids[g].push_back(q.Int(0));
        }
        if (ids[g].empty()) return out;
      }
      // Members of group g in the window, counted up to `cap`.
      auto count = [&](size_t g, int64_t cap) -> absl::StatusOr<int64_t> {
        int64_t n = 0;
        for (int64_t id : ids[g]) {
          Stmt q(conn, B::kCountMembersUpTo);
          q.Bind(1, id).Bind(2, lo).Bind(3, hi).Bind(4, cap - n);
          absl::StatusOr<bool> row = q.Step();
          if (!row.ok()) return row.status();
          n += *row ? q.Int(0) : 0;
          if (n >= cap) break;
        }
        return n;
      };
      size_t smallest = 0;
      for (int64_t cap = 64;; cap *= 8) {
        int64_t best = cap;
        for (size_t g = 0; g < groups.size(); ++g) {
          absl::StatusOr<int64_t> n = count(g, best);
          if (!n.ok()) return n.status();
          if (*n == 0) return out;
          if (*n < best) {
            best = *n;
            smallest = g;
          }
        }
        if (best < cap) break;
      }
      absl::flat_hash_set<std::string> seen;
      for (int64_t id : ids[smallest]) {
        Stmt q(conn, B::kMembersInWindow);
        q.Bind(1, id).Bind(2, lo).Bind(3, hi);
        for (;;) {
          absl::StatusOr<bool> row = q.Step();
          if (!row.ok()) return row.status();
          if (!*row) break;
          if (seen.insert(std::string(q.TextView(0))).second) {
            out.push_back(q.Text(0));
          }
        }
      }
      for (size_t g = 0; g < groups.size() && !out.empty(); ++g) {
        if (g == smallest) continue;
        std::vector<std::string> kept;
        for (std::string& member : out) {
          for (int64_t id : ids[g]) {
            Stmt q(conn, B::kMemberInWindow);
            q.Bind(1, id).Bind(2, member).Bind(3, lo).Bind(4, hi);
            absl::StatusOr<bool> row = q.Step();
            if (!row.ok()) return row.status();
            if (*row) {
              kept.push_back(std::move(member));
              break;
            }
          }
        }
        out = std::move(kept);
      }
      return out;
    }

    // The adds of `req`: all keys checked first (a live counter among them
    // refuses the whole request), then each key made live (fresh if it was
    // dead) with its expiry pushed, its members upserted and trimmed.
    absl::Status AddAll(Conn& conn, const WindowRequest& req, absl::Time now,
                        int64_t now_ns) {
      if (req.add.empty()) return absl::OkStatus();
      // key -> id, in first-seen order.
      std::vector<std::pair<std::string_view, int64_t>> keys;
      absl::flat_hash_map<std::string_view, size_t> index;
      for (const WindowEntry& e : req.add) {
        if (!index.try_emplace(e.key, keys.size()).second) continue;
        keys.emplace_back(e.key, 0);
      }
      std::vector<std::optional<KeyRow>> rows;
      rows.reserve(keys.size());
      for (const auto& [key, unused] : keys) {
        absl::StatusOr<std::optional<KeyRow>> k = FindKey(conn, key);
        if (!k.ok()) return k.status();
        if (k->has_value() && (*k)->Live(now_ns) && (*k)->kind == kCounter) {
          return absl::FailedPreconditionError(StrCat(
              B::kName, ": key ", key, " is a counter, not a window index"));
        }
        rows.push_back(*k);
      }
      const int64_t expires = req.key_ttl > absl::ZeroDuration()
                                  ? Expiry(now, req.key_ttl)
                                  : kNever;
      for (size_t i = 0; i < keys.size(); ++i) {
        const std::optional<KeyRow>& k = rows[i];
        if (k.has_value() && k->Live(now_ns)) {
          keys[i].second = k->id;
          if (auto st = SetKeyExpiry(conn, k->id, expires); !st.ok()) return st;
        } else {
          absl::StatusOr<int64_t> id =
              NewKey(conn, keys[i].first, k, kIndex, expires);
          if (!id.ok()) return id.status();
          keys[i].second = *id;
        }
      }
      for (const WindowEntry& e : req.add) {
        Stmt up(conn, B::kUpsertMember);
        up.Bind(1, keys[index.at(e.key)].second)
            .Bind(2, e.member)
            .Bind(3, Nanos(e.score));
        if (auto st = up.Run(); !st.ok()) return st;
      }
      if (req.trim_before != absl::InfinitePast()) {
        for (const auto& [key, id] : keys) {
          Stmt trim(conn, B::kTrimMembers);
          trim.Bind(1, id).Bind(2, Nanos(req.trim_before));
          if (auto st = trim.Run(); !st.ok()) return st;
          if (trim.Changes() > 0) {
            if (auto st = DropIfEmpty(conn, id); !st.ok()) return st;
          }
        }
      }
      return absl::OkStatus();
    }

    // A key without members is no key (as a Redis sorted set).
    static absl::Status DropIfEmpty(Conn& conn, int64_t id) {
      Stmt del(conn, B::kDropIfEmpty);
      del.Bind(1, id);
      return del.Run();
    }

    // Drops dead keys and expired leases, a bounded batch at a time, so that
    // dimensions that went quiet do not keep rows forever.
    static absl::Status Sweep(Conn& conn, int64_t now) {
      Stmt members(conn, B::kSweepMembers);
      members.Bind(1, now);
      if (auto st = members.Run(); !st.ok()) return st;
      Stmt keys(conn, B::kSweepKeys);
      keys.Bind(1, now);
      if (auto st = keys.Run(); !st.ok()) return st;
      Stmt leases(conn, B::kSweepLeases);
      leases.Bind(1, now);
      return leases.Run();
    }

    std::shared_ptr<Db> db_;
  };

  // ---------------------------------------------------------------------------
  // Instance repo.

  // A converge_id of 0 is none (as the memory store keeps it).
  static std::optional<int64_t> InstanceIdOrNull(std::optional<int64_t> id) {
    return id.has_value() && *id != 0 ? id : std::nullopt;
  }

  static absl::StatusOr<std::optional<ActionRecord>> LoadAction(Conn& conn,
                                                                int64_t id) {
    Stmt q(conn, B::kLoadAction);
    q.Bind(1, id);
    absl::StatusOr<bool> row = q.Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<ActionRecord>();
    absl::StatusOr<ActionRecord> r = ActionFromRow(q, conn.db());
    if (!r.ok()) return r.status();
    return std::optional<ActionRecord>(*std::move(r));
  }

  // A row of CONVERGE_SQL_SELECT_ACTION's columns; `q` has the accessors of
  // a Stmt (Int, IsNull, Text, TextView).
  template <typename Row>
  static absl::StatusOr<ActionRecord> ActionFromRow(const Row& q,
                                                    const Db& db) {
    ActionRecord r;
    r.id = q.Int(0);
    r.create_time = FromNanos(q.Int(1));
    r.strategy_id = q.Int(2);
    r.execute_timeout = q.Int(3);
    absl::StatusOr<ActionStatus> status = Column(
        ParseEnum(ParseActionStatus(q.TextView(4)), "status", q.TextView(4)),
        db, "converge_action_decision");
    if (!status.ok()) return status.status();
    r.status = *status;
    r.status_time = FromNanos(q.Int(5));
    absl::StatusOr<Outcome> outcome =
        Column(ParseEnum(ParseOutcome(q.TextView(6)), "outcome", q.TextView(6)),
               db, "converge_action_decision");
    if (!outcome.ok()) return outcome.status();
    r.decision.action_id = r.id;
    r.decision.outcome = *outcome;
    if (!q.IsNull(7)) r.decision.converge_id = q.Int(7);
    r.decision.primary = q.Int(8) != 0;
    r.decision.decided_at = FromNanos(q.Int(9));
    r.decision.reason = q.Text(10);
    return r;
  }

  // Inserts `r` (which must have no row yet), with converge_id and primary
  // as given. `member`: stored in the same transaction as the action's
  // relation of type action (B::kMemberColumn).
  static absl::Status InsertAction(Conn& conn, const ActionRecord& r,
                                   std::optional<int64_t> converge_id,
                                   bool primary, bool member,
                                   bool* inserted = nullptr) {
    // With `inserted`, a row that exists is left alone (and *inserted says
    // whether this call wrote one); without it, it is a constraint error.
    Stmt ins(conn,
             inserted == nullptr ? B::kInsertAction : B::kInsertActionIgnore);
    ins.Bind(1, r.id)
        .Bind(2, Nanos(r.create_time))
        .Bind(3, r.strategy_id)
        .Bind(4, r.execute_timeout)
        .Bind(5, ToString(r.status))
        .Bind(6, Nanos(r.status_time))
        .Bind(7, ToString(r.decision.outcome))
        .Bind(8, InstanceIdOrNull(converge_id))
        .Bind(9, int64_t{primary ? 1 : 0})
        .Bind(10, Nanos(r.decision.decided_at))
        .Bind(11, r.decision.reason);
    if constexpr (B::kMemberColumn) ins.Bind(12, int64_t{member ? 1 : 0});
    if (auto st = ins.Run(); !st.ok()) return st;
    if (inserted != nullptr) *inserted = ins.Changes() == 1;
    return absl::OkStatus();
  }

  static absl::StatusOr<bool> HasRelation(Conn& conn, int64_t related_id,
                                          ConvergeType type) {
    // The type is part of the text, not a parameter: a parameter compared
    // with a column of a partial index's WHERE (converge_relation_executed)
    // makes SQLite re-prepare the statement on every run.
    Stmt q(conn, type == ConvergeType::kAction ? B::kHasActionRelation
                                               : B::kHasConvergeRelation);
    q.Bind(1, related_id);
    return q.Step();
  }

  static absl::StatusOr<int64_t> InsertRelation(Conn& conn, int64_t converge_id,
                                                const ConvergeRelation& rel) {
    // OR IGNORE: a duplicate is reported below rather than by aborting the
    // statement, which spares SQLite a statement journal per insert.
    Stmt ins(conn, B::kInsertRelation);
    ins.Bind(1, converge_id)
        .Bind(2, rel.related_id)
        .Bind(3, ToString(rel.related_type))
        .Bind(4, int64_t{rel.is_primary ? 1 : 0})
        .Bind(5, ToString(rel.converge_status))
        .Bind(6, sql::AlertsJson(rel.alerts));
    if (auto st = ins.Run(); !st.ok()) return st;
    if (ins.Changes() != 1) {
      return absl::AlreadyExistsError(StrCat(
          B::kName, ": instance ", converge_id, " already has a relation to ",
          ToString(rel.related_type), " ", rel.related_id));
    }
    return B::LastInsertId(conn);
  }

  struct InstanceState {
    bool exists = false;
    bool open = false;
    ConvergeType type = ConvergeType::kAction;
  };

  // `locked`: for an update of the row in this transaction (MySQL: FOR
  // UPDATE, not the shared lock of kStateOf).
  static absl::StatusOr<InstanceState> StateOf(Conn& conn, int64_t id,
                                               bool locked = false) {
    Stmt q(conn, locked ? B::kLockState : B::kStateOf);
    q.Bind(1, id);
    absl::StatusOr<bool> row = q.Step();
    if (!row.ok()) return row.status();
    InstanceState s;
    if (!*row) return s;
    s.exists = true;
    s.open = q.Int(0) != 0;
    absl::StatusOr<ConvergeType> type =
        Column(ParseEnum(ParseConvergeType(q.TextView(1)), "converge_type",
                         q.TextView(1)),
               conn.db(), "converge_instance");
    if (!type.ok()) return type.status();
    s.type = *type;
    return s;
  }

  // The state of instance `id` (kNotFound if there is none), remembered in
  // `memo` during a batch.
  static absl::StatusOr<RepoMemo::State> MemoState(Conn& conn, RepoMemo* memo,
                                                   int64_t id) {
    if (memo != nullptr) {
      if (auto it = memo->state.find(id); it != memo->state.end()) {
        return it->second;
      }
    }
    absl::StatusOr<InstanceState> s = StateOf(conn, id);
    if (!s.ok()) return s.status();
    if (!s->exists)
      return absl::NotFoundError(StrCat(B::kName, ": no instance ", id));
    RepoMemo::State state{s->open, s->type};
    if (memo != nullptr) memo->state[id] = state;
    return state;
  }

  // Adds `n` to the executed count remembered for open instance `id`.
  static void MemoExecuted(RepoMemo* memo, int64_t id, int64_t n) {
    auto dim = memo->dimension_of.find(id);
    if (dim == memo->dimension_of.end()) return;
    auto open = memo->open.find(dim->second);
    if (open == memo->open.end() || !open->second.has_value() ||
        open->second->id != id || open->second->executed_count < 0) {
      return;
    }
    open->second->executed_count += n;
  }

  // Forgets what the memo knows of instance `id`.
  // Forgets the open instance remembered for the dimension of instance
  // `id`, if it is `id` (the instance's state stays remembered).
  static void MemoForgetOpen(RepoMemo* memo, int64_t id) {
    auto dim = memo->dimension_of.find(id);
    if (dim == memo->dimension_of.end()) return;
    auto open = memo->open.find(dim->second);
    if (open != memo->open.end() && open->second.has_value() &&
        open->second->id == id) {
      memo->open.erase(open);
    }
    memo->dimension_of.erase(dim);
  }

  static void MemoForget(RepoMemo* memo, int64_t id) {
    if (memo == nullptr) return;
    memo->state.erase(id);
    if (auto dim = memo->dimension_of.find(id);
        dim != memo->dimension_of.end()) {
      memo->open.erase(dim->second);
      memo->dimension_of.erase(dim);
    }
  }

  static absl::Status Hide(Conn& conn, int64_t id, absl::Time now) {
    Stmt up(conn, B::kHide);
    up.Bind(1, id).Bind(2, B::DateTime(now));
    return up.Run();
  }

  // A row of CONVERGE_INSTANCE_COLUMNS; `q` has a Stmt's accessors.
  template <typename Row>
  static absl::StatusOr<ConvergeInstance> InstanceFromRow(const Row& q,
                                                          const Db& db) {
    ConvergeInstance i;
    i.id = q.Int(0);
    const std::string where = StrCat("converge_instance ", i.id);
    absl::StatusOr<ConvergeType> type =
        Column(ParseEnum(ParseConvergeType(q.TextView(1)), "converge_type",
                         q.TextView(1)),
               db, where);
    if (!type.ok()) return type.status();
    i.converge_type = *type;
    absl::StatusOr<ConvergeFunction> func =
        Column(ParseEnum(ParseConvergeFunction(q.TextView(2)), "converge_func",
                         q.TextView(2)),
               db, where);
    if (!func.ok()) return func.status();
    i.converge_func = *func;
    i.bk_biz_id = q.Int(3);
    i.dimension = q.Text(4);
    i.description = q.Text(5);
    i.content = q.Text(6);
    absl::StatusOr<absl::Time> created =
        Column(ParseDateTime(q.TextView(7)), db, where);
    if (!created.ok()) return created.status();
    i.create_time = *created;
    if (!q.IsNull(8)) {
      absl::StatusOr<absl::Time> ended =
          Column(ParseDateTime(q.TextView(8)), db, where);
      if (!ended.ok()) return ended.status();
      i.end_time = *ended;
    }
    i.is_visible = q.Int(9) != 0;
    if (auto st = sql::ParseConfigColumn(q.TextView(10), &i); !st.ok()) {
      return absl::DataLossError(
          StrCat(B::kName, ": ", db.path(), ": ", where, ": ", st.message()));
    }
    i.window_seconds = q.Int(11);
    return i;
  }

  // Runs `q` (bound) and collects its instance rows.
  static absl::StatusOr<std::vector<ConvergeInstance>> Instances(Stmt& q,
                                                                 const Db& db) {
    std::vector<ConvergeInstance> out;
    for (;;) {
      absl::StatusOr<bool> row = q.Step();
      if (!row.ok()) return row.status();
      if (!*row) return out;
      absl::StatusOr<ConvergeInstance> inst = InstanceFromRow(q, db);
      if (!inst.ok()) return inst.status();
      out.push_back(std::move(*inst));
    }
  }

  class Repo final : public InstanceRepo {
   public:
    explicit Repo(std::shared_ptr<Db> db) : db_(std::move(db)) {}

    absl::StatusOr<std::optional<ActionRecord>> GetAction(
        int64_t action_id) override {
      return db_->Read([&](Conn& conn) { return LoadAction(conn, action_id); });
    }

    absl::StatusOr<RecordResult> RecordDecision(
        const ActionRecord& record) override {
      if (auto st = store::CheckRecord(B::kName, record); !st.ok()) return st;
      return db_->Write([&](Conn& conn) -> absl::StatusOr<RecordResult> {
        auto stored = [&]() -> absl::StatusOr<std::optional<RecordResult>> {
          absl::StatusOr<std::optional<ActionRecord>> old =
              LoadAction(conn, record.id);
          if (!old.ok()) return old.status();
          if (!old->has_value()) return std::optional<RecordResult>();
          return std::optional<RecordResult>(RecordResult{**old, false});
        };
        if constexpr (!B::kFewerRoundTrips) {
          absl::StatusOr<std::optional<RecordResult>> old = stored();
          if (!old.ok()) return old.status();
          if (old->has_value()) return **old;
        }
        if (auto st = InsertAction(conn, record, record.decision.converge_id,
                                   record.decision.primary, false);
            !st.ok()) {
          if constexpr (B::kFewerRoundTrips) {
            // The primary key refused it: the stored decision wins.
            if (B::IsConstraint(conn)) {
              absl::StatusOr<std::optional<RecordResult>> old = stored();
              if (!old.ok()) return old.status();
              if (old->has_value()) return **old;
            }
          }
          return st;
        }
        RecordResult result{record, true};
        result.record.decision.converge_id =
            InstanceIdOrNull(record.decision.converge_id);
        return result;
      });
    }

    absl::StatusOr<RecordResult> Join(const ActionRecord& record,
                                      const ConvergeRelation& rel) override {
      if (auto st = store::CheckJoin(B::kName, record, rel); !st.ok())
        return st;
      if (auto st = CheckAlerts(rel.alerts); !st.ok()) return st;
      return db_->Write([&](Conn& conn) -> absl::StatusOr<RecordResult> {
        // The common case costs three statements: no relation, insert the
        // decision, insert the relation. Every refusal looks for a
        // stored decision first, which wins over any error.
        auto stored_or =
            [&](absl::Status otherwise) -> absl::StatusOr<RecordResult> {
          absl::StatusOr<std::optional<ActionRecord>> old =
              LoadAction(conn, record.id);
          if (!old.ok()) return old.status();
          if (old->has_value()) return RecordResult{**old, false};
          return otherwise;
        };
        absl::StatusOr<bool> related =
            HasRelation(conn, record.id, ConvergeType::kAction);
        if (!related.ok()) return related.status();
        if (*related) {
          return stored_or(absl::AlreadyExistsError(
              StrCat(B::kName, ": action ", record.id,
                     " already has a relation but no decision")));
        }
        absl::StatusOr<RepoMemo::State> inst =
            MemoState(conn, &conn.memo(), rel.converge_id);
        if (!inst.ok()) return stored_or(inst.status());
        if (!inst->open) {
          // The memo's open instance of its dimension, if it is this one,
          // is stale (another connection or process ended it): the next
          // LookupOpen reads the table again.
          MemoForgetOpen(&conn.memo(), rel.converge_id);
          return stored_or(absl::FailedPreconditionError(
              StrCat(B::kName, ": instance ", rel.converge_id, " has ended")));
        }
        bool inserted = false;
        if (auto st = InsertAction(conn, record, rel.converge_id,
                                   record.decision.primary, true, &inserted);
            !st.ok()) {
          return st;
        }
        if (!inserted) {
          return stored_or(
              absl::InternalError(StrCat(B::kName, ": action ", record.id,
                                         " has a decision row "
                                         "that cannot be read")));
        }
        absl::StatusOr<int64_t> rid =
            InsertRelation(conn, rel.converge_id, rel);
        if (!rid.ok()) return rid.status();
        if (rel.converge_status == ConvergeStatus::kExecuted) {
          MemoExecuted(&conn.memo(), rel.converge_id, 1);
        }
        RecordResult result{record, true};
        result.record.decision.converge_id = rel.converge_id;
        return result;
      });
    }

    absl::Status SetActionStatus(int64_t action_id, ActionStatus status,
                                 absl::Time at) override {
      return db_->Write([&](Conn& conn) -> absl::Status {
        Stmt up(conn, B::kSetActionStatus);
        up.Bind(1, action_id).Bind(2, ToString(status)).Bind(3, Nanos(at));
        if (auto st = up.Run(); !st.ok()) return st;
        if (up.Changes() == 0) {
          return absl::NotFoundError(
              StrCat(B::kName, ": action ", action_id, " has no decision"));
        }
        return absl::OkStatus();
      });
    }

    absl::StatusOr<bool> UpdateDecision(int64_t action_id, Outcome expected,
                                        const Decision& d) override {
      return db_->Write([&](Conn& conn) -> absl::StatusOr<bool> {
        Stmt up(conn, B::kUpdateDecision);
        up.Bind(1, action_id)
            .Bind(2, ToString(expected))
            .Bind(3, ToString(d.outcome))
            .Bind(4, InstanceIdOrNull(d.converge_id))
            .Bind(5, int64_t{d.primary ? 1 : 0})
            .Bind(6, ToString(StatusForOutcome(d.outcome)))
            .Bind(7, Nanos(d.decided_at))
            .Bind(8, d.reason);
        if (auto st = up.Run(); !st.ok()) return st;
        if (up.Changes() == 1) return true;
        Stmt q(conn, B::kActionExists);
        q.Bind(1, action_id);
        absl::StatusOr<bool> exists = q.Step();
        if (!exists.ok()) return exists.status();
        if (!*exists) {
          return absl::NotFoundError(
              StrCat(B::kName, ": action ", action_id, " has no decision"));
        }
        return false;
      });
    }

    absl::StatusOr<CreateResult> Create(const CreateRequest& req) override {
      if (auto st = store::CheckCreate(B::kName, req); !st.ok()) return st;
      absl::StatusOr<std::string> config =
          sql::ConfigJson(B::kName, req.instance);
      if (!config.ok()) return config.status();
      if constexpr (B::kUtf8Text) {
        for (const auto& [column, text] :
             {std::pair<std::string_view, std::string_view>{
                  "dimension", req.instance.dimension},
              {"description", req.instance.description},
              {"content", req.instance.content},
              {"converge_config", *config}}) {
          if (auto st = CheckText(column, text); !st.ok()) return st;
        }
      }
      if constexpr (requires { B::kMaxDimensionChars; }) {
        const ConvergeInstance& in = req.instance;
        size_t chars = 0;
        for (char c : in.dimension) chars += (c & 0xc0) != 0x80;
        if (chars > B::kMaxDimensionChars) {
          return absl::InvalidArgumentError(StrCat(
              B::kName, ": dimension of ", chars,
              " characters exceeds its column's ", B::kMaxDimensionChars));
        }
        for (const auto& [column, text] :
             {std::pair<std::string_view, std::string_view>{"description",
                                                            in.description},
              {"content", in.content}}) {
          if (text.size() > B::kMaxTextBytes) {
            return absl::InvalidArgumentError(
                StrCat(B::kName, ": ", column, " of ", text.size(),
                       " bytes exceeds its column's ", B::kMaxTextBytes));
          }
        }
        if (in.bk_biz_id < B::kMinBizId || in.bk_biz_id > B::kMaxBizId) {
          return absl::InvalidArgumentError(
              StrCat(B::kName, ": bk_biz_id ", in.bk_biz_id,
                     " does not fit its INT column"));
        }
      }
      if (auto st = CheckAlerts(req.primary.alerts); !st.ok()) return st;
      absl::StatusOr<CreateResult> created =
          db_->Write([&](Conn& conn) -> absl::StatusOr<CreateResult> {
            RepoMemo& memo = conn.memo();
            memo.open.erase(AV(req.instance.dimension));
            const ConvergeInstance& in = req.instance;
            // The creator, checked already by this batch (MySQL): the
            // instance's unique dimension is checked by its insert, and
            // the creator's rows are written with the batch's joins.
            bool checked = false;
            if constexpr (B::kFewerRoundTrips) {
              checked = req.creator.has_value() &&
                        in.converge_type == ConvergeType::kAction &&
                        req.primary.related_type == ConvergeType::kAction &&
                        req.primary.related_id == req.creator->id &&
                        B::TakeUnseen(conn, req.creator->id);
            }
            if constexpr (B::kFewerRoundTrips) {
              if (!checked) {
                Stmt q(conn, B::kCreateCheck);
                q.Bind(1, in.dimension);
                if (req.creator.has_value()) q.Bind(2, req.creator->id);
                absl::StatusOr<bool> row = q.Step();
                if (!row.ok()) return row.status();
                if (*row && q.Int(0) != 0) {
                  return absl::AlreadyExistsError(
                      StrCat(B::kName, ": an open instance has dimension ",
                             in.dimension));
                }
                if (*row && (q.Int(1) != 0 || q.Int(2) != 0)) {
                  return absl::AlreadyExistsError(
                      StrCat(B::kName, ": action ", req.creator->id,
                             " already has a decision or a relation"));
                }
              }
            } else {
              Stmt q(conn, B::kOpenExists);
              q.Bind(1, in.dimension);
              absl::StatusOr<bool> open = q.Step();
              if (!open.ok()) return open.status();
              if (*open) {
                return absl::AlreadyExistsError(
                    StrCat(B::kName, ": an open instance has dimension ",
                           in.dimension));
              }
            }
            if (!B::kFewerRoundTrips && req.creator.has_value()) {
              absl::StatusOr<std::optional<ActionRecord>> old =
                  LoadAction(conn, req.creator->id);
              if (!old.ok()) return old.status();
              absl::StatusOr<bool> related = false;
              if (!old->has_value()) {
                related =
                    HasRelation(conn, req.creator->id, ConvergeType::kAction);
                if (!related.ok()) return related.status();
              }
              if (old->has_value() || *related) {
                return absl::AlreadyExistsError(
                    StrCat(B::kName, ": action ", req.creator->id,
                           " already has a decision or a relation"));
              }
            }
            if (in.converge_type == ConvergeType::kConverge) {
              // The primary member must be an open first-level instance,
              // checked under the row lock (MySQL) or the write lock
              // (SQLite): one whose own summary ended it since the
              // caller's look is not hidden and summarized twice.
              absl::StatusOr<InstanceState> s =
                  StateOf(conn, req.primary.related_id, true);
              if (!s.ok()) return s.status();
              if (!s->exists || !s->open || s->type != ConvergeType::kAction) {
                return absl::FailedPreconditionError(StrCat(
                    B::kName, ": primary member ", req.primary.related_id,
                    " is not an open first-level instance"));
              }
            }
            const absl::Time now = db_->clock().Now();
            Stmt ins(conn, B::kInsertInstance);
            ins.Bind(1, B::DateTime(in.create_time))
                .Bind(2, B::DateTime(now))
                .Bind(3, int64_t{in.is_visible ? 1 : 0})
                .Bind(4, *config)
                .Bind(5, ToString(in.converge_func))
                .Bind(6, ToString(in.converge_type))
                .Bind(7, in.bk_biz_id)
                .Bind(8, in.dimension)
                .Bind(9, in.description)
                .Bind(10, in.content)
                .Bind(11, in.window_seconds);
            if (auto st = ins.Run(); !st.ok()) {
              // The unique index on open dimensions: another process won.
              if (B::IsConstraint(conn)) {
                return absl::AlreadyExistsError(
                    StrCat(B::kName, ": an open instance has dimension ",
                           in.dimension));
              }
              return st;
            }
            const int64_t id = B::LastInsertId(conn);
            ConvergeRelation primary = req.primary;
            primary.converge_id = id;
            if constexpr (B::kFewerRoundTrips) {
              if (checked) {
                ActionRecord creator = *req.creator;
                creator.decision.converge_id = id;
                creator.decision.primary = true;
                B::Defer(conn, &creator, &primary);
              }
            }
            if (checked) {
              // Written with the batch's joins.
            } else if (absl::StatusOr<int64_t> rid =
                           InsertRelation(conn, id, primary);
                       !rid.ok()) {
              return rid.status();
            }
            if (checked) {
              // Written with the batch's joins.
            } else if (req.creator.has_value()) {
              // A member when the primary relation is its own.
              const bool member =
                  primary.related_type == ConvergeType::kAction &&
                  primary.related_id == req.creator->id;
              if (auto st = InsertAction(conn, *req.creator, id, true, member);
                  !st.ok()) {
                return st;
              }
            }
            CreateResult result;
            result.instance = in;
            result.instance.id = id;
            // An attached candidate's relation (not primary, no alerts).
            auto member = [&](int64_t cand, ConvergeType type,
                              ConvergeStatus status) {
              ConvergeRelation rel;
              rel.converge_id = id;
              rel.related_id = cand;
              rel.related_type = type;
              rel.converge_status = status;
              return rel;
            };
            // Attaches one candidate with a statement of its own.
            auto attach = [&](int64_t cand, ConvergeType type,
                              ConvergeStatus status) -> absl::Status {
              absl::StatusOr<int64_t> rid =
                  InsertRelation(conn, id, member(cand, type, status));
              if (!rid.ok()) return rid.status();
              result.attached.push_back(cand);
              return absl::OkStatus();
            };
            if (in.converge_type == ConvergeType::kConverge) {
              if (auto st = Hide(conn, primary.related_id, now); !st.ok())
                return st;
              for (int64_t cand : req.attach_candidates) {
                absl::StatusOr<InstanceState> s = StateOf(conn, cand, true);
                if (!s.ok()) return s.status();
                if (!s->exists || !s->open || s->type != ConvergeType::kAction)
                  continue;
                absl::StatusOr<bool> related =
                    HasRelation(conn, cand, ConvergeType::kConverge);
                if (!related.ok()) return related.status();
                if (*related) continue;
                if (auto st = attach(cand, ConvergeType::kConverge,
                                     ConvergeStatus::kSkipped);
                    !st.ok()) {
                  return st;
                }
                if (auto st = Hide(conn, cand, now); !st.ok()) return st;
              }
            } else {
              bool bulk = false;
              if constexpr (B::kFewerRoundTrips) {
                if (req.attach_candidates.size() > 1) {
                  // The candidates decided to execute and related to nothing,
                  // in one statement; their relations in one more.
                  absl::StatusOr<std::vector<int64_t>> free =
                      B::ExecutedUnrelated(conn, req.attach_candidates);
                  if (!free.ok()) return free.status();
                  std::vector<ConvergeRelation> rels;
                  for (int64_t cand : *free) {
                    rels.push_back(member(cand, ConvergeType::kAction,
                                          ConvergeStatus::kExecuted));
                    result.attached.push_back(cand);
                  }
                  if (auto st = B::InsertRelations(conn, rels); !st.ok())
                    return st;
                  bulk = true;
                }
              }
              if (!bulk) {
                for (int64_t cand : req.attach_candidates) {
                  absl::StatusOr<std::optional<ActionRecord>> a =
                      LoadAction(conn, cand);
                  if (!a.ok()) return a.status();
                  if (!a->has_value() ||
                      (*a)->decision.outcome != Outcome::kExecute) {
                    continue;
                  }
                  absl::StatusOr<bool> related =
                      HasRelation(conn, cand, ConvergeType::kAction);
                  if (!related.ok()) return related.status();
                  if (*related) continue;
                  if (auto st = attach(cand, ConvergeType::kAction,
                                       ConvergeStatus::kExecuted);
                      !st.ok()) {
                    return st;
                  }
                }
              }
            }
            int64_t executed = 0;
            if (in.converge_type == ConvergeType::kAction) {
              executed = static_cast<int64_t>(result.attached.size());
              if (req.primary.related_type == ConvergeType::kAction &&
                  req.primary.converge_status == ConvergeStatus::kExecuted) {
                ++executed;
              }
            }
            memo.open[AV(in.dimension)] =
                OpenInstanceRef{id, in.create_time, executed};
            memo.dimension_of[id] = in.dimension;
            memo.state[id] = RepoMemo::State{true, in.converge_type};
            return result;
          });
      return created;
    }

    absl::StatusOr<std::optional<ConvergeInstance>> FindOpen(
        std::string_view dimension) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::optional<ConvergeInstance>> {
            Stmt q(conn, B::kFindOpen);
            q.Bind(1, dimension);
            absl::StatusOr<std::vector<ConvergeInstance>> found =
                Instances(q, *db_);
            if (!found.ok()) return found.status();
            if (found->empty()) return std::optional<ConvergeInstance>();
            return std::optional<ConvergeInstance>(std::move(found->front()));
          });
    }

    absl::StatusOr<std::optional<OpenInstanceRef>> LookupOpen(
        std::string_view dimension) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::optional<OpenInstanceRef>> {
            RepoMemo& memo = conn.memo();
            if (auto it = memo.open.find(AV(dimension));
                it != memo.open.end()) {
              return it->second;
            }
            Stmt q(conn, B::kLookupOpen);
            q.Bind(1, dimension);
            absl::StatusOr<bool> row = q.Step();
            if (!row.ok()) return row.status();
            std::optional<OpenInstanceRef> found;
            if (*row) {
              absl::StatusOr<absl::Time> created = Column(
                  ParseDateTime(q.TextView(1)), *db_, "converge_instance");
              if (!created.ok()) return created.status();
              found = OpenInstanceRef{q.Int(0), *created, q.Int(2)};
              memo.dimension_of[found->id] = std::string(dimension);
            }
            if (B::kMemoNegative || found.has_value()) {
              memo.open[AV(dimension)] = found;
            }
            return found;
          });
    }

    absl::StatusOr<ConvergeInstance> GetInstance(int64_t id) override {
      return db_->Read([&](Conn& conn) -> absl::StatusOr<ConvergeInstance> {
        Stmt q(conn, B::kGetInstance);
        q.Bind(1, id);
        absl::StatusOr<std::vector<ConvergeInstance>> found =
            Instances(q, *db_);
        if (!found.ok()) return found.status();
        if (found->empty()) {
          return absl::NotFoundError(StrCat(B::kName, ": no instance ", id));
        }
        return std::move(found->front());
      });
    }

    absl::StatusOr<bool> End(int64_t id, absl::Time now) override {
      return EndIf(id, now, B::kEnd);
    }

    absl::StatusOr<bool> EndVisible(int64_t id, absl::Time now) override {
      return EndIf(id, now, B::kEndVisible);
    }

    absl::StatusOr<bool> EndIf(int64_t id, absl::Time now, const char* sql) {
      return db_->Write([&](Conn& conn) -> absl::StatusOr<bool> {
        MemoForget(&conn.memo(), id);
        // Compare-and-set on end_time (and with kEndVisible is_visible);
        // the rewrite frees D for a new instance.
        Stmt up(conn, sql);
        up.Bind(1, id)
            .Bind(2, B::DateTime(now))
            .Bind(3, StrCat(" fixed at ", absl::ToUnixSeconds(now), " #", id));
        if (auto st = up.Run(); !st.ok()) return st;
        if (up.Changes() == 1) return true;
        absl::StatusOr<InstanceState> s = StateOf(conn, id);
        if (!s.ok()) return s.status();
        if (!s->exists) {
          return absl::NotFoundError(StrCat(B::kName, ": no instance ", id));
        }
        return false;
      });
    }

    absl::Status SetVisible(int64_t id, bool visible) override {
      return db_->Write([&](Conn& conn) -> absl::Status {
        Stmt up(conn, B::kSetVisible);
        up.Bind(1, id)
            .Bind(2, int64_t{visible ? 1 : 0})
            .Bind(3, B::DateTime(db_->clock().Now()));
        if (auto st = up.Run(); !st.ok()) return st;
        if (up.Changes() == 0) {
          return absl::NotFoundError(StrCat(B::kName, ": no instance ", id));
        }
        return absl::OkStatus();
      });
    }

    absl::StatusOr<std::vector<ConvergeInstance>> ListOpen(
        size_t limit) override {
      return ListOpenAfter(std::numeric_limits<int64_t>::min(), limit);
    }

    absl::StatusOr<std::vector<ConvergeInstance>> ListOpenAfter(
        int64_t after_id, size_t limit) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::vector<ConvergeInstance>> {
            Stmt q(conn, B::kListOpenAfter);
            q.Bind(1, after_id).Bind(2, B::Limit(limit));
            return Instances(q, *db_);
          });
    }

    absl::StatusOr<std::vector<ConvergeInstance>> ListEndedAfter(
        int64_t after_id, size_t limit) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::vector<ConvergeInstance>> {
            Stmt q(conn, B::kListEndedAfter);
            q.Bind(1, after_id).Bind(2, B::Limit(limit));
            return Instances(q, *db_);
          });
    }

    absl::StatusOr<OpenCounts> CountOpen() override {
      return db_->Read([&](Conn& conn) -> absl::StatusOr<OpenCounts> {
        Stmt q(conn, B::kCountOpen);
        OpenCounts counts;
        for (;;) {
          absl::StatusOr<bool> row = q.Step();
          if (!row.ok()) return row.status();
          if (!*row) return counts;
          if (q.TextView(0) == "converge") {
            counts.converge += q.Int(1);
          } else {
            counts.action += q.Int(1);
          }
        }
      });
    }

    absl::StatusOr<PurgeResult> Purge(absl::Time before,
                                      size_t limit) override {
      return db_->Write([&](Conn& conn) -> absl::StatusOr<PurgeResult> {
        conn.memo().Clear();
        PurgeResult result;
        std::vector<int64_t> doomed;
        {
          Stmt q(conn, B::kPurgeSelectInstances);
          q.Bind(1, B::DateTime(before)).Bind(2, B::Limit(limit));
          for (;;) {
            absl::StatusOr<bool> row = q.Step();
            if (!row.ok()) return row.status();
            if (!*row) break;
            doomed.push_back(q.Int(0));
          }
        }
        for (int64_t id : doomed) {
          if constexpr (B::kMemberColumn) {
            // Its members' decisions become loose (found by their age
            // below) once their relations are gone.
            Stmt loose(conn, B::kPurgeMembersLoose);
            loose.Bind(1, id);
            if (auto st = loose.Run(); !st.ok()) return st;
          }
          Stmt rels(conn, B::kPurgeRelations);
          rels.Bind(1, id);
          if (auto st = rels.Run(); !st.ok()) return st;
          result.relations += rels.Changes();
          Stmt inst(conn, B::kPurgeInstance);
          inst.Bind(1, id);
          if (auto st = inst.Run(); !st.ok()) return st;
          result.instances += inst.Changes();
        }
        // Decisions older than `before` of actions that belong to no stored
        // instance: no relation, and the instance their decision names (if
        // any) is gone. Members of an instance go with it.
        Stmt del(conn, B::kPurgeActions);
        del.Bind(1, Nanos(before)).Bind(2, B::Limit(limit));
        if (auto st = del.Run(); !st.ok()) return st;
        result.actions = del.Changes();
        return result;
      });
    }

    absl::StatusOr<std::vector<ConvergeRelation>> Relations(
        int64_t converge_id) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::vector<ConvergeRelation>> {
            Stmt q(conn, B::kRelations);
            q.Bind(1, converge_id);
            return RelationRows(q, converge_id);
          });
    }

    absl::StatusOr<std::vector<ConvergeRelation>> RelationsAfter(
        int64_t converge_id, int64_t after_id, size_t limit) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::vector<ConvergeRelation>> {
            Stmt q(conn, B::kRelationsAfter);
            q.Bind(1, converge_id).Bind(2, after_id).Bind(3, B::Limit(limit));
            return RelationRows(q, converge_id);
          });
    }

    absl::StatusOr<std::optional<int64_t>> ConvergeOf(
        int64_t first_level_id) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::optional<int64_t>> {
            Stmt q(conn, B::kConvergeOf);
            q.Bind(1, first_level_id);
            absl::StatusOr<bool> row = q.Step();
            if (!row.ok()) return row.status();
            if (!*row) return std::optional<int64_t>();
            return std::optional<int64_t>(q.Int(0));
          });
    }

    // The rows of a kRelations-shaped query.
    absl::StatusOr<std::vector<ConvergeRelation>> RelationRows(
        Stmt& q, int64_t converge_id) {
      std::vector<ConvergeRelation> out;
      for (;;) {
        absl::StatusOr<bool> row = q.Step();
        if (!row.ok()) return row.status();
        if (!*row) return out;
        ConvergeRelation r;
        r.id = q.Int(0);
        r.converge_id = converge_id;
        r.related_id = q.Int(1);
        const std::string where = StrCat("converge_relation ", r.id);
        absl::StatusOr<ConvergeType> type =
            Column(ParseEnum(ParseConvergeType(q.TextView(2)), "related_type",
                             q.TextView(2)),
                   *db_, where);
        if (!type.ok()) return type.status();
        r.related_type = *type;
        r.is_primary = q.Int(3) != 0;
        absl::StatusOr<ConvergeStatus> status =
            Column(ParseEnum(ParseConvergeStatus(q.TextView(4)),
                             "converge_status", q.TextView(4)),
                   *db_, where);
        if (!status.ok()) return status.status();
        r.converge_status = *status;
        absl::StatusOr<std::vector<std::string>> alerts =
            Column(sql::ParseAlerts(q.TextView(5)), *db_, where);
        if (!alerts.ok()) return alerts.status();
        r.alerts = std::move(*alerts);
        out.push_back(std::move(r));
      }
    }

    absl::StatusOr<std::vector<MemberStatus>> ExecutedMembers(
        int64_t converge_id) override {
      return db_->Read(
          [&](Conn& conn) -> absl::StatusOr<std::vector<MemberStatus>> {
            Stmt q(conn, B::kExecutedMembers);
            q.Bind(1, converge_id);
            std::vector<MemberStatus> out;
            for (;;) {
              absl::StatusOr<bool> row = q.Step();
              if (!row.ok()) return row.status();
              if (!*row) return out;
              MemberStatus m;
              m.action_id = q.Int(0);
              if (!q.IsNull(1)) {
                absl::StatusOr<ActionStatus> s =
                    Column(ParseEnum(ParseActionStatus(q.TextView(1)), "status",
                                     q.TextView(1)),
                           *db_, "converge_action_decision");
                if (!s.ok()) return s.status();
                m.status = *s;
                m.status_time = FromNanos(q.Int(2));
              }
              out.push_back(m);
            }
          });
    }

    absl::StatusOr<int64_t> CountExecuted(int64_t converge_id) override {
      return db_->Read([&](Conn& conn) -> absl::StatusOr<int64_t> {
        Stmt q(conn, B::kCountExecuted);
        q.Bind(1, converge_id);
        absl::StatusOr<bool> row = q.Step();
        if (!row.ok()) return row.status();
        return q.Int(0);
      });
    }

    absl::StatusOr<std::vector<ConvergeRelation>> Link(
        int64_t converge_id,
        absl::Span<const ConvergeRelation> relations) override {
      if (auto st = store::CheckLink(B::kName, converge_id, relations);
          !st.ok()) {
        return st;
      }
      for (const ConvergeRelation& rel : relations) {
        if (auto st = CheckAlerts(rel.alerts); !st.ok()) return st;
      }
      return db_->Write(
          [&](Conn& conn) -> absl::StatusOr<std::vector<ConvergeRelation>> {
            absl::StatusOr<InstanceState> s = StateOf(conn, converge_id);
            if (!s.ok()) return s.status();
            if (!s->exists) {
              return absl::NotFoundError(
                  StrCat(B::kName, ": no instance ", converge_id));
            }
            if (!s->open) {
              return absl::FailedPreconditionError(
                  StrCat(B::kName, ": instance ", converge_id, " has ended"));
            }
            const absl::Time now = db_->clock().Now();
            std::vector<ConvergeRelation> inserted;
            for (const ConvergeRelation& rel : relations) {
              // Open first-level members only, checked under the row lock
              // (MySQL) or the write lock (SQLite).
              absl::StatusOr<InstanceState> member =
                  StateOf(conn, rel.related_id, true);
              if (!member.ok()) return member.status();
              if (!member->exists || !member->open ||
                  member->type != ConvergeType::kAction) {
                continue;
              }
              absl::StatusOr<bool> related =
                  HasRelation(conn, rel.related_id, ConvergeType::kConverge);
              if (!related.ok()) return related.status();
              if (*related) continue;
              absl::StatusOr<int64_t> rid =
                  InsertRelation(conn, converge_id, rel);
              if (!rid.ok()) return rid.status();
              if (auto st = Hide(conn, rel.related_id, now); !st.ok())
                return st;
              inserted.push_back(rel);
              inserted.back().id = *rid;
            }
            return inserted;
          });
    }

    absl::StatusOr<std::vector<int64_t>> Unrelated(
        absl::Span<const int64_t> ids, ConvergeType type) override {
      return db_->Read([&](Conn& conn) -> absl::StatusOr<std::vector<int64_t>> {
        std::vector<int64_t> out;
        out.reserve(ids.size());
        for (int64_t id : ids) {
          absl::StatusOr<bool> related = HasRelation(conn, id, type);
          if (!related.ok()) return related.status();
          if (!*related) out.push_back(id);
        }
        return out;
      });
    }

    // One transaction on a connection bound to this thread; the other
    // threads of the process wait for it to end before they write.
    absl::StatusOr<std::unique_ptr<RepoBatch>> BeginBatch() override {
      if (auto st = db_->BeginBatch(); !st.ok()) return st;
      return std::unique_ptr<RepoBatch>(std::make_unique<Batch>(db_));
    }

   private:
    class Batch final : public RepoBatch {
     public:
      explicit Batch(std::shared_ptr<Db> db) : db_(std::move(db)) {}
      ~Batch() override {
        if (open_) db_->AbortBatch();
      }
      bool ExcludesWriters() const override { return B::kBatchExcludesWriters; }
      void RetriedOnConflict() override {
        if constexpr (requires(Db & db) { db.RetriedOnConflict(); }) {
          db_->RetriedOnConflict();
        }
      }
      absl::Status Commit() override {
        if (!open_) {
          return absl::FailedPreconditionError(
              StrCat(B::kName, ": ", db_->path(), ": the batch has ended"));
        }
        open_ = false;
        return db_->CommitBatch();
      }

     private:
      std::shared_ptr<Db> db_;
      bool open_ = true;
    };

    std::shared_ptr<Db> db_;
  };

  // ---------------------------------------------------------------------------
  // Queue store. A task row is pending (state 0, ready_ns = due), in flight
  // (1, ready_ns = visible until) or dead (2). seq is the enqueue order and,
  // with the delivery counter, names a delivery in the receipt "seq.delivery";
  // AUTOINCREMENT never reuses a seq, so an old receipt never names a new task.

  static constexpr int64_t kPending = 0;
  static constexpr int64_t kInFlight = 1;
  static constexpr int64_t kDead = 2;

  static bool ParseReceipt(std::string_view receipt, int64_t* seq,
                           int64_t* delivery) {
    const size_t dot = receipt.find('.');
    if (dot == std::string_view::npos) return false;
    return absl::SimpleAtoi(AV(receipt.substr(0, dot)), seq) &&
           absl::SimpleAtoi(AV(receipt.substr(dot + 1)), delivery);
  }

  static Task TaskFromRow(const Stmt& q, int first) {
    Task t;
    t.id = q.Text(first);
    t.kind = q.Text(first + 1);
    t.subject_id = q.Int(first + 2);
    t.payload = q.Text(first + 3);
    t.due = FromNanos(q.Int(first + 4));
    t.attempts = static_cast<int32_t>(q.Int(first + 5));
    t.last_error = q.Text(first + 6);
    return t;
  }

  class Queue final : public QueueStore {
   public:
    explicit Queue(std::shared_ptr<Db> db) : db_(std::move(db)) {}

    // A task's last error as stored: its first kMaxTaskError bytes where
    // the column is bounded (a diagnostic text; refusing it would keep the
    // task from being retried or buried).
    static std::string_view ErrorText(std::string_view error) {
      if constexpr (B::kMaxTaskError > 0) {
        return error.substr(0, B::kMaxTaskError);
      }
      return error;
    }

    absl::Status Enqueue(std::string_view queue, const Task& task) override {
      if (auto st = CheckTask(queue, task); !st.ok()) return st;
      return db_->WriteAside([&](Conn& conn) {
        CommitWithNext(conn);
        return EnqueueIn(conn, queue, task);
      });
    }

    // In one transaction.
    absl::Status EnqueueMany(std::string_view queue,
                             absl::Span<const Task> tasks) override {
      for (const Task& task : tasks) {
        if (auto st = CheckTask(queue, task); !st.ok()) return st;
      }
      if (tasks.empty()) return absl::OkStatus();
      return db_->WriteAside([&](Conn& conn) -> absl::Status {
        if constexpr (B::kFewerRoundTrips) {
          return B::EnqueueRows(conn, queue, tasks);
        } else {
          for (const Task& task : tasks) {
            absl::Status st = EnqueueIn(conn, queue, task);
            if (!st.ok() && st.code() != absl::StatusCode::kAlreadyExists) {
              return st;
            }
          }
          return absl::OkStatus();
        }
      });
    }

    static absl::Status CheckTask(std::string_view queue, const Task& task) {
      if (auto st = store::CheckEnqueue(B::kName, queue, task); !st.ok()) {
        return st;
      }
      if constexpr (B::kMaxTaskName > 0) {
        const std::pair<std::string_view, std::string_view> names[] = {
            {"queue name", queue}, {"task id", task.id}, {"kind", task.kind}};
        for (const auto& [what, value] : names) {
          if (value.size() > B::kMaxTaskName) {
            return absl::InvalidArgumentError(
                StrCat(B::kName, ": ", what, " of ", value.size(),
                       " bytes: at most ", B::kMaxTaskName));
          }
        }
        if (task.last_error.size() > B::kMaxTaskError) {
          return absl::InvalidArgumentError(
              StrCat(B::kName, ": last_error of ", task.last_error.size(),
                     " bytes: at most ", B::kMaxTaskError));
        }
      }
      return absl::OkStatus();
    }

    static absl::Status EnqueueIn(Conn& conn, std::string_view queue,
                                  const Task& task) {
      Stmt ins(conn, B::kEnqueue);
      ins.Bind(1, queue)
          .Bind(2, task.id)
          .Bind(3, task.kind)
          .Bind(4, task.subject_id)
          .BindBlob(5, task.payload)
          .Bind(6, Nanos(task.due))
          .Bind(7, task.last_error);
      if (auto st = ins.Run(); !st.ok()) return st;
      if (ins.Changes() == 0) {
        return absl::AlreadyExistsError(StrCat(
            B::kName, ": task ", task.id, " already exists in queue ", queue));
      }
      return absl::OkStatus();
    }

    absl::StatusOr<std::optional<Delivery>> Dequeue(
        std::string_view queue, absl::Time now,
        absl::Duration visibility) override {
      if (auto st = store::CheckVisibility(B::kName, visibility); !st.ok()) {
        return st;
      }
      const int64_t now_ns = Nanos(now);
      if constexpr (B::kProbeBeforeDequeue) {
        // Polling an idle queue takes no write lock.
        absl::StatusOr<bool> any =
            db_->ReadAside([&](Conn& conn) -> absl::StatusOr<bool> {
              Stmt q(conn, B::kDequeueProbe);
              q.Bind(1, queue).Bind(2, now_ns);
              return q.Step();
            });
        if (!any.ok()) return any.status();
        if (!*any) return std::optional<Delivery>();
      }
      return db_->WriteAside(
          [&](Conn& conn) -> absl::StatusOr<std::optional<Delivery>> {
            const int64_t visible_until = Nanos(now + visibility);
            Delivery d;
            int64_t seq, delivery;
            {
              Stmt q(conn, B::kDequeueSelect);
              q.Bind(1, queue).Bind(2, now_ns);
              absl::StatusOr<bool> row = q.Step();
              if (!row.ok()) return row.status();
              if (!*row) return std::optional<Delivery>();
              seq = q.Int(0);
              delivery = q.Int(1) + 1;
              d.task = TaskFromRow(q, 2);
            }
            Stmt up(conn, B::kDequeueUpdate);
            up.Bind(1, seq).Bind(2, visible_until);
            if (auto st = up.Run(); !st.ok()) return st;
            ++d.task.attempts;
            d.receipt = StrCat(seq, ".", delivery);
            d.visible_until = FromNanos(visible_until);
            return std::optional<Delivery>(std::move(d));
          });
    }

    absl::StatusOr<bool> Ack(std::string_view queue,
                             std::string_view receipt) override {
      int64_t seq, delivery;
      if (!ParseReceipt(receipt, &seq, &delivery)) return false;
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        Stmt del(conn, B::kAck);
        del.Bind(1, seq).Bind(2, delivery).Bind(3, queue);
        if (auto st = del.Run(); !st.ok()) return st;
        return del.Changes() == 1;
      });
    }

    absl::StatusOr<bool> Retry(std::string_view queue, std::string_view receipt,
                               absl::Time due,
                               std::string_view error) override {
      int64_t seq, delivery;
      if (!ParseReceipt(receipt, &seq, &delivery)) return false;
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        Stmt up(conn, B::kRetry);
        up.Bind(1, seq)
            .Bind(2, delivery)
            .Bind(3, queue)
            .Bind(4, Nanos(due))
            .Bind(5, ErrorText(error));
        if (auto st = up.Run(); !st.ok()) return st;
        return up.Changes() == 1;
      });
    }

    absl::StatusOr<bool> Reschedule(std::string_view queue,
                                    std::string_view receipt,
                                    absl::Time due) override {
      int64_t seq, delivery;
      if (!ParseReceipt(receipt, &seq, &delivery)) return false;
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        Stmt up(conn, B::kReschedule);
        up.Bind(1, seq).Bind(2, delivery).Bind(3, queue).Bind(4, Nanos(due));
        if (auto st = up.Run(); !st.ok()) return st;
        return up.Changes() == 1;
      });
    }

    absl::StatusOr<bool> Bury(std::string_view queue, std::string_view receipt,
                              std::string_view error) override {
      int64_t seq, delivery;
      if (!ParseReceipt(receipt, &seq, &delivery)) return false;
      return db_->WriteAside([&](Conn& conn) -> absl::StatusOr<bool> {
        Stmt up(conn, B::kBury);
        up.Bind(1, seq)
            .Bind(2, delivery)
            .Bind(3, queue)
            .Bind(4, ErrorText(error));
        if (auto st = up.Run(); !st.ok()) return st;
        return up.Changes() == 1;
      });
    }

    absl::StatusOr<std::vector<Task>> ListDead(std::string_view queue,
                                               size_t limit) override {
      return db_->ReadAside(
          [&](Conn& conn) -> absl::StatusOr<std::vector<Task>> {
            Stmt q(conn, B::kListDead);
            q.Bind(1, queue).Bind(2, B::Limit(limit));
            return Tasks(q);
          });
    }

    absl::Status Redrive(std::string_view queue, std::string_view task_id,
                         absl::Time due) override {
      return db_->WriteAside([&](Conn& conn) -> absl::Status {
        Stmt up(conn, B::kRedrive);
        up.Bind(1, queue).Bind(2, task_id).Bind(3, Nanos(due));
        if (auto st = up.Run(); !st.ok()) return st;
        if (up.Changes() == 0) {
          return absl::NotFoundError(StrCat(B::kName, ": no dead task ",
                                            task_id, " in queue ", queue));
        }
        return absl::OkStatus();
      });
    }

    absl::StatusOr<std::vector<Task>> ListPending(std::string_view queue,
                                                  size_t limit) override {
      return db_->ReadAside(
          [&](Conn& conn) -> absl::StatusOr<std::vector<Task>> {
            Stmt q(
                conn,
                "SELECT task_id, kind, subject_id, payload, due_ns, attempts, "
                "last_error FROM converge_queue_task WHERE queue = ?1 AND "
                // "state < 2" lets SQLite use the partial index
                // converge_queue_task_ready (WHERE state < 2) instead of
                // scanning and sorting the whole queue.
                "state < 2 AND state = 0 ORDER BY ready_ns, seq LIMIT ?2");
            q.Bind(1, queue).Bind(2, B::Limit(limit));
            return Tasks(q);
          });
    }

    absl::StatusOr<QueueStats> Stats(std::string_view queue) override {
      return db_->ReadAside([&](Conn& conn) -> absl::StatusOr<QueueStats> {
        Stmt q(conn, B::kStats);
        q.Bind(1, queue);
        QueueStats stats;
        for (;;) {
          absl::StatusOr<bool> row = q.Step();
          if (!row.ok()) return row.status();
          if (!*row) return stats;
          switch (q.Int(0)) {
            case kPending:
              stats.pending = q.Int(1);
              break;
            case kInFlight:
              stats.in_flight = q.Int(1);
              break;
            case kDead:
              stats.dead = q.Int(1);
              break;
            default:
              return absl::DataLossError(
                  StrCat(B::kName, ": ", db_->path(),
                         ": converge_queue_task: unknown state ", q.Int(0)));
          }
        }
      });
    }

   private:
    static absl::StatusOr<std::vector<Task>> Tasks(Stmt& q) {
      std::vector<Task> out;
      for (;;) {
        absl::StatusOr<bool> row = q.Step();
        if (!row.ok()) return row.status();
        if (!*row) return out;
        out.push_back(TaskFromRow(q, 0));
      }
    }

    std::shared_ptr<Db> db_;
  };
};

}  // namespace converge::sql

#endif  // CONVERGE_ADAPTERS_SQL_SRC_STORES_H_
