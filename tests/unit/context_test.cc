// BuildContext (converge/context.h): the composite context values of section
// 1.5 of the spec. MD5 values were computed with python3's hashlib:
//   hashlib.md5(b"host=a,ip=1.2.3.4").hexdigest()
//     == "40e79ceeb56d34349114b03022f9ac71"
//   hashlib.md5(b"a=1").hexdigest() == "3872c9ae3f427af0be0ead09d07ae2cf"
//   hashlib.md5(b"").hexdigest() == "d41d8cd98f00b204e9800998ecf8427e"

#include "converge/context.h"

#include <catch2/catch.hpp>
#include <string>

#include "converge/model.h"

namespace converge {
namespace {

Action Base() {
  Action a;
  a.id = 1;
  a.create_time = absl::UnixEpoch() + absl::Seconds(100);
  a.bk_biz_id = 2;
  a.strategy_id = 42;
  a.signal = "abnormal";
  a.alert_level = 1;
  a.plugin_type = "notice";
  a.action_config_id = 7;
  a.alerts = {"alert-1"};
  a.context["dimensions"] = "dimhash";
  a.context["notice_way"] = "mail";
  a.context["notice_receiver"] = "alice";
  return a;
}

// The context value of `key` as text; "<missing>" if absent.
std::string Get(const Context& ctx, const std::string& key) {
  auto it = ctx.find(key);
  if (it == ctx.end()) return "<missing>";
  return it->second.PyStr();
}

TEST_CASE("BuildContext derives the composite values", "[context]") {
  const Context ctx = BuildContext(Base());
  CHECK(Get(ctx, "strategy_id") == "42");
  CHECK(Get(ctx, "bk_biz_id") == "2");
  CHECK(Get(ctx, "alert_level") == "1");
  CHECK(Get(ctx, "signal") == "abnormal");
  CHECK(Get(ctx, "dimensions") == "dimhash");
  CHECK(Get(ctx, "alert_info") == "42_1_abnormal_dimhash");
  CHECK(Get(ctx, "notice_way") == "mail");
  CHECK(Get(ctx, "notice_receiver") == "alice");
  CHECK(Get(ctx, "group_notice_way") == "mail");
  CHECK(Get(ctx, "notice_info") == "42_1_abnormal_dimhash_mail_alice");
  CHECK(Get(ctx, "action_info") == "42_abnormal_7");
}

TEST_CASE("BuildContext derives numeric fields as integers", "[context]") {
  const Context ctx = BuildContext(Base());
  REQUIRE(ctx.count("strategy_id") == 1);
  CHECK(ctx.at("strategy_id") == Value(int64_t{42}));
  CHECK(ctx.at("bk_biz_id") == Value(int64_t{2}));
  CHECK(ctx.at("alert_level") == Value(int64_t{1}));
  CHECK(ctx.at("signal") == Value("abnormal"));
}

TEST_CASE("BuildContext keeps other caller keys", "[context]") {
  Action a = Base();
  a.context["custom"] = Value(Value::List{"x", 1});
  a.context["alert_name"] = "CPU";
  const Context ctx = BuildContext(a);
  CHECK(ctx.at("custom") == Value(Value::List{"x", 1}));
  CHECK(Get(ctx, "alert_name") == "CPU");
}

TEST_CASE("BuildContext with no caller context", "[context]") {
  Action a = Base();
  a.context.clear();
  const Context ctx = BuildContext(a);
  CHECK(Get(ctx, "alert_info") == "42_1_abnormal_");
  CHECK(Get(ctx, "notice_way") == "");
  CHECK(Get(ctx, "notice_receiver") == "");
  CHECK(Get(ctx, "group_notice_way") == "");
  CHECK(Get(ctx, "notice_info") == "42_1_abnormal___");
  CHECK(Get(ctx, "action_info") == "42_abnormal_7");
}

TEST_CASE("BuildContext: caller-set keys win", "[context]") {
  Action a = Base();
  a.context["alert_info"] = "my_alert";
  a.context["action_info"] = "my_action";
  a.context["group_notice_way"] = "my_group";
  a.context["bk_biz_id"] = "biz-x";
  a.context["alert_level"] = 3;
  const Context ctx = BuildContext(a);
  CHECK(Get(ctx, "alert_info") == "my_alert");
  CHECK(Get(ctx, "action_info") == "my_action");
  CHECK(Get(ctx, "group_notice_way") == "my_group");
  CHECK(Get(ctx, "bk_biz_id") == "biz-x");
  CHECK(Get(ctx, "alert_level") == "3");
  // Derived values build on the caller's alert_info.
  CHECK(Get(ctx, "notice_info") == "my_alert_mail_alice");

  Action b = Base();
  b.context["notice_info"] = "my_notice";
  CHECK(Get(BuildContext(b), "notice_info") == "my_notice");
}

TEST_CASE(
    "BuildContext: caller strategy_id, signal and alert_level feed the "
    "derived values",
    "[context]") {
  Action a = Base();
  a.context["strategy_id"] = 99;
  a.context["signal"] = "recovered";
  a.context["alert_level"] = 2;
  const Context ctx = BuildContext(a);
  CHECK(Get(ctx, "strategy_id") == "99");
  CHECK(Get(ctx, "signal") == "recovered");
  CHECK(Get(ctx, "alert_info") == "99_2_recovered_dimhash");
  CHECK(Get(ctx, "action_info") == "99_recovered_7");
  CHECK(Get(ctx, "notice_info") == "99_2_recovered_dimhash_mail_alice");
}

TEST_CASE("BuildContext: strategy_id 0 uses alert_name in alert_info",
          "[context]") {
  Action a = Base();
  a.strategy_id = 0;
  a.context["alert_name"] = "CPU usage high";
  const Context ctx = BuildContext(a);
  CHECK(Get(ctx, "strategy_id") == "0");
  CHECK(Get(ctx, "alert_info") == "CPU usage high_1_abnormal_dimhash");
  CHECK(Get(ctx, "notice_info") ==
        "CPU usage high_1_abnormal_dimhash_mail_alice");
  // action_info keeps the strategy id.
  CHECK(Get(ctx, "action_info") == "0_abnormal_7");
}

TEST_CASE("BuildContext: a follower's group_notice_way carries the user type",
          "[context]") {
  Action a = Base();
  a.context["user_type"] = "follower";
  CHECK(Get(BuildContext(a), "group_notice_way") == "follower_mail");
  a.context["user_type"] = "main";
  CHECK(Get(BuildContext(a), "group_notice_way") == "mail");
}

TEST_CASE("BuildContext: a non-default notice channel prefixes notice_way",
          "[context]") {
  Action a = Base();
  a.context["notice_channel"] = "bkchat";
  Context ctx = BuildContext(a);
  CHECK(Get(ctx, "notice_way") == "bkchat|mail");
  CHECK(Get(ctx, "group_notice_way") == "bkchat|mail");
  CHECK(Get(ctx, "notice_info") == "42_1_abnormal_dimhash_bkchat|mail_alice");

  a.context["user_type"] = "follower";
  ctx = BuildContext(a);
  CHECK(Get(ctx, "group_notice_way") == "follower_bkchat|mail");

  // The default channel ("user") and an empty one leave the way alone.
  for (const char* channel : {"user", ""}) {
    Action b = Base();
    b.context["notice_channel"] = channel;
    INFO("channel " << channel);
    const Context c = BuildContext(b);
    CHECK(Get(c, "notice_way") == "mail");
    CHECK(Get(c, "notice_info") == "42_1_abnormal_dimhash_mail_alice");
  }
}

TEST_CASE("BuildContext: list receivers are comma-joined", "[context]") {
  Action a = Base();
  a.context["notice_receiver"] = Value(Value::List{"alice", "bob", "carol"});
  const Context ctx = BuildContext(a);
  CHECK(Get(ctx, "notice_receiver") == "alice,bob,carol");
  CHECK(ctx.at("notice_receiver") == Value("alice,bob,carol"));
  CHECK(Get(ctx, "notice_info") ==
        "42_1_abnormal_dimhash_mail_alice,bob,carol");

  Action one = Base();
  one.context["notice_receiver"] = Value(Value::List{"alice"});
  CHECK(Get(BuildContext(one), "notice_receiver") == "alice");
}

TEST_CASE("BuildContext: a list of dimensions is hashed", "[context]") {
  Action a = Base();
  // Unsorted, with an empty item: md5("host=a,ip=1.2.3.4").
  a.context["dimensions"] = Value(Value::List{"ip=1.2.3.4", "host=a", ""});
  Context ctx = BuildContext(a);
  CHECK(ctx.at("dimensions") == Value("40e79ceeb56d34349114b03022f9ac71"));
  CHECK(Get(ctx, "alert_info") ==
        "42_1_abnormal_40e79ceeb56d34349114b03022f9ac71");
  CHECK(Get(ctx, "notice_info") ==
        "42_1_abnormal_40e79ceeb56d34349114b03022f9ac71_mail_alice");

  // Order does not matter.
  a.context["dimensions"] = Value(Value::List{"host=a", "ip=1.2.3.4"});
  CHECK(Get(BuildContext(a), "dimensions") ==
        "40e79ceeb56d34349114b03022f9ac71");

  a.context["dimensions"] = Value(Value::List{"a=1"});
  CHECK(Get(BuildContext(a), "dimensions") ==
        "3872c9ae3f427af0be0ead09d07ae2cf");

  a.context["dimensions"] = Value(Value::List{});
  CHECK(Get(BuildContext(a), "dimensions") ==
        "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("BuildContext: a string dimensions value is used as is",
          "[context]") {
  Action a = Base();
  a.context["dimensions"] = "host=a,ip=1.2.3.4";  // not hashed
  const Context ctx = BuildContext(a);
  CHECK(Get(ctx, "dimensions") == "host=a,ip=1.2.3.4");
  CHECK(Get(ctx, "alert_info") == "42_1_abnormal_host=a,ip=1.2.3.4");
}

}  // namespace
}  // namespace converge
