// The action task codec: round trips, and decoding that never trusts its
// input (truncations, flipped bytes, hostile lengths and nesting).

#include "converge/codec.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "test_util.h"

namespace converge::testing {
namespace {

// Field-by-field comparison (the model types have no operator==).
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

void CheckSameAction(const Action& a, const Action& b) {
  CHECK(a.id == b.id);
  CHECK(a.create_time == b.create_time);
  CHECK(a.bk_biz_id == b.bk_biz_id);
  CHECK(a.strategy_id == b.strategy_id);
  CHECK(a.signal == b.signal);
  CHECK(a.alert_level == b.alert_level);
  CHECK(a.plugin_type == b.plugin_type);
  CHECK(a.action_config_id == b.action_config_id);
  CHECK(a.alerts == b.alerts);
  CHECK(a.is_parent == b.is_parent);
  CHECK(a.shielded == b.shielded);
  CHECK(a.execute_timeout == b.execute_timeout);
  CHECK(a.context == b.context);
}

Value Nested(int depth) {
  Value v = "leaf";
  for (int i = 0; i < depth; ++i) v = Value(Value::List{v});
  return v;
}

Action RichAction() {
  Action a;
  a.id = std::numeric_limits<int64_t>::max();
  a.create_time = absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(123);
  a.bk_biz_id = -2;
  a.strategy_id = 42;
  a.signal = "abnormal";
  a.alert_level = std::numeric_limits<int>::min();
  a.plugin_type = "notice";
  a.action_config_id = std::numeric_limits<int64_t>::min();
  a.alerts = {"a1", "", std::string("nul\0byte", 8),
              "\xe4\xb8\xad\xe6\x96\x87"};
  a.is_parent = true;
  a.shielded = false;
  a.execute_timeout = 3600;
  a.context = {
      {"null", Value()},
      {"t", true},
      {"f", false},
      {"int", int64_t{-1234567890123}},
      {"double", 0.1},
      {"negzero", -0.0},
      {"inf", std::numeric_limits<double>::infinity()},
      {"tiny", std::numeric_limits<double>::denorm_min()},
      {"str", "mail"},
      {"", ""},
      {"list", Value::List{"a", 1, 2.5, Value(), Value::List{true, "x"},
                           Value::List{}}},
      {"deep", Nested(kMaxValueNesting)},
  };
  return a;
}

ConvergeConfig RichConfig() {
  ConvergeConfig c;
  c.is_enabled = true;
  c.converge_func = ConvergeFunction::kTrigger;
  c.timedelta = 120;
  c.max_timedelta = 0;
  c.count = -1;  // the codec carries what it is given; validation is not
                 // its job
  c.condition = {Condition{"notice_info", {"self"}},
                 Condition{"bk_biz_id", {2, "3", Value::List{4, 5}}},
                 Condition{"empty", {}}};
  c.need_biz_converge = false;
  c.description = "desc";
  c.context = "{\"k\": 1}";
  auto sub = std::make_shared<ConvergeConfig>();
  sub->is_enabled = true;
  sub->converge_func = ConvergeFunction::kCollect;
  sub->timedelta = 120;
  sub->count = 3;
  sub->condition = {Condition{"bk_biz_id", {"self"}}};
  auto subsub = std::make_shared<ConvergeConfig>();
  subsub->converge_func = ConvergeFunction::kSkipWhenSuccess;
  sub->sub_converge_config = subsub;
  c.sub_converge_config = sub;
  return c;
}

// Bytes by hand, for inputs the encoder never writes.
struct Bytes {
  std::string s;
  Bytes& B(uint8_t b) {
    s.push_back(static_cast<char>(b));
    return *this;
  }
  Bytes& U(uint64_t v) {
    while (v >= 0x80) {
      B(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    return B(static_cast<uint8_t>(v));
  }
  Bytes& Z(int64_t v) {
    return U((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  Bytes& S(std::string_view v) {
    U(v.size());
    s.append(v);
    return *this;
  }
  // The action prefix up to (excluding) the signal.
  Bytes& ActionHead() {
    return B(kActionTaskFormat).Z(1).B(0).Z(1000).U(0).Z(2).Z(10);
  }
};

void CheckRejected(std::string_view data, std::string_view needle) {
  absl::StatusOr<ActionTask> t = DecodeActionTask(data);
  INFO(t.status().ToString());
  REQUIRE(t.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StartsWith(t.status().message(), "action task: "));
  CHECK_THAT(std::string(t.status().message()),
             Catch::Matchers::Contains(std::string(needle)));
}

TEST_CASE("codec: rich action and config round trip", "[codec]") {
  const Action a = RichAction();
  const ConvergeConfig c = RichConfig();
  REQUIRE(ValidateActionTask(a, c).ok());
  const std::string enc = EncodeActionTask(a, c);
  CHECK(static_cast<uint8_t>(enc[0]) == kActionTaskFormat);
  absl::StatusOr<ActionTask> t = DecodeActionTask(enc);
  INFO(t.status().ToString());
  REQUIRE(t.ok());
  CheckSameAction(t->action, a);
  CheckSameConfig(t->config, c);
  CHECK(std::signbit(t->action.context.at("negzero").as_double()));
  // Deterministic: the same input encodes to the same bytes.
  CHECK(EncodeActionTask(t->action, t->config) == enc);
}

TEST_CASE("codec: defaults, NaN and special times round trip", "[codec]") {
  const Action plain;
  const ConvergeConfig none;
  absl::StatusOr<ActionTask> t =
      DecodeActionTask(EncodeActionTask(plain, none));
  REQUIRE(t.ok());
  CheckSameAction(t->action, plain);
  CheckSameConfig(t->config, none);

  for (absl::Time time :
       {absl::InfinitePast(), absl::InfiniteFuture(), absl::UnixEpoch(),
        absl::UnixEpoch() - absl::Nanoseconds(1),
        absl::FromUnixSeconds(-86400 * 365) + absl::Milliseconds(250),
        absl::FromUnixSeconds(253402300799) + absl::Nanoseconds(999999999)}) {
    Action a;
    a.create_time = time;
    t = DecodeActionTask(EncodeActionTask(a, none));
    REQUIRE(t.ok());
    CHECK(t->action.create_time == time);
  }

  Action a;
  a.context["nan"] = std::numeric_limits<double>::quiet_NaN();
  t = DecodeActionTask(EncodeActionTask(a, none));
  REQUIRE(t.ok());
  CHECK(std::isnan(t->action.context.at("nan").as_double()));
}

TEST_CASE("codec: every truncation of a valid encoding fails cleanly",
          "[codec]") {
  const std::string enc = EncodeActionTask(RichAction(), RichConfig());
  for (size_t n = 0; n < enc.size(); ++n) {
    absl::StatusOr<ActionTask> t = DecodeActionTask(enc.substr(0, n));
    INFO("prefix of " << n << " bytes: " << t.status().ToString());
    REQUIRE(t.status().code() == absl::StatusCode::kInvalidArgument);
    // Cutting inside a length-prefixed string can leave a length that
    // points past the end: reported as such, not as a truncation.
    const std::string msg(t.status().message());
    CHECK(absl::StartsWith(msg, "action task: "));
    const bool truncated = absl::StrContains(
        msg, absl::StrCat("truncated at byte ", n, " reading "));
    const bool past_end = absl::StrContains(msg, " bytes left");
    CHECK((truncated || past_end));
  }
}

TEST_CASE("codec: a truncation names the field it was reading", "[codec]") {
  Action a;
  a.id = 1;
  a.context = {{"k", int64_t{1} << 40}};
  const std::string enc = EncodeActionTask(a, ConvergeConfig{});
  // The context value is the int tag 3 followed by its varint, right after
  // the key "k": cut in the middle of the varint.
  const size_t key = enc.find("\x01k\x03");
  REQUIRE(key != std::string::npos);
  const size_t cut = key + 4;
  CheckRejected(
      enc.substr(0, cut),
      absl::StrCat("truncated at byte ", cut, " reading action.context value"));
  // A cut inside the config names the config field.
  const std::string cfg_cut = EncodeActionTask(a, RichConfig());
  CheckRejected(cfg_cut.substr(0, cfg_cut.size() - 1),
                "reading converge_config.sub_converge_config.");
}

TEST_CASE("codec: random byte flips never crash", "[codec]") {
  const std::string enc = EncodeActionTask(RichAction(), RichConfig());
  std::mt19937_64 rng(20241127);
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string mutated = enc;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = rng() % mutated.size();
      if (rng() % 2 == 0) {
        mutated[at] = static_cast<char>(mutated[at] ^ (1 << (rng() % 8)));
      } else {
        mutated[at] = static_cast<char>(rng());
      }
    }
    if (i % 10 == 0) mutated.resize(rng() % mutated.size());
    absl::StatusOr<ActionTask> t = DecodeActionTask(mutated);
    if (t.ok()) {
      ++decoded;
      // Whatever decodes encodes again to something that decodes.
      REQUIRE(DecodeActionTask(EncodeActionTask(t->action, t->config)).ok());
    } else {
      REQUIRE(t.status().code() == absl::StatusCode::kInvalidArgument);
      REQUIRE(absl::StartsWith(t.status().message(), "action task: "));
    }
  }
  // Flips inside strings and numbers decode to other valid tasks; most
  // others are caught.
  CHECK(decoded > 0);
  CHECK(decoded < 20000);

  // Pure garbage of every small length.
  for (int len = 0; len < 64; ++len) {
    for (int k = 0; k < 200; ++k) {
      std::string garbage(static_cast<size_t>(len), '\0');
      for (char& ch : garbage) ch = static_cast<char>(rng());
      if (len > 0 && k % 2 == 0) garbage[0] = static_cast<char>(0xC1);
      absl::StatusOr<ActionTask> t = DecodeActionTask(garbage);
      if (!t.ok()) {
        REQUIRE(t.status().code() == absl::StatusCode::kInvalidArgument);
      }
    }
  }
}

TEST_CASE("codec: wrong magic, version and trailing bytes", "[codec]") {
  CheckRejected("", "truncated at byte 0 reading action.format byte");
  CheckRejected("{\"id\":1}", "not an action task (format byte 0x7b");
  std::string enc = EncodeActionTask(Action{}, ConvergeConfig{});
  enc[0] = static_cast<char>(0xC2);
  CheckRejected(enc, "unsupported format version 2");
  enc = EncodeActionTask(Action{}, ConvergeConfig{}) + "xy";
  CheckRejected(enc, "2 trailing bytes after the task");
}

TEST_CASE("codec: absurd lengths and counts are refused before allocating",
          "[codec]") {
  CheckRejected(Bytes().ActionHead().U(uint64_t{1} << 40).S("x").s,
                "byte 8: action.signal: length 1099511627776 exceeds the 2 "
                "bytes left");
  // alerts count of 2^62 with a few bytes behind it.
  Bytes alerts;
  alerts.ActionHead().S("abnormal").Z(1).S("notice").Z(7).U(uint64_t{1} << 62);
  alerts.S("a");
  CheckRejected(alerts.s, "action.alerts: count 4611686018427387904 exceeds");
  // A varint longer than 64 bits.
  Bytes overflow;
  overflow.B(kActionTaskFormat);
  for (int i = 0; i < 10; ++i) overflow.B(0xff);
  overflow.B(0x01);
  CheckRejected(overflow.s, "byte 1: action.id: varint overflows 64 bits");
}

TEST_CASE("codec: bad tags, enums and ranges name the field", "[codec]") {
  // alert_level beyond int.
  CheckRejected(Bytes().ActionHead().S("").Z(int64_t{1} << 40).s,
                "action.alert_level: 1099511627776 is out of range");
  // A time tag that does not exist.
  CheckRejected(Bytes().B(kActionTaskFormat).Z(1).B(9).s,
                "byte 2: action.create_time: unknown time tag 9");
  CheckRejected(Bytes().B(kActionTaskFormat).Z(1).B(0).Z(5).U(1000000000).s,
                "action.create_time: nanoseconds 1000000000 out of range");

  Action a;
  a.context = {{"k", 1}};
  std::string enc = EncodeActionTask(a, ConvergeConfig{});
  const size_t tag = enc.find("\x01k\x03") + 2;
  enc[tag] = 9;
  CheckRejected(enc, absl::StrCat("byte ", tag,
                                  ": action.context value: unknown value "
                                  "tag 9"));

  // Unknown flag bits of the action.
  Action plain;
  enc = EncodeActionTask(plain, ConvergeConfig{});
  Bytes head;
  head.B(kActionTaskFormat)
      .Z(0)
      .B(0)
      .Z(0)
      .U(0)
      .Z(0)
      .Z(0)
      .S("")
      .Z(3)
      .S("")
      .Z(0)
      .U(0);
  REQUIRE(enc.substr(0, head.s.size()) == head.s);
  enc[head.s.size()] = 0x40;
  CheckRejected(enc, "action.flags: unknown flag bits 0x40");

  // An unknown converge function: the config follows the action's flags,
  // execute_timeout and context count, and starts with its own flags.
  ConvergeConfig c;
  c.converge_func = ConvergeFunction::kTrigger;
  enc = EncodeActionTask(plain, c);
  const size_t func = head.s.size() + 4;
  REQUIRE(static_cast<uint8_t>(enc[func]) ==
          static_cast<uint8_t>(ConvergeFunction::kTrigger));
  enc[func] = 10;
  CheckRejected(enc, absl::StrCat("byte ", func,
                                  ": converge_config.converge_func: unknown "
                                  "function 10"));

  // A duplicate context key.
  Action dup;
  dup.context = {{"a", 1}, {"b", 2}};
  enc = EncodeActionTask(dup, ConvergeConfig{});
  const size_t b = enc.find(
      "\x01"
      "b\x03");
  REQUIRE(b != std::string::npos);
  enc[b + 1] = 'a';
  CheckRejected(enc, "action.context key: duplicate key");
}

TEST_CASE("codec: nesting beyond the limits is refused", "[codec]") {
  Action a;
  a.context = {{"deep", Nested(kMaxValueNesting + 1)}};
  const ConvergeConfig none;
  absl::Status st = ValidateActionTask(a, none);
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(st.message() == "action.context.deep: lists nested deeper than 32");
  CheckRejected(EncodeActionTask(a, none),
                "action.context value: lists nested deeper than 32");

  // Exactly at the limit is fine.
  a.context = {{"deep", Nested(kMaxValueNesting)}};
  CHECK(ValidateActionTask(a, none).ok());
  CHECK(DecodeActionTask(EncodeActionTask(a, none)).ok());

  // Condition literals too.
  ConvergeConfig c;
  c.condition = {Condition{"k", {1, Nested(kMaxValueNesting + 1)}}};
  st = ValidateActionTask(Action{}, c);
  CHECK(st.message() ==
        "converge_config.condition[0].value[1]: lists nested deeper than 32");
  CheckRejected(EncodeActionTask(Action{}, c),
                "converge_config.condition value: lists nested deeper");

  // sub_converge_config chains.
  auto chain = [](int levels) {
    ConvergeConfig top;
    ConvergeConfig* at = &top;
    for (int i = 0; i < levels; ++i) {
      auto sub = std::make_shared<ConvergeConfig>();
      at->sub_converge_config = sub;
      at = sub.get();
    }
    return top;
  };
  CHECK(ValidateActionTask(Action{}, chain(kMaxConfigNesting)).ok());
  CHECK(DecodeActionTask(EncodeActionTask(Action{}, chain(kMaxConfigNesting)))
            .ok());
  st = ValidateActionTask(Action{}, chain(kMaxConfigNesting + 1));
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(st.message()),
             Catch::Matchers::Contains("more than 8 levels"));
  CheckRejected(EncodeActionTask(Action{}, chain(kMaxConfigNesting + 1)),
                "sub_converge_config: nested deeper than 8");
}

}  // namespace
}  // namespace converge::testing
