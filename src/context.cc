#include "converge/context.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "internal/strings.h"
#include "absl/strings/str_join.h"
#include "converge/dimension.h"

namespace converge {
namespace {

const Value* Find(const Context& ctx, std::string_view key) {
  auto it = ctx.find(key);
  return it == ctx.end() ? nullptr : &it->second;
}

std::string Str(const Context& ctx, std::string_view key) {
  const Value* v = Find(ctx, key);
  if (v == nullptr || v->is_null()) return "";
  return v->PyStr();
}

// Upstream's dimension hash: MD5 over the alert's sorted, non-empty common
// dimensions. Callers that have upstream's hash pass it as a string.
std::string DimensionsValue(const Value* v) {
  if (v == nullptr || v->is_null()) return "";
  if (!v->is_list()) return v->PyStr();
  std::vector<std::string> items;
  for (const Value& item : v->as_list()) {
    std::string s = item.PyStr();
    // "k=" (an empty value) does not count, as upstream drops empty values.
    if (s.empty() || s.back() == '=') continue;
    items.push_back(std::move(s));
  }
  std::sort(items.begin(), items.end());
  return Md5Hex(absl::StrJoin(items, ","));
}

}  // namespace

Context BuildContext(const Action& action) {
  Context ctx = action.context;
  ctx.try_emplace("strategy_id", action.strategy_id);
  ctx.try_emplace("bk_biz_id", action.bk_biz_id);
  ctx.try_emplace("alert_level", static_cast<int64_t>(action.alert_level));
  ctx.try_emplace("signal", action.signal);

  const Value* dims = Find(ctx, "dimensions");
  if (dims != nullptr && dims->is_list()) {
    ctx["dimensions"] = DimensionsValue(dims);
  }
  const std::string dimensions = DimensionsValue(Find(ctx, "dimensions"));

  std::string notice_way = Str(ctx, "notice_way");
  if (std::string channel = Str(ctx, "notice_channel");
      !channel.empty() && channel != "user") {
    notice_way = internal::StrCat(channel, "|", notice_way);
    ctx["notice_way"] = notice_way;
  } else {
    ctx.try_emplace("notice_way", notice_way);
  }
  std::string receiver;
  if (const Value* r = Find(ctx, "notice_receiver"); r != nullptr &&
                                                       r->is_list()) {
    std::vector<std::string> names;
    for (const Value& item : r->as_list()) names.push_back(item.PyStr());
    receiver = absl::StrJoin(names, ",");
    ctx["notice_receiver"] = receiver;
  } else {
    receiver = Str(ctx, "notice_receiver");
    ctx.try_emplace("notice_receiver", receiver);
  }
  if (!ctx.count("group_notice_way")) {
    std::string user_type = Str(ctx, "user_type");
    ctx["group_notice_way"] =
        user_type == "follower" ? internal::StrCat(user_type, "_", notice_way)
                                : notice_way;
  }

  std::string strategy = Str(ctx, "strategy_id");
  if (strategy == "0" || strategy.empty()) strategy = Str(ctx, "alert_name");
  if (!ctx.count("alert_info")) {
    ctx["alert_info"] =
        internal::StrCat(strategy, "_", Str(ctx, "alert_level"), "_",
                     Str(ctx, "signal"), "_", dimensions);
  }
  if (!ctx.count("notice_info")) {
    ctx["notice_info"] = internal::StrCat(Str(ctx, "alert_info"), "_", notice_way,
                                      "_", receiver);
  }
  if (!ctx.count("action_info")) {
    ctx["action_info"] = internal::StrCat(Str(ctx, "strategy_id"), "_",
                                      Str(ctx, "signal"), "_",
                                      action.action_config_id);
  }
  return ctx;
}

}  // namespace converge
