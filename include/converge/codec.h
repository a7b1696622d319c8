// The action task codec: the payload of an "action" task on the task queue
// (Processor::SubmitAction writes it, the processor's "action" handler reads
// it). It carries an action and the converge_config to decide it under.
//
// The format is compact, versioned and self-contained (no schema outside this
// file), so that tasks written by one release are read by the next:
//
//   task      := 0xC1 action config            (0xC = magic, 1 = version)
//   action    := zz(id) time zz(bk_biz_id) zz(strategy_id) str(signal)
//                zz(alert_level) str(plugin_type) zz(action_config_id)
//                uv(n) str*n (alerts) flags(is_parent=1, shielded=2)
//                zz(execute_timeout) uv(n) (str(key) value)*n (context)
//   config    := flags(is_enabled=1, need_biz_converge=2, has_sub=4)
//                uv(converge_func) zz(timedelta) zz(max_timedelta) zz(count)
//                uv(n) (str(dimension) uv(m) value*m)*n (condition)
//                str(description) str(context) [config (sub, if has_sub)]
//   time      := 0 zz(unix seconds) uv(nanoseconds 0..999999999)
//              | 1 (infinite future) | 2 (infinite past)
//   value     := 0 (null) | 1 (false) | 2 (true) | 3 zz(int)
//              | 4 8-byte little-endian IEEE 754 double | 5 str | 6 uv(n)
//              value*n
//   str       := uv(byte length) bytes
//   uv / zz   := unsigned LEB128 varint / zigzag-encoded signed varint
//
// converge_func is the enum's ordinal (ConvergeFunction, in declaration
// order). Times keep nanoseconds (absl's quarter-nanoseconds are dropped).
// The task is the whole input: trailing bytes are an error.
//
// Decoding never trusts the input: every length and count is checked against
// the bytes that are left before anything is allocated, and nesting is
// bounded, so garbage, truncated or hostile input gives kInvalidArgument
// naming the byte offset and the field ("action task: truncated at byte 17
// reading action.context value"), never a crash or a large allocation.
//
// Thread safety: free functions on values; safe to call concurrently.

#ifndef CONVERGE_CODEC_H_
#define CONVERGE_CODEC_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "converge/config.h"
#include "converge/model.h"

namespace converge {

// The first byte of every encoded task: magic 0xC in the high nibble, the
// format version in the low nibble.
inline constexpr unsigned char kActionTaskFormat = 0xC1;

// Deepest list nesting of a value (a context value or a condition literal;
// a scalar has depth 0, a list of scalars depth 1) that decoding accepts.
inline constexpr int kMaxValueNesting = 32;
// Deepest chain of sub_converge_config that decoding accepts (the top-level
// config is depth 0).
inline constexpr int kMaxConfigNesting = 8;

struct ActionTask {
  Action action;
  ConvergeConfig config;
};

// Encodes `action` and `config`. Never fails; input nested deeper than the
// limits above encodes, but does not decode: check it with
// ValidateActionTask first (Processor::SubmitAction does).
std::string EncodeActionTask(const Action& action,
                             const ConvergeConfig& config);

// Decodes a payload written by EncodeActionTask. kInvalidArgument, whose
// message starts with "action task: " and names the byte offset and the
// field, for anything that is not such a payload (wrong magic byte or
// version, truncation, an unknown tag or enum value, a length beyond the
// input, nesting beyond the limits, a duplicate context key, trailing bytes).
absl::StatusOr<ActionTask> DecodeActionTask(std::string_view data);

// OK if EncodeActionTask(action, config) decodes again: values nested at
// most kMaxValueNesting deep and sub-configs at most kMaxConfigNesting deep.
// Otherwise kInvalidArgument naming the field path.
absl::Status ValidateActionTask(const Action& action,
                                const ConvergeConfig& config);

}  // namespace converge

#endif  // CONVERGE_CODEC_H_
