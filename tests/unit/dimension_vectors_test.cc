// Dimension D vectors for ComputeDimension.
//
// The expected canonical texts, D values and converged conditions in the
// "Python vector" cases come from tests/unit/gen_dimension_vectors.py, a
// transcription of upstream's get_dimension / get_dimension_value (with our
// md5 fix for lists of four or more items) that uses only Python's hashlib
// and str(). They were computed independently of the C++ code and are
// embedded literally; rerun the script to see where each one comes from.
//
// The "hand-computed" cases at the end check only the canonical text, which
// is short enough to verify by eye.

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "converge/config.h"
#include "converge/dimension.h"
#include "converge/model.h"
#include "converge/types.h"
#include "converge/value.h"

namespace converge {
namespace {

ConvergeConfig MakeConfig(ConvergeFunction func,
                          std::vector<Condition> condition) {
  ConvergeConfig config;
  config.is_enabled = true;
  config.converge_func = func;
  config.timedelta = 60;
  config.count = 1;
  config.condition = std::move(condition);
  return config;
}

// "self" conditions for each key, as upstream's default configs spell them.
std::vector<Condition> SelfConditions(std::vector<std::string> keys) {
  std::vector<Condition> out;
  for (std::string& key : keys) {
    out.push_back(Condition{std::move(key), {Value("self")}});
  }
  return out;
}

// Kind-tagged rendering for failure messages (PyStr alone cannot tell the
// int 42 from the string "42").
std::string Describe(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      return "None";
    case Value::Kind::kBool:
      return v.as_bool() ? "True" : "False";
    case Value::Kind::kInt:
      return "int:" + std::to_string(v.as_int());
    case Value::Kind::kDouble:
      return "float:" + std::to_string(v.as_double());
    case Value::Kind::kString:
      return "'" + v.as_string() + "'";
    case Value::Kind::kList: {
      std::string out = "[";
      for (const Value& item : v.as_list()) {
        if (out.size() > 1) out += ", ";
        out += Describe(item);
      }
      return out + "]";
    }
  }
  return "?";
}

std::string Describe(const ConvergedCondition& cc) {
  std::string out = "{";
  for (const auto& [key, values] : cc) {
    if (out.size() > 1) out += ", ";
    out += "'" + key + "': [";
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += ", ";
      out += Describe(values[i]);
    }
    out += "]";
  }
  return out + "}";
}

void CheckVector(const DimensionResult& got, const std::string& text,
                 const std::string& dimension,
                 const ConvergedCondition& converged) {
  CHECK(got.canonical_text == text);
  CHECK(got.dimension == dimension);
  INFO("got converged_condition:      " << Describe(got.converged_condition));
  INFO("expected converged_condition: " << Describe(converged));
  CHECK(got.converged_condition == converged);
}

// ---------------------------------------------------------------------------
// Python vectors (gen_dimension_vectors.py).

TEST_CASE("Python vector 1: skip_when_exceed on alert_info", "[dimension]") {
  const ConvergeConfig config = MakeConfig(ConvergeFunction::kSkipWhenExceed,
                                           SelfConditions({"alert_info"}));
  const Context context{
      {"alert_info", "1001_1_abnormal_d41d8cd98f00b204e9800998ecf8427e"}};

  CheckVector(ComputeDimension(config, config, context),
              "#skip_when_exceed|alert_info:"
              "1001_1_abnormal_d41d8cd98f00b204e9800998ecf8427e",
              "!sha1#d2794977c267ef84b83e797a6476944c9cd962c1",
              {{"alert_info",
                {Value("1001_1_abnormal_d41d8cd98f00b204e9800998ecf8427e")}}});
}

TEST_CASE(
    "Python vector 2: notice override covers notice_info and the "
    "original keys",
    "[dimension]") {
  const ConvergeConfig effective =
      MakeConfig(ConvergeFunction::kCollect, SelfConditions({"notice_info"}));
  const ConvergeConfig original = MakeConfig(
      ConvergeFunction::kCollect,
      SelfConditions({"strategy_id", "dimensions", "alert_level", "signal",
                      "bk_biz_id", "notice_receiver", "notice_way"}));
  // dimensions = md5("bk_target_ip=10.0.0.1");
  // alert_info = "{strategy_id}_{alert_level}_{signal}_{dimensions}";
  // notice_info = "{alert_info}_{notice_way}_{notice_receiver}".
  const Context context{
      {"strategy_id", Value(int64_t{42})},
      {"alert_level", Value(int64_t{2})},
      {"signal", "abnormal"},
      {"bk_biz_id", Value(int64_t{2})},
      {"dimensions", "e9ea7fde42efc03a77a168439afd898b"},
      {"alert_info", "42_2_abnormal_e9ea7fde42efc03a77a168439afd898b"},
      {"notice_way", "mail"},
      {"notice_receiver", "admin"},
      {"notice_info",
       "42_2_abnormal_e9ea7fde42efc03a77a168439afd898b_mail_admin"},
      {"action_info", "42_abnormal_7"},  // not in the condition
  };

  CheckVector(
      ComputeDimension(effective, original, context),
      "#collect|alert_level:2|bk_biz_id:2|dimensions:"
      "e9ea7fde42efc03a77a168439afd898b|notice_info:42_2_abnormal_"
      "e9ea7fde42efc03a77a168439afd898b_mail_admin|notice_receiver:admin|"
      "notice_way:mail|signal:abnormal|strategy_id:42",
      "!sha1#6960233cdd66e4f1ec4135f09c9d110f7dc0d540",
      {{"alert_level", {Value(int64_t{2})}},
       {"bk_biz_id", {Value(int64_t{2})}},
       {"dimensions", {Value("e9ea7fde42efc03a77a168439afd898b")}},
       {"notice_info",
        {Value("42_2_abnormal_e9ea7fde42efc03a77a168439afd898b_mail_admin")}},
       {"notice_receiver", {Value("admin")}},
       {"notice_way", {Value("mail")}},
       {"signal", {Value("abnormal")}},
       {"strategy_id", {Value(int64_t{42})}}});
}

TEST_CASE(
    "Python vector 3: literals mixed with self, original overrides "
    "effective",
    "[dimension]") {
  const ConvergeConfig effective = MakeConfig(
      ConvergeFunction::kDefense, {Condition{"strategy_id", {Value("self")}},
                                   Condition{"extra", {Value("x")}}});
  const ConvergeConfig original = MakeConfig(
      ConvergeFunction::kDefense,
      {Condition{"strategy_id",
                 {Value("self"), Value("literal"), Value(int64_t{7})}}});
  const Context context{{"strategy_id", Value(int64_t{42})},
                        {"extra", "ignored (literal)"}};

  CheckVector(
      ComputeDimension(effective, original, context),
      "#defense|extra:x|strategy_id:42|strategy_id:literal|strategy_id:7",
      "!sha1#c1066305897c0fcc416af920068841c1813cbf9c",
      {{"extra", {Value("x")}},
       {"strategy_id",
        {Value(int64_t{42}), Value("literal"), Value(int64_t{7})}}});
}

TEST_CASE("Python vector 4: lists under four items are joined", "[dimension]") {
  const ConvergeConfig config = MakeConfig(
      ConvergeFunction::kSkipWhenSuccess,
      {Condition{"hosts", {Value("self")}}, Condition{"mixed", {Value("self")}},
       // A literal list renders like a context list.
       Condition{"pair", {Value(Value::List{Value("x"), Value("y")})}}});
  const Context context{
      {"hosts", Value(Value::List{Value("10.0.0.1"), Value("10.0.0.2")})},
      {"mixed", Value(Value::List{Value(int64_t{1}), Value("b"), Value(true)})},
  };

  CheckVector(ComputeDimension(config, config, context),
              "#skip_when_success|hosts:10.0.0.1,10.0.0.2|mixed:1,b,True|"
              "pair:x,y",
              "!sha1#0c1cb47fd8bf4fc316c4531fbb7be19a71128398",
              {{"hosts", {Value("10.0.0.1")}},
               {"mixed", {Value(int64_t{1})}},
               {"pair", {Value("x")}}});
}

TEST_CASE("Python vector 5: lists of four or more items use the md5 form",
          "[dimension]") {
  const ConvergeConfig config = MakeConfig(
      ConvergeFunction::kCollectAlarm, SelfConditions({"receivers", "four"}));
  const Context context{
      {"receivers",
       Value(Value::List{Value("alice"), Value("bob"), Value("carol"),
                         Value("dave"), Value("eve")})},
      {"four", Value(Value::List{Value(int64_t{1}), Value(int64_t{2}),
                                 Value(int64_t{3}), Value(int64_t{4})})},
  };

  // md5("alice,bob,carol,dave,eve")[:5] == "03282";
  // md5("1,2,3,4")[:5] == "f8ef5".
  CheckVector(ComputeDimension(config, config, context),
              "#collect_alarm|four:1,f8ef5.2,4|receivers:alice,03282.3,eve",
              "!sha1#7a57ce2b88a6d7714bb3bc66725d65a6e2cb6221",
              {{"four", {Value(int64_t{1})}}, {"receivers", {Value("alice")}}});
}

TEST_CASE("Python vector 6: missing key, None, bools, UTF-8, key order",
          "[dimension]") {
  const ConvergeConfig config =
      MakeConfig(ConvergeFunction::kTrigger,
                 SelfConditions({"missing", "none", "flag", "off", "receiver",
                                 "Zone", "alpha"}));
  const Context context{
      {"none", Value()},          {"flag", Value(true)}, {"off", Value(false)},
      {"receiver", "告警接收人"}, {"Zone", "z"},         {"alpha", "a"},
  };

  // "Zone" sorts before "alpha" (codepoint order); "missing" renders as "".
  CheckVector(ComputeDimension(config, config, context),
              "#trigger|Zone:z|alpha:a|flag:True|missing:|none:None|"
              "off:False|receiver:告警接收人",
              "!sha1#464be8603719fcfa4542521caed1b6dcc2d88d52",
              {{"Zone", {Value("z")}},
               {"alpha", {Value("a")}},
               {"flag", {Value(true)}},
               {"missing", {Value("")}},
               {"none", {Value()}},
               {"off", {Value(false)}},
               {"receiver", {Value("告警接收人")}}});
}

TEST_CASE("Python vector 7: an empty value list adds no part", "[dimension]") {
  const ConvergeConfig effective = MakeConfig(
      ConvergeFunction::kRelevance,
      {Condition{"empty", {}}, Condition{"strategy_id", {Value("self")}}});
  const ConvergeConfig original = MakeConfig(ConvergeFunction::kRelevance, {});
  const Context context{{"strategy_id", Value(int64_t{1})}};

  CheckVector(ComputeDimension(effective, original, context),
              "#relevance|strategy_id:1",
              "!sha1#5a5ea5961f29e054e679245a4e1de473949adf17",
              {{"empty", {}}, {"strategy_id", {Value(int64_t{1})}}});
}

// ---------------------------------------------------------------------------
// Hand-computed canonical texts.

TEST_CASE("Hand-computed: one self key with an int value", "[dimension]") {
  const ConvergeConfig config =
      MakeConfig(ConvergeFunction::kDefense, SelfConditions({"strategy_id"}));
  const Context context{{"strategy_id", Value(int64_t{1})}};
  CHECK(ComputeDimension(config, config, context).canonical_text ==
        "#defense|strategy_id:1");
}

TEST_CASE("Hand-computed: keys sorted, values in list order, missing is empty",
          "[dimension]") {
  // Condition order b, a; the text has a before b. a's values keep their
  // order (literal "x" first). b is not in the context.
  const ConvergeConfig config =
      MakeConfig(ConvergeFunction::kSkipWhenSuccess,
                 {Condition{"b", {Value("self")}},
                  Condition{"a", {Value("x"), Value("self")}}});
  const Context context{{"a", "1"}};
  CHECK(ComputeDimension(config, config, context).canonical_text ==
        "#skip_when_success|a:x|a:1|b:");
}

TEST_CASE("Hand-computed: the original condition wins per key", "[dimension]") {
  const ConvergeConfig effective = MakeConfig(
      ConvergeFunction::kWaitWhenProceed,
      {Condition{"k", {Value("e")}}, Condition{"j", {Value("self")}}});
  const ConvergeConfig original = MakeConfig(ConvergeFunction::kWaitWhenProceed,
                                             {Condition{"k", {Value("o")}}});
  const Context context{{"j", Value(false)}};
  CHECK(ComputeDimension(effective, original, context).canonical_text ==
        "#wait_when_proceed|j:False|k:o");
}

TEST_CASE(
    "Python vector 8: a nested list renders its strings as Python's repr, "
    "non-printable characters escaped",
    "[dimension]") {
  const ConvergeConfig config =
      MakeConfig(ConvergeFunction::kSkipWhenSuccess,
                 {Condition{"nested", {Value("self")}}});
  const Context context{
      {"nested", Value(Value::List{Value(Value::List{Value("a\u3000b"),
                                                     Value("\u00a0\u200b")}),
                                   Value("中文😀")})}};

  CheckVector(
      ComputeDimension(config, config, context),
      "#skip_when_success|nested:['a\\u3000b', '\\xa0\\u200b'],中文😀",
      "!sha1#9562aa81afd68b51a85129507d6a1790fc05a72b",
      {{"nested",
        {Value(Value::List{Value("a\u3000b"), Value("\u00a0\u200b")})}}});
}

}  // namespace
}  // namespace converge
