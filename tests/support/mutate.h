// Deterministic mutation of text inputs for the robustness ("fuzz-style")
// tests of the parsers of external input: replay lines, converge_config,
// Alertmanager payloads, converged's config and HTTP requests, store URIs.
//
// A Mutator takes a valid seed and applies a few random edits, each drawn
// from: bit flips, random bytes, truncation, deletion and duplication of a
// range, insertion of a structural character ({}[]":,\ and more), of a
// hostile token (numbers far outside int64 and double, invalid UTF-8, NUL
// bytes, escapes of lone surrogates), and the replacement of a number with
// a huge one. The random engine has a fixed seed, so every run tries the
// same inputs; a failure prints the input that caused it.
//
// Set CONVERGE_FUZZ_TRACE=1 to print every input to stderr before it is
// parsed (to find the input of a crash that kills the process).
//
// Thread safety: a Mutator is used by one thread.

#ifndef CONVERGE_TESTS_SUPPORT_MUTATE_H_
#define CONVERGE_TESTS_SUPPORT_MUTATE_H_

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/escaping.h"

namespace converge::testing {

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  // A uniformly drawn integer in [0, n); n > 0.
  size_t Below(size_t n) { return static_cast<size_t>(rng_() % n); }

  // `seed` with 1 to 4 random edits.
  std::string Mutate(std::string_view seed) {
    std::string s(seed);
    const size_t edits = 1 + Below(4);
    for (size_t i = 0; i < edits; ++i) Edit(&s);
    return s;
  }

  // One of `seeds`, mutated.
  std::string MutateOne(const std::vector<std::string>& seeds) {
    return Mutate(seeds[Below(seeds.size())]);
  }

 private:
  void Edit(std::string* s) {
    static const char kStructural[] = "{}[]\":,\\ \t\n0-.eE+/?&=%@#";
    static const std::vector<std::string> kTokens = {
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "18446744073709551615",
        "18446744073709551616",
        "1e308",
        "1e309",
        "-1e999",
        "4.9e-324",
        "1e-400",
        "0.5",
        "-0",
        "-0.0",
        "1.0",
        "1700000000.123456789",
        "99999999999999999999999999999999",
        "NaN",
        "Infinity",
        "true",
        "false",
        "null",
        "\"\"",
        "[]",
        "{}",
        "[[[[[[[[",
        "{\"a\":{\"b\":{\"c\":",
        std::string("\0", 1),
        "\\u0000",
        "\\ud800",
        "\\udc00x",
        "\\uDBFF\\uDFFF",
        "\xff",
        "\xc0\x80",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\xe4\xb8\xad",
        "%",
        "%zz",
        "%00",
        "%2",
        "[::1]",
        ":0",
        ":65536",
        "//",
        "?",
        "&&",
    };
    if (s->empty()) {
      s->append(kTokens[Below(kTokens.size())]);
      return;
    }
    const size_t at = Below(s->size() + 1);
    switch (Below(9)) {
      case 0:  // flip one bit
        if (at < s->size()) (*s)[at] ^= static_cast<char>(1 << Below(8));
        break;
      case 1:  // a random byte
        if (at < s->size()) (*s)[at] = static_cast<char>(rng_());
        break;
      case 2:  // truncate
        s->resize(at);
        break;
      case 3:  // delete a range
        s->erase(at, 1 + Below(16));
        break;
      case 4: {  // duplicate a range elsewhere
        const size_t from = Below(s->size());
        const std::string piece = s->substr(from, 1 + Below(32));
        s->insert(Below(s->size() + 1), piece);
        break;
      }
      case 5:
      case 6:  // a structural character
        s->insert(at, 1, kStructural[Below(sizeof(kStructural) - 1)]);
        break;
      case 7:  // a hostile token
        s->insert(at, kTokens[Below(kTokens.size())]);
        break;
      case 8: {  // a number replaced by a huge or odd one
        const size_t digit = s->find_first_of("0123456789", at);
        if (digit == std::string::npos) break;
        size_t end = digit;
        while (end < s->size() && (*s)[end] >= '0' && (*s)[end] <= '9') ++end;
        s->replace(digit, end - digit, kTokens[Below(17)]);
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

// A copy of a text that ends right before an unreadable page, so that a
// parser reading past the end of its input crashes at once, even inside a
// library that AddressSanitizer does not instrument (Boost.JSON).
class ExactCopy {
 public:
  explicit ExactCopy(std::string_view s) : size_(s.size()) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    mapped_ = (s.size() + page - 1) / page * page + page;
    void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) std::abort();
    base_ = static_cast<char*>(p);
    if (mprotect(base_ + mapped_ - page, page, PROT_NONE) != 0) std::abort();
    data_ = base_ + mapped_ - page - size_;
    if (size_ > 0) std::memcpy(data_, s.data(), size_);
  }
  ~ExactCopy() { munmap(base_, mapped_); }
  ExactCopy(const ExactCopy&) = delete;
  ExactCopy& operator=(const ExactCopy&) = delete;

  std::string_view view() const { return {data_, size_}; }

 private:
  size_t size_;
  size_t mapped_ = 0;
  char* base_ = nullptr;
  char* data_ = nullptr;
};

// Prints `input` (C-escaped, cut to 400 bytes) to stderr when
// CONVERGE_FUZZ_TRACE is set.
inline void TraceInput(std::string_view what, std::string_view input) {
  static const bool trace = std::getenv("CONVERGE_FUZZ_TRACE") != nullptr;
  if (!trace) return;
  std::fprintf(
      stderr, "%.*s: %s\n", static_cast<int>(what.size()), what.data(),
      absl::CHexEscape(
          absl::string_view(input.data(), std::min<size_t>(input.size(), 400)))
          .c_str());
}

// For failure messages: `input` C-escaped, cut to 400 bytes.
inline std::string Shown(std::string_view input) {
  std::string out = absl::CHexEscape(
      absl::string_view(input.data(), std::min<size_t>(input.size(), 400)));
  if (input.size() > 400)
    out += "... (" + std::to_string(input.size()) + " bytes)";
  return out;
}

// Hostile inputs every JSON parser must refuse or accept cleanly: empty
// input, nesting 100,000 deep, numbers out of every range, strings of
// several MB, invalid UTF-8, NUL bytes.
inline std::vector<std::string> HostileJson() {
  std::vector<std::string> out = {
      "",
      " ",
      "\n",
      std::string("\0", 1),
      "{",
      "}",
      "[",
      "\"",
      "{\"",
      "nul",
      "{}",
      "[]",
      "null",
      "0",
      "\"\"",
      "{\"id\":9223372036854775808}",
      "{\"id\":-9223372036854775809}",
      "{\"id\":18446744073709551616}",
      "{\"id\":1e999}",
      "{\"id\":-1e999}",
      "{\"id\":1e-999}",
      "{\"a\":\"\xff\xfe\"}",
      "{\"a\":\"\xed\xa0\x80\"}",
      "{\"a\":\"\\ud800\"}",
      std::string("{\"a\":\"x\0y\"}", 11),
      "{\"a\":\"\\u0000\"}",
      "{\"a\":1,\"a\":2}",
  };
  for (const char* open : {"[", "{\"a\":"}) {
    std::string deep;
    for (int i = 0; i < 100000; ++i) deep += open;
    out.push_back(deep);
  }
  out.push_back(std::string(100000, '[') + std::string(100000, ']'));
  out.push_back("\"" + std::string(5 << 20, 'x') + "\"");
  out.push_back("{\"a\":\"" + std::string(3 << 20, 'y') + "\"}");
  out.push_back("[" + std::string(2 << 20, '1') + "]");
  std::string many = "[";
  for (int i = 0; i < 300000; ++i) many += "0,";
  many += "0]";
  out.push_back(many);
  return out;
}

}  // namespace converge::testing

#endif  // CONVERGE_TESTS_SUPPORT_MUTATE_H_
