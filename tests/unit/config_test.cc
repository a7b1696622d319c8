// ValidateConfig (converge/config.h) and MakeEffective (converge/dimension.h):
// field-path errors, the bkmonitor profile's forced overrides (section 3.3
// step 4 of the spec, project-decisions.md), legality in upstream's order
// (step 5) and the window (step 6, decision 6).

#include "converge/config.h"

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "converge/dimension.h"
#include "converge/model.h"

namespace converge {
namespace {

ConvergeConfig Valid() {
  ConvergeConfig c;
  c.is_enabled = true;
  c.converge_func = ConvergeFunction::kSkipWhenExceed;
  c.timedelta = 300;
  c.count = 2;
  c.condition = {Condition{"alert_info", {Value("self")}}};
  return c;
}

void CheckInvalid(const absl::Status& st, const std::string& path) {
  INFO(st.ToString());
  CHECK(st.code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(std::string(st.message()), path));
}

// ---------------------------------------------------------------------------
// ValidateConfig

TEST_CASE("ValidateConfig accepts valid configs", "[config]") {
  CHECK(ValidateConfig(Valid()).ok());
  // Zeros are valid here (legality is MakeEffective's business).
  ConvergeConfig zeros;
  CHECK(ValidateConfig(zeros).ok());
  zeros.count = 0;
  zeros.timedelta = 0;
  zeros.max_timedelta = 0;
  CHECK(ValidateConfig(zeros).ok());
  ConvergeConfig with_sub = Valid();
  auto sub = std::make_shared<ConvergeConfig>(Valid());
  sub->converge_func = ConvergeFunction::kCollectAlarm;
  sub->condition = {Condition{"bk_biz_id", {Value("self")}},
                    Condition{"notice_way", {Value("mail"), Value("sms")}}};
  with_sub.sub_converge_config = sub;
  with_sub.max_timedelta = 600;
  CHECK(ValidateConfig(with_sub).ok());
  // An empty condition list is not a validation error.
  ConvergeConfig no_condition = Valid();
  no_condition.condition.clear();
  CHECK(ValidateConfig(no_condition).ok());
}

TEST_CASE("ValidateConfig rejects negative numbers naming the field path",
          "[config]") {
  ConvergeConfig c = Valid();
  c.timedelta = -1;
  CheckInvalid(ValidateConfig(c), "converge_config.timedelta");
  c = Valid();
  c.max_timedelta = -60;
  CheckInvalid(ValidateConfig(c), "converge_config.max_timedelta");
  c = Valid();
  c.count = -1;
  absl::Status st = ValidateConfig(c);
  CheckInvalid(st, "converge_config.count");
  // The message says what is wrong and the value.
  CHECK(absl::StrContains(std::string(st.message()), "-1"));
}

TEST_CASE("ValidateConfig rejects an empty dimension naming the field path",
          "[config]") {
  ConvergeConfig c = Valid();
  c.condition.push_back(Condition{"", {Value("self")}});
  CheckInvalid(ValidateConfig(c), "converge_config.condition[1].dimension");
}

TEST_CASE("ValidateConfig checks sub_converge_config with its path",
          "[config]") {
  for (const char* field : {"timedelta", "max_timedelta", "count"}) {
    auto sub = std::make_shared<ConvergeConfig>(Valid());
    if (std::string(field) == "timedelta") sub->timedelta = -5;
    if (std::string(field) == "max_timedelta") sub->max_timedelta = -5;
    if (std::string(field) == "count") sub->count = -1;
    ConvergeConfig c = Valid();
    c.sub_converge_config = sub;
    INFO("field " << field);
    CheckInvalid(ValidateConfig(c), std::string("converge_config."
                                                "sub_converge_config.") +
                                        field);
  }
  auto sub = std::make_shared<ConvergeConfig>(Valid());
  sub->condition = {Condition{"", {}}};
  ConvergeConfig c = Valid();
  c.sub_converge_config = sub;
  CheckInvalid(ValidateConfig(c),
               "converge_config.sub_converge_config.condition[0].dimension");

  // Nested twice.
  auto inner = std::make_shared<ConvergeConfig>(Valid());
  inner->count = -3;
  auto middle = std::make_shared<ConvergeConfig>(Valid());
  middle->sub_converge_config = inner;
  c = Valid();
  c.sub_converge_config = middle;
  CheckInvalid(ValidateConfig(c),
               "converge_config.sub_converge_config.sub_converge_config.count");
}

TEST_CASE("ValidateConfig uses the given root path", "[config]") {
  ConvergeConfig c = Valid();
  c.count = -1;
  CheckInvalid(ValidateConfig(c, "strategy.notice.options.converge_config"),
               "strategy.notice.options.converge_config.count");
}

// ---------------------------------------------------------------------------
// MakeEffective

RuleOptions Bkmonitor() {
  RuleOptions o;
  o.profile = Profile::kBkmonitor;
  return o;
}

Context NoticeContext(std::string notice_info = "42_1_abnormal_h_mail_alice") {
  Context ctx;
  ctx["notice_info"] = std::move(notice_info);
  ctx["action_info"] = "42_abnormal_7";
  return ctx;
}

bool SameCondition(const std::vector<Condition>& a,
                   const std::vector<Condition>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].dimension != b[i].dimension || a[i].value != b[i].value) {
      return false;
    }
  }
  return true;
}

const std::vector<Condition> kSelfNoticeInfo = {
    Condition{"notice_info", {Value("self")}}};
const std::vector<Condition> kSelfActionInfo = {
    Condition{"action_info", {Value("self")}}};

TEST_CASE(
    "bkmonitor profile: notice actions get 120 s, count 1 and "
    "notice_info",
    "[config]") {
  ConvergeConfig c = Valid();
  c.converge_func = ConvergeFunction::kCollect;
  c.timedelta = 60;
  c.count = 5;
  c.condition = {Condition{"strategy_id", {Value("self")}},
                 Condition{"notice_receiver", {Value("self")}}};
  const EffectiveConfig e = MakeEffective(c, Bkmonitor(), ConvergeType::kAction,
                                          "notice", false, NoticeContext());
  CHECK(e.config.timedelta == 120);
  CHECK(e.config.count == 1);
  CHECK(SameCondition(e.config.condition, kSelfNoticeInfo));
  CHECK(e.config.converge_func == ConvergeFunction::kCollect);
  CHECK(e.legal);
  CHECK(e.illegal_reason.empty());
  CHECK(e.window_seconds == 120);
  // The original is untouched.
  CHECK(c.timedelta == 60);
  CHECK(c.condition.size() == 2);
}

TEST_CASE(
    "bkmonitor profile: the notice condition is forced only when the "
    "context has a notice_info",
    "[config]") {
  ConvergeConfig c = Valid();
  c.condition = {Condition{"alert_info", {Value("self")}}};
  SECTION("no notice_info") {
    const EffectiveConfig e = MakeEffective(
        c, Bkmonitor(), ConvergeType::kAction, "notice", false, Context{});
    CHECK(e.config.timedelta == 120);
    CHECK(e.config.count == 1);
    CHECK(SameCondition(e.config.condition, c.condition));
  }
  SECTION("empty notice_info") {
    const EffectiveConfig e =
        MakeEffective(c, Bkmonitor(), ConvergeType::kAction, "notice", false,
                      NoticeContext(""));
    CHECK(e.config.timedelta == 120);
    CHECK(SameCondition(e.config.condition, c.condition));
  }
  SECTION("null notice_info") {
    Context ctx;
    ctx["notice_info"] = Value();
    const EffectiveConfig e = MakeEffective(
        c, Bkmonitor(), ConvergeType::kAction, "notice", false, ctx);
    CHECK(SameCondition(e.config.condition, c.condition));
  }
}

TEST_CASE(
    "bkmonitor profile: a non-notice action with an empty condition "
    "gets action_info",
    "[config]") {
  ConvergeConfig c = Valid();
  c.condition.clear();
  c.timedelta = 600;
  c.count = 4;
  const EffectiveConfig e = MakeEffective(c, Bkmonitor(), ConvergeType::kAction,
                                          "webhook", false, NoticeContext());
  CHECK(SameCondition(e.config.condition, kSelfActionInfo));
  // Only the condition changes.
  CHECK(e.config.timedelta == 600);
  CHECK(e.config.count == 4);
  CHECK(e.legal);
  CHECK(e.window_seconds == 600);

  // A non-empty condition is kept.
  ConvergeConfig kept = Valid();
  const EffectiveConfig k = MakeEffective(
      kept, Bkmonitor(), ConvergeType::kAction, "job", false, NoticeContext());
  CHECK(SameCondition(k.config.condition, kept.condition));
  CHECK(k.config.timedelta == 300);
  CHECK(k.config.count == 2);
}

TEST_CASE("bkmonitor profile: the second level gets 120 s and count 3",
          "[config]") {
  ConvergeConfig c = Valid();
  c.converge_func = ConvergeFunction::kCollectAlarm;
  c.timedelta = 60;
  c.count = 2;
  c.condition = {Condition{"bk_biz_id", {Value("self")}}};
  const EffectiveConfig e =
      MakeEffective(c, Bkmonitor(), ConvergeType::kConverge, "notice", false,
                    NoticeContext());
  CHECK(e.config.timedelta == 120);
  CHECK(e.config.count == 3);
  // Neither notice override applies to the second level.
  CHECK(SameCondition(e.config.condition, c.condition));
  CHECK(e.legal);
  CHECK(e.window_seconds == 120);

  // The values come from the options.
  RuleOptions o = Bkmonitor();
  o.multi_strategy_collect_window = 300;
  o.multi_strategy_collect_threshold = 5;
  const EffectiveConfig f =
      MakeEffective(c, o, ConvergeType::kConverge, "", false, Context{});
  CHECK(f.config.timedelta == 300);
  CHECK(f.config.count == 5);
  CHECK(f.window_seconds == 300);
}

TEST_CASE("plain profile: the config is used as given", "[config]") {
  ConvergeConfig c = Valid();
  c.timedelta = 90;
  c.count = 7;
  c.condition = {Condition{"strategy_id", {Value("self")}}};
  const RuleOptions plain;
  CHECK(plain.profile == Profile::kPlain);
  CHECK_FALSE(plain.minute_windows);
  for (ConvergeType type : {ConvergeType::kAction, ConvergeType::kConverge}) {
    for (const char* plugin : {"notice", "webhook"}) {
      INFO(ToString(type) << " " << plugin);
      const EffectiveConfig e =
          MakeEffective(c, plain, type, plugin, false, NoticeContext());
      CHECK(e.config.timedelta == 90);
      CHECK(e.config.count == 7);
      CHECK(SameCondition(e.config.condition, c.condition));
      CHECK(e.legal);
      CHECK(e.window_seconds == 90);  // second-granular
    }
  }
  // An empty condition stays empty (and makes the config illegal).
  ConvergeConfig empty = Valid();
  empty.condition.clear();
  const EffectiveConfig e = MakeEffective(empty, plain, ConvergeType::kAction,
                                          "webhook", false, NoticeContext());
  CHECK(e.config.condition.empty());
  CHECK_FALSE(e.legal);
}

TEST_CASE("legality reasons come in upstream's order", "[config]") {
  const RuleOptions plain;
  auto reason = [&](const ConvergeConfig& c, bool is_parent) {
    const EffectiveConfig e = MakeEffective(c, plain, ConvergeType::kAction,
                                            "webhook", is_parent, Context{});
    CHECK(e.legal == e.illegal_reason.empty());
    return e.illegal_reason;
  };
  ConvergeConfig c = Valid();
  CHECK(reason(c, false).empty());

  // Everything wrong at once: is_enabled is reported first.
  c.is_enabled = false;
  c.condition.clear();
  c.timedelta = 0;
  c.count = -1;
  std::string r = reason(c, true);
  INFO(r);
  CHECK(absl::StrContains(r, "is_enabled"));

  c.is_enabled = true;  // then the parent flag
  r = reason(c, true);
  INFO(r);
  CHECK(absl::StrContains(r, "parent"));

  r = reason(c, false);  // then the empty condition
  INFO(r);
  CHECK(absl::StrContains(r, "condition"));

  c.condition = Valid().condition;  // then timedelta <= 0
  r = reason(c, false);
  INFO(r);
  CHECK(absl::StrContains(r, "timedelta"));
  c.timedelta = -10;
  CHECK(absl::StrContains(reason(c, false), "timedelta"));

  c.timedelta = 60;  // then count < 0
  r = reason(c, false);
  INFO(r);
  CHECK(absl::StrContains(r, "count"));

  c.count = 0;  // count 0 is legal
  CHECK(reason(c, false).empty());
}

TEST_CASE("bkmonitor overrides apply before the legality checks", "[config]") {
  // A notice with timedelta 0 becomes legal (120 s); an empty non-notice
  // condition becomes action_info; a parent stays illegal.
  ConvergeConfig c = Valid();
  c.timedelta = 0;
  c.condition.clear();
  EffectiveConfig e = MakeEffective(c, Bkmonitor(), ConvergeType::kAction,
                                    "notice", false, NoticeContext());
  CHECK(e.legal);
  e = MakeEffective(c, Bkmonitor(), ConvergeType::kAction, "webhook", false,
                    NoticeContext());
  CHECK_FALSE(e.legal);
  CHECK(absl::StrContains(e.illegal_reason, "timedelta"));
  e = MakeEffective(c, Bkmonitor(), ConvergeType::kAction, "notice", true,
                    NoticeContext());
  CHECK_FALSE(e.legal);
  CHECK(absl::StrContains(e.illegal_reason, "parent"));
  c.is_enabled = false;
  e = MakeEffective(c, Bkmonitor(), ConvergeType::kAction, "notice", false,
                    NoticeContext());
  CHECK_FALSE(e.legal);
  CHECK(absl::StrContains(e.illegal_reason, "is_enabled"));
}

TEST_CASE("the window is max_timedelta if > 0, else timedelta", "[config]") {
  const RuleOptions plain;
  ConvergeConfig c = Valid();
  c.timedelta = 300;
  c.max_timedelta = 0;
  CHECK(MakeEffective(c, plain, ConvergeType::kAction, "", false, {})
            .window_seconds == 300);
  c.max_timedelta = 450;
  CHECK(MakeEffective(c, plain, ConvergeType::kAction, "", false, {})
            .window_seconds == 450);
  c.max_timedelta = 30;  // smaller than timedelta: still used
  CHECK(MakeEffective(c, plain, ConvergeType::kAction, "", false, {})
            .window_seconds == 30);
}

TEST_CASE("minute_windows floors the window to whole minutes", "[config]") {
  RuleOptions o;
  o.minute_windows = true;
  ConvergeConfig c = Valid();
  auto window = [&](int64_t timedelta, int64_t max_timedelta,
                    const RuleOptions& opts) {
    ConvergeConfig cc = c;
    cc.timedelta = timedelta;
    cc.max_timedelta = max_timedelta;
    return MakeEffective(cc, opts, ConvergeType::kAction, "webhook", false, {})
        .window_seconds;
  };
  CHECK(window(90, 0, o) == 60);
  CHECK(window(59, 0, o) == 0);  // upstream quirk: W = 0
  CHECK(window(120, 0, o) == 120);
  CHECK(window(179, 0, o) == 120);
  CHECK(window(300, 150, o) == 120);
  // max_timedelta under a minute floors to 0, so timedelta is used.
  CHECK(window(300, 59, o) == 300);
  CHECK(window(90, 59, o) == 60);
  // A 59 s timedelta is still legal (W = 0 is upstream's degenerate window).
  ConvergeConfig short_window = c;
  short_window.timedelta = 59;
  CHECK(MakeEffective(short_window, o, ConvergeType::kAction, "webhook", false,
                      {})
            .legal);

  // Without the option windows are second-granular.
  const RuleOptions plain;
  CHECK(window(90, 0, plain) == 90);
  CHECK(window(59, 0, plain) == 59);
  CHECK(window(300, 150, plain) == 150);

  // The bkmonitor profile forces minute windows.
  RuleOptions bk = Bkmonitor();
  bk.minute_windows = false;
  CHECK(window(90, 0, bk) == 60);
  CHECK(window(59, 0, bk) == 0);
  CHECK(window(300, 150, bk) == 120);
}

}  // namespace
}  // namespace converge
