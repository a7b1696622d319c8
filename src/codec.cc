#include "converge/codec.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>

#include "internal/strings.h"

namespace converge {
namespace {

// What to reserve for a decoded count: the count is checked against the
// bytes left, not against what they can hold, so a corrupt payload of
// nested lists each claiming "as many items as bytes left" would reserve
// far more than its size. Beyond this, vectors grow as items decode.
size_t Reservable(size_t n) { return n < 1024 ? n : 1024; }

constexpr uint64_t kFunctionCount =
    static_cast<uint64_t>(ConvergeFunction::kTrigger) + 1;

enum ValueTag : uint8_t {
  kNullTag = 0,
  kFalseTag = 1,
  kTrueTag = 2,
  kIntTag = 3,
  kDoubleTag = 4,
  kStringTag = 5,
  kListTag = 6,
};

enum TimeTag : uint8_t { kFinite = 0, kFuture = 1, kPast = 2 };

constexpr uint8_t kIsParent = 1, kShielded = 2;
constexpr uint8_t kIsEnabled = 1, kNeedBizConverge = 2, kHasSub = 4;

// ---- encoding ----

class Writer {
 public:
  void Byte(uint8_t b) { out_.push_back(static_cast<char>(b)); }
  void Varint(uint64_t v) {
    while (v >= 0x80) {
      Byte(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    Byte(static_cast<uint8_t>(v));
  }
  void Signed(int64_t v) {
    Varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));
  }
  void String(std::string_view s) {
    Varint(s.size());
    out_.append(s.data(), s.size());
  }
  void Time(absl::Time t) {
    if (t == absl::InfiniteFuture()) return Byte(kFuture);
    if (t == absl::InfinitePast()) return Byte(kPast);
    Byte(kFinite);
    const int64_t s = absl::ToUnixSeconds(t);  // floor
    Signed(s);
    Varint(static_cast<uint64_t>(
        absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(s))));
  }
  void Put(const Value& v) {
    switch (v.kind()) {
      case Value::Kind::kNull:
        return Byte(kNullTag);
      case Value::Kind::kBool:
        return Byte(v.as_bool() ? kTrueTag : kFalseTag);
      case Value::Kind::kInt:
        Byte(kIntTag);
        return Signed(v.as_int());
      case Value::Kind::kDouble: {
        Byte(kDoubleTag);
        const double d = v.as_double();
        uint64_t bits;
        std::memcpy(&bits, &d, sizeof(bits));
        for (int i = 0; i < 8; ++i) Byte(static_cast<uint8_t>(bits >> (8 * i)));
        return;
      }
      case Value::Kind::kString:
        Byte(kStringTag);
        return String(v.as_string());
      case Value::Kind::kList:
        Byte(kListTag);
        Varint(v.as_list().size());
        for (const Value& item : v.as_list()) Put(item);
        return;
    }
  }
  void Put(const ConvergeConfig& c) {
    Byte((c.is_enabled ? kIsEnabled : 0) |
         (c.need_biz_converge ? kNeedBizConverge : 0) |
         (c.sub_converge_config != nullptr ? kHasSub : 0));
    Varint(static_cast<uint64_t>(c.converge_func));
    Signed(c.timedelta);
    Signed(c.max_timedelta);
    Signed(c.count);
    Varint(c.condition.size());
    for (const Condition& cond : c.condition) {
      String(cond.dimension);
      Varint(cond.value.size());
      for (const Value& v : cond.value) Put(v);
    }
    String(c.description);
    String(c.context);
    if (c.sub_converge_config != nullptr) Put(*c.sub_converge_config);
  }
  void Put(const Action& a) {
    Signed(a.id);
    Time(a.create_time);
    Signed(a.bk_biz_id);
    Signed(a.strategy_id);
    String(a.signal);
    Signed(a.alert_level);
    String(a.plugin_type);
    Signed(a.action_config_id);
    Varint(a.alerts.size());
    for (const std::string& alert : a.alerts) String(alert);
    Byte((a.is_parent ? kIsParent : 0) | (a.shielded ? kShielded : 0));
    Signed(a.execute_timeout);
    Varint(a.context.size());
    for (const auto& [key, value] : a.context) {
      String(key);
      Put(value);
    }
  }

  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// ---- decoding ----

// Reads the input front to back. Every read names the field it reads; the
// first failure is kept as the status and every later read fails at once,
// so callers check ok() at convenient points only.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  size_t left() const { return data_.size() - pos_; }

  // The field path prefix: "action", or "converge_config" followed by one
  // ".sub_converge_config" per nesting level.
  void EnterAction() { in_config_ = false; }
  void EnterConfig(int depth) {
    in_config_ = true;
    config_depth_ = depth;
  }

  bool Byte(uint8_t* out, std::string_view what) {
    if (!ok()) return false;
    if (left() < 1) return Truncated(what);
    *out = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }

  bool Varint(uint64_t* out, std::string_view what) {
    if (!ok()) return false;
    const size_t start = pos_;
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (left() < 1) return Truncated(what);
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      if (shift == 63 && b > 1) {
        return Invalid(start, what, "varint overflows 64 bits");
      }
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *out = v;
        return true;
      }
    }
    return Invalid(start, what, "varint overflows 64 bits");
  }

  bool Signed(int64_t* out, std::string_view what) {
    uint64_t u = 0;
    if (!Varint(&u, what)) return false;
    *out = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }

  bool Int(int* out, std::string_view what) {
    const size_t start = pos_;
    int64_t v = 0;
    if (!Signed(&v, what)) return false;
    if (v < std::numeric_limits<int>::min() ||
        v > std::numeric_limits<int>::max()) {
      return Invalid(start, what, internal::StrCat(v, " is out of range"));
    }
    *out = static_cast<int>(v);
    return true;
  }

  // A count of items each of which takes at least one byte: more than the
  // bytes left cannot be right, and is refused before anything is
  // allocated for it.
  bool Count(size_t* out, std::string_view what) {
    const size_t start = pos_;
    uint64_t n = 0;
    if (!Varint(&n, what)) return false;
    if (n > left()) {
      return Invalid(start, what,
                     internal::StrCat("count ", n, " exceeds the ", left(),
                                      " bytes left"));
    }
    *out = static_cast<size_t>(n);
    return true;
  }

  bool String(std::string* out, std::string_view what) {
    const size_t start = pos_;
    uint64_t n = 0;
    if (!Varint(&n, what)) return false;
    if (n > left()) {
      return Invalid(start, what,
                     internal::StrCat("length ", n, " exceeds the ", left(),
                                      " bytes left"));
    }
    out->assign(data_.data() + pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

  bool Flags(uint8_t* out, uint8_t known, std::string_view what) {
    const size_t start = pos_;
    if (!Byte(out, what)) return false;
    if ((*out & ~known) != 0) {
      return Invalid(
          start, what,
          internal::StrCat("unknown flag bits 0x", absl::Hex(*out & ~known)));
    }
    return true;
  }

  bool Time(absl::Time* out, std::string_view what) {
    const size_t start = pos_;
    uint8_t tag = 0;
    if (!Byte(&tag, what)) return false;
    switch (tag) {
      case kFuture:
        *out = absl::InfiniteFuture();
        return true;
      case kPast:
        *out = absl::InfinitePast();
        return true;
      case kFinite:
        break;
      default:
        return Invalid(
            start, what,
            internal::StrCat("unknown time tag ", static_cast<int>(tag)));
    }
    int64_t s = 0;
    uint64_t ns = 0;
    if (!Signed(&s, what)) return false;
    const size_t ns_start = pos_;
    if (!Varint(&ns, what)) return false;
    if (ns >= 1000000000) {
      return Invalid(ns_start, what,
                     internal::StrCat("nanoseconds ", ns, " out of range"));
    }
    *out =
        absl::FromUnixSeconds(s) + absl::Nanoseconds(static_cast<int64_t>(ns));
    return true;
  }

  // `depth`: lists around this value (0 at the top).
  bool Get(Value* out, std::string_view what, int depth) {
    const size_t start = pos_;
    uint8_t tag = 0;
    if (!Byte(&tag, what)) return false;
    switch (tag) {
      case kNullTag:
        *out = Value();
        return true;
      case kFalseTag:
      case kTrueTag:
        *out = Value(tag == kTrueTag);
        return true;
      case kIntTag: {
        int64_t v = 0;
        if (!Signed(&v, what)) return false;
        *out = Value(v);
        return true;
      }
      case kDoubleTag: {
        if (left() < 8) return Truncated(what);
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) {
          bits |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_++]))
                  << (8 * i);
        }
        double d;
        std::memcpy(&d, &bits, sizeof(d));
        *out = Value(d);
        return true;
      }
      case kStringTag: {
        std::string s;
        if (!String(&s, what)) return false;
        *out = Value(std::move(s));
        return true;
      }
      case kListTag: {
        if (depth >= kMaxValueNesting) {
          return Invalid(
              start, what,
              internal::StrCat("lists nested deeper than ", kMaxValueNesting));
        }
        size_t n = 0;
        if (!Count(&n, what)) return false;
        Value::List list;
        list.reserve(Reservable(n));
        for (size_t i = 0; i < n; ++i) {
          if (!Get(&list.emplace_back(), what, depth + 1)) return false;
        }
        *out = Value(std::move(list));
        return true;
      }
      default:
        return Invalid(
            start, what,
            internal::StrCat("unknown value tag ", static_cast<int>(tag)));
    }
  }

  bool Get(ConvergeConfig* c, int depth) {
    EnterConfig(depth);
    const size_t start = pos_;
    uint8_t flags = 0;
    if (!Flags(&flags, kIsEnabled | kNeedBizConverge | kHasSub, "flags")) {
      return false;
    }
    c->is_enabled = (flags & kIsEnabled) != 0;
    c->need_biz_converge = (flags & kNeedBizConverge) != 0;
    const size_t func_start = pos_;
    uint64_t func = 0;
    if (!Varint(&func, "converge_func")) return false;
    if (func >= kFunctionCount) {
      return Invalid(func_start, "converge_func",
                     internal::StrCat("unknown function ", func));
    }
    c->converge_func = static_cast<ConvergeFunction>(func);
    Signed(&c->timedelta, "timedelta");
    Signed(&c->max_timedelta, "max_timedelta");
    Signed(&c->count, "count");
    size_t n = 0;
    if (!Count(&n, "condition")) return false;
    c->condition.reserve(Reservable(n));
    for (size_t i = 0; i < n; ++i) {
      Condition& cond = c->condition.emplace_back();
      size_t m = 0;
      if (!String(&cond.dimension, "condition dimension") ||
          !Count(&m, "condition value")) {
        return false;
      }
      cond.value.reserve(Reservable(m));
      for (size_t j = 0; j < m; ++j) {
        if (!Get(&cond.value.emplace_back(), "condition value", 0)) {
          return false;
        }
      }
    }
    if (!String(&c->description, "description") ||
        !String(&c->context, "context")) {
      return false;
    }
    if ((flags & kHasSub) != 0) {
      if (depth + 1 > kMaxConfigNesting) {
        return Invalid(
            start, "sub_converge_config",
            internal::StrCat("nested deeper than ", kMaxConfigNesting));
      }
      auto sub = std::make_shared<ConvergeConfig>();
      if (!Get(sub.get(), depth + 1)) return false;
      c->sub_converge_config = std::move(sub);
    }
    return ok();
  }

  bool Get(Action* a) {
    EnterAction();
    Signed(&a->id, "id");
    Time(&a->create_time, "create_time");
    Signed(&a->bk_biz_id, "bk_biz_id");
    Signed(&a->strategy_id, "strategy_id");
    String(&a->signal, "signal");
    Int(&a->alert_level, "alert_level");
    String(&a->plugin_type, "plugin_type");
    Signed(&a->action_config_id, "action_config_id");
    size_t n = 0;
    if (!Count(&n, "alerts")) return false;
    a->alerts.reserve(Reservable(n));
    for (size_t i = 0; i < n; ++i) {
      if (!String(&a->alerts.emplace_back(), "alerts")) return false;
    }
    uint8_t flags = 0;
    if (!Flags(&flags, kIsParent | kShielded, "flags")) return false;
    a->is_parent = (flags & kIsParent) != 0;
    a->shielded = (flags & kShielded) != 0;
    Signed(&a->execute_timeout, "execute_timeout");
    if (!Count(&n, "context")) return false;
    for (size_t i = 0; i < n; ++i) {
      const size_t key_start = pos_;
      std::string key;
      Value value;
      if (!String(&key, "context key") || !Get(&value, "context value", 0)) {
        return false;
      }
      if (!a->context.emplace(std::move(key), std::move(value)).second) {
        return Invalid(key_start, "context key", "duplicate key");
      }
    }
    return ok();
  }

  bool Magic() {
    uint8_t b = 0;
    if (!Byte(&b, "format byte")) return false;
    if ((b & 0xf0) != (kActionTaskFormat & 0xf0)) {
      status_ = absl::InvalidArgumentError(
          internal::StrCat("action task: not an action task (format byte 0x",
                           absl::Hex(b, absl::kZeroPad2), ", expected 0x",
                           absl::Hex(kActionTaskFormat), ")"));
      return false;
    }
    if (b != kActionTaskFormat) {
      status_ = absl::InvalidArgumentError(internal::StrCat(
          "action task: unsupported format version ",
          static_cast<int>(b & 0x0f), " (this build reads version ",
          kActionTaskFormat & 0x0f, ")"));
      return false;
    }
    return true;
  }

  bool End() {
    if (!ok()) return false;
    if (left() != 0) {
      status_ = absl::InvalidArgumentError(
          internal::StrCat("action task: ", left(),
                           " trailing bytes after the task at byte ", pos_));
      return false;
    }
    return true;
  }

 private:
  std::string Field(std::string_view what) const {
    std::string path = in_config_ ? "converge_config" : "action";
    if (in_config_) {
      for (int i = 0; i < config_depth_; ++i) path += ".sub_converge_config";
    }
    internal::StrAppend(&path, ".", what);
    return path;
  }
  bool Truncated(std::string_view what) {
    status_ = absl::InvalidArgumentError(
        internal::StrCat("action task: truncated at byte ", data_.size(),
                         " reading ", Field(what)));
    return false;
  }
  bool Invalid(size_t at, std::string_view what, std::string_view detail) {
    if (!ok()) return false;
    status_ = absl::InvalidArgumentError(internal::StrCat(
        "action task: byte ", at, ": ", Field(what), ": ", detail));
    return false;
  }

  std::string_view data_;
  size_t pos_ = 0;
  absl::Status status_;
  bool in_config_ = false;
  int config_depth_ = 0;
};

// True if `v` has lists nested deeper than `limit`.
bool TooDeep(const Value& v, int limit) {
  if (!v.is_list()) return false;
  if (limit <= 0) return true;
  for (const Value& item : v.as_list()) {
    if (TooDeep(item, limit - 1)) return true;
  }
  return false;
}

}  // namespace

std::string EncodeActionTask(const Action& action,
                             const ConvergeConfig& config) {
  Writer w;
  w.Byte(kActionTaskFormat);
  w.Put(action);
  w.Put(config);
  return w.Take();
}

absl::StatusOr<ActionTask> DecodeActionTask(std::string_view data) {
  Reader r(data);
  ActionTask task;
  if (r.Magic() && r.Get(&task.action) && r.Get(&task.config, 0) && r.End()) {
    return task;
  }
  return r.status();
}

absl::Status ValidateActionTask(const Action& action,
                                const ConvergeConfig& config) {
  for (const auto& [key, value] : action.context) {
    if (TooDeep(value, kMaxValueNesting)) {
      return absl::InvalidArgumentError(
          internal::StrCat("action.context.", key,
                           ": lists nested deeper than ", kMaxValueNesting));
    }
  }
  std::string path = "converge_config";
  const ConvergeConfig* c = &config;
  for (int depth = 0; c != nullptr; ++depth) {
    if (depth > kMaxConfigNesting) {
      return absl::InvalidArgumentError(
          internal::StrCat(path, ": more than ", kMaxConfigNesting,
                           " levels of sub_converge_config"));
    }
    for (size_t i = 0; i < c->condition.size(); ++i) {
      for (size_t j = 0; j < c->condition[i].value.size(); ++j) {
        if (TooDeep(c->condition[i].value[j], kMaxValueNesting)) {
          return absl::InvalidArgumentError(internal::StrCat(
              path, ".condition[", i, "].value[", j,
              "]: lists nested deeper than ", kMaxValueNesting));
        }
      }
    }
    c = c->sub_converge_config.get();
    if (c != nullptr) path += ".sub_converge_config";
  }
  return absl::OkStatus();
}

}  // namespace converge
