#include "converge/value.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace converge {
namespace {

// Python's repr of a float: the shortest text that round-trips, with ".0"
// for integral values, "inf"/"nan" spelled as Python does.
std::string PyFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, d);
    if (std::strtod(buf, nullptr) == d) break;
  }
  std::string s = buf;
  // Python switches to exponent form at 1e16 and below 1e-4; %g switches
  // by precision. Normalize the common cases: integral values print "N.0".
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  // %g writes e+16 / e-05; Python writes e+16 / e-05 as well.
  return s;
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
  char q = (s.find('\'') != std::string::npos &&
            s.find('"') == std::string::npos)
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
