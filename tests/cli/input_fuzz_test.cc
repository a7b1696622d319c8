// Robustness of the converge command line's readers on mutated and hostile
// input (tools/converge): replay events (ParseEvent, then applied by a
// Replayer as `converge replay` applies them), the field paths and text
// positions of error messages (ParsePath, LocatePath), and `converge test`
// case files (RunRuleTests). Bad input must give an error naming what is
// wrong, never a crash, an exception or a hang. Seeds: tests/golden and
// tests/cli. Deterministic (fixed seeds).

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "converge/manager.h"
#include "converge/memory/memory_store.h"
#include "events.h"
#include "json_locate.h"
#include "replay.h"
#include "rule_test.h"
#include "support/mutate.h"
#include "support/temp_dir.h"

namespace converge::cli {
namespace {

using namespace ::converge::testing;  // NOLINT: the mutation helpers

const std::filesystem::path kSource(CONVERGE_SOURCE_DIR);

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every replay input file of the repository, sorted by name.
std::vector<std::string> ReplayFiles() {
  std::vector<std::filesystem::path> paths;
  for (const char* dir : {"tests/golden", "tests/cli"}) {
    for (const auto& e : std::filesystem::directory_iterator(kSource / dir)) {
      const std::string name = e.path().filename().string();
      if (absl::EndsWith(name, ".in.jsonl") ||
          absl::StartsWith(name, "replay_")) {
        paths.push_back(e.path());
      }
    }
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> files;
  for (const auto& p : paths) files.push_back(ReadFile(p));
  return files;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

constexpr std::string_view kDefaultConfig =
    R"({"is_enabled":true,"converge_func":"collect","timedelta":60,)"
    R"("count":1,"condition":[{"dimension":"alert_name","value":["self"]}]})";

// ParseEvent gives an event or an error with a detail.
std::optional<Event> Parse(std::string_view input,
                           std::string_view default_config) {
  TraceInput("event", input);
  const ExactCopy line(input);
  InputError error;
  std::optional<Event> event = ParseEvent(line.view(), default_config, &error);
  if (!event.has_value()) {
    INFO("input: " << Shown(input));
    REQUIRE(!error.detail.empty());
    REQUIRE(!error.ToString().empty());
  }
  return event;
}

// Replays `text` as `converge replay` does, stopping at the first bad line;
// every error must name what is wrong.
void Replay(const std::string& text) {
  absl::StatusOr<std::unique_ptr<Replayer>> replayer =
      Replayer::Create(ReplayOptions(), [](std::string_view) {});
  REQUIRE(replayer.ok());
  for (const std::string& line : Lines(text)) {
    if (IsSkippedLine(line)) continue;
    std::optional<Event> event = Parse(line, "");
    if (!event.has_value()) break;
    if ((*replayer)->CheckOrder(*event).has_value()) break;
    absl::Status st = (*replayer)->Apply(*event);
    INFO("line: " << Shown(line) << "\nstatus: " << st);
    if (!st.ok()) {
      REQUIRE(!st.message().empty());
      // The manager's refusals of an action name its field.
      if (absl::IsInvalidArgument(st)) {
        REQUIRE(InputErrorFromStatus(st).has_value());
      }
      break;
    }
  }
  absl::Status st = (*replayer)->Finish();
  INFO("finish: " << st);
  REQUIRE((st.ok() || !st.message().empty()));
}

TEST_CASE("a field whose key holds \": \" is named whole", "[cli]") {
  // Read back from the error's path payload, not by splitting the message
  // at its first ": ".
  InputError error;
  CHECK_FALSE(ParseEvent(R"({"type":"action","id":1,"time":0,)"
                         R"("context":{"a: b":99999999999999999999},)"
                         R"("converge_config":{}})",
                         "", &error)
                  .has_value());
  CHECK(error.field == "context.a: b");
  CHECK(error.detail ==
        "integer 99999999999999999999 is out of the 64-bit range");

  VirtualClock clock(absl::FromUnixSeconds(0));
  memory::MemoryStores stores =
      memory::NewMemoryStores(memory::MemoryOptions{&clock}).value();
  auto manager = ConvergeManager::Create(stores.view(), &clock).value();
  Action a;
  a.id = 1;
  a.create_time = clock.Now();
  a.context["x: y"] = std::string(5000, 'v');
  std::optional<InputError> e =
      InputErrorFromStatus(manager->Validate(a, ConvergeConfig()));
  REQUIRE(e.has_value());
  CHECK(e->field == "context.x: y");
  CHECK(e->detail == "value of 5000 bytes exceeds the limit of 4096");
}

TEST_CASE("cli fuzz: mutated replay lines never crash ParseEvent",
          "[cli][fuzz]") {
  std::vector<std::string> seeds;
  for (const std::string& file : ReplayFiles()) {
    for (const std::string& line : Lines(file)) {
      if (!IsSkippedLine(line)) seeds.push_back(line);
    }
  }
  REQUIRE(seeds.size() > 50);
  // Other event types, and an action without converge_config (for the
  // default config).
  seeds.push_back(R"({"type":"status","id":1,"time":5,"status":"success"})");
  seeds.push_back(R"({"type":"approval","id":1,"time":5,"approved":true})");
  seeds.push_back(R"({"type":"tick","time":1700000000.5})");
  seeds.push_back(
      R"({"type":"action","id":7,"time":1,"context":{"alert_name":"x"}})");
  Mutator mutator(42);
  for (int i = 0; i < 4000; ++i) {
    const std::string line = mutator.MutateOne(seeds);
    Parse(line, "");
    Parse(line, kDefaultConfig);
  }
  for (const std::string& text : HostileJson()) {
    Parse(text, "");
    Parse(text, kDefaultConfig);
  }
  // A default config that is not JSON, or too deep, is an error too.
  Parse(seeds.back(), "{");
  Parse(seeds.back(), std::string(100000, '['));
}

TEST_CASE("cli fuzz: mutated replay files replay or stop cleanly",
          "[cli][fuzz]") {
  const std::vector<std::string> files = ReplayFiles();
  Mutator mutator(7);
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::string> lines = Lines(files[mutator.Below(files.size())]);
    if (lines.empty()) continue;
    const size_t edits = 1 + mutator.Below(2);
    for (size_t e = 0; e < edits; ++e) {
      std::string& line = lines[mutator.Below(lines.size())];
      line = mutator.Mutate(line);
    }
    std::string text;
    for (const std::string& l : lines) absl::StrAppend(&text, l, "\n");
    Replay(text);
  }
}

TEST_CASE("cli fuzz: ParsePath and LocatePath on mutated paths and texts",
          "[cli][fuzz]") {
  const std::string rules = ReadFile(kSource / "tests/cli/rules_pass.json");
  const std::vector<std::string> paths = {
      "cases[1].input[0].converge_config.count",
      "cases[0].expect[2].outcome",
      "cases[2].converge_config.condition[0].value[0]",
      "[0].name",
      "",
  };
  Mutator mutator(99);
  for (int i = 0; i < 3000; ++i) {
    const std::string path = mutator.MutateOne(paths);
    std::string text = rules;
    // Mostly the valid file (LocatePath's contract); sometimes any text.
    if (i % 2 == 1) text = mutator.Mutate(rules);
    TraceInput("path", path);
    TraceInput("text", text);
    const std::vector<PathStep> steps = ParsePath(ExactCopy(path).view());
    const TextPosition at = LocatePath(ExactCopy(text).view(), steps);
    INFO("path: " << Shown(path) << "\ntext: " << Shown(text));
    REQUIRE(at.line >= 1);
    REQUIRE(at.line <=
            static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) +
                1);
    const TextPosition end = PositionOf(text, text.size() + 10);
    REQUIRE(end.line >= at.line);
  }
  // Texts that end inside a key, a string or an escape.
  for (const char* text :
       {"{\"cases", "{\"cases\\", "{\"a\":\"x\\", "{\"a\":[\"x", "[\"x\\"}) {
    const TextPosition at =
        LocatePath(ExactCopy(text).view(), ParsePath("cases[0].a"));
    CHECK(at.line == 1);
  }
  // Indices too large for size_t, and unclosed brackets.
  for (const char* path : {"cases[99999999999999999999999].name", "cases[",
                           "cases[1", "[", "]", "a..b", "[[0]]"}) {
    const std::vector<PathStep> steps = ParsePath(path);
    const TextPosition at = LocatePath(rules, steps);
    CHECK(at.line >= 1);
  }
}

// Runs `converge test` on `text`, with its output captured.
int RunOn(const std::string& text, const std::string& file, std::string* err) {
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
  }
  std::ostringstream out_capture, err_capture;
  std::streambuf* old_out = std::cout.rdbuf(out_capture.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf(err_capture.rdbuf());
  int rc = -1;
  try {
    rc = RunRuleTests(file);
  } catch (...) {
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    throw;
  }
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  *err = err_capture.str();
  return rc;
}

TEST_CASE("cli fuzz: mutated converge test case files", "[cli][fuzz]") {
  absl::StatusOr<std::string> dir = MakeTestTempDir("cli-fuzz");
  REQUIRE(dir.ok());
  const std::string file = *dir + "/cases.json";
  std::vector<std::string> seeds;
  for (const char* name :
       {"rules_pass.json", "rules_fail.json", "rules_malformed.json"}) {
    seeds.push_back(ReadFile(kSource / "tests/cli" / name));
  }
  Mutator mutator(2026);
  auto check = [&](const std::string& text) {
    TraceInput("cases", text);
    std::string err;
    const int rc = RunOn(text, file, &err);
    INFO("input: " << Shown(text) << "\nstderr: " << err);
    REQUIRE(
        (rc == kTestsPassed || rc == kTestsFailed || rc == kTestsMalformed));
    if (rc == kTestsMalformed) {
      REQUIRE(absl::StartsWith(err, "converge test: "));
    }
  };
  for (int i = 0; i < 250; ++i) check(mutator.MutateOne(seeds));
  for (const std::string& text : HostileJson()) check(text);
  std::filesystem::remove_all(*dir);
}

}  // namespace
}  // namespace converge::cli
