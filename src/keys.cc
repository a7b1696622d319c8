#include "converge/keys.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "internal/strings.h"

namespace converge {
namespace keys {

const KeyTemplate kConvergeList{"CONVERGE_LIST_KEY", "converge.{converge_type}",
                                KeyType::kList, absl::Seconds(604800)};
const KeyTemplate kConvergeDimension{
    "FTA_CONVERGE_DIMENSION_KEY",
    "fta_action.converge.{strategy_id}.{dimension}.{value}",
    KeyType::kSortedSet, absl::Seconds(1800)};
const KeyTemplate kSubConvergeDimension{
    "FTA_SUB_CONVERGE_DIMENSION_KEY",
    "fta_action.sub_converge.{bk_biz_id}.{signal}.{notice_way}."
    "{notice_receiver}.{alert_level}",
    KeyType::kSortedSet, absl::Seconds(1800)};
const KeyTemplate kSubConvergeDimensionLock{
    "FTA_SUB_CONVERGE_DIMENSION_LOCK_KEY",
    "fta_action.sub_converge.lock.{bk_biz_id}.{signal}.{notice_way}."
    "{notice_receiver}.{alert_level}",
    KeyType::kString, absl::Seconds(120)};
const KeyTemplate kConvergeProcessLock{
    "ACTION_CONVERGE_KEY_PROCESS_LOCK",
    "fta_action.converge.{dimension}.process.lock", KeyType::kString,
    absl::Seconds(60)};
const KeyTemplate kNoticeCollect{
    "FTA_NOTICE_COLLECT_KEY",
    "fta_action.notice.{action_signal}.{notice_way}.{alert_id}", KeyType::kHash,
    absl::Seconds(86400)};
const KeyTemplate kNoticeCollectLock{
    "FTA_NOTICE_COLLECT_LOCK",
    "fta_action.notice.lock.{action_signal}.{notice_way}.{alert_id}",
    KeyType::kString, absl::Seconds(300)};

}  // namespace keys

namespace {

// Walks the template, calling on_text for literal runs and on_field for
// "{name}" placeholders. Returns kInvalidArgument for an unclosed or empty
// placeholder.
template <typename OnText, typename OnField>
absl::Status Walk(const KeyTemplate& tpl, OnText on_text, OnField on_field) {
  std::string_view s = tpl.key_tpl;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t open = s.find('{', pos);
    if (open == std::string_view::npos) {
      on_text(s.substr(pos));
      break;
    }
    on_text(s.substr(pos, open - pos));
    size_t close = s.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) {
      return absl::InvalidArgumentError(
          internal::StrCat("keys: template ", tpl.label, " \"", tpl.key_tpl,
                           "\" has a malformed placeholder at ", open));
    }
    if (absl::Status st = on_field(s.substr(open + 1, close - open - 1));
        !st.ok()) {
      return st;
    }
    pos = close + 1;
  }
  return absl::OkStatus();
}

}  // namespace

KeySpace::KeySpace(KeySpaceOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::string> KeySpace::Render(const KeyTemplate& tpl,
                                             KeyFields fields,
                                             std::string_view route) const {
  // Hot path (one or two keys per decision): one pass to validate and size,
  // one to write, into a single allocation.
  const std::string_view t = tpl.key_tpl;
  const bool tagged = options_.hash_tags && !route.empty();
  size_t size = options_.prefix.size() + (options_.prefix.empty() ? 0 : 1) +
                (tagged ? route.size() + 3 : 0);
  auto field = [&](std::string_view name) -> const KeyField* {
    for (const KeyField& f : fields) {
      if (f.name == name) return &f;
    }
    return nullptr;
  };
  for (size_t pos = 0; pos < t.size();) {
    const size_t open = t.find('{', pos);
    if (open == std::string_view::npos) {
      size += t.size() - pos;
      break;
    }
    size += open - pos;
    const size_t close = t.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) {
      return absl::InvalidArgumentError(
          internal::StrCat("keys: template ", tpl.label, " \"", tpl.key_tpl,
                           "\" has a malformed placeholder at ", open));
    }
    const std::string_view name = t.substr(open + 1, close - open - 1);
    const KeyField* f = field(name);
    if (f == nullptr) {
      return absl::InvalidArgumentError(
          internal::StrCat("keys: template ", tpl.label, " needs field \"",
                           name, "\", which is missing"));
    }
    size += f->value.size();
    pos = close + 1;
  }
  std::string out;
  out.reserve(size);
  if (!options_.prefix.empty()) {
    out.append(options_.prefix);
    out.push_back('.');
  }
  if (tagged) {
    out.push_back('{');
    out.append(route);
    out.append("}.");
  }
  for (size_t pos = 0; pos < t.size();) {
    const size_t open = t.find('{', pos);
    if (open == std::string_view::npos) {
      out.append(t.substr(pos));
      break;
    }
    out.append(t.substr(pos, open - pos));
    const size_t close = t.find('}', open + 1);
    out.append(field(t.substr(open + 1, close - open - 1))->value);
    pos = close + 1;
  }
  return out;
}

std::vector<std::string> TemplateFields(const KeyTemplate& tpl) {
  std::vector<std::string> names;
  (void)Walk(
      tpl, [](std::string_view) {},
      [&](std::string_view name) {
        names.emplace_back(name);
        return absl::OkStatus();
      });
  return names;
}

}  // namespace converge
