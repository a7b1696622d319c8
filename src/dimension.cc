#include "converge/dimension.h"

#include <algorithm>
#include <map>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "internal/hash.h"
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
  return internal::StrCat(list.front().PyStr(), ",",
                          Md5Hex(joined).substr(0, 5), ".", list.size() - 2,
                          ",", list.back().PyStr());
}

DimensionResult ComputeDimension(const ConvergeConfig& effective,
                                 const ConvergeConfig& original,
                                 const Context& context) {
  return ComputeDimension(
      effective, original,
      [&](std::string_view key) -> const Value* {
        auto it = context.find(key);
        return it == context.end() ? nullptr : &it->second;
      },
      true);
}

DimensionResult ComputeDimension(const ConvergeConfig& effective,
                                 const ConvergeConfig& original,
                                 ContextLookup lookup, bool details) {
  // Effective entries keyed by dimension, overlaid by the original ones (the
  // original wins), in codepoint order of the key (std::string compares
  // bytes, and UTF-8 byte order is codepoint order). A sorted flat list:
  // conditions have a handful of keys.
  absl::InlinedVector<std::pair<std::string_view, const Condition*>, 8> merged;
  auto put = [&](const Condition& c) {
    for (auto& entry : merged) {
      if (entry.first == c.dimension) {
        entry.second = &c;
        return;
      }
    }
    merged.emplace_back(c.dimension, &c);
  };
  for (const Condition& c : effective.condition) put(c);
  for (const Condition& c : original.condition) put(c);
  std::sort(merged.begin(), merged.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });

  DimensionResult result;
  // Without details the text goes to a per-thread scratch buffer, unless a
  // lookup re-enters ComputeDimension while it is in use.
  thread_local std::string scratch;
  thread_local bool scratch_busy = false;
  std::string local;
  const bool use_scratch = !details && !scratch_busy;
  std::string& text =
      details ? result.canonical_text : (use_scratch ? scratch : local);
  struct Busy {
    bool on;
    ~Busy() {
      if (on) scratch_busy = false;
    }
  } busy{use_scratch};
  if (use_scratch) scratch_busy = true;
  text.clear();
  text.reserve(160);
  text.push_back('#');
  text.append(ToString(effective.converge_func));
  for (const auto& [key, cond] : merged) {
    std::vector<Value>* converged = nullptr;
    if (details) {
      converged = &result.converged_condition.try_emplace(std::string(key))
                       .first->second;
      converged->reserve(cond->value.size());
    }
    for (const Value& raw : cond->value) {
      const Value* v = &raw;
      if (raw.is_string() && raw.as_string() == "self") {
        v = lookup(key);
        if (v == nullptr) v = &kEmptyString;
      }
      text.push_back('|');
      text.append(key);
      text.push_back(':');
      if (v->is_string()) {
        text.append(v->as_string());
      } else {
        text.append(RenderDimensionValue(*v));
      }
      if (converged == nullptr) continue;
      if (v->is_list()) {
        converged->push_back(v->as_list().empty() ? Value()
                                                  : v->as_list().front());
      } else {
        converged->push_back(*v);
      }
    }
  }
  result.dimension.reserve(46);
  result.dimension.append("!sha1#");
  internal::AppendSha1Hex(text, &result.dimension);
  return result;
}

bool ApplyProfile(ConvergeConfig* c, const RuleOptions& options,
                  ConvergeType type, std::string_view plugin_type,
                  bool has_notice_info) {
  if (options.profile != Profile::kBkmonitor) return false;
  if (type == ConvergeType::kAction) {
    if (plugin_type == "notice") {
      c->timedelta = 120;
      c->count = 1;
      if (has_notice_info) {
        c->condition = {Condition{"notice_info", {Value("self")}}};
      }
    } else if (c->condition.empty()) {
      c->condition = {Condition{"action_info", {Value("self")}}};
    } else {
      return false;
    }
  } else {
    c->timedelta = options.multi_strategy_collect_window;
    c->count = options.multi_strategy_collect_threshold;
  }
  return true;
}

std::string IllegalReason(const ConvergeConfig& c, bool is_parent) {
  if (!c.is_enabled) return "converge_config.is_enabled is missing or false";
  if (is_parent) return "parent actions are never converged";
  if (c.condition.empty()) return "illegal converge_config: empty condition";
  if (c.timedelta <= 0) return "illegal converge_config: timedelta <= 0";
  if (c.count < 0) return "illegal converge_config: count < 0";
  return "";
}

int64_t WindowSeconds(const ConvergeConfig& c, const RuleOptions& options) {
  int64_t wc = c.timedelta;
  int64_t wm = c.max_timedelta;
  if (options.profile == Profile::kBkmonitor || options.minute_windows) {
    wc = wc / 60 * 60;
    wm = wm / 60 * 60;
  }
  return wm > 0 ? wm : wc;
}

EffectiveConfig MakeEffective(const ConvergeConfig& original,
                              const RuleOptions& options, ConvergeType type,
                              std::string_view plugin_type, bool is_parent,
                              const Context& context) {
  EffectiveConfig out;
  out.config = original;
  auto it = context.find("notice_info");
  ApplyProfile(&out.config, options, type, plugin_type,
               it != context.end() && !it->second.IsEmpty());
  out.illegal_reason = IllegalReason(out.config, is_parent);
  out.legal = out.illegal_reason.empty();
  out.window_seconds = WindowSeconds(out.config, options);
  return out;
}

}  // namespace converge
