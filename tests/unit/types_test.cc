// Enumerations (converge/types.h) with their upstream string values (section
// 1.4 of the spec), the status groups, and Value's Python-style rendering.

#include "converge/types.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <clocale>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "converge/value.h"

namespace converge {
namespace {

template <typename E>
using Names = std::vector<std::pair<E, std::string>>;

// Checks ToString(e) == name and Parse(name) == e for every pair, and that
// the names are distinct.
template <typename E, typename ParseFn>
void CheckRoundTrip(const Names<E>& names, ParseFn parse) {
  std::set<std::string> seen;
  for (const auto& [e, name] : names) {
    INFO("value " << name);
    CHECK(std::string(ToString(e)) == name);
    absl::StatusOr<E> parsed = parse(name);
    REQUIRE(parsed.ok());
    CHECK(*parsed == e);
    CHECK(seen.insert(name).second);
  }
}

// Checks that `parse(bad)` is kInvalidArgument naming `bad`.
template <typename ParseFn>
void CheckUnknown(ParseFn parse, const std::string& bad) {
  auto r = parse(bad);
  INFO("value " << bad);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string msg(r.status().message());
  INFO(msg);
  CHECK(absl::StrContains(msg, bad));
}

const Names<ActionStatus>& AllStatuses() {
  static const Names<ActionStatus> names = {
      {ActionStatus::kReceived, "received"},
      {ActionStatus::kWaiting, "waiting"},
      {ActionStatus::kConverging, "converging"},
      {ActionStatus::kSleep, "sleep"},
      {ActionStatus::kConverged, "converged"},
      {ActionStatus::kRunning, "running"},
      {ActionStatus::kSuccess, "success"},
      {ActionStatus::kPartialSuccess, "partial_success"},
      {ActionStatus::kFailure, "failure"},
      {ActionStatus::kPartialFailure, "partial_failure"},
      {ActionStatus::kSkipped, "skipped"},
      {ActionStatus::kForNotice, "for_notice"},
      {ActionStatus::kForReference, "for_reference"},
      {ActionStatus::kShield, "shield"},
      {ActionStatus::kRetrying, "retrying"},
      {ActionStatus::kAuthorized, "authorized"},
      {ActionStatus::kUnauthorized, "unauthorized"},
      {ActionStatus::kChecking, "checking"},
      {ActionStatus::kBlocked, "blocked"},
  };
  return names;
}

TEST_CASE("ConvergeType round-trips with the upstream names", "[types]") {
  CheckRoundTrip<ConvergeType>({{ConvergeType::kAction, "action"},
                                {ConvergeType::kConverge, "converge"}},
                               ParseConvergeType);
}

TEST_CASE("ConvergeStatus round-trips with the upstream names", "[types]") {
  CheckRoundTrip<ConvergeStatus>({{ConvergeStatus::kExecuted, "executed"},
                                  {ConvergeStatus::kSkipped, "skipped"}},
                                 ParseConvergeStatus);
}

TEST_CASE("ConvergeFunction round-trips with the upstream names", "[types]") {
  CheckRoundTrip<ConvergeFunction>(
      {{ConvergeFunction::kSkipWhenSuccess, "skip_when_success"},
       {ConvergeFunction::kApproveWhenFailed, "approve_when_failed"},
       {ConvergeFunction::kSkipWhenProceed, "skip_when_proceed"},
       {ConvergeFunction::kWaitWhenProceed, "wait_when_proceed"},
       {ConvergeFunction::kSkipWhenExceed, "skip_when_exceed"},
       {ConvergeFunction::kDefense, "defense"},
       {ConvergeFunction::kCollect, "collect"},
       {ConvergeFunction::kCollectAlarm, "collect_alarm"},
       {ConvergeFunction::kRelevance, "relevance"},
       {ConvergeFunction::kTrigger, "trigger"}},
      ParseConvergeFunction);
}

TEST_CASE("ActionStatus round-trips with the upstream names", "[types]") {
  REQUIRE(AllStatuses().size() == 19);
  CheckRoundTrip<ActionStatus>(AllStatuses(), ParseActionStatus);
}

TEST_CASE("Outcome round-trips with its names", "[types]") {
  CheckRoundTrip<Outcome>({{Outcome::kExecute, "execute"},
                           {Outcome::kSkip, "skip"},
                           {Outcome::kSleep, "sleep"},
                           {Outcome::kApproval, "approval"},
                           {Outcome::kShield, "shield"}},
                          ParseOutcome);
}

TEST_CASE("Unknown names are kInvalidArgument naming the value", "[types]") {
  CheckUnknown(ParseConvergeType, "actions");
  CheckUnknown(ParseConvergeType, "Action");
  CheckUnknown(ParseConvergeType, "");
  CheckUnknown(ParseConvergeStatus, "execute");
  CheckUnknown(ParseConvergeStatus, "SKIPPED");
  CheckUnknown(ParseConvergeFunction, "skip_when_exceeded");
  CheckUnknown(ParseConvergeFunction, " collect");
  CheckUnknown(ParseActionStatus, "done");
  CheckUnknown(ParseActionStatus, "partial-success");
  CheckUnknown(ParseOutcome, "converged");
  CheckUnknown(ParseOutcome, "EXECUTE");
}

TEST_CASE("StatusForOutcome gives the upstream stored status", "[types]") {
  CHECK(StatusForOutcome(Outcome::kExecute) == ActionStatus::kConverged);
  CHECK(StatusForOutcome(Outcome::kSkip) == ActionStatus::kSkipped);
  CHECK(StatusForOutcome(Outcome::kSleep) == ActionStatus::kSleep);
  CHECK(StatusForOutcome(Outcome::kApproval) == ActionStatus::kWaiting);
  CHECK(StatusForOutcome(Outcome::kShield) == ActionStatus::kShield);
}

TEST_CASE("IsProceedStatus and IsEndStatus are exactly the upstream sets",
          "[types]") {
  const std::set<std::string> proceed = {"received", "waiting",   "converging",
                                         "sleep",    "converged", "running"};
  const std::set<std::string> end = {
      "success", "partial_success", "failure", "partial_failure",
      "skipped", "shield",          "blocked"};
  for (const auto& [status, name] : AllStatuses()) {
    INFO("status " << name);
    CHECK(IsProceedStatus(status) == (proceed.count(name) == 1));
    CHECK(IsEndStatus(status) == (end.count(name) == 1));
    // No status is both.
    CHECK_FALSE((IsProceedStatus(status) && IsEndStatus(status)));
  }
}

// ---------------------------------------------------------------------------
// Value

TEST_CASE("Value::PyStr of None and bools", "[types]") {
  CHECK(Value().PyStr() == "None");
  CHECK(Value(nullptr).PyStr() == "None");
  CHECK(Value(true).PyStr() == "True");
  CHECK(Value(false).PyStr() == "False");
}

TEST_CASE("Value::PyStr of ints", "[types]") {
  CHECK(Value(0).PyStr() == "0");
  CHECK(Value(42).PyStr() == "42");
  CHECK(Value(-7).PyStr() == "-7");
  CHECK(Value(int64_t{1234567890123}).PyStr() == "1234567890123");
  CHECK(Value(std::numeric_limits<int64_t>::max()).PyStr() ==
        "9223372036854775807");
  CHECK(Value(std::numeric_limits<int64_t>::min()).PyStr() ==
        "-9223372036854775808");
}

TEST_CASE("Value takes every integer type that fits int64_t", "[types]") {
  // Were ambiguous: long long, unsigned, short.
  CHECK(Value(7LL).as_int() == 7);
  CHECK(Value(7U).as_int() == 7);
  CHECK(Value(std::numeric_limits<uint32_t>::max()).as_int() == 4294967295);
  CHECK(Value(static_cast<short>(-3)).as_int() == -3);
  CHECK(Value(int64_t{-5}).kind() == Value::Kind::kInt);
  CHECK(Value(true).kind() == Value::Kind::kBool);  // not an integer
  CHECK(Value(1.5).kind() == Value::Kind::kDouble);
  // A 64-bit unsigned value may not fit: no implicit Value.
  static_assert(!std::is_constructible_v<Value, uint64_t>);
  static_assert(!std::is_constructible_v<Value, unsigned long long>);
  static_assert(!std::is_constructible_v<Value, __int128>);  // wider
  static_assert(std::is_constructible_v<Value, long long>);
  static_assert(std::is_constructible_v<Value, unsigned>);
}

TEST_CASE("Value::PyStr of floats is Python's repr", "[types]") {
  // Expected texts are python3's str(float(x)).
  CHECK(Value(1.0).PyStr() == "1.0");
  CHECK(Value(0.1).PyStr() == "0.1");
  CHECK(Value(0.0).PyStr() == "0.0");
  CHECK(Value(-2.0).PyStr() == "-2.0");
  CHECK(Value(1.5).PyStr() == "1.5");
  CHECK(Value(-0.25).PyStr() == "-0.25");
  CHECK(Value(3.14159).PyStr() == "3.14159");
  CHECK(Value(0.1 + 0.2).PyStr() == "0.30000000000000004");
  CHECK(Value(1.0 / 3.0).PyStr() == "0.3333333333333333");
  CHECK(Value(123456789.0).PyStr() == "123456789.0");
  CHECK(Value(0.0001).PyStr() == "0.0001");
  CHECK(Value(1e-05).PyStr() == "1e-05");
  CHECK(Value(1e16).PyStr() == "1e+16");
  CHECK(Value(1.5e300).PyStr() == "1.5e+300");
}

TEST_CASE("Value::PyStr of round floats >= 10 is positional", "[types]") {
  // python3: str(10.0) == '10.0', str(100.0) == '100.0', str(1500.0) ==
  // '1500.0', str(1e15) == '1000000000000000.0'. Python uses positional
  // notation for every exponent in [-4, 16).
  // NOTE: these fail against src/value.cc as written: PyFloat keeps the
  // shortest %g text, which switches to exponent form ("1e+01", "1e+02",
  // "1.5e+03", "1e+15") whenever the round-trip precision is below the
  // exponent (see the report).
  CHECK(Value(10.0).PyStr() == "10.0");
  CHECK(Value(100.0).PyStr() == "100.0");
  CHECK(Value(1500.0).PyStr() == "1500.0");
  CHECK(Value(-20.0).PyStr() == "-20.0");
  CHECK(Value(120.0).PyStr() == "120.0");
  CHECK(Value(1e15).PyStr() == "1000000000000000.0");
  CHECK(Value(12345678.9e3).PyStr() == "12345678900.0");
}

TEST_CASE("Value::PyStr of floats does not follow the host's locale",
          "[types]") {
  // An embedding program may set a locale with a decimal comma; the
  // dimension text (and so D) must not change with it. The locale is
  // built into a temporary folder (glibc reads LOCPATH at setlocale).
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("converge-locale-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cmd =
      "localedef -i de_DE -f UTF-8 '" + dir + "/de_DE.UTF-8' >/dev/null 2>&1";
  const bool built = std::system(cmd.c_str()) == 0;
  ::setenv("LOCPATH", dir.c_str(), 1);
  const char* set = built ? std::setlocale(LC_NUMERIC, "de_DE.UTF-8") : nullptr;
  char probe[16];
  std::snprintf(probe, sizeof(probe), "%.1f", 1.5);
  const std::string with_locale = probe;
  const std::string a = Value(1.5).PyStr();
  const std::string b = Value(0.1 + 0.2).PyStr();
  const std::string c = Value(1.5e300).PyStr();
  std::setlocale(LC_NUMERIC, "C");
  ::unsetenv("LOCPATH");
  std::filesystem::remove_all(dir);
  if (set == nullptr) {
    WARN("localedef could not build de_DE.UTF-8: checked in the C locale");
  } else {
    CHECK(with_locale == "1,5");  // the locale is in effect
  }
  CHECK(a == "1.5");
  CHECK(b == "0.30000000000000004");
  CHECK(c == "1.5e+300");
}

TEST_CASE("Value::PyStr of strings is the text, unquoted", "[types]") {
  CHECK(Value("abc").PyStr() == "abc");
  CHECK(Value("").PyStr() == "");
  CHECK(Value(std::string("it's")).PyStr() == "it's");
  CHECK(Value(std::string_view("a b|c")).PyStr() == "a b|c");
}

TEST_CASE("Value::PyStr of lists is Python's list repr", "[types]") {
  CHECK(Value(Value::List{}).PyStr() == "[]");
  CHECK(Value(Value::List{"a", 1}).PyStr() == "['a', 1]");
  CHECK(Value(Value::List{Value(), true, false, 1.0, -3}).PyStr() ==
        "[None, True, False, 1.0, -3]");
  CHECK(Value(Value::List{"a", Value::List{"b", 2}, Value::List{}}).PyStr() ==
        "['a', ['b', 2], []]");
  // Quotes as Python picks them.
  CHECK(Value(Value::List{"it's"}).PyStr() == "[\"it's\"]");
  CHECK(Value(Value::List{"say \"hi\""}).PyStr() == "['say \"hi\"']");
  CHECK(Value(Value::List{"both ' and \""}).PyStr() == "['both \\' and \"']");
  CHECK(Value(Value::List{"back\\slash"}).PyStr() == "['back\\\\slash']");
  CHECK(Value(Value::List{"a\nb"}).PyStr() == "['a\\nb']");
  // Other ASCII controls: python3 repr(['\x01\x7f\x1b']).
  CHECK(Value(Value::List{std::string("\x01\x7f\x1b")}).PyStr() ==
        "['\\x01\\x7f\\x1b']");
  // Beyond ASCII, Python escapes what str.isprintable() refuses (spaces
  // other than ' ', format and control characters, private use,
  // unassigned) and keeps the rest. Expected texts are python3's
  // str([s]) (Python 3.11, Unicode 14).
  CHECK(Value(Value::List{"a\u3000b\u00a0c\u200bd\U0001F600e\u00e9"}).PyStr() ==
        "['a\\u3000b\\xa0c\\u200bd\U0001F600e\u00e9']");
  CHECK(Value(Value::List{"\u0085\u00ad\u2028\u2029"}).PyStr() ==
        "['\\x85\\xad\\u2028\\u2029']");
  CHECK(Value(Value::List{"\ue000\U0010ffff\U000e0001"}).PyStr() ==
        "['\\ue000\\U0010ffff\\U000e0001']");
  CHECK(Value(Value::List{"\u4e2d\u6587 ok"}).PyStr() == "['\u4e2d\u6587 ok']");
  // Bytes that are not UTF-8 (no Python str holds them) are kept as they
  // are, and so is an overlong or surrogate form.
  CHECK(Value(Value::List{std::string("x\xff\xc0\xafy\xed\xa0\x80")}).PyStr() ==
        std::string("['x\xff\xc0\xafy\xed\xa0\x80']"));
  // A string alone is its own str(): nothing is escaped.
  CHECK(Value("a\u3000b").PyStr() == "a\u3000b");
}

TEST_CASE("Value::IsEmpty is true for None, empty string and empty list",
          "[types]") {
  CHECK(Value().IsEmpty());
  CHECK(Value("").IsEmpty());
  CHECK(Value(Value::List{}).IsEmpty());
  CHECK_FALSE(Value(0).IsEmpty());
  CHECK_FALSE(Value(0.0).IsEmpty());
  CHECK_FALSE(Value(false).IsEmpty());
  CHECK_FALSE(Value(" ").IsEmpty());
  CHECK_FALSE(Value("None").IsEmpty());
  CHECK_FALSE(Value(Value::List{Value()}).IsEmpty());
  CHECK_FALSE(Value(Value::List{""}).IsEmpty());
}

TEST_CASE("Value kinds and equality", "[types]") {
  CHECK(Value().kind() == Value::Kind::kNull);
  CHECK(Value(true).kind() == Value::Kind::kBool);
  CHECK(Value(3).kind() == Value::Kind::kInt);
  CHECK(Value(int64_t{3}).kind() == Value::Kind::kInt);
  CHECK(Value(3.0).kind() == Value::Kind::kDouble);
  CHECK(Value("x").kind() == Value::Kind::kString);
  CHECK(Value(Value::List{}).kind() == Value::Kind::kList);
  CHECK(Value(3) == Value(int64_t{3}));
  CHECK(Value(3) != Value(3.0));
  CHECK(Value("1") != Value(1));
  CHECK(Value(Value::List{"a", 1}) == Value(Value::List{"a", 1}));
}

}  // namespace
}  // namespace converge
