// Key templates (converge/keys.h) against section 2.2 of the spec: the
// upstream names, TTLs and types, and KeySpace rendering with and without
// hash tags.

#include "converge/keys.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"

namespace converge {
namespace {

KeySpace Upstream() {
  KeySpaceOptions o;
  o.prefix = "bkmonitorv3.ee";
  o.hash_tags = false;
  return KeySpace(o);
}

KeySpace Tagged(std::string prefix = "bkmonitorv3.ee") {
  KeySpaceOptions o;
  o.prefix = std::move(prefix);
  o.hash_tags = true;
  return KeySpace(o);
}

const KeyField kSubFields[] = {{"bk_biz_id", "2"},
                               {"signal", "abnormal"},
                               {"notice_way", "mail"},
                               {"notice_receiver", "alice"},
                               {"alert_level", "1"}};

std::string MustRender(const KeySpace& ks, const KeyTemplate& tpl,
                       const KeyFields& fields, std::string_view route = {}) {
  absl::StatusOr<std::string> r = ks.Render(tpl, fields, route);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return *r;
}

TEST_CASE("KeySpaceOptions defaults", "[keys]") {
  KeySpaceOptions o;
  CHECK(o.prefix == "bkmonitorv3.ee");
  CHECK(o.hash_tags);
  KeySpace ks;
  CHECK(ks.options().prefix == "bkmonitorv3.ee");
  CHECK(ks.options().hash_tags);
  KeySpace custom(KeySpaceOptions{"p", false});
  CHECK(custom.options().prefix == "p");
  CHECK_FALSE(custom.options().hash_tags);
}

TEST_CASE("Upstream key names without hash tags", "[keys]") {
  const KeySpace ks = Upstream();
  CHECK(MustRender(ks, keys::kConvergeList, {{"converge_type", "action"}}) ==
        "bkmonitorv3.ee.converge.action");
  CHECK(MustRender(ks, keys::kConvergeDimension,
                   {{"strategy_id", "42"},
                    {"dimension", "alert_info"},
                    {"value", "abc"}}) ==
        "bkmonitorv3.ee.fta_action.converge.42.alert_info.abc");
  CHECK(MustRender(ks, keys::kSubConvergeDimension, kSubFields) ==
        "bkmonitorv3.ee.fta_action.sub_converge.2.abnormal.mail.alice.1");
  CHECK(MustRender(ks, keys::kSubConvergeDimensionLock, kSubFields) ==
        "bkmonitorv3.ee.fta_action.sub_converge.lock.2.abnormal.mail.alice.1");
  CHECK(MustRender(ks, keys::kConvergeProcessLock,
                   {{"dimension", "!sha1#0123abcd"}}) ==
        "bkmonitorv3.ee.fta_action.converge.!sha1#0123abcd.process.lock");
  const KeyField notice[] = {{"action_signal", "abnormal"},
                             {"notice_way", "mail"},
                             {"alert_id", "a1_a2"}};
  CHECK(MustRender(ks, keys::kNoticeCollect, notice) ==
        "bkmonitorv3.ee.fta_action.notice.abnormal.mail.a1_a2");
  CHECK(MustRender(ks, keys::kNoticeCollectLock, notice) ==
        "bkmonitorv3.ee.fta_action.notice.lock.abnormal.mail.a1_a2");
}

TEST_CASE("With hash_tags off the route is ignored", "[keys]") {
  const KeySpace ks = Upstream();
  CHECK(
      MustRender(ks, keys::kConvergeProcessLock, {{"dimension", "D"}}, "s42") ==
      "bkmonitorv3.ee.fta_action.converge.D.process.lock");
}

TEST_CASE("Hash tags insert {route}. right after the prefix", "[keys]") {
  const KeySpace ks = Tagged();
  CHECK(MustRender(ks, keys::kConvergeDimension,
                   {{"strategy_id", "42"},
                    {"dimension", "alert_info"},
                    {"value", "abc"}},
                   "s42") ==
        "bkmonitorv3.ee.{s42}.fta_action.converge.42.alert_info.abc");
  CHECK(
      MustRender(ks, keys::kConvergeProcessLock, {{"dimension", "D"}}, "s42") ==
      "bkmonitorv3.ee.{s42}.fta_action.converge.D.process.lock");
  // An empty route gives no tag.
  CHECK(MustRender(ks, keys::kConvergeProcessLock, {{"dimension", "D"}}) ==
        "bkmonitorv3.ee.fta_action.converge.D.process.lock");
  CHECK(MustRender(ks, keys::kConvergeProcessLock, {{"dimension", "D"}}, "") ==
        "bkmonitorv3.ee.fta_action.converge.D.process.lock");
  // The default KeySpace tags.
  CHECK(MustRender(KeySpace(), keys::kConvergeList,
                   {{"converge_type", "converge"}},
                   "b2") == "bkmonitorv3.ee.{b2}.converge.converge");
}

TEST_CASE("An empty prefix gives no leading dot", "[keys]") {
  KeySpaceOptions o;
  o.prefix = "";
  o.hash_tags = false;
  const KeySpace plain(o);
  CHECK(MustRender(plain, keys::kConvergeProcessLock, {{"dimension", "D"}}) ==
        "fta_action.converge.D.process.lock");
  CHECK(MustRender(plain, keys::kConvergeProcessLock, {{"dimension", "D"}},
                   "s1") == "fta_action.converge.D.process.lock");
  const KeySpace tagged = Tagged("");
  CHECK(MustRender(tagged, keys::kConvergeProcessLock, {{"dimension", "D"}},
                   "s1") == "{s1}.fta_action.converge.D.process.lock");
  CHECK(MustRender(tagged, keys::kConvergeProcessLock, {{"dimension", "D"}}) ==
        "fta_action.converge.D.process.lock");
}

TEST_CASE("A custom prefix is used as given", "[keys]") {
  const KeySpace ks = Tagged("bkmonitorv3.ce[dev]");
  CHECK(MustRender(ks, keys::kConvergeList, {{"converge_type", "action"}}) ==
        "bkmonitorv3.ce[dev].converge.action");
}

TEST_CASE("Extra fields are ignored", "[keys]") {
  const KeySpace ks = Upstream();
  CHECK(MustRender(
            ks, keys::kConvergeProcessLock,
            {{"dimension", "D"}, {"strategy_id", "42"}, {"unused", "x"}}) ==
        "bkmonitorv3.ee.fta_action.converge.D.process.lock");
}

TEST_CASE("Field values are inserted verbatim", "[keys]") {
  // K2 values are unescaped context strings: '|', '#', '.', spaces and even
  // braces pass through, and are not expanded again.
  const KeySpace ks = Upstream();
  CHECK(MustRender(ks, keys::kConvergeDimension,
                   {{"strategy_id", "0"},
                    {"dimension", "notice_info"},
                    {"value", "a|b#c.d e_{value}"}}) ==
        "bkmonitorv3.ee.fta_action.converge.0.notice_info.a|b#c.d e_{value}");
  CHECK(
      MustRender(
          ks, keys::kConvergeDimension,
          {{"strategy_id", "7"}, {"dimension", "alert_info"}, {"value", ""}}) ==
      "bkmonitorv3.ee.fta_action.converge.7.alert_info.");
}

TEST_CASE("A missing field is kInvalidArgument naming the template and field",
          "[keys]") {
  const KeySpace ks = Upstream();
  absl::StatusOr<std::string> r = ks.Render(
      keys::kConvergeDimension, {{"strategy_id", "42"}, {"dimension", "x"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string msg(r.status().message());
  INFO(msg);
  CHECK(absl::StrContains(msg, "FTA_CONVERGE_DIMENSION_KEY"));
  CHECK(absl::StrContains(msg, "value"));

  r = ks.Render(keys::kSubConvergeDimension,
                {{"bk_biz_id", "2"}, {"signal", "abnormal"}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string msg2(r.status().message());
  INFO(msg2);
  CHECK(absl::StrContains(msg2, "FTA_SUB_CONVERGE_DIMENSION_KEY"));
  CHECK(absl::StrContains(msg2, "notice_way"));

  r = Tagged().Render(keys::kConvergeProcessLock, {}, "s1");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string msg3(r.status().message());
  CHECK(absl::StrContains(msg3, "ACTION_CONVERGE_KEY_PROCESS_LOCK"));
  CHECK(absl::StrContains(msg3, "dimension"));
}

TEST_CASE("A malformed template is kInvalidArgument naming the template",
          "[keys]") {
  const KeySpace ks = Upstream();
  const KeyField fields[] = {{"a", "1"}, {"b", "2"}};
  for (std::string_view tpl_text : {"x.{a", "x.{}.y", "{", "x.{a}.{"}) {
    const KeyTemplate tpl{"BROKEN_TEMPLATE", tpl_text, KeyType::kString,
                          absl::Seconds(1)};
    INFO("template " << tpl_text);
    absl::StatusOr<std::string> r = ks.Render(tpl, fields);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(std::string(r.status().message()),
                            "BROKEN_TEMPLATE"));
  }
}

TEST_CASE("A hand-made template renders like the built-in ones", "[keys]") {
  const KeyTemplate tpl{"MY_KEY", "my.{a}.and.{b}", KeyType::kHash,
                        absl::Seconds(5)};
  CHECK(MustRender(Upstream(), tpl, {{"a", "1"}, {"b", "2"}}) ==
        "bkmonitorv3.ee.my.1.and.2");
  const KeyTemplate fixed{"FIXED", "no.fields.here", KeyType::kString,
                          absl::Seconds(5)};
  CHECK(MustRender(Upstream(), fixed, {}) == "bkmonitorv3.ee.no.fields.here");
  CHECK(TemplateFields(fixed).empty());
  CHECK(TemplateFields(tpl) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("TemplateFields lists the fields in order of appearance", "[keys]") {
  using V = std::vector<std::string>;
  CHECK(TemplateFields(keys::kConvergeList) == V{"converge_type"});
  CHECK(TemplateFields(keys::kConvergeDimension) ==
        V{"strategy_id", "dimension", "value"});
  CHECK(
      TemplateFields(keys::kSubConvergeDimension) ==
      V{"bk_biz_id", "signal", "notice_way", "notice_receiver", "alert_level"});
  CHECK(
      TemplateFields(keys::kSubConvergeDimensionLock) ==
      V{"bk_biz_id", "signal", "notice_way", "notice_receiver", "alert_level"});
  CHECK(TemplateFields(keys::kConvergeProcessLock) == V{"dimension"});
  CHECK(TemplateFields(keys::kNoticeCollect) ==
        V{"action_signal", "notice_way", "alert_id"});
  CHECK(TemplateFields(keys::kNoticeCollectLock) ==
        V{"action_signal", "notice_way", "alert_id"});
}

TEST_CASE("Templates carry the upstream labels, formats and TTLs", "[keys]") {
  CHECK(keys::kConvergeList.label == "CONVERGE_LIST_KEY");
  CHECK(keys::kConvergeList.key_tpl == "converge.{converge_type}");
  CHECK(keys::kConvergeList.ttl == absl::Seconds(604800));
  CHECK(keys::kConvergeList.key_type == KeyType::kList);

  CHECK(keys::kConvergeDimension.label == "FTA_CONVERGE_DIMENSION_KEY");
  CHECK(keys::kConvergeDimension.key_tpl ==
        "fta_action.converge.{strategy_id}.{dimension}.{value}");
  CHECK(keys::kConvergeDimension.ttl == absl::Seconds(1800));
  CHECK(keys::kConvergeDimension.key_type == KeyType::kSortedSet);

  CHECK(keys::kSubConvergeDimension.label == "FTA_SUB_CONVERGE_DIMENSION_KEY");
  CHECK(keys::kSubConvergeDimension.ttl == absl::Seconds(1800));
  CHECK(keys::kSubConvergeDimension.key_type == KeyType::kSortedSet);

  CHECK(keys::kSubConvergeDimensionLock.label ==
        "FTA_SUB_CONVERGE_DIMENSION_LOCK_KEY");
  CHECK(keys::kSubConvergeDimensionLock.ttl == absl::Seconds(120));

  CHECK(keys::kConvergeProcessLock.label == "ACTION_CONVERGE_KEY_PROCESS_LOCK");
  CHECK(keys::kConvergeProcessLock.key_tpl ==
        "fta_action.converge.{dimension}.process.lock");
  CHECK(keys::kConvergeProcessLock.ttl == absl::Seconds(60));

  CHECK(keys::kNoticeCollect.label == "FTA_NOTICE_COLLECT_KEY");
  CHECK(keys::kNoticeCollect.ttl == absl::Seconds(86400));

  CHECK(keys::kNoticeCollectLock.label == "FTA_NOTICE_COLLECT_LOCK");
  CHECK(keys::kNoticeCollectLock.ttl == absl::Seconds(300));
}

}  // namespace
}  // namespace converge
