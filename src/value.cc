#include "converge/value.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
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
  for (char c : s) {
    if (c == q || c == '\\') out->push_back('\\');
    if (c == '\n') {
      out->append("\\n");
    } else if (c == '\t') {
      out->append("\\t");
    } else if (c == '\r') {
      out->append("\\r");
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      // Other ASCII controls as Python writes them ('\x01'). (Python also
      // escapes non-printable code points beyond ASCII; those are kept.)
      constexpr char kHex[] = "0123456789abcdef";
      const unsigned char u = static_cast<unsigned char>(c);
      out->append("\\x");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 0xf]);
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
