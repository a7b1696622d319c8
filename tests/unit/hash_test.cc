// Sha1Hex / Md5Hex against vectors generated with Python's hashlib:
//   python3 -c "import hashlib; b = <text>.encode();
//               print(hashlib.sha1(b).hexdigest(), hashlib.md5(b).hexdigest())"
// The lengths 55, 56, 63, 64 and 65 sit around the padding boundaries (the
// tail needs one or two padding blocks). Those strings are
// "abcdefghijklmnopqrstuvwxyz" repeated and cut to the length (Pattern below,
// which is Python's "".join(chr(ord("a") + i % 26) for i in range(n))).

#include <catch2/catch.hpp>
#include <cstddef>
#include <string>

#include "converge/dimension.h"

namespace converge {
namespace {

std::string Pattern(std::size_t n) {
  std::string s;
  s.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    s.push_back(static_cast<char>('a' + i % 26));
  return s;
}

TEST_CASE("Sha1Hex and Md5Hex of the empty string", "[hash]") {
  CHECK(Sha1Hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  CHECK(Md5Hex("") == "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("Sha1Hex and Md5Hex of abc", "[hash]") {
  CHECK(Sha1Hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
  CHECK(Md5Hex("abc") == "900150983cd24fb0d6963f7d28e17f72");
}

TEST_CASE("Sha1Hex and Md5Hex of the 56-byte RFC 3174 text", "[hash]") {
  const std::string text =
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  REQUIRE(text.size() == 56);
  CHECK(Sha1Hex(text) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  CHECK(Md5Hex(text) == "8215ef0796a20bcaaae116d3876c664a");
}

TEST_CASE("Sha1Hex and Md5Hex of one million 'a'", "[hash]") {
  const std::string text(1000000, 'a');
  CHECK(Sha1Hex(text) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  CHECK(Md5Hex(text) == "7707d6ae4e027c70eea2a935c2296f21");
}

TEST_CASE("Sha1Hex and Md5Hex around the block boundaries", "[hash]") {
  struct Vector {
    std::size_t length;
    const char* sha1;
    const char* md5;
  };
  const Vector vectors[] = {
      {55, "a617d006d1ca12671785098a19a87fe58443bde9",
       "0d7ae056b2f015cd7dc67494efd658f1"},
      {56, "4ad5bb7ae3c4024768d364b77c52128ea3cffebe",
       "31fcfb5165169eb55898e7e4cf34d19a"},
      {63, "fc8a5ab77259625085ead3ec96515b3b8d933fad",
       "1b30c0670c15e7da3c2ba7bce77ebe99"},
      {64, "93249d4c2f8903ebf41ac358473148ae6ddd7042",
       "a2eaf6295c32adc403865fd96a2f182b"},
      {65, "cf2a63cc308225cf07b498d2309a01dd0df52f67",
       "eba2cce0ca8df47e62414a736b3105a2"},
  };
  for (const Vector& v : vectors) {
    INFO("length " << v.length);
    const std::string text = Pattern(v.length);
    CHECK(Sha1Hex(text) == v.sha1);
    CHECK(Md5Hex(text) == v.md5);
  }
}

TEST_CASE("Sha1Hex and Md5Hex of UTF-8 text with Chinese characters",
          "[hash]") {
  // "告警收敛 alarm 收敛 测试": 8 CJK characters (3 bytes each) + 8 ASCII
  // bytes.
  const std::string text = "告警收敛 alarm 收敛 测试";
  REQUIRE(text.size() == 32);
  CHECK(Sha1Hex(text) == "373d378a72da45ad272472ca3ada4e076281d606");
  CHECK(Md5Hex(text) == "5bc66ef243f4898860ce06778a4aec38");
}

TEST_CASE("Sha1Hex and Md5Hex hash embedded NUL bytes", "[hash]") {
  // Python: hashlib.sha1(b"a\x00b"), hashlib.md5(b"a\x00b").
  const std::string text("a\0b", 3);
  CHECK(Sha1Hex(text) == "4a3dec2d1f8245280855c42db0ee4239f917fdb8");
  CHECK(Md5Hex(text) == "70350f6027bce3713f6b76473084309b");
}

}  // namespace
}  // namespace converge

#include "internal/hash.h"

TEST_CASE("SHA-1 with and without the CPU's SHA extensions agree", "[hash]") {
  // On a CPU with SHA-NI, Sha1Hex uses it; the portable code must give the
  // same digests for every length around the block boundaries.
  std::string data;
  for (int n = 0; n <= 300; ++n) {
    CHECK(converge::Sha1Hex(data) == converge::internal::Sha1HexPortable(data));
    data.push_back(static_cast<char>('a' + n % 26 + (n % 7 == 0 ? 100 : 0)));
  }
}
