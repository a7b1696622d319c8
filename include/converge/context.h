// Derives upstream's composite context values (section 1.5 of the spec) from
// an action's fields, so that conditions on alert_info, notice_info,
// action_info and the rest resolve without the caller computing them.
//
// Thread safety: pure functions.

#ifndef CONVERGE_CONTEXT_H_
#define CONVERGE_CONTEXT_H_

#include <optional>
#include <string_view>

#include "converge/model.h"

namespace converge {

// Returns the action's context with every missing composite key filled in.
// Keys the caller set are kept as given. Derived keys:
//   strategy_id, bk_biz_id, alert_level, signal   from the action's fields
//   dimensions        context "dimensions" if it is a string (upstream's
//                     dimension hash); if it is a list of "k=v" strings, the
//                     MD5 of their sorted, non-empty items joined by ","
//   alert_info        "{strategy_id}_{alert_level}_{signal}_{dimensions}",
//                     alert_name in place of strategy_id when that is 0
//   notice_way        context "notice_way" ("" if absent); with a non-default
//                     "notice_channel" c it becomes "c|way"
//   notice_receiver   context "notice_receiver" ("" if absent); a list is
//                     comma-joined
//   group_notice_way  "{user_type}_{notice_way}" when context "user_type" is
//                     "follower", else notice_way
//   notice_info       "{alert_info}_{notice_way}_{notice_receiver}"
//   action_info       "{strategy_id}_{signal}_{action_config_id}"
Context BuildContext(const Action& action);

// The value BuildContext(action) would hold for `key`, computed alone (the
// manager resolves only the keys a rule names). nullopt when the key would be
// absent.
std::optional<Value> ResolveContextValue(const Action& action,
                                         std::string_view key);

}  // namespace converge

#endif  // CONVERGE_CONTEXT_H_
