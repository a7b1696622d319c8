#include "converge/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace converge {
namespace {

// Python's repr of a float: the shortest digits that round-trip, written
// positionally when the decimal exponent is in [-4, 16), else as d.ddde+XX;
// integral values keep ".0"; inf/nan as Python spells them.
std::string PyFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  // The shortest digits that round-trip, as Python finds them, whatever
  // the host's locale (snprintf and strtod follow LC_NUMERIC, which an
  // embedding program may set to one with a decimal comma).
  char buf[64];
  const std::to_chars_result r =
      std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  if (r.ec != std::errc()) return "nan";  // cannot happen: 64 bytes suffice
  // buf is "[-]d[.ddd]e[+-]XX".
  std::string text(buf, r.ptr);
  std::string sign;
  if (text[0] == '-') {
    sign = "-";
    text.erase(0, 1);
  }
  const size_t e = text.find('e');
  const int exponent = std::atoi(text.c_str() + e + 1);
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (text[i] != '.') digits.push_back(text[i]);
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  std::string out = sign;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(-exponent - 1, '0') + digits;
    } else if (static_cast<int>(digits.size()) <= exponent + 1) {
      out += digits + std::string(exponent + 1 - digits.size(), '0') + ".0";
    } else {
      out += digits.substr(0, exponent + 1) + "." + digits.substr(exponent + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  char exp[16];
  std::snprintf(exp, sizeof(exp), "e%c%02d", exponent < 0 ? '-' : '+',
                exponent < 0 ? -exponent : exponent);
  return out + exp;
}

void AppendPyRepr(const Value& v, std::string* out);

// The length of the well-formed UTF-8 sequence at s[i] (its code point in
// *cp), or 0 if there is none: no overlong forms, surrogates or code points
// beyond U+10FFFF.
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  const unsigned char b0 = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t v;
  uint32_t min;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    n = 2, v = b0 & 0x1f, min = 0x80;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3, v = b0 & 0x0f, min = 0x800;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4, v = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const unsigned char b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

// Python's str.isprintable() of one code point from U+0080 up.
bool PyPrintable(uint32_t cp) {
  struct Range {
    uint32_t first, last;
  };
  static constexpr Range kNonPrintable[] = {
#include "internal/py_nonprintable.inc"
  };
  const Range* end = std::end(kNonPrintable);
  const Range* it =
      std::upper_bound(std::begin(kNonPrintable), end, cp,
                       [](uint32_t v, const Range& r) { return v < r.first; });
  return it == std::begin(kNonPrintable) || cp > (it - 1)->last;
}

void AppendPyStr(const Value& v, std::string* out) {
  switch (v.kind()) {
    case Value::Kind::kNull:
      out->append("None");
      return;
    case Value::Kind::kBool:
      out->append(v.as_bool() ? "True" : "False");
      return;
    case Value::Kind::kInt:
      absl::StrAppend(out, v.as_int());
      return;
    case Value::Kind::kDouble:
      out->append(PyFloat(v.as_double()));
      return;
    case Value::Kind::kString:
      out->append(v.as_string());
      return;
    case Value::Kind::kList: {
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.as_list()) {
        if (!first) out->append(", ");
        first = false;
        AppendPyRepr(item, out);
      }
      out->push_back(']');
      return;
    }
  }
}

void AppendPyRepr(const Value& v, std::string* out) {
  if (!v.is_string()) {
    AppendPyStr(v, out);
    return;
  }
  // Python prefers single quotes unless the text has one and no double.
  const std::string& s = v.as_string();
  char q =
      (s.find('\'') != std::string::npos && s.find('"') == std::string::npos)
          ? '"'
          : '\'';
  out->push_back(q);
  constexpr char kHex[] = "0123456789abcdef";
  auto escape = [&](char kind, uint32_t cp, int digits) {
    out->push_back('\\');
    out->push_back(kind);
    for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) {
      out->push_back(kHex[(cp >> shift) & 0xf]);
    }
  };
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      // A code point beyond ASCII: escaped as Python writes it when it is
      // not printable (\xhh below U+0100, \uhhhh, \Uhhhhhhhh); bytes that
      // are not UTF-8 (which a Python str cannot hold) are kept.
      uint32_t cp = 0;
      const size_t n = DecodeUtf8(s, i, &cp);
      if (n == 0) {
        out->push_back(c);
        ++i;
        continue;
      }
      if (!PyPrintable(cp)) {
        if (cp < 0x100) {
          escape('x', cp, 2);
        } else if (cp < 0x10000) {
          escape('u', cp, 4);
        } else {
          escape('U', cp, 8);
        }
      } else {
        out->append(s, i, n);
      }
      i += n;
      continue;
    }
    ++i;
    if (c == q || c == '\\') out->push_back('\\');
    if (c == '\n') {
      out->append("\\n");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (u < 0x20 || u == 0x7f) {
      escape('x', u, 2);  // other ASCII controls ('\x01')
    } else {
      out->push_back(c);
    }
  }
  out->push_back(q);
}

}  // namespace

std::string Value::PyStr() const {
  if (is_string()) return as_string();
  std::string out;
  AppendPyStr(*this, &out);
  return out;
}

bool Value::IsEmpty() const {
  switch (kind()) {
    case Kind::kNull:
      return true;
    case Kind::kString:
      return as_string().empty();
    case Kind::kList:
      return as_list().empty();
    default:
      return false;
  }
}

}  // namespace converge
