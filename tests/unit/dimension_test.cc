// Properties of D beyond the fixed vectors in dimension_vectors_test.cc.

#include "converge/dimension.h"

#include <catch2/catch.hpp>

namespace converge {
namespace {

ConvergeConfig WithCondition(std::vector<Condition> condition,
                             ConvergeFunction func) {
  ConvergeConfig c;
  c.is_enabled = true;
  c.converge_func = func;
  c.timedelta = 60;
  c.condition = std::move(condition);
  return c;
}

TEST_CASE("D has upstream's shape and depends on function and values",
          "[dimension]") {
  Context ctx{{"alert_info", "a"}, {"notice_info", "n"}};
  ConvergeConfig c =
      WithCondition({{"alert_info", {"self"}}}, ConvergeFunction::kCollect);
  DimensionResult r = ComputeDimension(c, c, ctx);
  CHECK(r.dimension.size() == 46);
  CHECK(r.dimension.rfind("!sha1#", 0) == 0);
  CHECK(r.dimension == "!sha1#" + Sha1Hex(r.canonical_text));
  CHECK(r.canonical_text == "#collect|alert_info:a");

  // Another function never shares an instance with this one.
  ConvergeConfig other = c;
  other.converge_func = ConvergeFunction::kSkipWhenExceed;
  CHECK(ComputeDimension(other, other, ctx).dimension != r.dimension);
  // Another value gives another D.
  Context ctx2{{"alert_info", "b"}};
  CHECK(ComputeDimension(c, c, ctx2).dimension != r.dimension);
}

TEST_CASE("original condition entries win over effective ones", "[dimension]") {
  ConvergeConfig eff =
      WithCondition({{"notice_info", {"self"}}}, ConvergeFunction::kCollect);
  ConvergeConfig orig =
      WithCondition({{"notice_info", {"literal"}}, {"alert_info", {"self"}}},
                    ConvergeFunction::kCollect);
  Context ctx{{"alert_info", "a"}, {"notice_info", "n"}};
  DimensionResult r = ComputeDimension(eff, orig, ctx);
  CHECK(r.canonical_text == "#collect|alert_info:a|notice_info:literal");
  CHECK(r.converged_condition.at("notice_info") ==
        std::vector<Value>{Value("literal")});
}

TEST_CASE("RenderDimensionValue renders as Python str and joins lists",
          "[dimension]") {
  CHECK(RenderDimensionValue(Value(7)) == "7");
  CHECK(RenderDimensionValue(Value()) == "None");
  CHECK(RenderDimensionValue(Value(true)) == "True");
  CHECK(RenderDimensionValue(Value(Value::List{"a", 1, "c"})) == "a,1,c");
  CHECK(RenderDimensionValue(Value(Value::List{})) == "");
  // Four or more: the fixed md5 form instead of upstream's crash.
  const std::string h = Md5Hex("a,b,c,d").substr(0, 5);
  CHECK(RenderDimensionValue(Value(Value::List{"a", "b", "c", "d"})) ==
        "a," + h + ".2,d");
}

}  // namespace
}  // namespace converge
