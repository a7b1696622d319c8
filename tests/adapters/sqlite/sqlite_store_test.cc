// SQLite-specific tests: the URI, the schema and its migrations, state
// across reopening, several connections on one file, and bad files (not
// SQLite, damaged, read-only directory, locked past the timeout), each a
// clear status naming the path with nothing written. The store's contract
// itself is the conformance suite's (conformance_sqlite).

#include "converge/sqlite/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "converge/store/errors.h"
#include "counting_vfs.h"
#include "db.h"  // adapters/sqlite/src: the migration test hook
#include "support/unprivileged.h"

namespace converge::sqlite {
namespace {

namespace fs = std::filesystem;
using ::converge::testing::AsUnprivileged;

absl::Time At(double seconds) {
  return absl::UnixEpoch() + absl::Seconds(seconds);
}

// A temporary directory, removed (with write permission restored) at the
// end of the test.
struct TempDir {
  TempDir() {
    std::string pattern =
        (fs::temp_directory_path() / "converge-sqlite-XXXXXX");
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path, ec);
  }
  std::string File(const std::string& name) const { return path / name; }
  fs::path path;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::set<std::string> Listing(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out.insert(e.path().filename());
  }
  return out;
}

SqliteOptions Options(const std::string& path, const Clock* clock = nullptr) {
  SqliteOptions o;
  o.path = path;
  o.clock = clock;
  o.synchronous = Synchronous::kOff;
  o.busy_timeout = absl::Milliseconds(200);
  return o;
}

bool Mentions(const absl::Status& s, std::string_view text) {
  return absl::StrContains(std::string(s.message()), std::string(text));
}

// A raw connection, for looking at and tampering with the file.
struct Raw {
  explicit Raw(const std::string& path) {
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
  }
  ~Raw() { sqlite3_close(db); }
  int Exec(const std::string& sql) {
    return sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  }
  std::vector<std::string> Column(const std::string& sql) {
    std::vector<std::string> out;
    sqlite3_stmt* s = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(s, 0);
      out.push_back(t != nullptr ? reinterpret_cast<const char*>(t) : "NULL");
    }
    sqlite3_finalize(s);
    return out;
  }
  sqlite3* db = nullptr;
};

ActionRecord Rec(int64_t id, Outcome outcome = Outcome::kExecute) {
  ActionRecord r;
  r.id = id;
  r.create_time = At(100);
  r.status = StatusForOutcome(outcome);
  r.status_time = At(100);
  r.decision.action_id = id;
  r.decision.outcome = outcome;
  r.decision.decided_at = At(100);
  r.decision.reason = "r";
  return r;
}

CreateRequest Create(std::string dimension, int64_t creator) {
  CreateRequest req;
  req.instance.dimension = std::move(dimension);
  req.instance.create_time = At(100);
  req.instance.converge_func = ConvergeFunction::kCollect;
  req.instance.converge_config.is_enabled = true;
  req.instance.converge_config.converge_func = ConvergeFunction::kCollect;
  req.instance.converge_config.timedelta = 60;
  req.instance.converged_condition = {{"alert_info", {Value("g1")}}};
  req.primary.related_id = creator;
  req.primary.is_primary = true;
  req.primary.converge_status = ConvergeStatus::kExecuted;
  req.primary.alerts = {"a-" + std::to_string(creator)};
  req.creator = Rec(creator);
  return req;
}

// Makes a database at `path` holding one instance, one decision and one
// task, checkpointed into the main file.
void MakeDatabase(const std::string& path) {
  SqliteStores s = OpenSqliteStores(Options(path)).value();
  REQUIRE(s.repo->Create(Create("D", 1)).ok());
  for (int64_t id = 2; id < 200; ++id) {
    REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
  }
  Task t;
  t.id = "t";
  t.due = At(5);
  REQUIRE(s.queue->Enqueue("q", t).ok());
}

// ---------------------------------------------------------------------------
// URI and options

TEST_CASE("ParseSqliteUri reads sqlite:PATH and its parameters", "[sqlite]") {
  SqliteOptions o = ParseSqliteUri("sqlite:/var/lib/converge.db").value();
  CHECK(o.path == "/var/lib/converge.db");
  CHECK(o.synchronous == Synchronous::kFull);
  CHECK(o.busy_timeout == absl::Seconds(5));
  CHECK(o.check_on_open);
  CHECK(o.coalesce_log_writes);
  CHECK(o.clock == nullptr);
  CHECK(ParseSqliteUri("sqlite:state.db").value().path == "state.db");
  CHECK(ParseSqliteUri("sqlite:///tmp/x.db").value().path == "/tmp/x.db");
  o = ParseSqliteUri(
          "sqlite:x.db?busy_timeout_ms=250&synchronous=normal&check_on_open=0")
          .value();
  CHECK(o.path == "x.db");
  CHECK(o.busy_timeout == absl::Milliseconds(250));
  CHECK(o.synchronous == Synchronous::kNormal);
  CHECK_FALSE(o.check_on_open);
  CHECK_FALSE(ParseSqliteUri("sqlite:x.db?coalesce_log_writes=0")
                  .value()
                  .coalesce_log_writes);
  CHECK(ParseSqliteUri("sqlite:x.db?coalesce_log_writes=true")
            .value()
            .coalesce_log_writes);
  CHECK(ParseSqliteUri("sqlite:x.db?coalesce_log_writes=2").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("ParseSqliteUri refuses what it cannot read", "[sqlite]") {
  auto code = [](std::string_view uri) {
    return ParseSqliteUri(uri).status().code();
  };
  CHECK(code("memory:") == absl::StatusCode::kInvalidArgument);
  CHECK(code("/tmp/x.db") == absl::StatusCode::kInvalidArgument);
  CHECK(code("sqlite:") == absl::StatusCode::kInvalidArgument);
  CHECK(code("sqlite:x.db?busy_timeout_ms=-1") ==
        absl::StatusCode::kInvalidArgument);
  CHECK(code("sqlite:x.db?synchronous=sometimes") ==
        absl::StatusCode::kInvalidArgument);
  absl::Status st = ParseSqliteUri("sqlite:x.db?cache=big").status();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(st, "cache"));
}

TEST_CASE("bad options are kInvalidArgument", "[sqlite]") {
  CHECK(OpenSqliteStores(SqliteOptions{}).status().code() ==
        absl::StatusCode::kInvalidArgument);
  TempDir dir;
  SqliteOptions o = Options(dir.File("x.db"));
  o.busy_timeout = -absl::Seconds(1);
  absl::Status st = OpenSqliteStores(o).status();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(st, "busy_timeout"));
  CHECK(Listing(dir.path).empty());
}

// ---------------------------------------------------------------------------
// Schema

TEST_CASE("a new file gets the current schema, in WAL mode", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("new.db");
  REQUIRE(OpenSqliteStores(Options(path)).ok());
  Raw raw(path);
  CHECK(raw.Column("PRAGMA journal_mode") == std::vector<std::string>{"wal"});
  CHECK(raw.Column("SELECT version FROM schema_version ORDER BY version") ==
        std::vector<std::string>{"1", "2", "3", "4"});
  // Upstream's columns, by name (section 1 of converge-semantics.md).
  std::vector<std::string> cols =
      raw.Column("SELECT name FROM pragma_table_info('converge_instance')");
  for (const char* c :
       {"id", "is_enabled", "is_deleted", "create_user", "create_time",
        "update_user", "update_time", "is_visible", "converge_config",
        "converge_func", "converge_type", "bk_biz_id", "dimension",
        "description", "content", "detail", "end_time", "notify_status"}) {
    INFO(c);
    CHECK(std::find(cols.begin(), cols.end(), c) != cols.end());
  }
  cols = raw.Column("SELECT name FROM pragma_table_info('converge_relation')");
  CHECK(cols == std::vector<std::string>{"id", "converge_id", "related_id",
                                         "related_type", "is_primary",
                                         "converge_status", "alerts"});
}

TEST_CASE("rows are upstream-compatible", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("u.db");
  {
    SqliteStores s = OpenSqliteStores(Options(path)).value();
    CreateRequest req = Create("!sha1#" + std::string(40, 'b'), 7);
    req.instance.create_time = At(1700000000.5);
    REQUIRE(s.repo->Create(req).ok());
    REQUIRE(s.repo->End(1, At(1700000100)).value());
  }
  Raw raw(path);
  CHECK(raw.Column("SELECT converge_type || '|' || converge_func || '|' || "
                   "create_time || '|' || end_time || '|' || dimension FROM "
                   "converge_instance") ==
        std::vector<std::string>{
            "action|collect|2023-11-14 22:13:20.500000000|2023-11-14 "
            "22:15:00.000000000|!sha1#" +
            std::string(40, 'b') + " fixed at 1700000100 #1"});
  // converge_config is JSON holding the computed converged_condition.
  std::string config = raw.Column(
                              "SELECT converge_config FROM "
                              "converge_instance")
                           .at(0);
  CHECK(absl::StrContains(config, "\"converge_func\":\"collect\""));
  CHECK(absl::StrContains(config,
                          "\"converged_condition\":{\"alert_info\":[\"g1\"]}"));
  CHECK(raw.Column("SELECT related_type || '|' || is_primary || '|' || "
                   "converge_status || '|' || alerts FROM converge_relation") ==
        std::vector<std::string>{"action|1|executed|[\"a-7\"]"});
}

TEST_CASE("the database enforces one open instance per dimension", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("u.db");
  {
    SqliteStores s = OpenSqliteStores(Options(path)).value();
    REQUIRE(s.repo->Create(Create("D", 1)).ok());
  }
  Raw raw(path);
  const std::string insert =
      "INSERT INTO converge_instance (create_time, update_time, "
      "converge_config, converge_type, bk_biz_id, dimension) VALUES ('x', "
      "'x', '{}', 'action', 0, 'D')";
  // Even a writer that skips converge's checks cannot add a second one.
  CHECK(raw.Exec(insert) == SQLITE_CONSTRAINT);
  // An ended one frees D.
  REQUIRE(raw.Exec("UPDATE converge_instance SET end_time = 'y'") == SQLITE_OK);
  CHECK(raw.Exec(insert) == SQLITE_OK);
}

TEST_CASE("state survives closing and reopening", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("p.db");
  VirtualClock clock(At(1000));
  {
    SqliteStores s = OpenSqliteStores(Options(path, &clock)).value();
    REQUIRE(s.repo->Create(Create("D", 1)).ok());
    Task t;
    t.id = "summary:1";
    t.due = At(1060);
    REQUIRE(s.queue->Enqueue("converge.summary", t).ok());
    WindowRequest w;
    w.add = {WindowEntry{"k", "action_1", At(1000)}};
    w.key_ttl = absl::Seconds(600);
    w.lease = LeaseRequest{"L", "me", absl::Seconds(60)};
    REQUIRE(s.window->Apply(w).value().lease_acquired);
    REQUIRE(s.window->Increment("c", absl::Seconds(600), 10).ok());
  }
  SqliteStores s = OpenSqliteStores(Options(path, &clock)).value();
  CHECK(s.repo->FindOpen("D").value()->id == 1);
  CHECK(s.repo->GetAction(1).value()->decision.primary);
  CHECK(s.queue->ListPending("converge.summary", 0).value().at(0).id ==
        "summary:1");
  CHECK(s.window->Size("k").value() == 1);
  CHECK(s.window->CounterValue("c").value() == 1);
  CHECK_FALSE(s.lock->TryAcquire("L", "other", absl::Seconds(1)).value());
  CHECK(s.lock->Release("L", "me").value());
  // Ids keep counting.
  CHECK(s.repo->Create(Create("E", 2)).value().instance.id == 2);
}

TEST_CASE("an older file is migrated on open", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("old.db");
  REQUIRE(internal::Db::MigrateForTest(path, 1).ok());
  {
    Raw raw(path);
    REQUIRE(raw.Column("SELECT MAX(version) FROM schema_version") ==
            std::vector<std::string>{"1"});
    // A version-1 file has no queue table yet; it holds a decision.
    CHECK(raw.Column("SELECT name FROM sqlite_master WHERE name = "
                     "'converge_queue_task'")
              .empty());
    REQUIRE(raw.Exec("INSERT INTO converge_action_decision VALUES (5, 0, 0, "
                     "0, 'converged', 0, 'execute', NULL, 0, 0, 'old')") ==
            SQLITE_OK);
  }
  SqliteStores s = OpenSqliteStores(Options(path)).value();
  Raw raw(path);
  CHECK(raw.Column("SELECT version FROM schema_version ORDER BY version") ==
        std::vector<std::string>{"1", "2", "3", "4"});
  CHECK(s.repo->GetAction(5).value()->decision.reason == "old");
  Task t;
  t.id = "t";
  CHECK(s.queue->Enqueue("q", t).ok());
}

TEST_CASE("a version-2 file keeps its relations through migration 3",
          "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("v2.db");
  REQUIRE(internal::Db::MigrateForTest(path, 2).ok());
  {
    Raw raw(path);
    // Version 2: AUTOINCREMENT ids (relation 7 was deleted, so the next
    // would have been 9), the unique key led by the instance.
    REQUIRE(
        raw.Exec("INSERT INTO converge_instance (id, create_time, update_time, "
                 "converge_config, converge_func, converge_type, bk_biz_id, "
                 "dimension) VALUES (1, '2026-01-01 00:00:00', "
                 "'2026-01-01 00:00:00', '{}', 'collect', 'action', 2, 'D')") ==
        SQLITE_OK);
    REQUIRE(raw.Exec("INSERT INTO converge_relation (id, converge_id, "
                     "related_id, related_type, is_primary, converge_status, "
                     "alerts) VALUES (5, 1, 10, 'action', 1, 'executed', "
                     "'[\"a\"]'), (6, 1, 11, 'action', 0, 'skipped', '[]'), "
                     "(8, 1, 12, 'action', 0, 'executed', '[]')") == SQLITE_OK);
  }
  SqliteStores s = OpenSqliteStores(Options(path)).value();
  std::vector<ConvergeRelation> rels = s.repo->Relations(1).value();
  REQUIRE(rels.size() == 3);
  CHECK(rels[0].id == 5);
  CHECK(rels[0].related_id == 10);
  CHECK(rels[0].is_primary);
  CHECK(rels[0].alerts == std::vector<std::string>{"a"});
  CHECK(rels[1].id == 6);
  CHECK(rels[2].id == 8);
  CHECK(s.repo->CountExecuted(1).value() == 2);
  // The new layout: the same columns, the unique key led by the action,
  // the instance's indexes, no AUTOINCREMENT.
  Raw raw(path);
  CHECK(raw.Column("SELECT name FROM pragma_table_info('converge_relation')") ==
        std::vector<std::string>{"id", "converge_id", "related_id",
                                 "related_type", "is_primary",
                                 "converge_status", "alerts"});
  CHECK(raw.Column("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                   "tbl_name = 'converge_relation' ORDER BY name") ==
        std::vector<std::string>{"converge_relation_converge",
                                 "converge_relation_executed",
                                 "sqlite_autoindex_converge_relation_1"});
  CHECK(raw.Column("SELECT sql LIKE '%AUTOINCREMENT%' FROM sqlite_master "
                   "WHERE name = 'converge_relation'") ==
        std::vector<std::string>{"0"});
  // Still unique: the same relation twice is refused.
  CHECK(raw.Exec("INSERT INTO converge_relation (converge_id, related_id, "
                 "related_type) VALUES (1, 11, 'action')") != SQLITE_OK);
}

TEST_CASE(
    "decisions stored with their relation stay out of the age index, and a "
    "version-3 file keeps its decisions purgeable through migration 4",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("v3.db");
  REQUIRE(internal::Db::MigrateForTest(path, 3).ok());
  {
    // Version 3: instance 1 (ended), its creator 10 and a joiner 11; a
    // loose decision 12.
    Raw raw(path);
    REQUIRE(
        raw.Exec("INSERT INTO converge_instance (id, create_time, update_time, "
                 "converge_config, converge_func, converge_type, bk_biz_id, "
                 "dimension, end_time) VALUES (1, '1970-01-01 00:01:40', "
                 "'1970-01-01 00:01:40', '{}', 'collect', 'action', 2, "
                 "'D fixed at 200 #1', '1970-01-01 00:03:20')") == SQLITE_OK);
    REQUIRE(raw.Exec("INSERT INTO converge_relation (id, converge_id, "
                     "related_id, related_type, is_primary, converge_status) "
                     "VALUES (1, 1, 10, 'action', 1, 'executed'), (2, 1, 11, "
                     "'action', 0, 'skipped')") == SQLITE_OK);
    for (const char* row :
         {"(10, 0, 0, 0, 'converged', 0, 'execute', 1, 1, 100000000000, 'c')",
          "(11, 0, 0, 0, 'skipped', 0, 'skip', 1, 0, 100000000000, 'j')",
          "(12, 0, 0, 0, 'converged', 0, 'execute', NULL, 0, 100000000000, "
          "'l')"}) {
      REQUIRE(raw.Exec(std::string("INSERT INTO converge_action_decision "
                                   "VALUES ") +
                       row) == SQLITE_OK);
    }
  }
  SqliteStores s = OpenSqliteStores(Options(path)).value();
  Raw raw(path);
  const std::string members =
      "SELECT action_id || ':' || member FROM converge_action_decision "
      "ORDER BY action_id";
  // Existing rows stay in the index (member 0), which is always safe.
  CHECK(raw.Column(members) ==
        std::vector<std::string>{"10:0", "11:0", "12:0"});
  CHECK(raw.Column("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                   "tbl_name = 'converge_action_decision'") ==
        std::vector<std::string>{"converge_action_decision_age"});
  // New decisions: Create's creator and a joiner are members; a decision
  // stored alone is not, even when it names an instance.
  REQUIRE(s.repo->Create(Create("E", 20)).ok());  // instance 2
  ActionRecord joiner = Rec(21, Outcome::kSkip);
  ConvergeRelation rel;
  rel.converge_id = 2;
  rel.related_id = 21;
  REQUIRE(s.repo->Join(joiner, rel).ok());
  ActionRecord named = Rec(22);
  named.decision.converge_id = 2;
  REQUIRE(s.repo->RecordDecision(named).ok());
  CHECK(raw.Column(members) == std::vector<std::string>{"10:0", "11:0", "12:0",
                                                        "20:1", "21:1",
                                                        "22:0"});
  // The migrated instance and its members go as before.
  PurgeResult p = s.repo->Purge(At(300), 0).value();
  CHECK(p.instances == 1);
  CHECK(p.relations == 2);
  CHECK(p.actions == 3);  // 10, 11, 12
  // Instance 2 ended and purged: its members' decisions leave the index
  // side (member 0) with their relations, and go in the same call.
  REQUIRE(s.repo->End(2, At(400)).value());
  p = s.repo->Purge(At(500), 0).value();
  CHECK(p.instances == 1);
  CHECK(p.relations == 2);
  CHECK(p.actions == 3);  // 20, 21, 22
  CHECK(raw.Column(members).empty());
}

TEST_CASE("a file with a newer schema is refused, untouched", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("new.db");
  MakeDatabase(path);
  {
    Raw raw(path);
    REQUIRE(raw.Exec("INSERT INTO schema_version VALUES (5, 'later', "
                     "'from the future')") == SQLITE_OK);
    REQUIRE(raw.Exec("PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK);
  }
  const std::string before = ReadFile(path);
  absl::Status st = OpenSqliteStores(Options(path)).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Mentions(st, path));
  CHECK(Mentions(st, "schema version 5"));
  CHECK(Mentions(st, "schema version 4"));
  CHECK(ReadFile(path) == before);
}

// ---------------------------------------------------------------------------
// Bad files

TEST_CASE("a file that is not SQLite is refused, untouched", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("notes.txt");
  const std::string text(5000, 'x');
  WriteFile(path, "these are my notes, not a database\n" + text);
  const std::string before = ReadFile(path);
  absl::Status st = OpenSqliteStores(Options(path)).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Mentions(st, path));
  CHECK(Mentions(st, "not a SQLite database"));
  CHECK(ReadFile(path) == before);
  CHECK(Listing(dir.path) == std::set<std::string>{"notes.txt"});
}

TEST_CASE("another program's SQLite database is refused, untouched",
          "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("other.db");
  {
    Raw raw(path);
    REQUIRE(raw.Exec("CREATE TABLE customers (id INTEGER PRIMARY KEY)") ==
            SQLITE_OK);
  }
  const std::string before = ReadFile(path);
  absl::Status st = OpenSqliteStores(Options(path)).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Mentions(st, path));
  CHECK(Mentions(st, "not a converge database"));
  CHECK(Mentions(st, "customers"));
  CHECK(ReadFile(path) == before);
}

TEST_CASE(
    "another program's database with a schema_version table is refused, "
    "untouched",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("flyway.db");
  {
    Raw raw(path);
    REQUIRE(raw.Exec("CREATE TABLE schema_version (installed_rank INTEGER, "
                     "script TEXT)") == SQLITE_OK);
  }
  const std::string before = ReadFile(path);
  absl::Status st = OpenSqliteStores(Options(path)).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Mentions(st, "not a converge database"));
  CHECK(Mentions(st, "schema_version"));
  CHECK(ReadFile(path) == before);  // not switched to WAL
}

TEST_CASE("a truncated database is kDataLoss, untouched", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("cut.db");
  MakeDatabase(path);
  std::string bytes = ReadFile(path);
  REQUIRE(bytes.size() > 4 * 4096);
  bytes.resize(bytes.size() / 2);
  WriteFile(path, bytes);
  absl::Status st = OpenSqliteStores(Options(path)).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kDataLoss);
  CHECK(Mentions(st, path));
  CHECK(Mentions(st, "damaged"));
  CHECK(ReadFile(path) == bytes);
}

TEST_CASE("a database with overwritten pages is kDataLoss, untouched",
          "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("bad.db");
  MakeDatabase(path);
  std::string bytes = ReadFile(path);
  REQUIRE(bytes.size() > 4 * 4096);
  // Garbage over every page but the first (the header and the schema).
  for (size_t i = 4096; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>((i * 7919) & 0xff);
  }
  WriteFile(path, bytes);
  SECTION("refused on open") {
    absl::Status st = OpenSqliteStores(Options(path)).status();
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(Mentions(st, path));
    CHECK(Mentions(st, "damaged"));
  }
  SECTION("without the check on open, the first read fails cleanly") {
    SqliteOptions o = Options(path);
    o.check_on_open = false;
    absl::StatusOr<SqliteStores> s = OpenSqliteStores(o);
    if (s.ok()) {
      absl::StatusOr<ConvergeInstance> got = s->repo->GetInstance(1);
      INFO(got.status().ToString());
      CHECK(got.status().code() == absl::StatusCode::kDataLoss);
      CHECK(Mentions(got.status(), path));
    } else {
      CHECK(s.status().code() == absl::StatusCode::kDataLoss);
    }
  }
  CHECK(ReadFile(path) == bytes);
}

TEST_CASE("a missing directory is kNotFound", "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("no/such/dir/x.db");
  absl::Status st = OpenSqliteStores(Options(path)).status();
  CHECK(st.code() == absl::StatusCode::kNotFound);
  CHECK(Mentions(st, path));
  CHECK(Mentions(st, "does not exist"));
}

std::string OpenStatus(const std::string& path) {
  absl::Status st = OpenSqliteStores(Options(path)).status();
  return std::string(absl::StatusCodeToString(st.code())) + " " +
         std::string(st.message());
}

TEST_CASE("a read-only directory is kPermissionDenied, nothing written",
          "[sqlite]") {
  TempDir dir;
  // World-readable so that the unprivileged child can look inside.
  fs::permissions(dir.path, fs::perms::owner_all | fs::perms::group_read |
                                fs::perms::group_exec | fs::perms::others_read |
                                fs::perms::others_exec);
  SECTION("a new database") {
    const std::string path = dir.File("x.db");
    fs::permissions(dir.path, fs::perms::owner_write, fs::perm_options::remove);
    const std::string out = AsUnprivileged([&] { return OpenStatus(path); });
    INFO(out);
    CHECK(absl::StartsWith(out, "PERMISSION_DENIED"));
    CHECK(absl::StrContains(out, path));
    CHECK(absl::StrContains(out, "not writable"));
    CHECK(Listing(dir.path).empty());
  }
  SECTION("an existing database") {
    const std::string path = dir.File("x.db");
    MakeDatabase(path);
    {
      Raw raw(path);
      REQUIRE(raw.Exec("PRAGMA wal_checkpoint(TRUNCATE)") == SQLITE_OK);
    }
    fs::remove(path + "-wal");
    fs::remove(path + "-shm");
    fs::permissions(path, fs::perms::all);  // the file itself is writable
    fs::permissions(dir.path, fs::perms::owner_write, fs::perm_options::remove);
    const std::string before = ReadFile(path);
    const std::string out = AsUnprivileged([&] { return OpenStatus(path); });
    INFO(out);
    CHECK(absl::StartsWith(out, "PERMISSION_DENIED"));
    CHECK(absl::StrContains(out, path));
    CHECK(absl::StrContains(out, "not writable"));
    CHECK(ReadFile(path) == before);
    CHECK(Listing(dir.path) == std::set<std::string>{"x.db"});
  }
}

TEST_CASE(
    "a write lock held past the busy timeout is kUnavailable, nothing "
    "written",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("busy.db");
  SqliteOptions o = Options(path);
  o.busy_timeout = absl::Milliseconds(100);
  SqliteStores s = OpenSqliteStores(o).value();
  Raw other(path);
  REQUIRE(other.Exec("BEGIN IMMEDIATE") == SQLITE_OK);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<RecordResult> r = s.repo->RecordDecision(Rec(1));
  const auto waited = std::chrono::steady_clock::now() - start;
  INFO(r.status().ToString());
  CHECK(r.status().code() == absl::StatusCode::kUnavailable);
  CHECK(Mentions(r.status(), path));
  CHECK(Mentions(r.status(), "SQLITE_BUSY"));
  CHECK(Mentions(r.status(), "busy timeout"));
  CHECK(IsStoreDown(r.status()));  // any write now would wait and fail so
  CHECK(waited >= std::chrono::milliseconds(100));
  // So does a batch, at its start.
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s.repo->BeginBatch();
  CHECK(IsStoreDown(batch.status()));
  CHECK(Mentions(batch.status(), "SQLITE_BUSY"));
  // Readers are not blocked by a writer (WAL).
  CHECK_FALSE(s.repo->GetAction(1).value().has_value());
  REQUIRE(other.Exec("COMMIT") == SQLITE_OK);
  CHECK_FALSE(s.repo->GetAction(1).value().has_value());
  // Once the lock is free the same call succeeds.
  CHECK(s.repo->RecordDecision(Rec(1)).value().inserted);
}

TEST_CASE(
    "opening a database locked exclusively past the busy timeout is "
    "kUnavailable, nothing written",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("locked.db");
  Raw other(path);
  REQUIRE(other.Exec("PRAGMA locking_mode = EXCLUSIVE") == SQLITE_OK);
  REQUIRE(other.Exec("CREATE TABLE IF NOT EXISTS schema_version (version "
                     "INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, "
                     "description TEXT NOT NULL)") == SQLITE_OK);
  REQUIRE(other.Exec("BEGIN EXCLUSIVE") == SQLITE_OK);
  SqliteOptions o = Options(path);
  o.busy_timeout = absl::Milliseconds(100);
  absl::Status st = OpenSqliteStores(o).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kUnavailable);
  CHECK(Mentions(st, path));
  CHECK(Mentions(st, "locked"));
  REQUIRE(other.Exec("COMMIT") == SQLITE_OK);
  CHECK(other.Column("SELECT COUNT(*) FROM schema_version") ==
        std::vector<std::string>{"0"});
}

// ---------------------------------------------------------------------------
// Several connections

TEST_CASE("two store sets on one file race Create: one instance",
          "[sqlite][concurrency]") {
  // As two processes would: separate connections, the file's lock and the
  // unique index decide.
  TempDir dir;
  const std::string path = dir.File("shared.db");
  SqliteStores a = OpenSqliteStores(Options(path)).value();
  SqliteStores b = OpenSqliteStores(Options(path)).value();
  for (int round = 0; round < 10; ++round) {
    const std::string d = "D" + std::to_string(round);
    std::atomic<int> created{0}, refused{0}, errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        InstanceRepo& repo = t % 2 == 0 ? *a.repo : *b.repo;
        absl::StatusOr<CreateResult> r =
            repo.Create(Create(d, round * 100 + t + 1));
        if (r.ok()) {
          ++created;
        } else if (r.status().code() == absl::StatusCode::kAlreadyExists) {
          ++refused;
        } else {
          ++errors;
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(errors.load() == 0);
    CHECK(created.load() == 1);
    CHECK(refused.load() == 7);
    CHECK(a.repo->FindOpen(d).value()->id == b.repo->FindOpen(d).value()->id);
  }
}

TEST_CASE(
    "what one connection remembers of open instances follows commits of "
    "another",
    "[sqlite]") {
  // Store set `a` remembers D's open instance and executed count (its hot
  // path does not query them again); `b`, as another process would, ends
  // it, opens a new one and joins it. `a` must see all of it, in and out
  // of a batch.
  TempDir dir;
  const std::string path = dir.File("shared.db");
  SqliteStores a = OpenSqliteStores(Options(path)).value();
  SqliteStores b = OpenSqliteStores(Options(path)).value();
  REQUIRE(a.repo->Create(Create("D", 1)).ok());
  for (int use_batch = 0; use_batch < 2; ++use_batch) {
    const int64_t first = a.repo->LookupOpen("D").value()->id;
    // Round 0: the creator; round 1: round 0's creator and joiner.
    CHECK(a.repo->LookupOpen("D").value()->executed_count == 1 + use_batch);
    REQUIRE(b.repo->End(first, At(200)).value());
    const int64_t second =
        b.repo->Create(Create("D", 10 + use_batch * 10)).value().instance.id;
    ActionRecord joiner = Rec(11 + use_batch * 10);
    joiner.decision.converge_id = second;
    ConvergeRelation rel;
    rel.converge_id = second;
    rel.related_id = joiner.id;
    rel.converge_status = ConvergeStatus::kExecuted;
    REQUIRE(b.repo->Join(joiner, rel).ok());

    std::unique_ptr<RepoBatch> batch;
    if (use_batch == 1) batch = a.repo->BeginBatch().value();
    std::optional<OpenInstanceRef> seen = a.repo->LookupOpen("D").value();
    REQUIRE(seen.has_value());
    CHECK(seen->id == second);
    CHECK(seen->executed_count == 2);
    // Joining the instance `b` ended is refused, not taken from memory.
    ActionRecord late = Rec(12 + use_batch * 10, Outcome::kSkip);
    late.decision.converge_id = first;
    ConvergeRelation late_rel;
    late_rel.converge_id = first;
    late_rel.related_id = late.id;
    CHECK(a.repo->Join(late, late_rel).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    if (batch != nullptr) REQUIRE(batch->Commit().ok());
  }
}

TEST_CASE(
    "in a batch, an Apply refused for a counter key leaves the batch as it "
    "was, even on a call that sweeps expired keys",
    "[sqlite]") {
  TempDir dir;
  VirtualClock clock(At(1000));
  SqliteStores s = OpenSqliteStores(Options(dir.File("s.db"), &clock)).value();
  // An index key that expires, for the periodic sweep to delete.
  WindowRequest expiring;
  expiring.add = {WindowEntry{"old", "action_9", At(1000)}};
  expiring.key_ttl = absl::Seconds(10);
  REQUIRE(s.window->Apply(expiring).ok());
  REQUIRE(s.window->Increment("c", absl::Seconds(600), 10).ok());
  clock.Set(At(1100));
  std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
  REQUIRE(batch != nullptr);
  REQUIRE(s.repo->RecordDecision(Rec(1)).ok());
  // The store sweeps on one Apply in 4,096: more calls than that, each one
  // refused (c is a counter), and none fails the batch.
  WindowRequest onto_counter;
  onto_counter.add = {WindowEntry{"c", "action_1", At(1100)}};
  int refused = 0;
  for (int i = 0; i < 5000; ++i) {
    absl::StatusOr<WindowResult> r = s.window->Apply(onto_counter);
    if (r.status().code() == absl::StatusCode::kFailedPrecondition) ++refused;
  }
  CHECK(refused == 5000);
  REQUIRE(s.repo->RecordDecision(Rec(2)).ok());
  REQUIRE(batch->Commit().ok());
  CHECK(s.repo->GetAction(1).value().has_value());
  CHECK(s.repo->GetAction(2).value().has_value());
  CHECK(s.window->CounterValue("c").value() == 1);
}

TEST_CASE(
    "in a batch, a call that fails after it changed rows fails the batch: "
    "later calls and Commit return its error, nothing is committed",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("f.db");
  SqliteStores s = OpenSqliteStores(Options(path)).value();
  REQUIRE(s.repo->Create(Create("D", 1)).ok());
  // A fault after Join has written the action's decision row: its relation
  // row is refused by the file itself.
  REQUIRE(Raw(path).Exec("CREATE TRIGGER inject BEFORE INSERT ON "
                         "converge_relation WHEN NEW.related_id = 99 BEGIN "
                         "SELECT RAISE(ABORT, 'injected fault'); END") ==
          SQLITE_OK);
  std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
  REQUIRE(batch != nullptr);
  REQUIRE(s.repo->RecordDecision(Rec(2)).ok());
  ActionRecord joiner = Rec(99, Outcome::kSkip);
  joiner.decision.converge_id = 1;
  ConvergeRelation rel;
  rel.converge_id = 1;
  rel.related_id = 99;
  rel.converge_status = ConvergeStatus::kSkipped;
  const absl::Status failed = s.repo->Join(joiner, rel).status();
  REQUIRE_FALSE(failed.ok());
  CHECK(Mentions(failed, "injected fault"));
  // Every later call of the batch, and its commit, return that error.
  const absl::Status later = s.repo->RecordDecision(Rec(3)).status();
  CHECK(Mentions(later, "injected fault"));
  const absl::Status commit = batch->Commit();
  CHECK_FALSE(commit.ok());
  CHECK(Mentions(commit, "injected fault"));
  batch.reset();
  // Nothing of the batch was stored, and the store goes on.
  for (int64_t id : {2, 3, 99}) {
    CHECK_FALSE(s.repo->GetAction(id).value().has_value());
  }
  CHECK(s.repo->Relations(1).value().size() == 1);
  CHECK(s.repo->RecordDecision(Rec(4)).ok());
  CHECK(s.repo->GetAction(4).value().has_value());
}

TEST_CASE("a batch holds the write lock; other threads write after it",
          "[sqlite][concurrency]") {
  TempDir dir;
  SqliteStores s = OpenSqliteStores(Options(dir.File("b.db"))).value();
  std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
  REQUIRE(batch != nullptr);
  REQUIRE(s.repo->RecordDecision(Rec(1)).ok());
  // (No Catch assertions off the main thread: Catch is not thread-safe.)
  std::atomic<bool> written{false};
  absl::Status other_status;
  std::thread other([&] {
    // Waits for the batch (the process's write mutex), then writes.
    other_status = s.repo->RecordDecision(Rec(2)).status();
    written = true;
  });
  // Another thread's snapshot does not see the open batch's write.
  absl::StatusOr<std::optional<ActionRecord>> seen;
  std::thread reader([&] { seen = s.repo->GetAction(1); });
  reader.join();
  REQUIRE(seen.ok());
  CHECK_FALSE(seen->has_value());
  CHECK_FALSE(written.load());
  REQUIRE(batch->Commit().ok());
  other.join();
  CHECK(other_status.ok());
  CHECK(written.load());
  CHECK(s.repo->GetAction(1).value().has_value());
  CHECK(s.repo->GetAction(2).value().has_value());
}

TEST_CASE("the write-ahead log stays bounded: checkpoints run in background",
          "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("wal.db");
  SqliteOptions o = Options(path);
  o.checkpoint_pages = 20;
  SqliteStores s = OpenSqliteStores(o).value();
  for (int64_t id = 1; id <= 3000; ++id) {
    REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
  }
  // Whether the background thread keeps up or the committing call
  // checkpoints at eight times the threshold, the log never grows past
  // that (plus the frames of one commit); without checkpoints 3,000
  // commits would leave thousands of frames.
  const auto wal_bytes = fs::file_size(path + "-wal");
  CHECK(wal_bytes < (8 * 20 + 16) * (4096 + 24) + 32);
  Raw raw(path);
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision") ==
        std::vector<std::string>{"3000"});
}

TEST_CASE(
    "checkpoints run as the log grows, not after every commit of a busy "
    "writer",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("ckpt.db");
  SqliteOptions o = Options(path);
  o.synchronous = Synchronous::kNormal;  // syncs only in checkpoints
  const int64_t threshold = 100;
  o.checkpoint_pages = threshold;
  converge::testing::CountingVfs vfs;
  {
    SqliteStores s = OpenSqliteStores(o).value();
    vfs.wal_syncs = 0;
    vfs.wal_bytes = 0;
    // Commits back to back: every background copy ends a commit or two
    // short of the end of the log, so the log stays above the threshold.
    for (int64_t id = 1; id <= 2000; ++id) {
      REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
    }
  }
  // A checkpoint syncs the log once before it copies. A frame is a
  // 24-byte header and a page. Asked once per checkpoint_pages
  // frames of growth (and the RESTART ones at eight times that), the
  // checkpoints here number 51 to 62 for about 4,200 frames; asked after
  // every commit above the threshold, 150 to 180 (the checkpointer then
  // runs whenever it is free). The bound leaves room for scheduling: a
  // log that starts over syncs its new header too.
  const int64_t frames = vfs.wal_bytes.load() / (24 + 4096);
  const int64_t syncs = vfs.wal_syncs.load();
  INFO(frames << " frames written, " << syncs << " syncs of the log");
  CHECK(frames >= 2000 * 2);
  CHECK(syncs * threshold * 2 <= frames * 5);
  CHECK(syncs > 0);
  Raw raw(path);
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision") ==
        std::vector<std::string>{"2000"});
}

TEST_CASE(
    "a commit's log frames are written with one system call, and another "
    "connection sees every commit at once",
    "[sqlite]") {
  TempDir dir;
  for (const bool coalesce : {true, false}) {
    INFO("coalesce_log_writes " << coalesce);
    const std::string path = dir.File(coalesce ? "one.db" : "two.db");
    SqliteOptions o = Options(path);
    o.synchronous = Synchronous::kNormal;
    o.coalesce_log_writes = coalesce;
    converge::testing::CountingVfs vfs;
    {
      SqliteStores s = OpenSqliteStores(o).value();
      Raw reader(path);  // SQLite's default VFS, its own file handles
      vfs.wal_writes = 0;
      vfs.wal_bytes = 0;
      constexpr int64_t kCommits = 200;
      for (int64_t id = 1; id <= kCommits; ++id) {
        REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
        REQUIRE(reader.Column("SELECT COUNT(*) FROM "
                              "converge_action_decision") ==
                std::vector<std::string>{std::to_string(id)});
      }
      // A decision alone writes two pages (its row, its age index): two
      // frames, each a header and a page.
      const int64_t frames = vfs.wal_bytes.load() / (24 + 4096);
      INFO(vfs.wal_writes.load() << " writes of " << frames << " frames");
      CHECK(frames >= 2 * kCommits);
      if (coalesce) {
        CHECK(vfs.wal_writes.load() <= kCommits + 10);
      } else {
        CHECK(vfs.wal_writes.load() >= 2 * frames);
      }
    }
    Raw raw(path);
    CHECK(raw.Column("PRAGMA integrity_check") ==
          std::vector<std::string>{"ok"});
  }
}

TEST_CASE(
    "a failed write of the log fails its commit, nothing of it stored, and "
    "the next call commits",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("wfail.db");
  converge::testing::CountingVfs vfs;
  {
    SqliteStores s = OpenSqliteStores(Options(path)).value();
    REQUIRE(s.repo->RecordDecision(Rec(1)).ok());
    vfs.fail_wal_writes = 1;
    absl::StatusOr<RecordResult> r = s.repo->RecordDecision(Rec(2));
    INFO(r.status().ToString());
    CHECK_FALSE(r.ok());
    CHECK(Mentions(r.status(), "SQLITE_IOERR"));
    CHECK(vfs.fail_wal_writes.load() == 0);
    CHECK_FALSE(s.repo->GetAction(2).value().has_value());
    REQUIRE(s.repo->RecordDecision(Rec(3)).ok());
  }
  Raw raw(path);
  CHECK(raw.Column("SELECT action_id FROM converge_action_decision ORDER BY "
                   "action_id") == std::vector<std::string>{"1", "3"});
  CHECK(raw.Column("PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}

// Copies the database and its log as a crash would leave them: the store
// still open, nothing closed or flushed.
void CopyAsCrashed(const std::string& from, const std::string& to) {
  fs::copy_file(from, to);
  fs::copy_file(from + "-wal", to + "-wal");
}

// NORMAL, a 64 KiB page cache (a large transaction spills pages to the log
// before its commit), no background checkpoints.
SqliteOptions SpillingOptions(const std::string& path) {
  SqliteOptions o = Options(path);
  o.synchronous = Synchronous::kNormal;
  o.cache_kib = 64;
  o.checkpoint_pages = 0;
  return o;
}

TEST_CASE(
    "a committed transaction that spilled and rewrote pages of the log "
    "survives a crash right after its commit",
    "[sqlite]") {
  // A transaction larger than the page cache writes pages to the log
  // before its commit; a page changed again is rewritten in place, and the
  // commit then rewrites the checksums of the frames after it, the commit
  // frame's header last, with nothing written after it.
  TempDir dir;
  const std::string path = dir.File("spill.db");
  const SqliteOptions o = SpillingOptions(path);
  SqliteStores s = OpenSqliteStores(o).value();
  {
    std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
    for (int64_t id = 1; id <= 3000; ++id) {
      REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
    }
    for (int64_t id = 1; id <= 3000; id += 100) {
      REQUIRE(
          s.repo->SetActionStatus(id, converge::ActionStatus::kSuccess, At(200))
              .ok());
    }
    REQUIRE(batch->Commit().ok());
  }
  // And a commit of one page: its header, then its page.
  REQUIRE(s.repo->SetActionStatus(2, converge::ActionStatus::kFailure, At(300))
              .ok());
  const std::string copy = dir.File("copy.db");
  CopyAsCrashed(path, copy);
  Raw raw(copy);
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision") ==
        std::vector<std::string>{"3000"});
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision WHERE "
                   "status = 'success'") == std::vector<std::string>{"30"});
  CHECK(raw.Column("SELECT status FROM converge_action_decision WHERE "
                   "action_id = 2") == std::vector<std::string>{"failure"});
  CHECK(raw.Column("PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}

TEST_CASE(
    "frames of a transaction that spilled and rolled back never land on "
    "another writer's commits",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("rb.db");
  const SqliteOptions o = SpillingOptions(path);
  {
    SqliteStores s = OpenSqliteStores(o).value();
    REQUIRE(s.repo->RecordDecision(Rec(1)).ok());
    {
      // Larger than the cache: spilled to the log, then rolled back.
      std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
      for (int64_t id = 100; id < 3100; ++id) {
        REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
      }
    }
    // Another connection commits where those frames were.
    Raw other(path);
    for (int i = 0; i < 50; ++i) {
      REQUIRE(other.Exec("INSERT INTO converge_action_decision (action_id, "
                         "create_time_ns, strategy_id, execute_timeout, "
                         "status, status_time_ns, outcome, is_primary, "
                         "decided_at_ns, reason) VALUES (" +
                         std::to_string(5000 + i) +
                         ", 0, 0, 0, 'converged', 0, 'execute', 0, 0, '" +
                         std::string(500, 'x') + "')") == SQLITE_OK);
    }
    CHECK(s.repo->GetAction(5049).value().has_value());
  }  // the store closes its files
  Raw raw(path);
  CHECK(raw.Column("PRAGMA integrity_check") == std::vector<std::string>{"ok"});
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision") ==
        std::vector<std::string>{"51"});
}

TEST_CASE("a log whose device may tear a sector is written as SQLite writes it",
          "[sqlite]") {
  // Without SQLITE_IOCAP_POWERSAFE_OVERWRITE, SQLite pads a synced commit
  // to a sector boundary with copies of its last frame, split around a
  // sync: the store then does not coalesce that log's writes.
  TempDir dir;
  const std::string path = dir.File("psow.db");
  converge::testing::CountingVfs vfs;
  vfs.clear_powersafe_overwrite = true;  // on the database file only
  {
    SqliteOptions o = Options(path);
    o.synchronous = Synchronous::kFull;  // a synced commit is padded
    SqliteStores s = OpenSqliteStores(o).value();
    Raw reader(path);
    vfs.wal_writes = 0;
    vfs.wal_bytes = 0;
    vfs.wal_syncs = 0;
    for (int64_t id = 1; id <= 50; ++id) {
      REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
      REQUIRE(reader.Column("SELECT COUNT(*) FROM "
                            "converge_action_decision") ==
              std::vector<std::string>{std::to_string(id)});
    }
    const int64_t frames = vfs.wal_bytes.load() / (24 + 4096);
    INFO(vfs.wal_writes.load() << " writes of " << frames << " frames");
    CHECK(frames >= 2 * 50);
    CHECK(vfs.wal_syncs.load() >= 50);  // FULL: a synced, padded commit
    CHECK(vfs.wal_writes.load() >= 2 * frames);
  }
  Raw raw(path);
  CHECK(raw.Column("PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}

TEST_CASE(
    "a failed write in the middle of a large transaction's log fails its "
    "commit, nothing of it stored",
    "[sqlite]") {
  // The failure hits a piece of a flush before the commit frame (256 KiB
  // pending, or a 64 KiB piece): its error is the transaction's.
  TempDir dir;
  const std::string path = dir.File("midfail.db");
  converge::testing::CountingVfs vfs;
  {
    SqliteStores s = OpenSqliteStores(Options(path)).value();
    REQUIRE(s.repo->RecordDecision(Rec(1)).ok());
    for (const int64_t before : {1, 3, 6}) {
      INFO("writes before the failure: " << before);
      {
        std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
        vfs.wal_writes_before_failure = before;
        vfs.fail_wal_writes = 1;
        absl::Status st;
        for (int64_t id = 10; id < 4010 && st.ok(); ++id) {
          ActionRecord r = Rec(id);
          r.decision.reason = std::string(200, 'r');
          st = s.repo->RecordDecision(r).status();
        }
        if (st.ok()) st = batch->Commit();
        INFO(st.ToString());
        CHECK_FALSE(st.ok());
        CHECK(vfs.fail_wal_writes.load() == 0);
      }
      vfs.fail_wal_writes = 0;
      vfs.wal_writes_before_failure = 0;
      CHECK_FALSE(s.repo->GetAction(10).value().has_value());
      CHECK_FALSE(s.repo->GetAction(4009).value().has_value());
    }
    REQUIRE(s.repo->RecordDecision(Rec(2)).ok());
  }
  Raw raw(path);
  CHECK(raw.Column("SELECT action_id FROM converge_action_decision ORDER BY "
                   "action_id") == std::vector<std::string>{"1", "2"});
  CHECK(raw.Column("PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}

TEST_CASE("a transaction larger than the coalesced writes commits whole",
          "[sqlite]") {
  // Its frames go out in pieces (256 KiB pending at most, 64 KiB a write:
  // SQLite's unix VFS takes 17-bit lengths).
  TempDir dir;
  const std::string path = dir.File("big.db");
  converge::testing::CountingVfs vfs;
  {
    SqliteStores s = OpenSqliteStores(Options(path)).value();
    std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
    REQUIRE(batch != nullptr);
    for (int64_t id = 1; id <= 5000; ++id) {
      ActionRecord r = Rec(id);
      r.decision.reason = std::string(200, 'r');
      REQUIRE(s.repo->RecordDecision(r).ok());
    }
    REQUIRE(batch->Commit().ok());
    INFO(vfs.wal_writes.load()
         << " writes, " << vfs.wal_bytes.load() << " bytes");
    CHECK(vfs.wal_bytes.load() > 1024 * 1024);
    CHECK(vfs.wal_bytes.load() / vfs.wal_writes.load() > 32 * 1024);
  }
  Raw raw(path);
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision") ==
        std::vector<std::string>{"5000"});
  CHECK(raw.Column("PRAGMA integrity_check") == std::vector<std::string>{"ok"});
}

TEST_CASE(
    "a batch whose transaction SQLite rolled back (an I/O error) fails as a "
    "whole; no later call commits on its own",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("ioerr.db");
  SqliteOptions o = Options(path);
  o.cache_kib = 64;  // a small page cache: old rows are read from the file
  o.checkpoint_pages = 0;
  converge::testing::CountingVfs vfs;
  {
    SqliteStores s = OpenSqliteStores(o).value();
    for (int64_t id = 1; id <= 3000; ++id) {
      REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
    }
    std::unique_ptr<RepoBatch> batch = s.repo->BeginBatch().value();
    REQUIRE(batch != nullptr);
    REQUIRE(s.repo->RecordDecision(Rec(5001)).ok());
    // A read that must reach the file fails: SQLite rolls the whole
    // transaction back and returns to autocommit.
    vfs.fail_reads = 1000000;
    absl::StatusOr<std::optional<ActionRecord>> old = s.repo->GetAction(7);
    vfs.fail_reads = 0;
    REQUIRE_FALSE(old.ok());
    // Later calls of the batch fail too, instead of committing one
    // statement at a time, and so does the commit.
    CHECK_FALSE(s.repo->RecordDecision(Rec(5002)).ok());
    CHECK_FALSE(batch->Commit().ok());
  }
  Raw raw(path);
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision WHERE "
                   "action_id > 5000") == std::vector<std::string>{"0"});
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision") ==
        std::vector<std::string>{"3000"});
}

TEST_CASE(
    "a reader that holds the write-ahead log does not stop commits, and "
    "once it ends the log starts over",
    "[sqlite]") {
  TempDir dir;
  const std::string path = dir.File("pin.db");
  SqliteOptions o = Options(path);
  o.checkpoint_pages = 20;
  SqliteStores s = OpenSqliteStores(o).value();
  REQUIRE(s.repo->RecordDecision(Rec(1)).ok());
  const int64_t bound = 8 * 20 + 16;  // frames: the test above's bound
  // The frames in the log now (PRAGMA wal_checkpoint's second column).
  auto frames = [&] {
    Raw raw(path);
    sqlite3_stmt* q = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw.db, "PRAGMA wal_checkpoint(PASSIVE)", -1, &q,
                               nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(q) == SQLITE_ROW);
    const int64_t n = sqlite3_column_int64(q, 1);
    sqlite3_finalize(q);
    return n;
  };
  {
    // A read transaction on the log's current snapshot: no checkpoint can
    // copy past it, and the log cannot start over while it lasts.
    Raw reader(path);
    REQUIRE(reader.Exec("BEGIN") == SQLITE_OK);
    REQUIRE(reader.Column("SELECT COUNT(*) FROM converge_action_decision") ==
            std::vector<std::string>{"1"});
    for (int64_t id = 2; id <= 150; ++id) {
      REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
    }
    CHECK(frames() > bound);  // the log went on past the bound
    REQUIRE(reader.Exec("COMMIT") == SQLITE_OK);
  }
  for (int64_t id = 151; id <= 400; ++id) {
    REQUIRE(s.repo->RecordDecision(Rec(id)).ok());
  }
  CHECK(frames() < bound);
  Raw raw(path);
  CHECK(raw.Column("SELECT COUNT(*) FROM converge_action_decision") ==
        std::vector<std::string>{"400"});
}

TEST_CASE("checkpoint_pages and cache_kib are checked", "[sqlite]") {
  TempDir dir;
  SqliteOptions o = Options(dir.File("x.db"));
  o.checkpoint_pages = -1;
  absl::Status st = OpenSqliteStores(o).status();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(st, "checkpoint_pages"));
  o = Options(dir.File("x.db"));
  o.cache_kib = 0;
  st = OpenSqliteStores(o).status();
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(st, "cache_kib"));
  CHECK_FALSE(fs::exists(dir.File("x.db")));
  CHECK(ParseSqliteUri("sqlite:/x.db?checkpoint_pages=0")
            .value()
            .checkpoint_pages == 0);
  CHECK(ParseSqliteUri("sqlite:/x.db?cache_kib=1024").value().cache_kib ==
        1024);
  CHECK(ParseSqliteUri("sqlite:/x.db?checkpoint_pages=-3").status().code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace converge::sqlite
