// Robustness of converge::json on mutated and hostile input: every parse
// function returns a value or kInvalidArgument with a message that starts
// with "json: ", never throws or crashes, and what parses writes back to
// JSON that parses to the same thing. Seeds: the action lines of the golden
// replays (tests/golden/*.in.jsonl). Deterministic (fixed seeds).

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "converge/json/json.h"
#include "support/mutate.h"

namespace converge::json {
namespace {

using namespace ::converge::testing;  // NOLINT: the mutation helpers

// The action lines of the golden replays.
std::vector<std::string> GoldenActionLines() {
  std::vector<std::string> lines;
  const std::filesystem::path dir =
      std::filesystem::path(CONVERGE_SOURCE_DIR) / "tests" / "golden";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!absl::EndsWith(name, ".in.jsonl")) continue;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      if (absl::StrContains(line, "\"converge_config\"")) lines.push_back(line);
    }
  }
  std::sort(lines.begin(), lines.end());  // directory order varies
  return lines;
}

// A refusal must be kInvalidArgument naming what is wrong.
void CheckRefusal(const absl::Status& status, std::string_view input) {
  if (status.ok()) return;
  INFO("input: " << Shown(input));
  INFO("status: " << status.ToString());
  REQUIRE(status.code() == absl::StatusCode::kInvalidArgument);
  REQUIRE(absl::StartsWith(status.message(), "json: "));
  REQUIRE(status.message().size() > 6);
}

// What parses writes back to JSON that parses to the same thing.
void CheckConfigRoundTrip(const ConvergeConfig& config,
                          std::string_view input) {
  const std::string json = ConvergeConfigToJson(config);
  absl::StatusOr<ConvergeConfig> again = ParseConvergeConfig(json);
  INFO("input: " << Shown(input));
  INFO("written: " << Shown(json) << "\nstatus: " << again.status());
  REQUIRE(again.ok());
  REQUIRE(ConvergeConfigToJson(*again) == json);
}

void CheckActionRoundTrip(const Action& action, std::string_view input) {
  const std::string json = ActionToJson(action);
  absl::StatusOr<Action> again = ParseAction(json);
  INFO("input: " << Shown(input));
  INFO("written: " << Shown(json) << "\nstatus: " << again.status());
  REQUIRE(again.ok());
  REQUIRE(again->id == action.id);
  REQUIRE(again->create_time == action.create_time);
  REQUIRE(again->context == action.context);
  REQUIRE(ActionToJson(*again) == json);
}

// Every parse function on `text`; round trips for what parses.
void ParseAll(std::string_view input) {
  TraceInput("json", input);
  const ExactCopy copy(input);
  const std::string_view text = copy.view();
  absl::StatusOr<ActionEvent> event = ParseActionEvent(text);
  CheckRefusal(event.status(), text);
  if (event.ok()) {
    CheckActionRoundTrip(event->action, text);
    CheckConfigRoundTrip(event->config, text);
  }
  absl::StatusOr<Action> action = ParseAction(text);
  CheckRefusal(action.status(), text);
  if (action.ok()) CheckActionRoundTrip(*action, text);
  absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig(text);
  CheckRefusal(config.status(), text);
  if (config.ok()) CheckConfigRoundTrip(*config, text);
  absl::StatusOr<Value> value = ParseValue(text);
  CheckRefusal(value.status(), text);
  if (value.ok()) {
    const std::string json = ValueToJson(*value);
    absl::StatusOr<Value> again = ParseValue(json);
    INFO("input: " << Shown(text) << "\nwritten: " << Shown(json));
    REQUIRE(again.ok());
    REQUIRE(ValueToJson(*again) == json);
  }
  CheckRefusal(ParseContext(text).status(), text);
}

TEST_CASE("json fuzz: the golden action lines parse and round-trip",
          "[json][fuzz]") {
  const std::vector<std::string> seeds = GoldenActionLines();
  REQUIRE(seeds.size() > 20);
  for (const std::string& line : seeds) {
    absl::StatusOr<ActionEvent> event = ParseActionEvent(line);
    INFO(line << "\n" << event.status());
    REQUIRE(event.ok());
    CheckActionRoundTrip(event->action, line);
    CheckConfigRoundTrip(event->config, line);
  }
}

TEST_CASE("json fuzz: mutated replay lines never crash", "[json][fuzz]") {
  const std::vector<std::string> seeds = GoldenActionLines();
  REQUIRE(!seeds.empty());
  Mutator mutator(20261127);
  for (int i = 0; i < 4000; ++i) ParseAll(mutator.MutateOne(seeds));
}

TEST_CASE("json fuzz: mutated converge_config and context objects",
          "[json][fuzz]") {
  // The config and the action of each golden line written alone, so that
  // the mutations hit their fields rather than the rest of the line.
  std::vector<std::string> seeds;
  for (const std::string& line : GoldenActionLines()) {
    absl::StatusOr<ActionEvent> event = ParseActionEvent(line);
    REQUIRE(event.ok());
    seeds.push_back(ConvergeConfigToJson(event->config));
    seeds.push_back(ActionToJson(event->action));
  }
  seeds.push_back(
      R"({"is_enabled":true,"converge_func":"collect","timedelta":60,)"
      R"("max_timedelta":600,"count":2,"condition":[{"dimension":"a",)"
      R"("value":["self",1,2.5,null,true,[1,[2]]]}],"need_biz_converge":)"
      R"(false,"sub_converge_config":{"timedelta":60,"count":1,)"
      R"("converge_func":"collect_alarm","condition":[{"dimension":"b",)"
      R"("value":["self"]}]},"description":"d","context":{"k":[1,{"x":2}]}})");
  Mutator mutator(1127);
  for (int i = 0; i < 4000; ++i) ParseAll(mutator.MutateOne(seeds));
}

TEST_CASE("json fuzz: hostile input is refused cleanly", "[json][fuzz]") {
  SECTION("every parse function") {
    for (const std::string& text : HostileJson()) ParseAll(text);
  }
  SECTION("nesting 100,000 deep") {
    std::string deep(100000, '[');
    CHECK(absl::StrContains(ParseValue(deep).status().message(),
                            "nesting deeper than 32"));
    std::string objects = R"({"id":1,"time":0,"context":{"k":)";
    for (int i = 0; i < 100000; ++i) objects += R"({"a":)";
    CHECK(absl::StrContains(ParseAction(objects).status().message(),
                            "nesting deeper than 32"));
  }
  SECTION("numbers out of int64") {
    for (const char* id : {"9223372036854775808", "18446744073709551616",
                           "-9223372036854775809", "1e19", "-1e19"}) {
      const std::string text = std::string(R"({"id":)") + id + R"(,"time":0})";
      absl::StatusOr<Action> a = ParseAction(text);
      INFO(text << ": " << a.status());
      CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(absl::StrContains(a.status().message(), "action.id"));
    }
    for (const char* time :
         {"9223372036854775807", "-9223372036854775808", "1e300", "-1e300"}) {
      const std::string text = std::string(R"({"id":1,"time":)") + time + "}";
      absl::StatusOr<Action> a = ParseAction(text);
      INFO(text << ": " << a.status());
      CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
      CHECK(absl::StrContains(a.status().message(), "action.time"));
    }
    absl::StatusOr<ConvergeConfig> c = ParseConvergeConfig(
        R"({"is_enabled":true,"converge_func":"collect","count":1,)"
        R"("timedelta":99999999999999999999})");
    CHECK(absl::StrContains(c.status().message(), "converge_config.timedelta"));
  }
  SECTION("strings of several MB") {
    const std::string big =
        R"({"id":1,"time":0,"signal":")" + std::string(3 << 20, 's') + "\"}";
    CHECK(absl::StrContains(ParseAction(big).status().message(),
                            "exceeds 1048576 bytes"));
  }
  SECTION("empty input") {
    CHECK(absl::StrContains(ParseAction("").status().message(),
                            "json: action: malformed JSON at offset 0"));
  }
}

}  // namespace
}  // namespace converge::json
