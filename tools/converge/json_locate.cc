#include "json_locate.h"

#include <algorithm>
#include <boost/json.hpp>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace converge::cli {
namespace {

namespace bj = boost::json;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view text, size_t pos) {
  while (pos < text.size() && IsSpace(text[pos])) ++pos;
  return pos;
}

// Skips a string starting at its opening quote; returns the position after
// the closing quote, or the end of the text for a string that does not end
// (never past it: callers read up to the position returned).
size_t SkipString(std::string_view text, size_t pos) {
  ++pos;
  while (pos < text.size() && text[pos] != '"') {
    pos += text[pos] == '\\' ? 2 : 1;
  }
  return std::min(pos + 1, text.size());
}

// Skips one value starting at `pos`; returns the position after it.
size_t SkipValue(std::string_view text, size_t pos) {
  if (pos >= text.size()) return pos;
  const char c = text[pos];
  if (c == '"') return SkipString(text, pos);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (pos < text.size()) {
      const char d = text[pos];
      if (d == '"') {
        pos = SkipString(text, pos);
        continue;
      }
      if (d == '{' || d == '[') ++depth;
      if (d == '}' || d == ']') {
        if (--depth == 0) return pos + 1;
      }
      ++pos;
    }
    return pos;
  }
  // A number or a literal.
  while (pos < text.size() && !IsSpace(text[pos]) && text[pos] != ',' &&
         text[pos] != '}' && text[pos] != ']') {
    ++pos;
  }
  return pos;
}

// The decoded text of the string at `pos` (escapes resolved by Boost).
std::string DecodeString(std::string_view text, size_t pos, size_t end) {
  boost::system::error_code ec;
  bj::value v = bj::parse(bj::string_view(text.data() + pos, end - pos), ec);
  if (ec || !v.is_string()) return {};
  return std::string(v.get_string().data(), v.get_string().size());
}

// The position of member `key` of the object at `pos`, or npos.
size_t FindKey(std::string_view text, size_t pos, const std::string& key) {
  if (pos >= text.size() || text[pos] != '{') return std::string_view::npos;
  pos = SkipSpace(text, pos + 1);
  while (pos < text.size() && text[pos] == '"') {
    const size_t key_end = SkipString(text, pos);
    const bool match = DecodeString(text, pos, key_end) == key;
    pos = SkipSpace(text, key_end);
    if (pos >= text.size() || text[pos] != ':') break;
    pos = SkipSpace(text, pos + 1);
    if (match) return pos;
    pos = SkipSpace(text, SkipValue(text, pos));
    if (pos >= text.size() || text[pos] != ',') break;
    pos = SkipSpace(text, pos + 1);
  }
  return std::string_view::npos;
}

// The position of item `index` of the array at `pos`, or npos.
size_t FindIndex(std::string_view text, size_t pos, size_t index) {
  if (pos >= text.size() || text[pos] != '[') return std::string_view::npos;
  pos = SkipSpace(text, pos + 1);
  for (size_t i = 0; pos < text.size() && text[pos] != ']'; ++i) {
    if (i == index) return pos;
    pos = SkipSpace(text, SkipValue(text, pos));
    if (pos >= text.size() || text[pos] != ',') break;
    pos = SkipSpace(text, pos + 1);
  }
  return std::string_view::npos;
}

}  // namespace

std::vector<PathStep> ParsePath(std::string_view path) {
  std::vector<PathStep> steps;
  std::string key;
  size_t i = 0;
  auto flush = [&] {
    if (!key.empty()) steps.emplace_back(key);
    key.clear();
  };
  while (i < path.size()) {
    const char c = path[i];
    if (c == '.') {
      flush();
      ++i;
    } else if (c == '[') {
      const size_t close = path.find(']', i);
      std::string_view digits = path.substr(i + 1, close - i - 1);
      bool numeric = close != std::string_view::npos && !digits.empty();
      size_t index = 0;
      for (char d : digits) {
        if (d < '0' || d > '9') numeric = false;
        index = index * 10 + static_cast<size_t>(d - '0');
      }
      if (!numeric) {
        key.push_back(c);
        ++i;
        continue;
      }
      flush();
      steps.emplace_back(index);
      i = close + 1;
    } else {
      key.push_back(c);
      ++i;
    }
  }
  flush();
  return steps;
}

TextPosition PositionOf(std::string_view text, size_t offset) {
  TextPosition p;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++p.line;
      p.column = 1;
    } else {
      ++p.column;
    }
  }
  return p;
}

TextPosition LocatePath(std::string_view text,
                        const std::vector<PathStep>& path) {
  size_t pos = SkipSpace(text, 0);
  for (const PathStep& step : path) {
    const size_t next = std::holds_alternative<std::string>(step)
                            ? FindKey(text, pos, std::get<std::string>(step))
                            : FindIndex(text, pos, std::get<size_t>(step));
    if (next == std::string_view::npos) break;
    pos = next;
  }
  return PositionOf(text, pos);
}

}  // namespace converge::cli
