// outputs.file (docs/http-api.md, section 6): outputs, their numbering,
// the epoch and the webhook's cursor across restarts of an in-process
// converged, and every bad file refused with a clear error that leaves the
// file as it was.

#include "output_file.h"

#include <sqlite3.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "config.h"
#include "http_test_util.h"
#include "support/unprivileged.h"

namespace converge::service::testing {
namespace {

namespace bj = boost::json;
namespace fs = std::filesystem;

std::string ActionJson(int64_t id) {
  return absl::StrCat(
      R"({"id":)", id, R"(,"context":{"alert_name":"cpu"},)",
      R"("converge_config":{"is_enabled":true,"converge_func":"collect",)",
      R"("timedelta":60,"count":1,"condition":[{"dimension":"alert_name",)",
      R"("value":["self"]}]}})");
}

// A config with the output file `path` and `outputs` members more.
std::string Config(const std::string& path, const std::string& outputs = "") {
  return absl::StrCat(R"({"queue":{"workers":0},"outputs":{"file":")", path,
                      "\"", outputs.empty() ? "" : ",", outputs, "}}");
}

// Waits until `target` lists `n` items (outputs are readable once the
// flusher has written them) and returns the page.
bj::value WaitForItems(InProcess& s, const std::string& target, size_t n) {
  bj::value page;
  const bool got = PollUntil(absl::Seconds(10), [&] {
    page = Json(s.Get(target).body);
    return page.at("items").as_array().size() >= n;
  });
  INFO(bj::serialize(page));
  REQUIRE(got);
  return page;
}

std::vector<int64_t> DecisionIds(const Sink& sink) {
  std::vector<int64_t> ids;
  for (const std::string& body : sink.bodies()) {
    const bj::value doc = Json(body);
    for (const bj::value& o : doc.at("outputs").as_array()) {
      if (o.at("type") == "decision")
        ids.push_back(o.at("action_id").as_int64());
    }
  }
  return ids;
}

std::string StatusText(const absl::Status& st) {
  return absl::StrCat(absl::StatusCodeToString(st.code()), " ", st.message());
}

TEST_CASE("with outputs.file, a restart goes on from the file",
          "[http][outputs]") {
  TempDir dir;
  const std::string path = dir.File("outputs.db");
  int64_t epoch = 0;
  int64_t next = 0;
  std::string items;
  {
    InProcess s(Config(path));
    REQUIRE(s.Post("/v1/actions",
                   absl::StrCat("[", ActionJson(1), ",", ActionJson(2), ",",
                                ActionJson(3), "]"))
                .status == 200);
    // The instance and three decisions.
    const bj::value page = WaitForItems(s, "/v1/outputs", 4);
    epoch = page.at("epoch").as_int64();
    next = page.at("next").as_int64();
    CHECK(next == 4);
    items = bj::serialize(page.at("items"));
    const std::string metrics = s.Get("/metrics").body;
    CHECK(absl::StrContains(metrics, "converged_output_file_errors_total 0"));
    CHECK(absl::StrContains(metrics, "converged_outputs_unsaved_total 0"));
    CHECK(absl::StrContains(metrics, "converged_outputs_unwritten 0"));
  }
  {
    InProcess s(Config(path));
    // Readable at once: they come from the file.
    const bj::value page = Json(s.Get("/v1/outputs").body);
    CHECK(page.at("epoch").as_int64() == epoch);
    CHECK(page.at("next").as_int64() == next);
    CHECK(page.at("missed").as_int64() == 0);
    CHECK(bj::serialize(page.at("items")) == items);
    // The numbering goes on.
    REQUIRE(s.Post("/v1/actions", ActionJson(4)).status == 200);
    const bj::value more =
        WaitForItems(s, absl::StrCat("/v1/decisions?after=", next), 1);
    // The memory store started empty: action 4 made an instance too, and
    // the two outputs are numbered 5 and 6.
    const int64_t cursor = more.at("items").at(0).at("cursor").as_int64();
    CHECK((cursor == next + 1 || cursor == next + 2));
    CHECK(more.at("items").at(0).at("action_id").as_int64() == 4);
    next = WaitForItems(s, absl::StrCat("/v1/outputs?after=", next), 2)
               .at("next")
               .as_int64();
    CHECK(next == 6);
  }
  {
    // A smaller buffer keeps the last outputs; the older ones are missed.
    InProcess s(Config(path, R"("buffer":2)"));
    const bj::value page = Json(s.Get("/v1/outputs").body);
    REQUIRE(page.at("items").as_array().size() == 2);
    CHECK(page.at("items").at(0).at("cursor").as_int64() == next - 1);
    CHECK(page.at("missed").as_int64() == next - 2);
    CHECK(page.at("next").as_int64() == next);
  }
  {
    // In memory, a restart starts the numbering again, under a new epoch.
    InProcess s(R"({"queue":{"workers":0}})");
    const bj::value page = Json(s.Get("/v1/outputs").body);
    CHECK(page.at("items").as_array().empty());
    CHECK(page.at("next").as_int64() == 0);
    CHECK(page.at("epoch").as_int64() != epoch);
    CHECK_FALSE(absl::StrContains(s.Get("/metrics").body,
                                  "converged_output_file_errors_total"));
  }
}

TEST_CASE("with outputs.file, the webhook goes on after a restart",
          "[http][outputs]") {
  TempDir dir;
  const std::string path = dir.File("outputs.db");
  auto config = [&](const Sink& sink) {
    return Config(path, absl::StrCat(R"("webhook":{"url":"http://127.0.0.1:)",
                                     sink.port(),
                                     R"(/hook","backoff_min_ms":5,)"
                                     R"("backoff_max_ms":20})"));
  };
  {
    Sink down(std::vector<int>(10000, 503));
    InProcess s(config(down));
    REQUIRE(s.Post("/v1/actions",
                   absl::StrCat("[", ActionJson(1), ",", ActionJson(2), "]"))
                .status == 200);
    REQUIRE(PollUntil(absl::Seconds(10), [&] { return down.requests() >= 2; }));
  }  // stopped with nothing delivered
  {
    Sink up;
    InProcess s(config(up));
    REQUIRE(PollUntil(absl::Seconds(10),
                      [&] { return DecisionIds(up).size() >= 2; }));
    CHECK(DecisionIds(up) == std::vector<int64_t>{1, 2});
  }
  {
    // Delivered before the restart: not sent again.
    Sink up;
    InProcess s(config(up));
    REQUIRE(s.Post("/v1/actions", ActionJson(3)).status == 200);
    REQUIRE(
        PollUntil(absl::Seconds(10), [&] { return !DecisionIds(up).empty(); }));
    CHECK(DecisionIds(up) == std::vector<int64_t>{3});
  }
}

TEST_CASE("a second converged on the same outputs file is refused",
          "[http][outputs]") {
  TempDir dir;
  const std::string path = dir.File("outputs.db");
  InProcess first(Config(path));
  absl::StatusOr<ServiceConfig> config = ParseServiceConfig(absl::StrCat(
      R"({"listen":"127.0.0.1:0","store":"memory:","outputs":{"file":")", path,
      R"("}})"));
  REQUIRE(config.ok());
  VirtualClock clock(absl::FromUnixSeconds(kStart));
  const absl::Status st = Service::Create(*config, &clock).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(st.message(), path));
  CHECK(absl::StrContains(st.message(), "in use by another process"));
  // The first goes on.
  REQUIRE(first.Post("/v1/actions", ActionJson(1)).status == 200);
  WaitForItems(first, "/v1/decisions", 1);
}

// Runs SQL on the file at `path` outside converged.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
  INFO((error != nullptr ? error : ""));
  sqlite3_free(error);
  sqlite3_close(db);
  REQUIRE(rc == SQLITE_OK);
}

// Makes an output file at `path` holding `n` outputs, and closes it.
void MakeOutputFile(const std::string& path, int n) {
  OutputFile::State state;
  absl::StatusOr<std::unique_ptr<OutputFile>> f =
      OutputFile::Open(path, 100, 1, &state);
  REQUIRE(f.ok());
  std::vector<StoredOutput> outputs;
  for (int i = 1; i <= n; ++i) {
    outputs.push_back(StoredOutput{i, 0, absl::StrCat("{\"n\":", i, "}")});
  }
  REQUIRE((*f)->Write(outputs, n, 0, 100).ok());
}

absl::Status OpenFile(const std::string& path) {
  OutputFile::State state;
  return OutputFile::Open(path, 100, 1, &state).status();
}

TEST_CASE("the output file: what it keeps, and bad files refused as they are",
          "[http][outputs]") {
  TempDir dir;
  const std::string path = dir.File("outputs.db");

  SECTION("it keeps the last outputs, the cursor and the epoch") {
    {
      OutputFile::State state;
      auto f = OutputFile::Open(path, 3, 42, &state);
      REQUIRE(f.ok());
      CHECK(state.epoch == 42);
      CHECK(state.last_seq == 0);
      std::vector<StoredOutput> outputs;
      for (int i = 1; i <= 5; ++i)
        outputs.push_back(StoredOutput{i, i % 3, "{}"});
      REQUIRE((*f)->Write(outputs, 5, 4, 3).ok());
    }
    OutputFile::State state;
    auto f = OutputFile::Open(path, 3, 99, &state);
    REQUIRE(f.ok());
    CHECK(state.epoch == 42);  // not the new one
    CHECK(state.last_seq == 5);
    CHECK(state.webhook_cursor == 4);
    REQUIRE(state.outputs.size() == 3);
    CHECK(state.outputs.front().seq == 3);
    CHECK(state.outputs.back().kind == 2);
  }
  SECTION("a file that is not SQLite is kDataLoss, left as it was") {
    std::string text;
    for (int i = 0; i < 200; ++i) text += "this is not a database\n";
    WriteFile(path, text);
    const absl::Status st = OpenFile(path);
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(absl::StrContains(st.message(), path));
    CHECK(ReadFile(path) == text);
  }
  SECTION("a damaged output is kDataLoss") {
    MakeOutputFile(path, 3);
    RawExec(path,
            GENERATE("UPDATE converged_output SET kind = 7 WHERE seq = 2",
                     "UPDATE converged_output SET line = '' WHERE seq = 2",
                     "UPDATE converged_output SET line = 'x' WHERE seq = 2"));
    const absl::Status st = OpenFile(path);
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(absl::StrContains(st.message(), "output 2 is damaged"));
  }
  SECTION("a webhook cursor past the last output is kDataLoss") {
    MakeOutputFile(path, 3);
    RawExec(path,
            "UPDATE converged_meta SET value = 9 WHERE name = "
            "'webhook_cursor'");
    const absl::Status st = OpenFile(path);
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kDataLoss);
    CHECK(absl::StrContains(st.message(), "webhook_cursor 9"));
  }
  SECTION("a newer schema is refused, nothing written") {
    MakeOutputFile(path, 3);
    RawExec(path,
            "UPDATE converged_meta SET value = 2 WHERE name = "
            "'schema_version'; PRAGMA wal_checkpoint(TRUNCATE)");
    const std::string before = ReadFile(path);
    const absl::Status st = OpenFile(path);
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StrContains(st.message(), "schema version 2"));
    CHECK(ReadFile(path) == before);
  }
  SECTION("a converge store's file, or another program's, is refused as is") {
    const bool store = GENERATE(true, false);
    RawExec(path, store ? "CREATE TABLE converge_instance (id INTEGER)"
                        : "CREATE TABLE notes (id INTEGER)");
    const std::string before = ReadFile(path);
    const absl::Status st = OpenFile(path);
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StrContains(st.message(),
                            store ? "holds a converge store"
                                  : "holds tables of another program (notes)"));
    CHECK(ReadFile(path) == before);
    CHECK_FALSE(fs::exists(path + "-wal"));
  }
  SECTION("not a file's path is kInvalidArgument") {
    for (const char* p : {":memory:", "file:x.db?mode=memory", ""}) {
      const absl::Status st = OpenFile(p);
      INFO(st.ToString());
      CHECK(st.code() == absl::StatusCode::kInvalidArgument);
    }
  }
  SECTION("a file held by another connection is kFailedPrecondition") {
    OutputFile::State state;
    auto held = OutputFile::Open(path, 100, 1, &state);
    REQUIRE(held.ok());
    const absl::Status st = OpenFile(path);
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(absl::StrContains(st.message(), "in use by another process"));
    // The holder still writes.
    CHECK((*held)->Write({StoredOutput{1, 0, "{}"}}, 1, 0, 100).ok());
  }
  SECTION("a missing directory is kNotFound") {
    const absl::Status st = OpenFile(dir.File("nope/outputs.db"));
    INFO(st.ToString());
    CHECK(st.code() == absl::StatusCode::kNotFound);
    CHECK(absl::StrContains(st.message(), "does not exist"));
  }
  SECTION("a read-only directory is kPermissionDenied, nothing written") {
    fs::permissions(dir.path(),
                    fs::perms::owner_read | fs::perms::owner_exec |
                        fs::perms::group_read | fs::perms::group_exec |
                        fs::perms::others_read | fs::perms::others_exec);
    const std::string out = ::converge::testing::AsUnprivileged(
        [&] { return StatusText(OpenFile(path)); });
    fs::permissions(dir.path(), fs::perms::owner_all);
    INFO(out);
    CHECK(absl::StartsWith(out, "PERMISSION_DENIED"));
    CHECK(absl::StrContains(out, "not writable"));
    CHECK(fs::is_empty(dir.path()));
  }
}

TEST_CASE("outputs.file cannot be the store's file", "[http][outputs]") {
  TempDir dir;
  absl::StatusOr<ServiceConfig> config = ParseServiceConfig(absl::StrCat(
      R"({"listen":"127.0.0.1:0","store":"sqlite:)", dir.File("c.db"),
      R"(?synchronous=normal","outputs":{"file":")", dir.path(), "/./c.db",
      R"("}})"));
  REQUIRE(config.ok());
  VirtualClock clock(absl::FromUnixSeconds(kStart));
  const absl::Status st = Service::Create(*config, &clock).status();
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(st.message(), "is the store's file"));
}

TEST_CASE("outputs.file must be a string", "[http][outputs]") {
  absl::StatusOr<ServiceConfig> c =
      ParseServiceConfig(R"({"outputs":{"file":7}})");
  REQUIRE_FALSE(c.ok());
  CHECK(absl::StrContains(c.status().message(), "outputs.file"));
}

}  // namespace
}  // namespace converge::service::testing
