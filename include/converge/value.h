// A small dynamically typed value: what a context entry or a condition
// literal can hold in upstream's JSON (null, bool, integer, float, string, or
// a list of those).
//
// Thread safety: a Value is a plain value type; const access from many threads
// is safe, mutation needs external synchronization.

#ifndef CONVERGE_VALUE_H_
#define CONVERGE_VALUE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace converge {

namespace value_detail {
template <typename T>
concept FitsInt64 = std::is_integral_v<T> && !std::is_same_v<T, bool> &&
                    sizeof(T) <= sizeof(int64_t) &&
                    (std::is_signed_v<T> || sizeof(T) < sizeof(int64_t));
template <typename T>
concept WideUnsigned = std::is_integral_v<T> && std::is_unsigned_v<T> &&
                       !std::is_same_v<T, bool> &&
                       sizeof(T) >= sizeof(int64_t);
}  // namespace value_detail

class Value {
 public:
  enum class Kind { kNull, kBool, kInt, kDouble, kString, kList };
  using List = std::vector<Value>;

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  // Any integer type whose values all fit int64_t (int, long, long long,
  // unsigned, ...): an integer. (Separate int and int64_t constructors made
  // `long long` and `unsigned` ambiguous.)
  template <value_detail::FitsInt64 T>
  Value(T i) : v_(static_cast<int64_t>(i)) {}
  // A 64-bit unsigned value may not fit int64_t: convert it where it is
  // known to fit (Python ints beyond int64_t have no Value).
  template <value_detail::WideUnsigned T>
  Value(T) = delete;
  Value(double d) : v_(d) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(List l) : v_(std::move(l)) {}

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_null() const { return kind() == Kind::kNull; }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }

  // Accessors: calling one for the wrong kind is a programming error
  // (std::bad_variant_access); check kind() first.
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_double() const { return std::get<double>(v_); }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  const List& as_list() const { return std::get<List>(v_); }

  // Python's str() of the value, which upstream uses to build dimension texts
  // and key fields: ints in decimal, floats as repr ("1.0", "0.1"), None ->
  // "None", bools -> "True"/"False", strings unquoted, lists as Python prints
  // them (['a', 1]).
  std::string PyStr() const;

  // True for null, "" and []: the values upstream treats as "not set".
  bool IsEmpty() const;

  friend bool operator==(const Value& a, const Value& b) {
    return a.v_ == b.v_;
  }
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, List> v_;
};

}  // namespace converge

#endif  // CONVERGE_VALUE_H_
