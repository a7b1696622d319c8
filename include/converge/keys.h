// Typed templates for upstream's Redis keys (section 2.2 of the spec).
//
// A template has a format with named fields ("fta_action.converge.
// {strategy_id}.{dimension}.{value}"), a key type, a TTL, and a label. A
// KeySpace renders templates under a configurable prefix, optionally with a
// Redis Cluster hash tag so that every key one decision touches hashes to one
// slot. Adapters receive rendered keys; the core owns the templates.
//
// Thread safety: immutable after construction; safe to share.

#ifndef CONVERGE_KEYS_H_
#define CONVERGE_KEYS_H_

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace converge {

enum class KeyType { kString, kHash, kSet, kList, kSortedSet };

struct KeyTemplate {
  std::string_view label;    // upstream constant name
  std::string_view key_tpl;  // "{field}" placeholders, no nesting
  KeyType key_type;
  // Upstream's expiry for the key, for reference (docs and tools that
  // compare with a bk-monitor deployment). converge computes its own
  // expiries (a window index key lives for the retention plus the window;
  // see ManagerOptions) and does not read this.
  absl::Duration ttl;
};

// The upstream templates, by their upstream names.
namespace keys {
extern const KeyTemplate kConvergeList;              // K1 (legacy queue)
extern const KeyTemplate kConvergeDimension;         // K2 window index
extern const KeyTemplate kSubConvergeDimension;      // K3 business index
extern const KeyTemplate kSubConvergeDimensionLock;  // K4 business counter
extern const KeyTemplate kConvergeProcessLock;       // K5 dimension lease
extern const KeyTemplate kNoticeCollect;             // K6 notice fan-in
extern const KeyTemplate kNoticeCollectLock;         // K7
}  // namespace keys

// One named field value for Render. Fields are few (at most five per
// template), so they are passed as a flat list, not a map: a braced list at
// the call (`Render(tpl, {{"dimension", d}})`) or an array of KeyField. A
// KeyFields is a view; do not keep one made from a braced list.
struct KeyField {
  std::string_view name;
  std::string_view value;
};
using KeyFields = absl::Span<const KeyField>;

struct KeySpaceOptions {
  // Upstream PUBLIC_KEY_PREFIX; the full key is prefix + "." + rendered.
  // Empty: no prefix and no dot.
  std::string prefix = "bkmonitorv3.ee";
  // When true, Render(..., route) inserts "{route}." right after the prefix,
  // a Redis Cluster hash tag. Default true. False gives upstream's exact key
  // names (and no co-location guarantee on a cluster).
  bool hash_tags = true;
};

class KeySpace {
 public:
  explicit KeySpace(KeySpaceOptions options = {});

  // Renders `tpl` with `fields`. Fields the template does not use are
  // ignored. Returns kInvalidArgument naming the template and the field when
  // a field the template uses is missing, or when the template is malformed.
  // `route` is the hash tag content (for example "s42" for strategy 42); it
  // is ignored when hash tags are off or route is empty.
  absl::StatusOr<std::string> Render(const KeyTemplate& tpl, KeyFields fields,
                                     std::string_view route = {}) const;

  const KeySpaceOptions& options() const { return options_; }

 private:
  KeySpaceOptions options_;
};

// Names of the fields a template uses, in order of appearance.
std::vector<std::string> TemplateFields(const KeyTemplate& tpl);

}  // namespace converge

#endif  // CONVERGE_KEYS_H_
