// Tests of converge::json (json/include/converge/json/json.h).

#include "converge/json/json.h"

#include <catch2/catch.hpp>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "converge/config.h"
#include "converge/model.h"
#include "converge/types.h"
#include "converge/value.h"

namespace converge::json {
namespace {

// Checks that `status` is kInvalidArgument, starts with "json: " and names
// every fragment (the field path, the reason).
void CheckInvalid(const absl::Status& status,
                  std::initializer_list<const char*> fragments) {
  INFO("status: " << status.ToString());
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StartsWith(status.message(), "json: "));
  for (const char* fragment : fragments) {
    INFO("fragment: " << fragment);
    CHECK(absl::StrContains(status.message(), fragment));
  }
}

void CheckSameConfig(const ConvergeConfig& a, const ConvergeConfig& b) {
  CHECK(a.is_enabled == b.is_enabled);
  CHECK(a.converge_func == b.converge_func);
  CHECK(a.timedelta == b.timedelta);
  CHECK(a.max_timedelta == b.max_timedelta);
  CHECK(a.count == b.count);
  REQUIRE(a.condition.size() == b.condition.size());
  for (size_t i = 0; i < a.condition.size(); ++i) {
    CHECK(a.condition[i].dimension == b.condition[i].dimension);
    CHECK(a.condition[i].value == b.condition[i].value);
  }
  CHECK(a.need_biz_converge == b.need_biz_converge);
  CHECK(a.description == b.description);
  CHECK(a.context == b.context);
  REQUIRE((a.sub_converge_config == nullptr) ==
          (b.sub_converge_config == nullptr));
  if (a.sub_converge_config != nullptr) {
    CheckSameConfig(*a.sub_converge_config, *b.sub_converge_config);
  }
}

constexpr const char* kFullConfig = R"({
  "is_enabled": true,
  "converge_func": "skip_when_exceed",
  "timedelta": 300,
  "max_timedelta": 600,
  "count": 5,
  "condition": [
    {"dimension": "alert_info", "value": ["self"]},
    {"dimension": "signal", "value": ["abnormal", 2, 1.5, null, true, ["a", "b"]]}
  ],
  "need_biz_converge": false,
  "description": "a \"quoted\" text",
  "context": {"b": [1, 2.0], "a": "x"},
  "unknown_key": {"ignored": [1, 2, 3]},
  "sub_converge_config": {
    "converge_func": "collect_alarm",
    "timedelta": 60,
    "count": 2,
    "condition": [{"dimension": "bk_biz_id", "value": ["self"]}]
  }
})";

TEST_CASE("ParseConvergeConfig reads every field", "[json]") {
  absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig(kFullConfig);
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->is_enabled);
  CHECK(config->converge_func == ConvergeFunction::kSkipWhenExceed);
  CHECK(config->timedelta == 300);
  CHECK(config->max_timedelta == 600);
  CHECK(config->count == 5);
  REQUIRE(config->condition.size() == 2);
  CHECK(config->condition[0].dimension == "alert_info");
  CHECK(config->condition[0].value == std::vector<Value>{Value("self")});
  CHECK(config->condition[1].dimension == "signal");
  CHECK(config->condition[1].value ==
        std::vector<Value>{Value("abnormal"), Value(2), Value(1.5), Value(),
                           Value(true), Value(Value::List{"a", "b"})});
  CHECK_FALSE(config->need_biz_converge);
  CHECK(config->description == "a \"quoted\" text");
  // Stored compact, in document order.
  CHECK(config->context == R"({"b":[1,2.0],"a":"x"})");
  REQUIRE(config->sub_converge_config != nullptr);
  const ConvergeConfig& sub = *config->sub_converge_config;
  CHECK_FALSE(sub.is_enabled);  // upstream sets it when the level runs
  CHECK(sub.converge_func == ConvergeFunction::kCollectAlarm);
  CHECK(sub.timedelta == 60);
  CHECK(sub.count == 2);
  REQUIRE(sub.condition.size() == 1);
  CHECK(sub.condition[0].dimension == "bk_biz_id");
  CHECK(sub.sub_converge_config == nullptr);
}

TEST_CASE("ConvergeConfigToJson round-trips through ParseConvergeConfig",
          "[json]") {
  absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig(kFullConfig);
  REQUIRE(config.ok());
  std::string text = ConvergeConfigToJson(*config);
  INFO(text);
  absl::StatusOr<ConvergeConfig> again = ParseConvergeConfig(text);
  INFO(again.status().ToString());
  REQUIRE(again.ok());
  CheckSameConfig(*config, *again);
  CHECK(ConvergeConfigToJson(*again) == text);

  SECTION("a config built in code") {
    ConvergeConfig built;
    built.is_enabled = true;
    built.converge_func = ConvergeFunction::kDefense;
    built.timedelta = 120;
    built.count = 3;
    built.condition.push_back({"notice_info", {Value("self"), Value(1.0)}});
    auto sub = std::make_shared<ConvergeConfig>();
    sub->is_enabled = true;
    sub->converge_func = ConvergeFunction::kCollectAlarm;
    sub->timedelta = 60;
    sub->count = 2;
    built.sub_converge_config = sub;
    absl::StatusOr<ConvergeConfig> parsed =
        ParseConvergeConfig(ConvergeConfigToJson(built));
    INFO(parsed.status().ToString());
    REQUIRE(parsed.ok());
    CheckSameConfig(built, *parsed);
  }

  SECTION("a context that is not JSON is kept as a string") {
    ConvergeConfig built;
    built.context = "not json";
    absl::StatusOr<ConvergeConfig> parsed =
        ParseConvergeConfig(ConvergeConfigToJson(built));
    REQUIRE(parsed.ok());
    CHECK(parsed->context == "\"not json\"");
  }
}

TEST_CASE("ParseConvergeConfig defaults and empty values", "[json]") {
  SECTION("{} is a valid disabled config") {
    absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig("{}");
    REQUIRE(config.ok());
    CHECK_FALSE(config->is_enabled);
    CHECK(config->count == 1);
    CHECK(config->need_biz_converge);
    CHECK(config->condition.empty());
    CHECK(config->sub_converge_config == nullptr);
    CHECK(config->context.empty());
  }
  SECTION("null and {} mean no sub config; nulls mean not set") {
    for (const char* sub : {"null", "{}"}) {
      absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig(
          std::string(R"({"is_enabled": true, "converge_func": "collect",
              "timedelta": 60, "count": 1, "max_timedelta": null,
              "condition": null, "description": null, "context": null,
              "sub_converge_config": )") +
          sub + "}");
      INFO(config.status().ToString());
      REQUIRE(config.ok());
      CHECK(config->sub_converge_config == nullptr);
      CHECK(config->max_timedelta == 0);
      CHECK(config->condition.empty());
      CHECK(config->context.empty());
    }
  }
  SECTION(
      "null for an optional key is its default, for a required one "
      "missing") {
    absl::StatusOr<ConvergeConfig> config =
        ParseConvergeConfig(R"({"is_enabled": null, "converge_func": null,
            "timedelta": null, "count": null, "need_biz_converge": null})");
    INFO(config.status().ToString());
    REQUIRE(config.ok());
    CHECK_FALSE(config->is_enabled);
    CHECK(config->count == 1);
    CHECK(config->need_biz_converge);
    CHECK(config->timedelta == ConvergeConfig().timedelta);
    CheckInvalid(ParseConvergeConfig(R"({"is_enabled": true,
                     "converge_func": "collect", "timedelta": 60,
                     "count": null})")
                     .status(),
                 {"converge_config.count: missing required key"});
    CheckInvalid(ParseConvergeConfig(R"({"is_enabled": true,
                     "converge_func": null, "timedelta": 60, "count": 1})")
                     .status(),
                 {"converge_config.converge_func: missing required key"});
  }
  SECTION("an integral float is an integer") {
    absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig(
        R"({"is_enabled": true, "converge_func": "defense",
            "timedelta": 60.0, "count": 2e0})");
    REQUIRE(config.ok());
    CHECK(config->timedelta == 60);
    CHECK(config->count == 2);
  }
  SECTION("a disabled config needs no function, window or count") {
    absl::StatusOr<ConvergeConfig> config =
        ParseConvergeConfig(R"({"is_enabled": false, "timedelta": 30})");
    REQUIRE(config.ok());
    CHECK(config->timedelta == 30);
  }
}

TEST_CASE("upstream's notice default config parses", "[json]") {
  // Section 1.6 of converge-semantics.md: the notice relation default, with
  // the copy whose sub config also carries max_timedelta.
  constexpr const char* kNoticeDefault = R"({
    "is_enabled": true,
    "converge_func": "collect",
    "timedelta": 60,
    "count": 1,
    "condition": [
      {"dimension": "strategy_id", "value": ["self"]},
      {"dimension": "dimensions", "value": ["self"]},
      {"dimension": "alert_level", "value": ["self"]},
      {"dimension": "signal", "value": ["self"]},
      {"dimension": "bk_biz_id", "value": ["self"]},
      {"dimension": "notice_receiver", "value": ["self"]},
      {"dimension": "notice_way", "value": ["self"]}
    ],
    "need_biz_converge": true,
    "sub_converge_config": {
      "timedelta": 60,
      "max_timedelta": 60,
      "count": 2,
      "converge_func": "collect_alarm",
      "condition": [
        {"dimension": "bk_biz_id", "value": ["self"]},
        {"dimension": "notice_receiver", "value": ["self"]},
        {"dimension": "notice_way", "value": ["self"]},
        {"dimension": "alert_level", "value": ["self"]},
        {"dimension": "signal", "value": ["self"]}
      ]
    }
  })";
  absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig(kNoticeDefault);
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->is_enabled);
  CHECK(config->converge_func == ConvergeFunction::kCollect);
  CHECK(config->timedelta == 60);
  CHECK(config->count == 1);
  CHECK(config->condition.size() == 7);
  CHECK(config->need_biz_converge);
  REQUIRE(config->sub_converge_config != nullptr);
  CHECK(config->sub_converge_config->converge_func ==
        ConvergeFunction::kCollectAlarm);
  CHECK(config->sub_converge_config->max_timedelta == 60);
  CHECK(config->sub_converge_config->count == 2);
  CHECK(config->sub_converge_config->condition.size() == 5);
}

TEST_CASE("ParseConvergeConfig errors name the field path", "[json]") {
  SECTION("wrong type in the sub config") {
    CheckInvalid(ParseConvergeConfig(R"({"sub_converge_config":
                     {"converge_func": "collect_alarm", "count": "2"}})")
                     .status(),
                 {"json: converge_config.sub_converge_config.count: "
                  "expected an integer, got string"});
  }
  SECTION("missing dimension") {
    CheckInvalid(
        ParseConvergeConfig(R"({"condition": [
            {"dimension": "a", "value": []}, {"value": ["self"]}]})")
            .status(),
        {"json: converge_config.condition[1].dimension: missing required key"});
  }
  SECTION("unknown function") {
    CheckInvalid(
        ParseConvergeConfig(R"({"converge_func": "foo"})").status(),
        {"json: converge_config.converge_func: unknown converge function "
         "\"foo\""});
  }
  SECTION("malformed JSON") {
    CheckInvalid(ParseConvergeConfig(R"({"is_enabled": tru})").status(),
                 {"json: converge_config: malformed JSON at offset "});
    CheckInvalid(ParseConvergeConfig("{} x").status(),
                 {"converge_config: malformed JSON at offset 3"});
    CheckInvalid(ParseConvergeConfig("").status(),
                 {"converge_config: malformed JSON"});
  }
  SECTION("not an object") {
    CheckInvalid(ParseConvergeConfig("[]").status(),
                 {"json: converge_config: expected an object, got array"});
  }
  SECTION("is_enabled must be a bool") {
    CheckInvalid(ParseConvergeConfig(R"({"is_enabled": 1})").status(),
                 {"converge_config.is_enabled: expected a bool, got integer"});
  }
  SECTION("enabled configs need converge_func, timedelta and count") {
    CheckInvalid(ParseConvergeConfig(R"({"is_enabled": true,
                     "timedelta": 60, "count": 1})")
                     .status(),
                 {"converge_config.converge_func: missing required key"});
    CheckInvalid(ParseConvergeConfig(R"({"is_enabled": true,
                     "converge_func": "collect", "count": 1})")
                     .status(),
                 {"converge_config.timedelta: missing required key"});
    CheckInvalid(ParseConvergeConfig(R"({"is_enabled": true,
                     "converge_func": "collect", "timedelta": 60})")
                     .status(),
                 {"converge_config.count: missing required key"});
  }
  SECTION("non-integral or non-numeric integers") {
    CheckInvalid(ParseConvergeConfig(R"({"timedelta": 60.5})").status(),
                 {"converge_config.timedelta: expected an integer"});
    CheckInvalid(ParseConvergeConfig(R"({"timedelta": "60"})").status(),
                 {"converge_config.timedelta: expected an integer"});
    CheckInvalid(ParseConvergeConfig(R"({"max_timedelta": true})").status(),
                 {"converge_config.max_timedelta: expected an integer"});
    CheckInvalid(
        ParseConvergeConfig(R"({"count": 18446744073709551615})").status(),
        {"converge_config.count: ", "does not fit in int64"});
  }
  SECTION("condition shapes") {
    CheckInvalid(ParseConvergeConfig(R"({"condition": {}})").status(),
                 {"converge_config.condition: expected an array, got object"});
    CheckInvalid(ParseConvergeConfig(R"({"condition": ["x"]})").status(),
                 {"converge_config.condition[0]: expected an object"});
    CheckInvalid(
        ParseConvergeConfig(R"({"condition": [{"dimension": "a"}]})").status(),
        {"converge_config.condition[0].value: missing required key"});
    CheckInvalid(ParseConvergeConfig(
                     R"({"condition": [{"dimension": "a", "value": "self"}]})")
                     .status(),
                 {"converge_config.condition[0].value: expected an array, "
                  "got string"});
    CheckInvalid(ParseConvergeConfig(
                     R"({"condition": [{"dimension": "a", "value": [{}]}]})")
                     .status(),
                 {"converge_config.condition[0].value[0]: expected a scalar "
                  "or an array, got object"});
    CheckInvalid(ParseConvergeConfig(
                     R"({"condition": [{"dimension": "", "value": []}]})")
                     .status(),
                 {"converge_config.condition[0].dimension: must not be empty"});
    CheckInvalid(
        ParseConvergeConfig(R"({"condition": [{"dimension": 3, "value": []}]})")
            .status(),
        {"converge_config.condition[0].dimension: expected a string"});
  }
  SECTION("other field types") {
    CheckInvalid(
        ParseConvergeConfig(R"({"need_biz_converge": "yes"})").status(),
        {"converge_config.need_biz_converge: expected a bool"});
    CheckInvalid(ParseConvergeConfig(R"({"sub_converge_config": []})").status(),
                 {"converge_config.sub_converge_config: expected an object"});
    CheckInvalid(ParseConvergeConfig(R"({"description": 1})").status(),
                 {"converge_config.description: expected a string"});
    CheckInvalid(ParseConvergeConfig(R"({"converge_func": 1})").status(),
                 {"converge_config.converge_func: expected a string"});
    CheckInvalid(ParseConvergeConfig(
                     R"({"sub_converge_config": {"converge_func": "nope"}})")
                     .status(),
                 {"converge_config.sub_converge_config.converge_func: unknown "
                  "converge function \"nope\""});
  }
  SECTION("ValidateConfig errors come back with the json: prefix") {
    CheckInvalid(ParseConvergeConfig(R"({"count": -1})").status(),
                 {"json: converge_config.count"});
    CheckInvalid(
        ParseConvergeConfig(R"({"sub_converge_config": {"timedelta": -5}})")
            .status(),
        {"json: converge_config.sub_converge_config.timedelta"});
  }
  SECTION("the path argument is the root of the field path") {
    CheckInvalid(
        ParseConvergeConfig(R"({"count": "x"})", "strategy[3].config").status(),
        {"json: strategy[3].config.count: expected an integer"});
  }
}

TEST_CASE("ParseValue and ValueToJson", "[json]") {
  absl::StatusOr<Value> v =
      ParseValue(R"([null, true, -7, 9223372036854775807, 1.0, 0.1, "s", []])");
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  CHECK(*v == Value(Value::List{Value(), Value(true), Value(-7),
                                Value(int64_t{9223372036854775807}), Value(1.0),
                                Value(0.1), Value("s"), Value(Value::List{})}));
  CHECK(ValueToJson(*v) ==
        R"([null,true,-7,9223372036854775807,1.0,0.1,"s",[]])");
  absl::StatusOr<Value> again = ParseValue(ValueToJson(*v));
  REQUIRE(again.ok());
  CHECK(*again == *v);

  CHECK(ValueToJson(Value("a\"b\n")) == R"("a\"b\n")");
  CHECK(ValueToJson(Value(std::numeric_limits<double>::infinity())) == "null");

  CheckInvalid(ParseValue("9223372036854775808").status(),
               {"json: value: ", "does not fit in int64"});
  CheckInvalid(ParseValue("[1, 1e400]").status(),
               {"json: value[1]: number out of range"});
  CheckInvalid(ParseValue(R"([1, {"a": 1}])").status(),
               {"json: value[1]: expected a value, got object"});
  CheckInvalid(ParseValue("[1,", "ctx").status(),
               {"json: ctx: malformed JSON at offset"});
}

TEST_CASE("integers beyond 64 bits are refused, not read as floats", "[json]") {
  // Boost.JSON reads these as inexact floats: a context value would turn
  // into 1.8446744073709552e+19 and change the dimension.
  CheckInvalid(ParseValue(R"({"n": 18446744073709551616})").status(),
               {"json: value.n: integer 18446744073709551616 is out of the "
                "64-bit range"});
  CheckInvalid(ParseValue("[-9223372036854775809]").status(),
               {"json: value[0]: integer -9223372036854775809"});
  CheckInvalid(
      ParseAction(R"({"id": 1, "time": 1, "context": {"a": [1, {"b": 1}],)"
                  R"( "c": [2, 99999999999999999999]}})")
          .status(),
      {"json: action.context.c[1]: integer 99999999999999999999"});
  CheckInvalid(ParseValue("123456789012345678901234567890").status(),
               {"out of the 64-bit range"});
  // At the edges: read (and refused where an int64 is needed, naming it).
  CHECK(ParseValue("-9223372036854775808").ok());
  CheckInvalid(ParseValue("18446744073709551615").status(),
               {"does not fit in int64"});
  // Strings, fractions and exponents are not integers.
  CHECK(ParseValue(R"(["18446744073709551616", 1.8446744073709552e19])").ok());
  CHECK(ParseValue("[184467440737095516160.5]").ok());

  CHECK_FALSE(FindOversizedInteger(R"({"a\"1": 99999999999999999999999})")
                  ->text.empty());
  CHECK(FindOversizedInteger(R"({"a":"\"99999999999999999999999"})") ==
        std::nullopt);

  // An integral float is an integer below 2^53 only (9007199254740993.0
  // reads as 2^53).
  std::string action = R"({"id": 9007199254740991.0, "time": 1})";
  CHECK(ParseAction(action).ok());
  for (const char* id :
       {"9007199254740992.0", "9007199254740993.0", "9007199254740994.0"}) {
    action = absl::StrCat(R"({"id": )", id, R"(, "time": 1})");
    CheckInvalid(ParseAction(action).status(),
                 {"json: action.id: float ", "is beyond 2^53"});
  }
  // Deeper than the parser takes: left to its depth check.
  CHECK(FindOversizedInteger(std::string(100000, '[')) == std::nullopt);
}

TEST_CASE("ParseContext maps objects to sorted key=value lists", "[json]") {
  absl::StatusOr<Context> context = ParseContext(
      R"({"alert_info": "1_1_abnormal_x",
          "dimensions": {"ip": "1.1.1.1", "bk_cloud_id": 0, "up": true},
          "list": [1, "a"], "none": null})");
  INFO(context.status().ToString());
  REQUIRE(context.ok());
  CHECK(context->at("alert_info") == Value("1_1_abnormal_x"));
  CHECK(context->at("dimensions") ==
        Value(Value::List{"bk_cloud_id=0", "ip=1.1.1.1", "up=True"}));
  CHECK(context->at("list") == Value(Value::List{1, "a"}));
  CHECK(context->at("none").is_null());

  CheckInvalid(ParseContext("[]").status(),
               {"json: context: expected an object, got array"});
  CheckInvalid(ParseContext(R"({"d": {"k": 18446744073709551615}})").status(),
               {"json: context.d.k: "});
}

TEST_CASE("ParseAction reads a replay action", "[json]") {
  constexpr const char* kLine = R"({"type": "action", "id": 42,
      "time": 1700000000.25, "bk_biz_id": "2", "strategy_id": 7,
      "signal": "abnormal", "alert_level": 1, "plugin_type": "notice",
      "action_config_id": 9, "alerts": ["a1", 17], "is_parent": false,
      "shielded": true, "execute_timeout": 600,
      "converge_config": {"is_enabled": true},
      "context": {"notice_way": "mail", "dimensions": {"b": 2, "a": "x"}}})";
  absl::StatusOr<Action> action = ParseAction(kLine);
  INFO(action.status().ToString());
  REQUIRE(action.ok());
  CHECK(action->id == 42);
  CHECK(action->create_time ==
        absl::FromUnixSeconds(1700000000) + absl::Milliseconds(250));
  CHECK(action->bk_biz_id == 2);
  CHECK(action->strategy_id == 7);
  CHECK(action->signal == "abnormal");
  CHECK(action->alert_level == 1);
  CHECK(action->plugin_type == "notice");
  CHECK(action->action_config_id == 9);
  CHECK(action->alerts == std::vector<std::string>{"a1", "17"});
  CHECK_FALSE(action->is_parent);
  CHECK(action->shielded);
  CHECK(action->execute_timeout == 600);
  CHECK(action->context.at("notice_way") == Value("mail"));
  CHECK(action->context.at("dimensions") == Value(Value::List{"a=x", "b=2"}));

  SECTION("only id and time are required") {
    absl::StatusOr<Action> minimal =
        ParseAction(R"({"id": 1, "time": 100, "strategy_id": null})");
    REQUIRE(minimal.ok());
    CHECK(minimal->create_time == absl::FromUnixSeconds(100));
    CHECK(minimal->alert_level == 3);
    CHECK(minimal->bk_biz_id == 0);
    CHECK(minimal->strategy_id == 0);
    CHECK(minimal->alerts.empty());
    CHECK(minimal->context.empty());
  }
  SECTION("ActionToJson round-trips") {
    std::string text = ActionToJson(*action);
    INFO(text);
    absl::StatusOr<Action> again = ParseAction(text);
    REQUIRE(again.ok());
    CHECK(again->id == action->id);
    CHECK(again->create_time == action->create_time);
    CHECK(again->bk_biz_id == action->bk_biz_id);
    CHECK(again->alerts == action->alerts);
    CHECK(again->shielded == action->shielded);
    CHECK(again->context == action->context);
    CHECK(ActionToJson(*again) == text);
  }
}

TEST_CASE("ParseAction errors name the field path", "[json]") {
  CheckInvalid(ParseAction(R"({"time": 1})").status(),
               {"json: action.id: missing required key"});
  CheckInvalid(ParseAction(R"({"id": 0, "time": 1})").status(),
               {"json: action.id: must be > 0"});
  CheckInvalid(ParseAction(R"({"id": "1", "time": 1})").status(),
               {"json: action.id: expected an integer, got string"});
  CheckInvalid(ParseAction(R"({"id": 1})").status(),
               {"json: action.time: missing required key"});
  CheckInvalid(ParseAction(R"({"id": 1, "time": "now"})").status(),
               {"json: action.time: expected a number"});
  CheckInvalid(ParseAction(R"({"id": 1, "time": 1e300})").status(),
               {"json: action.time: ", "out of range"});
  CheckInvalid(ParseAction(R"({"id": 1, "time": 1, "alerts": "a1"})").status(),
               {"json: action.alerts: expected an array, got string"});
  CheckInvalid(
      ParseAction(R"({"id": 1, "time": 1, "alerts": ["a1", ""]})").status(),
      {"json: action.alerts[1]: empty alert id"});
  for (const char* biz : {" 42", "+42", "42 ", "", "-", "4 2"}) {
    INFO(biz);
    CheckInvalid(ParseAction(absl::StrCat(R"({"id": 1, "time": 1, )",
                                          R"("bk_biz_id": ")", biz, R"("})"))
                     .status(),
                 {"json: action.bk_biz_id: expected an integer or a numeric "
                  "string"});
  }
  CHECK(ParseAction(R"({"id": 1, "time": 1, "bk_biz_id": "-7"})")->bk_biz_id ==
        -7);
  CheckInvalid(
      ParseAction(R"({"id": 1, "time": 1, "alerts": ["a", 1.5]})").status(),
      {"json: action.alerts[1]: expected a string or an integer, got float"});
  CheckInvalid(
      ParseAction(R"({"id": 1, "time": 1, "bk_biz_id": "abc"})").status(),
      {"json: action.bk_biz_id: expected an integer or a numeric string"});
  CheckInvalid(ParseAction(R"({"id": 1, "time": 1, "shielded": 1})").status(),
               {"json: action.shielded: expected a bool"});
  CheckInvalid(ParseAction(R"({"id": 1, "time": 1, "context": []})").status(),
               {"json: action.context: expected an object"});
  CheckInvalid(ParseAction("[1]", "line 3").status(),
               {"json: line 3: expected an object, got array"});
  CheckInvalid(ParseAction(R"({"id": 1,)").status(),
               {"json: action: malformed JSON at offset"});
}

constexpr const char* kEventLine = R"({"type": "action", "id": 7,
    "time": 1700000100.5, "bk_biz_id": 2, "strategy_id": 11,
    "signal": "abnormal", "alert_level": 2, "plugin_type": "webhook",
    "alerts": ["a7"],
    "context": {"dimensions": {"ip": "10.0.0.1"}},
    "converge_config": {"is_enabled": true, "converge_func": "defense",
      "timedelta": 600, "count": 5,
      "condition": [{"dimension": "alert_info", "value": ["self"]}]}})";

TEST_CASE("ParseActionEvent reads a replay line", "[json]") {
  absl::StatusOr<ActionEvent> event = ParseActionEvent(kEventLine);
  INFO(event.status().ToString());
  REQUIRE(event.ok());
  CHECK(event->action.id == 7);
  CHECK(event->action.create_time ==
        absl::FromUnixSeconds(1700000100) + absl::Milliseconds(500));
  CHECK(event->action.bk_biz_id == 2);
  CHECK(event->action.strategy_id == 11);
  CHECK(event->action.alert_level == 2);
  CHECK(event->action.plugin_type == "webhook");
  CHECK(event->action.alerts == std::vector<std::string>{"a7"});
  CHECK(event->action.context.at("dimensions") ==
        Value(Value::List{"ip=10.0.0.1"}));
  CHECK(event->config.is_enabled);
  CHECK(event->config.converge_func == ConvergeFunction::kDefense);
  CHECK(event->config.timedelta == 600);
  CHECK(event->config.count == 5);
  REQUIRE(event->config.condition.size() == 1);
  CHECK(event->config.condition[0].dimension == "alert_info");
  CHECK(event->config.condition[0].value == std::vector<Value>{"self"});

  SECTION("the same fields as ParseAction and ParseConvergeConfig") {
    absl::StatusOr<Action> action = ParseAction(kEventLine);
    REQUIRE(action.ok());
    CHECK(ActionToJson(event->action) == ActionToJson(*action));
    absl::StatusOr<ConvergeConfig> config = ParseConvergeConfig(
        R"({"is_enabled": true, "converge_func": "defense",
            "timedelta": 600, "count": 5,
            "condition": [{"dimension": "alert_info", "value": ["self"]}]})");
    REQUIRE(config.ok());
    CheckSameConfig(event->config, *config);
  }
  SECTION("an empty converge_config is a disabled config") {
    absl::StatusOr<ActionEvent> disabled = ParseActionEvent(
        R"({"type": "action", "id": 1, "time": 5, "converge_config": {}})");
    REQUIRE(disabled.ok());
    CHECK_FALSE(disabled->config.is_enabled);
    CHECK(disabled->action.create_time == absl::FromUnixSeconds(5));
  }
}

TEST_CASE("ParseActionEvent requires converge_config and type", "[json]") {
  CheckInvalid(
      ParseActionEvent(R"({"type": "action", "id": 1, "time": 1})").status(),
      {"json: line.converge_config: missing required key"});
  CheckInvalid(ParseActionEvent(R"({"type": "action", "id": 1, "time": 1,
                                    "converge_config": null})")
                   .status(),
               {"json: line.converge_config: expected an object, got null"});
  CheckInvalid(
      ParseActionEvent(
          R"({"type": "status", "id": 1, "time": 1, "converge_config": {}})")
          .status(),
      {"json: line.type: ", "\"action\"", "\"status\""});
  CheckInvalid(
      ParseActionEvent(R"({"id": 1, "time": 1, "converge_config": {}})")
          .status(),
      {"json: line.type: missing required key"});
  CheckInvalid(ParseActionEvent(
                   R"({"type": 1, "id": 1, "time": 1, "converge_config": {}})")
                   .status(),
               {"json: line.type: expected a string, got integer"});
  CheckInvalid(ParseActionEvent("[]").status(),
               {"json: line: expected an object, got array"});
  CheckInvalid(ParseActionEvent(R"({"type": "action",)").status(),
               {"json: line: malformed JSON at offset"});
}

TEST_CASE("ParseActionEvent errors name the field path", "[json]") {
  CheckInvalid(ParseActionEvent(R"({"type": "action", "time": 1,
                                    "converge_config": {}})",
                                "line 12")
                   .status(),
               {"json: line 12.id: missing required key"});
  CheckInvalid(ParseActionEvent(R"({"type": "action", "id": 1, "time": 1,
                                    "alerts": ["a", 1.5],
                                    "converge_config": {}})",
                                "line 3")
                   .status(),
               {"json: line 3.alerts[1]: expected a string or an integer"});
  CheckInvalid(ParseActionEvent(R"({"type": "action", "id": 1, "time": 1,
                                    "converge_config": {"is_enabled": true,
                                      "converge_func": "collect",
                                      "timedelta": "60", "count": 1}})",
                                "line 4")
                   .status(),
               {"json: line 4.converge_config.timedelta: expected an integer, "
                "got string"});
  CheckInvalid(ParseActionEvent(R"({"type": "action", "id": 1, "time": 1,
                                    "converge_config": {"is_enabled": true,
                                      "converge_func": "nope",
                                      "timedelta": 60, "count": 1}})")
                   .status(),
               {"json: line.converge_config.converge_func: ",
                "unknown converge function"});
  CheckInvalid(ParseActionEvent(R"({"type": "action", "id": 1, "time": 1,
                                    "converge_config": {"is_enabled": true,
                                      "converge_func": "collect",
                                      "timedelta": 60}})")
                   .status(),
               {"json: line.converge_config.count: missing required key"});
  CheckInvalid(ParseActionEvent(R"({"type": "action", "id": 1, "time": 1,
                                    "converge_config": {"count": -1}})",
                                "line 9")
                   .status(),
               {"json: line 9.converge_config.count"});
  CheckInvalid(ParseActionEvent(R"({"type": "action", "id": 1, "time": 1,
                                    "converge_config": {
                                      "sub_converge_config": {"count": "x"}}})")
                   .status(),
               {"json: line.converge_config.sub_converge_config.count: "
                "expected an integer"});
}

TEST_CASE("oversized and deeply nested input is rejected", "[json]") {
  SECTION("more than 1 MiB") {
    std::string text = R"({"description": ")";
    text.append(kMaxInputBytes, 'x');
    text.append("\"}");
    CheckInvalid(ParseConvergeConfig(text).status(),
                 {"json: converge_config: ", "exceeds 1048576 bytes"});
    CheckInvalid(ParseValue(text).status(), {"exceeds 1048576 bytes"});
    CheckInvalid(ParseAction(text).status(), {"exceeds 1048576 bytes"});
    CheckInvalid(ParseActionEvent(text).status(),
                 {"json: line: ", "exceeds 1048576 bytes"});
  }
  SECTION("exactly 1 MiB is accepted") {
    std::string text = "\"";
    text.append(kMaxInputBytes - 2, 'x');
    text.append("\"");
    REQUIRE(text.size() == kMaxInputBytes);
    CHECK(ParseValue(text).ok());
  }
  SECTION("nesting") {
    auto nested = [](int depth) {
      return std::string(depth, '[') + std::string(depth, ']');
    };
    CHECK(ParseValue(nested(kMaxDepth)).ok());
    CheckInvalid(ParseValue(nested(kMaxDepth + 1)).status(),
                 {"json: value: nesting deeper than 32"});
    CheckInvalid(ParseValue(nested(100000)).status(),
                 {"nesting deeper than 32"});
  }
}

}  // namespace
}  // namespace converge::json
