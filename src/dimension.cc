#include "converge/dimension.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "internal/strings.h"

namespace converge {
namespace {

const Value kEmptyString{std::string()};

}  // namespace

std::string RenderDimensionValue(const Value& v) {
  if (!v.is_list()) return v.PyStr();
  const Value::List& list = v.as_list();
  std::string joined;
  for (size_t i = 0; i < list.size(); ++i) {
    if (i > 0) joined.push_back(',');
    joined.append(list[i].PyStr());
  }
  if (list.size() < 4) return joined;
  // Upstream calls md5 on the list itself and crashes; the intended form is
  // first,<5 hex>.<n-2>,last. We hash the comma-joined items.
  return internal::StrCat(list.front().PyStr(), ",", Md5Hex(joined).substr(0, 5),
                      ".", list.size() - 2, ",", list.back().PyStr());
}

DimensionResult ComputeDimension(const ConvergeConfig& effective,
                                 const ConvergeConfig& original,
                                 const Context& context) {
  // Effective entries keyed by dimension, overlaid by the original ones (the
  // original wins), in codepoint order of the key (std::string compares
  // bytes, and UTF-8 byte order is codepoint order).
  std::map<std::string_view, const Condition*> merged;
  for (const Condition& c : effective.condition) merged[c.dimension] = &c;
  for (const Condition& c : original.condition) merged[c.dimension] = &c;

  DimensionResult result;
  std::string& text = result.canonical_text;
  text.reserve(160);
  text.push_back('#');
  text.append(ToString(effective.converge_func));
  for (const auto& [key, cond] : merged) {
    std::vector<Value>& converged =
        result.converged_condition[std::string(key)];
    converged.reserve(cond->value.size());
    for (const Value& raw : cond->value) {
      const Value* v = &raw;
      if (raw.is_string() && raw.as_string() == "self") {
        auto it = context.find(key);
        v = it == context.end() ? &kEmptyString : &it->second;
      }
      text.push_back('|');
      text.append(key);
      text.push_back(':');
      text.append(RenderDimensionValue(*v));
      if (v->is_list()) {
        converged.push_back(v->as_list().empty() ? Value()
                                                 : v->as_list().front());
      } else {
        converged.push_back(*v);
      }
    }
  }
  result.dimension = internal::StrCat("!sha1#", Sha1Hex(text));
  return result;
}

EffectiveConfig MakeEffective(const ConvergeConfig& original,
                              const RuleOptions& options, ConvergeType type,
                              std::string_view plugin_type, bool is_parent,
                              const Context& context) {
  EffectiveConfig out;
  out.config = original;
  ConvergeConfig& c = out.config;
  const bool bkmonitor = options.profile == Profile::kBkmonitor;
  if (bkmonitor) {
    if (type == ConvergeType::kAction) {
      if (plugin_type == "notice") {
        c.timedelta = 120;
        c.count = 1;
        auto it = context.find("notice_info");
        if (it != context.end() && !it->second.IsEmpty()) {
          c.condition = {Condition{"notice_info", {Value("self")}}};
        }
      } else if (c.condition.empty()) {
        c.condition = {Condition{"action_info", {Value("self")}}};
      }
    } else {
      c.timedelta = options.multi_strategy_collect_window;
      c.count = options.multi_strategy_collect_threshold;
    }
  }

  if (!c.is_enabled) {
    out.illegal_reason = "converge_config.is_enabled is missing or false";
  } else if (is_parent) {
    out.illegal_reason = "parent actions are never converged";
  } else if (c.condition.empty()) {
    out.illegal_reason = "illegal converge_config: empty condition";
  } else if (c.timedelta <= 0) {
    out.illegal_reason = "illegal converge_config: timedelta <= 0";
  } else if (c.count < 0) {
    out.illegal_reason = "illegal converge_config: count < 0";
  }
  out.legal = out.illegal_reason.empty();

  int64_t wc = c.timedelta;
  int64_t wm = c.max_timedelta;
  if (bkmonitor || options.minute_windows) {
    wc = wc / 60 * 60;
    wm = wm / 60 * 60;
  }
  out.window_seconds = wm > 0 ? wm : wc;
  return out;
}

}  // namespace converge
