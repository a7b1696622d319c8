#include "converge/context.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "converge/dimension.h"
#include "internal/strings.h"

namespace converge {
namespace {

const Value* Find(const Context& ctx, std::string_view key) {
  auto it = ctx.find(key);
  return it == ctx.end() ? nullptr : &it->second;
}

std::string Str(const Value* v) {
  if (v == nullptr || v->is_null()) return "";
  return v->PyStr();
}

// Upstream's dimension hash: MD5 over the alert's sorted, non-empty common
// dimensions. Callers that have upstream's hash pass it as a string.
std::string DimensionsText(const Value* v) {
  if (v == nullptr || v->is_null()) return "";
  if (!v->is_list()) return v->PyStr();
  std::vector<std::string> items;
  for (const Value& item : v->as_list()) {
    std::string s = item.PyStr();
    // "k=" (an empty value) does not count, as upstream drops empty values.
    if (s.empty() || s.back() == '=') continue;
    items.push_back(std::move(s));
  }
  // Sorted by key (the text before the first '='), as upstream sorts the
  // dimensions by key.
  std::sort(items.begin(), items.end(),
            [](const std::string& a, const std::string& b) {
              std::string_view ka(a), kb(b);
              ka = ka.substr(0, ka.find('='));
              kb = kb.substr(0, kb.find('='));
              return ka != kb ? ka < kb : a < b;
            });
  std::string joined;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) joined.push_back(',');
    joined.append(items[i]);
  }
  return Md5Hex(joined);
}

std::string NoticeWay(const Action& a) {
  std::string way = Str(Find(a.context, "notice_way"));
  std::string channel = Str(Find(a.context, "notice_channel"));
  if (!channel.empty() && channel != "user") {
    return internal::StrCat(channel, "|", way);
  }
  return way;
}

std::string NoticeReceiver(const Action& a) {
  const Value* r = Find(a.context, "notice_receiver");
  if (r == nullptr || !r->is_list()) return Str(r);
  std::string joined;
  for (const Value& item : r->as_list()) {
    if (!joined.empty()) joined.push_back(',');
    joined.append(item.PyStr());
  }
  return joined;
}

// The scalar fields the composites are made of, as upstream's str().
std::string Field(const Action& a, std::string_view key) {
  if (const Value* v = Find(a.context, key); v != nullptr) return Str(v);
  if (key == "strategy_id") return internal::StrCat(a.strategy_id);
  if (key == "alert_level") return internal::StrCat(a.alert_level);
  if (key == "signal") return a.signal;
  return "";
}

std::string AlertInfo(const Action& a) {
  if (const Value* v = Find(a.context, "alert_info"); v != nullptr) {
    return Str(v);
  }
  std::string strategy = Field(a, "strategy_id");
  if (strategy == "0" || strategy.empty()) strategy = Field(a, "alert_name");
  return internal::StrCat(strategy, "_", Field(a, "alert_level"), "_",
                          Field(a, "signal"), "_",
                          DimensionsText(Find(a.context, "dimensions")));
}

}  // namespace

std::optional<Value> ResolveContextValue(const Action& a,
                                         std::string_view key) {
  const Value* given = Find(a.context, key);
  if (key == "dimensions") {
    if (given == nullptr) return std::nullopt;
    return given->is_list() ? Value(DimensionsText(given)) : *given;
  }
  if (key == "notice_way") {
    if (given == nullptr || Find(a.context, "notice_channel") != nullptr) {
      return Value(NoticeWay(a));
    }
    return *given;
  }
  if (key == "notice_receiver") {
    if (given == nullptr || given->is_list()) return Value(NoticeReceiver(a));
    return *given;
  }
  if (given != nullptr) return *given;
  if (key == "strategy_id") return Value(a.strategy_id);
  if (key == "bk_biz_id") return Value(a.bk_biz_id);
  if (key == "alert_level") return Value(static_cast<int64_t>(a.alert_level));
  if (key == "signal") return Value(a.signal);
  if (key == "group_notice_way") {
    std::string way = NoticeWay(a);
    std::string user_type = Str(Find(a.context, "user_type"));
    return Value(user_type == "follower" ? internal::StrCat(user_type, "_", way)
                                         : way);
  }
  if (key == "alert_info") return Value(AlertInfo(a));
  if (key == "notice_info") {
    return Value(internal::StrCat(AlertInfo(a), "_", NoticeWay(a), "_",
                                  NoticeReceiver(a)));
  }
  if (key == "action_info") {
    return Value(internal::StrCat(Field(a, "strategy_id"), "_",
                                  Field(a, "signal"), "_", a.action_config_id));
  }
  return std::nullopt;
}

Context BuildContext(const Action& action) {
  Context ctx = action.context;
  for (std::string_view key :
       {"strategy_id", "bk_biz_id", "alert_level", "signal", "dimensions",
        "notice_way", "notice_receiver", "group_notice_way", "alert_info",
        "notice_info", "action_info"}) {
    std::optional<Value> v = ResolveContextValue(action, key);
    if (v.has_value()) ctx.insert_or_assign(std::string(key), *std::move(v));
  }
  return ctx;
}

}  // namespace converge
