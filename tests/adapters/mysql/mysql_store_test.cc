// MySQL-specific behaviour: URIs and options, the schema (upstream's
// layout, migrations, the check mode, refusals), errors with the MySQL
// errno, reconnection after the server drops a connection, and the
// statements saved on the hot path (the one-statement lease, Unrelated by
// chunks of ids, a batch's join that checks and locks its instance). The
// store contracts are in the conformance suite (conformance_mysql).

#include "converge/mysql/mysql_store.h"

#include <mysql.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "conformance/conformance.h"
#include "converge/clock.h"
#include "converge/manager.h"
#include "converge/store/errors.h"
#include "converge/store/wrappers.h"
#include "support/mysql_server.h"
#include "support/mysql_test_env.h"
#include "unit/builders.h"

namespace converge::testing {
namespace {

bool Mentions(const absl::Status& st, std::string_view text) {
  return absl::StrContains(st.message(),
                           absl::string_view(text.data(), text.size()));
}

// A session of the test account on `database`, through the C API
// directly (beside the store's own connections).
MYSQL* RawSession(const std::string& database) {
  MYSQL* h = mysql_init(nullptr);
  REQUIRE(h != nullptr);
  REQUIRE(mysql_real_connect(h, nullptr, kTestMysqlUser, kTestMysqlPassword,
                             database.c_str(), 0, TestMysql().socket.c_str(),
                             0) != nullptr);
  return h;
}

// Rows of a one-column query, as the test account on `database`.
std::vector<std::string> Column(const std::string& database,
                                const std::string& sql) {
  std::vector<std::string> out;
  MYSQL* h = RawSession(database);
  REQUIRE(mysql_real_query(h, sql.data(), sql.size()) == 0);
  MYSQL_RES* r = mysql_store_result(h);
  REQUIRE(r != nullptr);
  while (MYSQL_ROW row = mysql_fetch_row(r)) {
    out.push_back(row[0] != nullptr ? row[0] : "NULL");
  }
  mysql_free_result(r);
  mysql_close(h);
  return out;
}

TEST_CASE("mysql: store URIs parse into options", "[mysql]") {
  mysql::MysqlOptions o =
      mysql::ParseMysqlUri(
          "mysql://alert%40ops:p%3Ass@db.example:3307/converge?"
          "connect_timeout_ms=1500&read_timeout_ms=2000&write_timeout_ms=0&"
          "lock_wait_timeout_ms=3000&pool_size=3&max_retries=0&schema=check")
          .value();
  CHECK(o.user == "alert@ops");
  CHECK(o.password == "p:ss");
  CHECK(o.host == "db.example");
  CHECK(o.port == 3307);
  CHECK(o.database == "converge");
  CHECK(o.unix_socket.empty());
  CHECK(o.connect_timeout == absl::Milliseconds(1500));
  CHECK(o.read_timeout == absl::Seconds(2));
  CHECK(o.write_timeout == absl::ZeroDuration());
  CHECK(o.lock_wait_timeout == absl::Seconds(3));
  CHECK(o.pool_size == 3);
  CHECK(o.max_retries == 0);
  CHECK(o.schema == mysql::SchemaMode::kCheck);
  CHECK_FALSE(o.one_transaction);  // off by default
  CHECK_FALSE(mysql::ParseMysqlUri("mysql://h/db?one_transaction=false")
                  .value()
                  .one_transaction);
  CHECK(mysql::ParseMysqlUri("mysql://h/db?one_transaction=1")
            .value()
            .one_transaction);

  o = mysql::ParseMysqlUri("mysql://u@/db?socket=/run/mysqld/mysqld.sock")
          .value();
  CHECK(o.user == "u");
  CHECK(o.password.empty());
  CHECK(o.unix_socket == "/run/mysqld/mysqld.sock");
  CHECK(o.database == "db");
  o = mysql::ParseMysqlUri("mysql://[::1]:3306/db").value();
  CHECK(o.host == "::1");
  CHECK(o.port == 3306);
  o = mysql::ParseMysqlUri("mysql://localhost/db").value();
  CHECK(o.host == "localhost");
  CHECK(o.port == 3306);

  for (const char* bad :
       {"redis://x/db", "mysql://host:3306", "mysql://host:3306/",
        "mysql://host:0/db", "mysql://host:99999/db", "mysql://host:x/db",
        "mysql://h/db?pool_size=0", "mysql://h/db?max_retries=-1",
        "mysql://h/db?schema=maybe", "mysql://h/db?nope=1",
        "mysql://h/db?one_transaction=yes", "mysql://h/db?read_timeout_ms=-5",
        "mysql://u%zz@h/db"}) {
    INFO(bad);
    absl::StatusOr<mysql::MysqlOptions> r = mysql::ParseMysqlUri(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(Mentions(r.status(), bad));
  }
}

TEST_CASE("mysql: bad options are kInvalidArgument naming the field",
          "[mysql]") {
  mysql::MysqlOptions o;
  o.database = "";
  absl::StatusOr<mysql::MysqlStores> r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(r.status(), "options.database"));
  o.database = "x";
  o.pool_size = 0;
  r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(r.status(), "options.pool_size"));
  o.pool_size = 1;
  o.port = 70000;
  r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(r.status(), "options.port"));
  o.port = 3306;
  o.read_timeout = -absl::Seconds(1);
  r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(r.status(), "options.read_timeout"));
}

TEST_CASE("mysql: connection errors map to codes and keep the errno",
          "[mysql]") {
  const TestMysqlServer& server = TestMysql();
  mysql::MysqlOptions o;
  o.unix_socket = server.socket;
  o.user = kTestMysqlUser;
  o.password = kTestMysqlPassword;

  o.database = "converge_no_such_database";
  absl::StatusOr<mysql::MysqlStores> r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kNotFound);
  CHECK(Mentions(r.status(), "errno 1049"));
  CHECK(Mentions(r.status(), "mysql: "));

  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  o.database = db->options.database;
  o.password = "wrong";
  r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kPermissionDenied);
  CHECK(Mentions(r.status(), "errno 1045"));

  // Nothing listens: a socket path that does not exist, a closed port.
  o.password = kTestMysqlPassword;
  o.unix_socket = server.socket + ".missing";
  r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kUnavailable);
  CHECK(Mentions(r.status(), "errno 2002"));
  CHECK(IsStoreDown(r.status()));  // the whole store: no retry one by one
  o.unix_socket.clear();
  o.host = "127.0.0.1";
  o.port = 1;
  o.connect_timeout = absl::Seconds(1);
  r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kUnavailable);
  CHECK(Mentions(r.status(), "errno 200"));
  CHECK(IsStoreDown(r.status()));

  // The loopback port works as the socket does.
  o.port = server.port;
  r = mysql::OpenMysqlStores(o);
  INFO(r.status().ToString());
  CHECK(r.ok());
}

TEST_CASE("mysql: the schema has upstream's tables, columns and keys",
          "[mysql]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  REQUIRE(mysql::OpenMysqlStores(db->options).ok());
  const std::string& name = db->options.database;
  auto columns = [&](const std::string& table) {
    return Column(name,
                  "SELECT column_name FROM information_schema.columns WHERE "
                  "table_schema = DATABASE() AND table_name = '" +
                      table + "' ORDER BY ordinal_position");
  };
  CHECK(columns("converge_instance") ==
        std::vector<std::string>{
            "id", "is_enabled", "is_deleted", "create_user", "create_time",
            "update_user", "update_time", "is_visible", "converge_config",
            "converge_func", "converge_type", "bk_biz_id", "dimension",
            "description", "content", "detail", "end_time", "notify_status",
            "window_seconds"});
  CHECK(columns("converge_relation") ==
        std::vector<std::string>{"id", "converge_id", "related_id",
                                 "related_type", "is_primary",
                                 "converge_status", "alerts"});
  // Unique keys: the dimension, and (converge_id, related_id, related_type).
  CHECK(Column(name,
               "SELECT GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM "
               "information_schema.statistics WHERE table_schema = "
               "DATABASE() AND table_name = 'converge_instance' AND "
               "non_unique = 0 AND index_name <> 'PRIMARY' GROUP BY "
               "index_name") == std::vector<std::string>{"dimension"});
  CHECK(Column(name,
               "SELECT GROUP_CONCAT(column_name ORDER BY seq_in_index) FROM "
               "information_schema.statistics WHERE table_schema = "
               "DATABASE() AND table_name = 'converge_relation' AND "
               "non_unique = 0 AND index_name <> 'PRIMARY' GROUP BY "
               "index_name") ==
        std::vector<std::string>{"converge_id,related_id,related_type"});
  // Indexed as upstream: create_time, converge_func, converge_type,
  // bk_biz_id; converge_id, related_id, related_type.
  for (const auto& [table, column] :
       std::vector<std::pair<std::string, std::string>>{
           {"converge_instance", "create_time"},
           {"converge_instance", "converge_func"},
           {"converge_instance", "converge_type"},
           {"converge_instance", "bk_biz_id"},
           {"converge_relation", "converge_id"},
           {"converge_relation", "related_id"},
           {"converge_relation", "related_type"}}) {
    INFO(table << "." << column);
    CHECK(Column(name,
                 "SELECT COUNT(*) FROM information_schema.statistics WHERE "
                 "table_schema = DATABASE() AND table_name = '" +
                     table + "' AND column_name = '" + column +
                     "' AND seq_in_index = 1")
              .at(0) != "0");
  }
  // utf8mb4, and the dimension compared exactly (binary, no pad).
  CHECK(Column(name,
               "SELECT DISTINCT character_set_name FROM "
               "information_schema.columns WHERE table_schema = DATABASE() "
               "AND table_name IN ('converge_instance', 'converge_relation') "
               "AND character_set_name IS NOT NULL") ==
        std::vector<std::string>{"utf8mb4"});
  CHECK(Column(name,
               "SELECT collation_name FROM information_schema.columns WHERE "
               "table_schema = DATABASE() AND table_name = "
               "'converge_instance' AND column_name = 'dimension'")
            .at(0) == "utf8mb4_nopad_bin");
  CHECK(Column(name, "SELECT version FROM converge_schema_version") ==
        std::vector<std::string>{std::to_string(mysql::kSchemaVersion)});
}

TEST_CASE("mysql: migrations run once, kCheck only checks", "[mysql]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  mysql::MysqlOptions o = db->options;
  o.schema = mysql::SchemaMode::kCheck;
  absl::StatusOr<mysql::MysqlStores> r = mysql::OpenMysqlStores(o);
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Mentions(r.status(), "schema version 0"));
  // Nothing was written by the check.
  CHECK(Column(o.database,
               "SELECT COUNT(*) FROM information_schema.tables WHERE "
               "table_schema = DATABASE()")
            .at(0) == "0");
  o.schema = mysql::SchemaMode::kMigrate;
  REQUIRE(mysql::OpenMysqlStores(o).ok());
  REQUIRE(mysql::OpenMysqlStores(o).ok());  // again: nothing to do
  CHECK(Column(o.database, "SELECT COUNT(*) FROM converge_schema_version")
            .at(0) == "1");
  o.schema = mysql::SchemaMode::kCheck;
  CHECK(mysql::OpenMysqlStores(o).ok());
}

TEST_CASE(
    "mysql: waiting for another process's migration outlasts the "
    "read timeout",
    "[mysql]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  mysql::MysqlOptions o = db->options;
  o.read_timeout = absl::Seconds(1);
  // Another process migrating: it holds the schema lock for 3.5 s, more
  // than three read timeouts.
  MYSQL* other = RawSession(o.database);
  const std::string lock =
      "SELECT GET_LOCK(CONCAT('converge.schema.', MD5(DATABASE())), 0)";
  REQUIRE(mysql_real_query(other, lock.data(), lock.size()) == 0);
  MYSQL_RES* r = mysql_store_result(other);
  REQUIRE(r != nullptr);
  MYSQL_ROW row = mysql_fetch_row(r);
  REQUIRE(row != nullptr);
  REQUIRE(std::string(row[0]) == "1");
  mysql_free_result(r);
  std::thread release([other] {
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));
    mysql_close(other);  // the lock goes with the session
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<mysql::MysqlStores> stores = mysql::OpenMysqlStores(o);
  const absl::Duration waited = absl::Now() - start;
  release.join();
  INFO(stores.status().ToString());
  REQUIRE(stores.ok());
  CHECK(waited >= absl::Seconds(3));  // it did wait for the other process
  CHECK(Column(o.database, "SELECT COUNT(*) FROM converge_schema_version")
            .at(0) == "1");
}

TEST_CASE("mysql: a newer schema is refused, and so are foreign tables",
          "[mysql]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  mysql::MysqlOptions o = db->options;
  REQUIRE(mysql::OpenMysqlStores(o).ok());
  REQUIRE(MysqlAdmin(o.database,
                     "INSERT INTO converge_schema_version VALUES (99, NOW(), "
                     "'from the future')")
              .ok());
  for (mysql::SchemaMode mode :
       {mysql::SchemaMode::kMigrate, mysql::SchemaMode::kCheck}) {
    o.schema = mode;
    absl::StatusOr<mysql::MysqlStores> r = mysql::OpenMysqlStores(o);
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(Mentions(r.status(), "schema version 99 is newer"));
  }

  // bkmonitor's own converge tables (no converge_schema_version).
  absl::StatusOr<TestDatabase> bk = MakeTestDatabase();
  REQUIRE(bk.ok());
  REQUIRE(MysqlAdmin(bk->options.database,
                     "CREATE TABLE converge_instance (id BIGINT PRIMARY KEY, "
                     "dimension VARCHAR(128) UNIQUE)")
              .ok());
  absl::StatusOr<mysql::MysqlStores> r = mysql::OpenMysqlStores(bk->options);
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(Mentions(r.status(), "converge_instance"));
  CHECK(Mentions(r.status(), "bkmonitor"));
  CHECK(Column(bk->options.database,
               "SELECT COUNT(*) FROM information_schema.tables WHERE "
               "table_schema = DATABASE()")
            .at(0) == "1");
}

TEST_CASE("mysql: values too long for upstream's columns are refused",
          "[mysql]") {
  absl::StatusOr<TestStores> s = MakeMysqlTestStores(nullptr);
  REQUIRE(s.ok());
  CreateRequest req;
  req.instance.dimension = std::string(200, 'd');  // varchar(128)
  req.instance.create_time = absl::FromUnixSeconds(100);
  req.primary.related_id = 1;
  absl::StatusOr<CreateResult> r = s->repo->Create(req);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(r.status(),
                 "dimension of 200 characters exceeds its "
                 "column's 128"));
  CHECK(s->repo->ListOpen(0).value().empty());

  // Checked before the insert, so that in a batch the refusal changes
  // nothing and the batch goes on (a server error would fail it whole).
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s->repo->BeginBatch();
  REQUIRE(batch.ok());
  REQUIRE(*batch != nullptr);
  REQUIRE(s->repo->RecordDecision(conformance::Rec(7)).ok());
  CreateRequest big_biz = conformance::ActionCreate("B", 8);
  big_biz.instance.bk_biz_id = int64_t{1} << 40;  // bk_biz_id INT
  r = s->repo->Create(big_biz);
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(Mentions(r.status(), "does not fit its INT column"));
  CreateRequest long_text = conformance::ActionCreate("C", 9);
  long_text.instance.description = std::string(70000, 'x');  // TEXT
  r = s->repo->Create(long_text);
  CHECK(Mentions(r.status(), "description of 70000 bytes exceeds"));
  REQUIRE((*batch)->Commit().ok());
  CHECK(s->repo->GetAction(7).value().has_value());
  CHECK(s->repo->ListOpen(0).value().empty());
}

TEST_CASE(
    "mysql: an instance with a dimension near the column's 128 characters "
    "still ends, its rewrite cut to fit",
    "[mysql]") {
  absl::StatusOr<TestStores> s = MakeMysqlTestStores(nullptr);
  REQUIRE(s.ok());
  const std::string d(120, 'd');
  REQUIRE(s->repo->Create(conformance::ActionCreate(d, 1)).ok());
  REQUIRE(s->repo->Create(conformance::ActionCreate(d + "x", 2)).ok());
  CHECK(s->repo->End(1, absl::FromUnixSeconds(1700000000)).value());
  CHECK(s->repo->EndVisible(2, absl::FromUnixSeconds(1700000000)).value());
  const std::string one = s->repo->GetInstance(1).value().dimension;
  CHECK(one.size() == 128);
  CHECK(absl::EndsWith(one, " fixed at 1700000000 #1"));
  CHECK(absl::EndsWith(s->repo->GetInstance(2).value().dimension, " #2"));
  // D is free again.
  CHECK(s->repo->Create(conformance::ActionCreate(d, 3)).ok());
}

TEST_CASE(
    "mysql: task names longer than their columns are refused, not cut "
    "short; a long last error is kept to its column",
    "[mysql]") {
  absl::StatusOr<TestStores> s = MakeMysqlTestStores(nullptr);
  REQUIRE(s.ok());
  auto task = [](std::string id) {
    Task t;
    t.id = std::move(id);
    t.kind = "k";
    t.due = absl::FromUnixSeconds(100);
    return t;
  };
  const std::string stem(255, 'a');
  REQUIRE(s->queue->Enqueue("q", task(stem)).ok());  // 255 bytes: fits
  // Two ids that share their first 255 bytes: INSERT IGNORE would have cut
  // both to the stem, and the second would have met the first.
  for (const std::string& id : {stem + "1", stem + "2"}) {
    const absl::Status st = s->queue->Enqueue("q", task(id));
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kInvalidArgument);
    CHECK(Mentions(st, "task id of 256 bytes: at most 255"));
  }
  Task long_kind = task("k1");
  long_kind.kind = std::string(300, 'k');
  CHECK(s->queue->Enqueue("q", long_kind).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s->queue->Enqueue(std::string(256, 'q'), task("k2")).code() ==
        absl::StatusCode::kInvalidArgument);
  Task long_error = task("k3");
  long_error.last_error = std::string(70000, 'e');
  CHECK(s->queue->Enqueue("q", long_error).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(s->queue->Stats("q").value().pending == 1);  // the stem alone

  // A retry's error (a processor's message) is kept to its first 65,535
  // bytes rather than failing the retry.
  std::optional<Delivery> d =
      s->queue->Dequeue("q", absl::FromUnixSeconds(200), absl::Seconds(30))
          .value();
  REQUIRE(d.has_value());
  CHECK(d->task.id == stem);
  REQUIRE(s->queue
              ->Retry("q", d->receipt, absl::FromUnixSeconds(200),
                      std::string(100000, 'e'))
              .value());
  d = s->queue->Dequeue("q", absl::FromUnixSeconds(300), absl::Seconds(30))
          .value();
  REQUIRE(d.has_value());
  CHECK(d->task.last_error == std::string(65535, 'e'));
}

TEST_CASE(
    "mysql: Apply alone (one script with its COMMIT) leaves nothing open, "
    "and a request of several MiB (applied statement by statement) is "
    "applied whole",
    "[mysql]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  absl::StatusOr<mysql::MysqlStores> s = mysql::OpenMysqlStores(db->options);
  REQUIRE(s.ok());
  auto apply = [&](std::vector<std::string> keys, const std::string& token) {
    WindowRequest req;
    for (size_t i = 0; i < keys.size(); ++i) {
      req.add.push_back(WindowEntry{keys[i], absl::StrCat("action_", i + 1),
                                    absl::FromUnixSeconds(100)});
    }
    req.key_ttl = absl::Hours(1);
    req.lease = LeaseRequest{"D", token, absl::Minutes(1)};
    req.read_groups = {keys};
    req.start = absl::FromUnixSeconds(0);
    req.end = absl::FromUnixSeconds(200);
    return s->window->Apply(req);
  };
  // Small: one script with its COMMIT. Committed: the table's metadata
  // lock is free and another connection sees the lease and the members.
  absl::StatusOr<WindowResult> small = apply({"b", "a", "b"}, "t1");
  REQUIRE(small.ok());
  CHECK(small->lease_acquired);
  REQUIRE(small->groups.size() == 1);
  std::vector<std::string> got = small->groups[0];
  std::sort(got.begin(), got.end());
  CHECK(got == std::vector<std::string>{"action_1", "action_2", "action_3"});
  CHECK(MysqlAdmin(db->options.database,
                   "LOCK TABLES converge_window_key WRITE WAIT 1")
            .ok());
  absl::StatusOr<mysql::MysqlStores> other =
      mysql::OpenMysqlStores(db->options);
  REQUIRE(other.ok());
  CHECK_FALSE(other->lock->TryAcquire("D", "t2", absl::Minutes(1)).value());
  CHECK(other->window->Size("a").value() == 1);
  CHECK(other->window->Size("b").value() == 2);
  REQUIRE(s->lock->Release("D", "t1").value());
  // Large: 80 keys of 16 KiB, written about five times each in a script,
  // are more than its 1 MiB limit: the same result.
  std::vector<std::string> big;
  for (int i = 0; i < 80; ++i) {
    big.push_back(std::string(16384, static_cast<char>('a' + i % 26)) +
                  std::to_string(i));
  }
  absl::StatusOr<WindowResult> large = apply(big, "t3");
  REQUIRE(large.ok());
  CHECK(large->lease_acquired);
  REQUIRE(large->groups.size() == 1);
  CHECK(large->groups[0].size() == 80);
  for (const std::string& key : big)
    CHECK(other->window->Size(key).value() == 1);
}

TEST_CASE(
    "mysql: a read ends its transaction, so a pooled connection keeps no "
    "table's metadata lock",
    "[mysql]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  absl::StatusOr<mysql::MysqlStores> s = mysql::OpenMysqlStores(db->options);
  REQUIRE(s.ok());
  REQUIRE(s->repo->RecordDecision(conformance::Rec(1)).ok());
  // Reads, whose connections go back to the pool.
  REQUIRE(s->repo->GetAction(1).value().has_value());
  REQUIRE(s->repo->ListOpen(0).ok());
  REQUIRE(s->window->Size("k").ok());
  // DDL (an operator's migration, OPTIMIZE) needs the tables' metadata
  // locks, which an open transaction keeps: with one left open by a read,
  // this waits its second and fails (errno 1205).
  for (const char* table : {"converge_action_decision", "converge_instance",
                            "converge_window_key"}) {
    INFO(table);
    const absl::Status st =
        MysqlAdmin(db->options.database,
                   absl::StrCat("LOCK TABLES ", table, " WRITE WAIT 1"));
    INFO(st.ToString());
    CHECK(st.ok());
  }
  // The connections are good for the next calls.
  CHECK(s->repo->GetAction(1).value().has_value());
  CHECK(s->repo->RecordDecision(conformance::Rec(2)).ok());
  CHECK(s->repo->GetAction(2).value().has_value());
}

TEST_CASE(
    "mysql: an idle connection the server dropped is replaced before use, "
    "and one dropped in use fails the call kUnavailable with the errno",
    "[mysql]") {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  REQUIRE(db.ok());
  auto kill_all = [&] {
    for (const std::string& id :
         Column(db->options.database,
                "SELECT id FROM information_schema.processlist WHERE db = "
                "DATABASE() AND id <> CONNECTION_ID()")) {
      (void)MysqlAdmin("", "KILL CONNECTION " + id);
    }
  };
  for (int retries : {5, 0}) {
    INFO("max_retries " << retries);
    mysql::MysqlOptions o = db->options;
    o.max_retries = retries;
    o.pool_size = 2;
    absl::StatusOr<mysql::MysqlStores> s = mysql::OpenMysqlStores(o);
    REQUIRE(s.ok());
    const std::string key = "L" + std::to_string(retries);
    REQUIRE(s->lock->TryAcquire(key, "a", absl::Minutes(1)).value());
    REQUIRE(s->repo->GetAction(1).ok());  // a read: its ROLLBACK in flight
    // Every pooled connection is gone (a server restart looks the same):
    // noticed before use (its socket reads as closed), so the call does
    // not fail even without retries, and spends none.
    kill_all();
    absl::StatusOr<bool> again =
        s->lock->TryAcquire(key, "a", absl::Minutes(1));
    INFO(again.status().ToString());
    CHECK(again.ok());
    CHECK(again.value_or(false));
    CHECK(s->repo->GetAction(1).ok());

    // Dropped while a batch holds it: the batch's call fails with the
    // errno (a batch is not retried call by call).
    absl::StatusOr<std::unique_ptr<RepoBatch>> batch = s->repo->BeginBatch();
    REQUIRE(batch.ok());
    REQUIRE(*batch != nullptr);
    kill_all();
    absl::StatusOr<RecordResult> in_batch =
        s->repo->RecordDecision(conformance::Rec(7));
    INFO(in_batch.status().ToString());
    CHECK(in_batch.status().code() == absl::StatusCode::kUnavailable);
    CHECK((Mentions(in_batch.status(), "errno 2006") ||
           Mentions(in_batch.status(), "errno 2013") ||
           Mentions(in_batch.status(), "errno 1927")));
    // One connection lost, not the store: a new one may work.
    CHECK_FALSE(IsStoreDown(in_batch.status()));
    batch->reset();
    // The broken connection was dropped: the next call connects anew, and
    // nothing of the batch is stored.
    CHECK(s->lock->TryAcquire(key, "a", absl::Minutes(1)).value());
    CHECK_FALSE(s->repo->GetAction(7).value().has_value());
  }
}

// ---- fewer round trips (docs/adapters/mysql.md, "Performance") ----

using conformance::ActionCreate;
using conformance::At;
using conformance::JoinRel;
using conformance::Rec;

// A fresh database (dropped with the returned owner).
TestDatabase FreshDatabase() {
  absl::StatusOr<TestDatabase> db = MakeTestDatabase();
  INFO(db.status().ToString());
  REQUIRE(db.ok());
  return *std::move(db);
}

// The stores on `db`, on `clock` (null: the real one), with the retries,
// the lock wait and MysqlOptions::one_transaction given.
mysql::MysqlStores Open(const TestDatabase& db, const Clock* clock,
                        int max_retries = 5,
                        absl::Duration lock_wait = absl::Seconds(5),
                        bool one_transaction = false) {
  mysql::MysqlOptions o = db.options;
  o.clock = clock;
  o.max_retries = max_retries;
  o.lock_wait_timeout = lock_wait;
  o.one_transaction = one_transaction;
  absl::StatusOr<mysql::MysqlStores> s = mysql::OpenMysqlStores(o);
  INFO(s.status().ToString());
  REQUIRE(s.ok());
  return *std::move(s);
}

TEST_CASE(
    "mysql: TryAcquire answers in one statement and leaves a lease held by "
    "another token as it was",
    "[mysql]") {
  const TestDatabase db = FreshDatabase();
  VirtualClock clock(At(1000));
  mysql::MysqlStores s = Open(db, &clock);
  auto row = [&] {
    return Column(db.options.database,
                  "SELECT CONCAT(id, ' ', token, ' ', expires_ns) FROM "
                  "converge_lease");
  };
  REQUIRE(s.lock->TryAcquire("L", "a", absl::Seconds(10)).value());
  const std::vector<std::string> taken = row();
  REQUIRE(taken.size() == 1);
  // Held by "a": "b" is refused and changes nothing (not even the id the
  // statement assigns to report the holder).
  CHECK_FALSE(s.lock->TryAcquire("L", "b", absl::Seconds(60)).value());
  CHECK(row() == taken);
  // The holder takes it again (its expiry moves), the id stays.
  clock.Advance(absl::Seconds(5));
  CHECK(s.lock->TryAcquire("L", "a", absl::Seconds(10)).value());
  std::vector<std::string> again = row();
  REQUIRE(again.size() == 1);
  CHECK(again[0].substr(0, 4) == taken[0].substr(0, 4));
  CHECK(again[0] != taken[0]);
  // Expired: another token takes it.
  clock.Advance(absl::Seconds(11));
  CHECK(s.lock->TryAcquire("L", "b", absl::Seconds(10)).value());
  CHECK_FALSE(s.lock->TryAcquire("L", "a", absl::Seconds(10)).value());
  CHECK(s.lock->Release("L", "b").value());
  CHECK(row().empty());
}

TEST_CASE(
    "mysql: Unrelated asks 1,000 ids a statement and keeps the order and "
    "the repeats of its input",
    "[mysql]") {
  absl::StatusOr<TestStores> s = MakeMysqlTestStores(nullptr);
  REQUIRE(s.ok());
  REQUIRE(s->repo->Create(ActionCreate("D", 1)).ok());
  // Related: the first id, both sides of each chunk boundary, the last.
  const std::vector<int64_t> related = {1, 1000, 1001, 2000, 2001};
  for (int64_t id : related) {
    if (id == 1) continue;
    ActionRecord r = Rec(id, Outcome::kSkip);
    r.decision.converge_id = 1;
    REQUIRE(s->repo->Join(r, JoinRel(1, id)).ok());
  }
  std::vector<int64_t> ids;
  for (int64_t id = 1; id <= 2001; ++id) ids.push_back(id);
  ids.push_back(1001);  // a repeat of a related id
  ids.push_back(7);     // and of an unrelated one
  std::vector<int64_t> want;
  for (int64_t id : ids) {
    if (std::find(related.begin(), related.end(), id) == related.end()) {
      want.push_back(id);
    }
  }
  absl::StatusOr<std::vector<int64_t>> got =
      s->repo->Unrelated(ids, ConvergeType::kAction);
  REQUIRE(got.ok());
  CHECK(*got == want);
  // Of the other type, none is related.
  CHECK(s->repo->Unrelated(ids, ConvergeType::kConverge).value() == ids);
  CHECK(s->repo->Unrelated({}, ConvergeType::kAction).value().empty());
}

TEST_CASE(
    "mysql: in a batch, a join locks its instance open until the commit, a "
    "join of an instance ended elsewhere is refused at once, and a decision "
    "stored before is returned without failing the batch",
    "[mysql]") {
  const TestDatabase db = FreshDatabase();
  mysql::MysqlStores a = Open(db, nullptr);
  // Another process on the same database, that does not wait long.
  mysql::MysqlStores b = Open(db, nullptr, 0, absl::Seconds(1));

  REQUIRE(a.repo->Create(ActionCreate("ended", 1)).ok());  // id 1
  REQUIRE(a.repo->Create(ActionCreate("open", 2)).ok());   // id 2
  REQUIRE(a.repo->RecordDecision(Rec(3, Outcome::kExecute)).ok());
  REQUIRE(a.repo->LookupOpen("ended").value().has_value());  // remembered
  REQUIRE(b.repo->End(1, At(200)).value());

  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = a.repo->BeginBatch();
  REQUIRE(batch.ok());
  REQUIRE(*batch != nullptr);
  ActionRecord late = Rec(10, Outcome::kSkip);
  late.decision.converge_id = 1;
  CHECK(a.repo->Join(late, JoinRel(1, 10)).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  ActionRecord joined = Rec(11, Outcome::kSkip);
  joined.decision.converge_id = 2;
  absl::StatusOr<RecordResult> j = a.repo->Join(joined, JoinRel(2, 11));
  REQUIRE(j.ok());
  CHECK(j->inserted);
  // Decided before the batch: the stored decision, and the batch goes on.
  absl::StatusOr<RecordResult> again =
      a.repo->RecordDecision(Rec(3, Outcome::kSkip));
  REQUIRE(again.ok());
  CHECK_FALSE(again->inserted);
  CHECK(again->record.decision.outcome == Outcome::kExecute);
  // The joined instance cannot end before the batch commits.
  absl::StatusOr<bool> blocked = b.repo->End(2, At(300));
  CHECK(blocked.status().code() == absl::StatusCode::kUnavailable);
  CHECK(Mentions(blocked.status(), "errno 1205"));
  REQUIRE((*batch)->Commit().ok());

  CHECK(b.repo->GetAction(11).value().has_value());
  CHECK_FALSE(b.repo->GetAction(10).value().has_value());
  CHECK(b.repo->Relations(2).value().size() == 2);
  CHECK(b.repo->End(2, At(300)).value());
}

TEST_CASE(
    "mysql: an open instance remembered by a connection, ended by another "
    "process, is looked up again after a join finds it ended",
    "[mysql]") {
  TestDatabase db = FreshDatabase();
  mysql::MysqlStores a = Open(db, nullptr);
  mysql::MysqlStores b = Open(db, nullptr);
  REQUIRE(a.repo->Create(conformance::ActionCreate("D", 1)).ok());  // 1
  REQUIRE(a.repo->LookupOpen("D").value()->id == 1);  // remembered
  // Another process ends it and makes a new instance of D.
  REQUIRE(b.repo->End(1, absl::FromUnixSeconds(100)).value());
  REQUIRE(b.repo->Create(conformance::ActionCreate("D", 2)).ok());  // 2
  // The remembered one is a hint: the join checks it and refuses. In a
  // batch a refusal does not roll back (which clears the memo), so the
  // refusal itself must forget it.
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = a.repo->BeginBatch();
  REQUIRE(batch.ok());
  REQUIRE(*batch != nullptr);
  ActionRecord rec = conformance::Rec(3, Outcome::kSkip);
  rec.decision.converge_id = 1;
  CHECK(a.repo->Join(rec, conformance::JoinRel(1, 3)).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  // Then the look-up reads the table again (before: instance 1 until the
  // memo was cleared, and every decision of D aborted after its rounds).
  std::optional<OpenInstanceRef> open = a.repo->LookupOpen("D").value();
  REQUIRE(open.has_value());
  CHECK(open->id == 2);
  REQUIRE((*batch)->Commit().ok());
  CHECK(a.repo->LookupOpen("D").value()->id == 2);
}

// A batch whose caller runs it again after a conflict: its first join is
// checked when written, with its commit.
absl::StatusOr<std::unique_ptr<RepoBatch>> RetriedBatch(InstanceRepo& repo) {
  absl::StatusOr<std::unique_ptr<RepoBatch>> batch = repo.BeginBatch();
  REQUIRE(batch.ok());
  REQUIRE(*batch != nullptr);
  (*batch)->RetriedOnConflict();
  return batch;
}

// Action `action`'s join of instance `instance`, decided `outcome`.
struct JoinOf {
  ActionRecord rec;
  ConvergeRelation rel;
  JoinOf(int64_t action, int64_t instance, Outcome outcome = Outcome::kSkip)
      : rec(Rec(action, outcome)), rel(JoinRel(instance, action)) {
    rec.decision.converge_id = instance;
  }
  absl::StatusOr<RecordResult> On(InstanceRepo& repo) const {
    return repo.Join(rec, rel);
  }
};

TEST_CASE(
    "mysql: a batch run again after a conflict checks its first join when "
    "writing it: refused, nothing is stored, and the join run again is "
    "checked at once",
    "[mysql]") {
  const TestDatabase db = FreshDatabase();
  mysql::MysqlStores a = Open(db, nullptr);
  mysql::MysqlStores b = Open(db, nullptr);            // another process
  REQUIRE(a.repo->Create(ActionCreate("D", 1)).ok());  // instance 1
  REQUIRE(a.repo->Create(ActionCreate("E", 2)).ok());  // instance 2
  REQUIRE(a.repo->LookupOpen("D").value()->id == 1);   // remembered

  SECTION("alone and possible: written and committed") {
    auto batch = RetriedBatch(*a.repo);
    const JoinOf rec(10, 1);
    absl::StatusOr<RecordResult> j = rec.On(*a.repo);
    REQUIRE(j.ok());
    CHECK(j->inserted);
    // Nothing written before the commit.
    CHECK_FALSE(b.repo->GetAction(10).value().has_value());
    REQUIRE((*batch)->Commit().ok());
    CHECK(b.repo->GetAction(10).value()->decision.converge_id == 1);
    CHECK(b.repo->Relations(1).value().size() == 2);
  }
  SECTION("its instance ended by another process") {
    REQUIRE(b.repo->End(1, At(200)).value());
    // The sessions on the database (a's and b's), asked from one session of
    // the test's own: a refusal is a server's error, after which the
    // connection goes back to the pool.
    MYSQL* watcher = RawSession(db.options.database);
    auto sessions = [&] {
      static constexpr char kSql[] =
          "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = "
          "DATABASE() AND ID <> CONNECTION_ID() ORDER BY ID";
      std::vector<std::string> ids;
      REQUIRE(mysql_real_query(watcher, kSql, sizeof(kSql) - 1) == 0);
      MYSQL_RES* r = mysql_store_result(watcher);
      REQUIRE(r != nullptr);
      while (MYSQL_ROW row = mysql_fetch_row(r)) ids.push_back(row[0]);
      mysql_free_result(r);
      return ids;
    };
    const std::vector<std::string> before = sessions();
    auto batch = RetriedBatch(*a.repo);
    const JoinOf rec(10, 1);
    REQUIRE(rec.On(*a.repo).ok());  // not checked yet
    absl::Status st = (*batch)->Commit();
    INFO(st.ToString());
    CHECK(IsConflict(st));
    CHECK(Mentions(st, "action 10"));
    CHECK_FALSE(b.repo->GetAction(10).value().has_value());
    CHECK(b.repo->Relations(1).value().size() == 1);
    // The connection forgot the instance it remembered open, and the
    // join, run again (the last run: not told it may be), is checked at
    // once.
    CHECK_FALSE(a.repo->LookupOpen("D").value().has_value());
    CHECK(sessions() == before);
    mysql_close(watcher);
    batch = a.repo->BeginBatch();
    REQUIRE(batch.ok());
    CHECK(rec.On(*a.repo).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    REQUIRE((*batch)->Commit().ok());
  }
  SECTION("the action decided by another process") {
    REQUIRE(b.repo->RecordDecision(Rec(20, Outcome::kExecute)).ok());
    auto batch = RetriedBatch(*a.repo);
    const JoinOf rec(20, 2);
    REQUIRE(rec.On(*a.repo).ok());
    absl::Status st = (*batch)->Commit();
    INFO(st.ToString());
    CHECK(IsConflict(st));
    CHECK(b.repo->GetAction(20).value()->decision.outcome == Outcome::kExecute);
    CHECK(b.repo->Relations(2).value().size() == 1);
    // Run again: checked at once, the stored decision is returned.
    batch = a.repo->BeginBatch();
    REQUIRE(batch.ok());
    absl::StatusOr<RecordResult> again = rec.On(*a.repo);
    REQUIRE(again.ok());
    CHECK_FALSE(again->inserted);
    CHECK(again->record.decision.outcome == Outcome::kExecute);
    REQUIRE((*batch)->Commit().ok());
  }
  SECTION("not alone: refused, the batch's other writes are not committed") {
    REQUIRE(b.repo->End(1, At(200)).value());
    auto batch = RetriedBatch(*a.repo);
    const JoinOf first(10, 1);
    REQUIRE(first.On(*a.repo).ok());  // unchecked
    const JoinOf second(11, 2);
    REQUIRE(second.On(*a.repo).ok());  // checked
    REQUIRE(a.repo->RecordDecision(Rec(12, Outcome::kExecute)).ok());
    CHECK(IsConflict((*batch)->Commit()));
    for (int64_t id : {10, 11, 12}) {
      CHECK_FALSE(b.repo->GetAction(id).value().has_value());
    }
    CHECK(b.repo->Relations(2).value().size() == 1);
  }
  SECTION("refused with another write of the batch: neither is committed") {
    REQUIRE(b.repo->End(1, At(200)).value());
    auto batch = RetriedBatch(*a.repo);
    const JoinOf rec(10, 1);
    REQUIRE(rec.On(*a.repo).ok());
    REQUIRE(a.repo->RecordDecision(Rec(12, Outcome::kExecute)).ok());
    CHECK(IsConflict((*batch)->Commit()));
    CHECK_FALSE(b.repo->GetAction(10).value().has_value());
    CHECK_FALSE(b.repo->GetAction(12).value().has_value());
  }
  SECTION(
      "refused when a call makes the batch write it: the call and the "
      "commit fail") {
    REQUIRE(b.repo->End(1, At(200)).value());
    auto batch = RetriedBatch(*a.repo);
    const JoinOf rec(10, 1);
    REQUIRE(rec.On(*a.repo).ok());
    CHECK(IsConflict(a.repo->GetAction(10).status()));  // writes it first
    absl::Status st = (*batch)->Commit();
    CHECK(IsConflict(st));
    CHECK(Mentions(st, "rolled back"));
    CHECK_FALSE(b.repo->GetAction(10).value().has_value());
  }
  SECTION("the action related without a decision: refused") {
    MYSQL* h = RawSession(db.options.database);
    const std::string sql =
        "INSERT INTO converge_relation (converge_id, related_id, "
        "related_type, is_primary, converge_status, alerts) VALUES (2, 30, "
        "'action', 0, 'skipped', '[]')";
    REQUIRE(mysql_real_query(h, sql.data(), sql.size()) == 0);
    REQUIRE(mysql_commit(h) == 0);
    mysql_close(h);
    auto batch = RetriedBatch(*a.repo);
    const JoinOf rec(30, 1);
    REQUIRE(rec.On(*a.repo).ok());
    CHECK(IsConflict((*batch)->Commit()));
    CHECK_FALSE(b.repo->GetAction(30).value().has_value());
    CHECK(b.repo->Relations(1).value().size() == 1);
  }
  SECTION("a sleep or an approval is checked in the call") {
    REQUIRE(b.repo->End(1, At(200)).value());
    auto batch = RetriedBatch(*a.repo);
    const JoinOf rec(10, 1, Outcome::kSleep);
    CHECK(rec.On(*a.repo).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    REQUIRE((*batch)->Commit().ok());
  }
  SECTION("a batch not run again checks its joins in the call") {
    REQUIRE(b.repo->End(1, At(200)).value());
    auto batch = a.repo->BeginBatch();
    REQUIRE(batch.ok());
    const JoinOf rec(10, 1);
    CHECK(rec.On(*a.repo).status().code() ==
          absl::StatusCode::kFailedPrecondition);
    REQUIRE((*batch)->Commit().ok());
  }
}

TEST_CASE(
    "mysql: Submit of an action whose remembered instance another process "
    "ended, or that another process decided, gives the decision of a fresh "
    "process",
    "[mysql]") {
  const TestDatabase db = FreshDatabase();
  VirtualClock clock(T(10));
  mysql::MysqlStores a = Open(db, &clock);
  mysql::MysqlStores b = Open(db, &clock);
  auto ma = ConvergeManager::Create(a.view(), &clock).value();
  auto mb = ConvergeManager::Create(b.view(), &clock).value();
  const ConvergeConfig rule = Rule(ConvergeFunction::kSkipWhenExceed, 1, 300);
  auto act = [&](int64_t id) {
    return Act(id, absl::ToDoubleSeconds(clock.Now() - T(0)), "g");
  };
  REQUIRE(ma->Submit(act(1), rule).ok());
  const Decision second = ma->Submit(act(2), rule).value();
  REQUIRE(second.converge_id.has_value());
  const int64_t first = *second.converge_id;
  REQUIRE(ma->Submit(act(3), rule).value().converge_id == first);  // a join
  const size_t related = a.repo->Relations(first).value().size();

  SECTION("ended") {
    REQUIRE(mb->EndInstance(first).value());
    clock.Advance(absl::Seconds(1));
    absl::StatusOr<Decision> d = ma->Submit(act(4), rule);
    INFO(d.status().ToString());
    REQUIRE(d.ok());
    CHECK(d->converge_id != first);
    CHECK(a.repo->Relations(first).value().size() == related);
    // What a process that never remembered the instance decides.
    clock.Advance(absl::Seconds(1));
    const Decision fresh = mb->Submit(act(5), rule).value();
    CHECK(fresh.converge_id == d->converge_id);
    CHECK(fresh.outcome == Outcome::kSkip);
  }
  SECTION("decided") {
    const Decision other = mb->Submit(act(4), rule).value();
    absl::StatusOr<Decision> d = ma->Submit(act(4), rule);
    INFO(d.status().ToString());
    REQUIRE(d.ok());
    CHECK(d->replayed);
    CHECK(d->outcome == other.outcome);
    CHECK(d->converge_id == other.converge_id);
    CHECK(a.repo->Relations(first).value().size() == related + 1);
  }
}

// What another session sees of a database: rows of the window index, the
// leases, the queue tasks and the decisions.
struct Seen {
  std::string members, leases, tasks, decisions;
};
Seen Look(const std::string& database) {
  auto count = [&](const char* table) {
    return Column(database, absl::StrCat("SELECT COUNT(*) FROM ", table)).at(0);
  };
  return Seen{count("converge_window_member"), count("converge_lease"),
              count("converge_queue_task"), count("converge_action_decision")};
}

// A repo whose Create runs `hook` first (and fails with its error).
class CreateHookRepo : public InstanceRepoWrapper {
 public:
  using InstanceRepoWrapper::InstanceRepoWrapper;
  std::function<absl::Status()> hook;
  absl::StatusOr<CreateResult> Create(const CreateRequest& request) override {
    if (hook) {
      if (absl::Status st = hook(); !st.ok()) return st;
    }
    return InstanceRepoWrapper::Create(request);
  }
};

// A lock store that looks at the database when a lease is released, and a
// queue that looks when a task has been enqueued.
class LookingLock : public LockStoreWrapper {
 public:
  LookingLock(LockStore* target, std::string database)
      : LockStoreWrapper(target), database_(std::move(database)) {}
  std::optional<Seen> at_release;
  absl::StatusOr<bool> Release(std::string_view key,
                               std::string_view token) override {
    at_release = Look(database_);
    return LockStoreWrapper::Release(key, token);
  }

 private:
  std::string database_;
};
class LookingQueue : public QueueStoreWrapper {
 public:
  LookingQueue(QueueStore* target, std::string database)
      : QueueStoreWrapper(target), database_(std::move(database)) {}
  std::optional<Seen> at_enqueue;
  absl::Status Enqueue(std::string_view queue, const Task& task) override {
    absl::Status st = QueueStoreWrapper::Enqueue(queue, task);
    at_enqueue = Look(database_);
    return st;
  }

 private:
  std::string database_;
};

TEST_CASE(
    "mysql: a Submit commits its window entry, lease, task and decision "
    "together (one_transaction), or its window entry and lease first",
    "[mysql]") {
  const bool one = GENERATE(true, false);
  INFO("one_transaction " << one);
  const TestDatabase db = FreshDatabase();
  VirtualClock clock(T(1000));
  mysql::MysqlStores s = Open(db, &clock, 5, absl::Seconds(5), one);
  const std::string& database = db.options.database;
  CreateHookRepo repo(s.repo.get());
  LookingLock lock(s.lock.get(), database);
  LookingQueue queue(s.queue.get(), database);
  Stores view = s.view();
  view.repo = &repo;
  view.lock = &lock;
  view.queue = &queue;
  auto manager = ConvergeManager::Create(view, &clock).value();
  // collect, count 1: the first action of a group creates its instance (the
  // slow path: window entry and lease, then the creation and its summary
  // task, then the release).
  const ConvergeConfig rule = Rule(ConvergeFunction::kCollect, 1, 300);
  Seen during;
  repo.hook = [&] {
    during = Look(database);
    return absl::OkStatus();
  };
  const Decision d = manager->Submit(Act(1, 1000, "g1"), rule).value();
  REQUIRE(d.primary);
  // While the creation is written, another session sees the window entry
  // and the lease only if they were committed on their own.
  CHECK(during.members == (one ? "0" : "1"));
  CHECK(during.leases == (one ? "0" : "1"));
  CHECK(during.decisions == "0");
  // The summary task shows at once only on its own; the lease is released
  // before the commit in one transaction (with it), after it otherwise.
  REQUIRE(queue.at_enqueue.has_value());
  CHECK(queue.at_enqueue->tasks == (one ? "0" : "1"));
  REQUIRE(lock.at_release.has_value());
  CHECK(lock.at_release->decisions == (one ? "0" : "1"));
  CHECK(lock.at_release->leases == (one ? "0" : "1"));
  const Seen after = Look(database);
  CHECK(after.members == "1");
  CHECK(after.leases == "0");
  CHECK(after.tasks == "1");  // the summary
  CHECK(after.decisions == "1");

  // A creation that fails: in one transaction nothing of its Submit stays;
  // otherwise its window entry does (the lease is released).
  repo.hook = [] { return absl::UnavailableError("injected"); };
  absl::StatusOr<Decision> failed = manager->Submit(Act(2, 1000, "g2"), rule);
  REQUIRE_FALSE(failed.ok());
  CHECK(Mentions(failed.status(), "injected"));
  const Seen rolled = Look(database);
  CHECK(rolled.members == (one ? "1" : "2"));
  CHECK(rolled.leases == "0");
  CHECK(rolled.tasks == "1");
  CHECK(rolled.decisions == "1");
  // And the action is decided when submitted again.
  repo.hook = nullptr;
  CHECK(manager->Submit(Act(2, 1000, "g2"), rule).value().primary);
  CHECK(Look(database).members == "2");
}

TEST_CASE(
    "mysql: a Submit that finds its lease busy in one transaction runs "
    "again the other way: the usual lease-busy error, nothing decided, and "
    "decided once the lease is free",
    "[mysql]") {
  const bool one = GENERATE(true, false);
  INFO("one_transaction " << one);
  const TestDatabase db = FreshDatabase();
  VirtualClock clock(T(1000));
  mysql::MysqlStores s = Open(db, &clock, 5, absl::Seconds(5), one);
  // Counts the window writes with a lease.
  struct CountingWindow : WindowStoreWrapper {
    using WindowStoreWrapper::WindowStoreWrapper;
    int with_lease = 0;
    absl::StatusOr<WindowResult> Apply(const WindowRequest& r) override {
      if (r.lease.has_value()) ++with_lease;
      return WindowStoreWrapper::Apply(r);
    }
  } window(s.window.get());
  Stores view = s.view();
  view.window = &window;
  ManagerOptions mo;
  mo.lease_attempts = 1;
  auto manager = ConvergeManager::Create(view, &clock, mo).value();
  const ConvergeConfig rule = Rule(ConvergeFunction::kCollect, 1, 300);
  REQUIRE(manager->Submit(Act(1, 1000), rule).value().primary);
  const std::string dimension =
      s.repo->GetInstance(*manager->GetDecision(1).value()->converge_id)
          .value()
          .dimension;
  const std::string key = manager->LeaseKey(dimension).value();
  // A later action of the group, past the instance's window: the slow path.
  clock.Advance(absl::Seconds(400));
  REQUIRE(s.lock->TryAcquire(key, "other", absl::Seconds(30)).value());
  window.with_lease = 0;
  absl::StatusOr<Decision> busy = manager->Submit(Act(2, 1400), rule);
  // One attempt a run: in one transaction, the busy lease was a conflict
  // and the Submit ran twice.
  CHECK(window.with_lease == (one ? 2 : 1));
  REQUIRE_FALSE(busy.ok());
  // The second run's answer (lease busy), not the first one's conflict.
  CHECK(busy.status().code() == absl::StatusCode::kUnavailable);
  CHECK_FALSE(IsConflict(busy.status()));
  CHECK(Mentions(busy.status(), "stayed busy"));
  CHECK_FALSE(manager->GetDecision(2).value().has_value());
  REQUIRE(s.lock->Release(key, "other").value());
  const Decision d = manager->Submit(Act(2, 1400), rule).value();
  CHECK(d.primary);
  CHECK(Look(db.options.database).leases == "0");
}

TEST_CASE(
    "mysql: a window sweep that falls due in a Submit's transaction is made "
    "after its commit",
    "[mysql]") {
  const TestDatabase db = FreshDatabase();
  VirtualClock clock(T(1000));
  mysql::MysqlStores s = Open(db, &clock, 5, absl::Seconds(5), true);
  // (A sweep every 4,096 calls.)
  auto write = [&](const std::string& key, absl::Duration ttl) {
    WindowRequest req;
    req.add.push_back(WindowEntry{key, "m", clock.Now()});
    req.key_ttl = ttl;
    REQUIRE(s.window->Apply(req).ok());
  };
  auto keys = [&](const std::string& key) {
    return Column(db.options.database,
                  absl::StrCat("SELECT COUNT(*) FROM converge_window_key "
                               "WHERE `key` = '",
                               key, "'"))
        .at(0);
  };
  // Window writes alone: the first 4,095 calls of the store's count.
  write("old", absl::Seconds(1));
  for (int i = 1; i < 4095; ++i) write("k", absl::Seconds(600));
  clock.Advance(absl::Seconds(10));  // "old" has expired
  REQUIRE(keys("old") == "1");       // not swept yet
  // The Submit's window write is the 4,096th: the sweep falls due inside
  // its transaction, and is made once it has committed.
  auto manager = ConvergeManager::Create(s.view(), &clock).value();
  const Decision d =
      manager->Submit(Act(1, 1010), Rule(ConvergeFunction::kCollect, 1, 300))
          .value();
  CHECK(d.primary);
  CHECK(keys("old") == "0");
  CHECK(keys("k") == "1");
}

}  // namespace
}  // namespace converge::testing
