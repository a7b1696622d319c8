#include "rule_test.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "converge/json/json.h"
#include "events.h"
#include "json_locate.h"
#include "json_util.h"
#include "replay.h"

namespace converge::cli {
namespace {

namespace bj = boost::json;

// The fields each output line type has, in output order.
const std::vector<std::string_view>* FieldsOf(std::string_view type) {
  static const auto* const kDecision = new std::vector<std::string_view>{
      "type", "time", "action_id", "outcome", "converge_id", "primary"};
  static const auto* const kInstance = new std::vector<std::string_view>{
      "type", "time", "event", "converge_id", "converge_type", "func"};
  static const auto* const kSummary = new std::vector<std::string_view>{
      "type", "time", "converge_id", "converge_type", "action_ids"};
  if (type == "decision") return kDecision;
  if (type == "instance") return kInstance;
  if (type == "summary") return kSummary;
  return nullptr;
}

// A problem with the case file: where (a display path such as
// "cases[1].input[2].time") and what.
struct FileError {
  std::string path;
  std::string detail;
};

struct Case {
  std::string name;
  std::string path;  // "cases[i]"
  Profile profile = Profile::kPlain;
  std::string default_config;  // JSON text, or empty
  std::vector<Event> input;
  std::vector<bj::object> expect;
};

std::string Join(std::string_view path, std::string_view field) {
  if (field.empty()) return std::string(path);
  if (field.front() == '[') return absl::StrCat(Av(path), Av(field));
  return absl::StrCat(Av(path), ".", Av(field));
}

std::optional<FileError> ReadCase(const bj::value& v, const std::string& path,
                                  Case* out) {
  out->path = path;
  const bj::object* o = v.if_object();
  if (o == nullptr) {
    return FileError{path,
                     absl::StrCat("expected an object, got ", Av(KindName(v)))};
  }
  for (const bj::key_value_pair& kv : *o) {
    const std::string_view key = ToStd(kv.key());
    if (key != "name" && key != "profile" && key != "converge_config" &&
        key != "input" && key != "expect") {
      return FileError{Join(path, key),
                       "unknown key (a case has name, profile, "
                       "converge_config, input and expect)"};
    }
  }

  const bj::value* name = o->if_contains("name");
  if (name == nullptr)
    return FileError{Join(path, "name"), "missing required key"};
  if (!name->is_string() || name->get_string().empty()) {
    return FileError{Join(path, "name"), "expected a non-empty string"};
  }
  out->name = std::string(ToStd(name->get_string()));

  if (const bj::value* profile = o->if_contains("profile")) {
    const std::string p = Join(path, "profile");
    if (!profile->is_string()) {
      return FileError{
          p, absl::StrCat("expected a string, got ", Av(KindName(*profile)))};
    }
    const std::string_view s = ToStd(profile->get_string());
    if (s == "plain") {
      out->profile = Profile::kPlain;
    } else if (s == "bkmonitor") {
      out->profile = Profile::kBkmonitor;
    } else {
      return FileError{p, absl::StrCat("unknown profile \"", Av(s),
                                       "\" (expected plain or bkmonitor)")};
    }
  }

  if (const bj::value* config = o->if_contains("converge_config")) {
    const std::string p = Join(path, "converge_config");
    if (!config->is_object()) {
      return FileError{
          p, absl::StrCat("expected an object, got ", Av(KindName(*config)))};
    }
    out->default_config = bj::serialize(*config);
    absl::StatusOr<ConvergeConfig> parsed =
        json::ParseConvergeConfig(out->default_config, p);
    if (!parsed.ok()) {
      // "json: <path>: <detail>", the path rooted at p.
      std::string_view m(parsed.status().message().data(),
                         parsed.status().message().size());
      if (m.substr(0, 6) == "json: ") m.remove_prefix(6);
      const size_t colon = m.find(": ");
      if (colon == std::string_view::npos) return FileError{p, std::string(m)};
      return FileError{std::string(m.substr(0, colon)),
                       std::string(m.substr(colon + 2))};
    }
  }

  const bj::value* input = o->if_contains("input");
  if (input == nullptr) {
    return FileError{Join(path, "input"), "missing required key"};
  }
  if (!input->is_array()) {
    return FileError{Join(path, "input"),
                     absl::StrCat("expected an array of events, got ",
                                  Av(KindName(*input)))};
  }
  std::optional<absl::Time> last;
  for (size_t j = 0; j < input->get_array().size(); ++j) {
    const std::string p = absl::StrCat(Join(path, "input"), "[", j, "]");
    const bj::value& item = input->get_array()[j];
    InputError error;
    std::optional<Event> event =
        ParseEvent(bj::serialize(item), out->default_config, &error);
    if (!event.has_value()) {
      return FileError{Join(p, error.field), error.detail};
    }
    if (last.has_value()) {
      if (std::optional<InputError> e = CheckEventTime(event->time, *last)) {
        return FileError{Join(p, e->field), e->detail};
      }
    }
    last = event->time;
    out->input.push_back(*std::move(event));
  }

  const bj::value* expect = o->if_contains("expect");
  if (expect == nullptr) {
    return FileError{Join(path, "expect"), "missing required key"};
  }
  if (!expect->is_array()) {
    return FileError{Join(path, "expect"),
                     absl::StrCat("expected an array of output lines, got ",
                                  Av(KindName(*expect)))};
  }
  for (size_t j = 0; j < expect->get_array().size(); ++j) {
    const std::string p = absl::StrCat(Join(path, "expect"), "[", j, "]");
    const bj::value& item = expect->get_array()[j];
    if (!item.is_object()) {
      return FileError{
          p, absl::StrCat("expected an object, got ", Av(KindName(item)))};
    }
    const bj::object& line = item.get_object();
    const bj::value* type = line.if_contains("type");
    if (type == nullptr) {
      return FileError{Join(p, "type"),
                       "missing required key (decision, instance or summary)"};
    }
    const std::vector<std::string_view>* fields =
        type->is_string() ? FieldsOf(ToStd(type->get_string())) : nullptr;
    if (fields == nullptr) {
      return FileError{Join(p, "type"),
                       "expected \"decision\", \"instance\" or \"summary\""};
    }
    for (const bj::key_value_pair& kv : line) {
      const std::string_view key = ToStd(kv.key());
      if (std::find(fields->begin(), fields->end(), key) == fields->end()) {
        std::vector<std::string> known(fields->begin() + 1, fields->end());
        return FileError{
            Join(p, key),
            absl::StrCat("not a field of a ", Av(ToStd(type->get_string())),
                         " line (its fields: ", absl::StrJoin(known, ", "),
                         ")")};
      }
    }
    out->expect.push_back(line);
  }
  return std::nullopt;
}

// Numbers compare by value (1 equals 1.0); everything else by kind and value.
bool Equal(const bj::value& a, const bj::value& b) {
  if (a.is_number() && b.is_number()) {
    const bool ai = !a.is_double(), bi = !b.is_double();
    if (ai && bi) {
      if (a.is_int64() && b.is_int64()) return a.get_int64() == b.get_int64();
      if (a.is_uint64() && b.is_uint64()) {
        return a.get_uint64() == b.get_uint64();
      }
      // One int64, one uint64 (> INT64_MAX): equal only if both fit.
      const bj::value& s = a.is_int64() ? a : b;
      const bj::value& u = a.is_int64() ? b : a;
      return s.get_int64() >= 0 &&
             static_cast<uint64_t>(s.get_int64()) == u.get_uint64();
    }
    return a.to_number<double>() == b.to_number<double>();
  }
  if (a.is_array() && b.is_array()) {
    const bj::array& x = a.get_array();
    const bj::array& y = b.get_array();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!Equal(x[i], y[i])) return false;
    }
    return true;
  }
  return a == b;
}

// The first field of `expected` that `actual` does not match, as
// `"field": expected X, got Y`; nullopt when all match.
std::optional<std::string> FirstMismatch(const bj::object& expected,
                                         const bj::object& actual) {
  // Compare "type" first: another type makes the other fields meaningless.
  std::vector<std::string_view> keys;
  if (expected.contains("type")) keys.push_back("type");
  for (const bj::key_value_pair& kv : expected) {
    if (ToStd(kv.key()) != "type") keys.push_back(ToStd(kv.key()));
  }
  for (std::string_view key : keys) {
    const bj::value& want =
        expected.at(bj::string_view(key.data(), key.size()));
    const bj::value* got =
        actual.if_contains(bj::string_view(key.data(), key.size()));
    if (got == nullptr) {
      return absl::StrCat("\"", Av(key), "\": expected ", bj::serialize(want),
                          ", the line has no such field");
    }
    if (!Equal(want, *got)) {
      return absl::StrCat("\"", Av(key), "\": expected ", bj::serialize(want),
                          ", got ", bj::serialize(*got));
    }
  }
  return std::nullopt;
}

struct CaseResult {
  bool passed = false;
  std::string report;  // the diff or the error, indented
};

CaseResult Compare(const Case& c, const std::vector<std::string>& output) {
  std::set<std::string> types;
  for (const bj::object& line : c.expect) {
    types.insert(std::string(ToStd(line.at("type").get_string())));
  }
  std::vector<bj::object> actual;
  for (const std::string& text : output) {
    bj::value v = bj::parse(text);  // our own output: valid JSON objects
    const bj::object& o = v.get_object();
    if (types.count(std::string(ToStd(o.at("type").get_string()))) != 0) {
      actual.push_back(o);
    }
  }

  std::ostringstream report;
  bool passed = actual.size() == c.expect.size();
  const size_t n = std::max(actual.size(), c.expect.size());
  std::vector<std::string> rows;
  for (size_t i = 0; i < n; ++i) {
    const std::string number = absl::StrCat(i + 1);
    const std::string pad(number.size(), ' ');
    if (i >= actual.size()) {
      rows.push_back(
          absl::StrCat("    ", number, " - ", bj::serialize(c.expect[i])));
      rows.push_back(absl::StrCat("    ", pad,
                                  "   missing: the output has no more lines "
                                  "of these types"));
      continue;
    }
    if (i >= c.expect.size()) {
      rows.push_back(
          absl::StrCat("    ", number, " + ", bj::serialize(actual[i])));
      rows.push_back(absl::StrCat("    ", pad,
                                  "   unexpected: the output has more lines "
                                  "of these types than expected"));
      continue;
    }
    std::optional<std::string> mismatch = FirstMismatch(c.expect[i], actual[i]);
    if (!mismatch.has_value()) {
      rows.push_back(
          absl::StrCat("    ", number, "   ", bj::serialize(c.expect[i])));
      continue;
    }
    passed = false;
    rows.push_back(
        absl::StrCat("    ", number, " - ", bj::serialize(c.expect[i])));
    rows.push_back(absl::StrCat("    ", pad, " + ", bj::serialize(actual[i])));
    rows.push_back(absl::StrCat("    ", pad, "   first mismatch: ", *mismatch));
  }
  CaseResult result;
  result.passed = passed;
  if (!passed) {
    std::vector<std::string> names(types.begin(), types.end());
    std::string kinds = names.back();
    if (names.size() > 1) {
      names.pop_back();
      kinds = absl::StrCat(absl::StrJoin(names, ", "), " and ", kinds);
    }
    report << "  " << kinds << " lines: expected " << c.expect.size()
           << ", got " << actual.size() << " (- expected, + actual)\n";
    for (const std::string& row : rows) report << row << "\n";
    result.report = report.str();
  }
  return result;
}

}  // namespace

int RunRuleTests(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::cerr << "converge test: " << path << ": cannot open\n";
    return kTestsMalformed;
  }
  std::ostringstream buffer;
  buffer << file.rdbuf();
  const std::string text = buffer.str();

  bool top_level_array = false;
  // Prints a file error with its line, and returns kTestsMalformed.
  auto malformed = [&](const FileError& e) {
    std::vector<PathStep> steps = ParsePath(e.path);
    if (top_level_array && !steps.empty() &&
        std::holds_alternative<std::string>(steps.front()) &&
        std::get<std::string>(steps.front()) == "cases") {
      steps.erase(steps.begin());
    }
    const TextPosition at = LocatePath(text, steps);
    std::cerr << "converge test: " << path << ", line " << at.line
              << ": field \"" << e.path << "\": " << e.detail << "\n";
    return kTestsMalformed;
  };

  std::vector<Case> cases;
  try {
    bj::parse_options options;
    options.max_depth = 64;
    bj::parser parser(bj::storage_ptr(), options);
    boost::system::error_code ec;
    const size_t consumed = parser.write(text.data(), text.size(), ec);
    if (ec) {
      const TextPosition at = PositionOf(text, consumed);
      std::cerr << "converge test: " << path << ", line " << at.line
                << ", column " << at.column
                << ": malformed JSON: " << ec.message() << "\n";
      return kTestsMalformed;
    }
    bj::value doc = parser.release();
    const bj::array* list = nullptr;
    if (doc.is_array()) {
      top_level_array = true;
      list = &doc.get_array();
    } else if (doc.is_object()) {
      for (const bj::key_value_pair& kv : doc.get_object()) {
        if (ToStd(kv.key()) != "cases") {
          return malformed(FileError{std::string(ToStd(kv.key())),
                                     "unknown key (the file has \"cases\")"});
        }
      }
      const bj::value* v = doc.get_object().if_contains("cases");
      if (v == nullptr) return malformed({"cases", "missing required key"});
      if (!v->is_array()) {
        return malformed({"cases", absl::StrCat("expected an array, got ",
                                                Av(KindName(*v)))});
      }
      list = &v->get_array();
    } else {
      return malformed({"",
                        "expected a list of cases, or an object with "
                        "\"cases\""});
    }
    for (size_t i = 0; i < list->size(); ++i) {
      Case c;
      if (std::optional<FileError> e =
              ReadCase((*list)[i], absl::StrCat("cases[", i, "]"), &c)) {
        return malformed(*e);
      }
      cases.push_back(std::move(c));
    }
  } catch (const std::exception& e) {
    std::cerr << "converge test: " << path << ": " << e.what() << "\n";
    return kTestsMalformed;
  }

  // Run every case first, so that an input found bad only when it runs
  // (the manager rejects it) is reported alone, as for a file error.
  std::vector<CaseResult> results;
  for (const Case& c : cases) {
    std::vector<std::string> output;
    ReplayOptions options;
    options.store_uri =
        std::string(tools::kMemoryStoreUri);  // fresh for each case
    options.profile = c.profile;
    absl::StatusOr<std::unique_ptr<Replayer>> replayer = Replayer::Create(
        options,
        [&output](std::string_view line) { output.emplace_back(line); });
    if (!replayer.ok()) {
      results.push_back(
          {false,
           absl::StrCat("  error: ", replayer.status().message(), "\n")});
      continue;
    }
    absl::Status st;
    size_t j = 0;
    for (; j < c.input.size() && st.ok(); ++j)
      st = (*replayer)->Apply(c.input[j]);
    if (st.ok()) st = (*replayer)->Finish();
    if (!st.ok()) {
      if (std::optional<InputError> input = InputErrorFromStatus(st)) {
        return malformed(FileError{
            Join(absl::StrCat(c.path, ".input[", j - 1, "]"), input->field),
            input->detail});
      }
      results.push_back({false, absl::StrCat("  error: the replay failed: ",
                                             st.message(), "\n")});
      continue;
    }
    results.push_back(Compare(c, output));
  }

  int failed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (results[i].passed) {
      std::cout << "PASS " << cases[i].name << "\n";
    } else {
      ++failed;
      std::cout << "FAIL " << cases[i].name << "\n" << results[i].report;
    }
  }
  std::cout << cases.size() << (cases.size() == 1 ? " case" : " cases") << ": "
            << cases.size() - failed << " passed, " << failed << " failed\n";
  std::cout.flush();
  return failed == 0 ? kTestsPassed : kTestsFailed;
}

}  // namespace converge::cli
