// SHA-1 (RFC 3174 / FIPS 180-4) and MD5 (RFC 1321) digests as lowercase hex.
//
// Written from the specifications. Both hash a message as a sequence of
// 64-byte blocks: whole blocks are compressed straight from the input, and
// the tail (the last partial block, the 0x80 marker, zero padding and the
// 64-bit bit length) is assembled in a 128-byte stack buffer. The rounds are
// unrolled at compile time (fold expressions over index sequences), so the
// working variables live in registers. The only allocation is the returned
// string.
//
// Thread safety: pure functions.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

#include "converge/dimension.h"
#include "internal/hash.h"

namespace converge {
namespace {

constexpr std::size_t kBlockSize = 64;

inline uint32_t LoadBigEndian32(const unsigned char* p) {
  return (static_cast<uint32_t>(p[0]) << 24) |
         (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}

inline uint32_t LoadLittleEndian32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

// Writes the padded tail of a message of `total_len` bytes whose last
// `rem` (< 64) bytes are at `tail` into `buf`; returns the number of bytes
// (64 or 128) to compress. The bit length goes in the last 8 bytes, big- or
// little-endian.
inline std::size_t PadTail(const unsigned char* tail, std::size_t rem,
                           uint64_t total_len, bool big_endian,
                           unsigned char buf[2 * kBlockSize]) {
  std::memcpy(buf, tail, rem);
  buf[rem] = 0x80;
  const std::size_t n = rem + 1 + 8 <= kBlockSize ? kBlockSize : 2 * kBlockSize;
  std::memset(buf + rem + 1, 0, n - 8 - (rem + 1));
  const uint64_t bits = total_len << 3;
  for (int i = 0; i < 8; ++i) {
    const int shift = big_endian ? 56 - 8 * i : 8 * i;
    buf[n - 8 + i] = static_cast<unsigned char>(bits >> shift);
  }
  return n;
}

template <std::size_t N>
void AppendHex(const unsigned char (&bytes)[N], std::string* out) {
  static constexpr char kHexDigits[] = "0123456789abcdef";
  const std::size_t at = out->size();
  out->resize(at + 2 * N);
  char* p = out->data() + at;
  for (std::size_t i = 0; i < N; ++i) {
    p[2 * i] = kHexDigits[bytes[i] >> 4];
    p[2 * i + 1] = kHexDigits[bytes[i] & 0x0f];
  }
}

template <std::size_t N>
std::string ToHex(const unsigned char (&bytes)[N]) {
  std::string out;
  AppendHex(bytes, &out);
  return out;
}

// ---------------------------------------------------------------------------
// SHA-1 (RFC 3174 section 6.1, with the 16-word circular schedule of method 2
// in section 6.2).
//
// The five working variables A..E are kept in v[0..4] and rotated by index
// instead of being moved: at step t, A is v[(0 - t) mod 5], B is
// v[(1 - t) mod 5], and so on. Each step adds into E's slot (which becomes the
// next A) and rotates B's slot by 30 in place (which becomes the next C).

template <std::size_t T>
inline void Sha1Step(uint32_t (&v)[5], uint32_t (&w)[16],
                     const unsigned char* block) {
  constexpr std::size_t kA = (5 - T % 5) % 5;
  constexpr std::size_t kB = (kA + 1) % 5;
  constexpr std::size_t kC = (kA + 2) % 5;
  constexpr std::size_t kD = (kA + 3) % 5;
  constexpr std::size_t kE = (kA + 4) % 5;

  uint32_t word;
  if constexpr (T < 16) {
    word = LoadBigEndian32(block + 4 * T);
    w[T] = word;
  } else {
    word = std::rotl(
        w[(T + 13) & 15] ^ w[(T + 8) & 15] ^ w[(T + 2) & 15] ^ w[T & 15], 1);
    w[T & 15] = word;
  }

  const uint32_t b = v[kB];
  const uint32_t c = v[kC];
  const uint32_t d = v[kD];
  uint32_t f;
  uint32_t k;
  if constexpr (T < 20) {
    f = d ^ (b & (c ^ d));  // (B AND C) OR ((NOT B) AND D)
    k = 0x5a827999u;
  } else if constexpr (T < 40) {
    f = b ^ c ^ d;
    k = 0x6ed9eba1u;
  } else if constexpr (T < 60) {
    f = (b & c) | (d & (b | c));  // majority
    k = 0x8f1bbcdcu;
  } else {
    f = b ^ c ^ d;
    k = 0xca62c1d6u;
  }
  v[kE] += std::rotl(v[kA], 5) + f + word + k;
  v[kB] = std::rotl(b, 30);
}

template <std::size_t... T>
inline void Sha1Steps(uint32_t (&v)[5], uint32_t (&w)[16],
                      const unsigned char* block, std::index_sequence<T...>) {
  (Sha1Step<T>(v, w, block), ...);
}

#if defined(__x86_64__)
// SHA-1 with the x86 SHA extensions (SHA-NI: sha1rnds4, sha1nexte,
// sha1msg1, sha1msg2), used when the CPU has them. Four rounds per
// sha1rnds4; the message schedule of group i (rounds 4i..4i+3) is
//   W[i] = sha1msg2(sha1msg1(W[i-4], W[i-3]) ^ W[i-2], W[i-1]),
// and the E input of group i > 0 is sha1nexte(ABCD before group i-1, W[i]).
// Five groups of four rounds with round function kFunc, from group `first`.
template <int kFunc>
__attribute__((target("sha,sse4.1"))) inline void ShaNiGroups(
    int first, const __m128i* w, __m128i& prev, __m128i& abcd, __m128i& e) {
  for (int i = first; i < first + 5; ++i) {
    if (i > 0) e = _mm_sha1nexte_epu32(prev, w[i]);
    prev = abcd;
    abcd = _mm_sha1rnds4_epu32(abcd, e, kFunc);
  }
}

__attribute__((target("sha,sse4.1"))) void Sha1CompressShaNi(
    uint32_t (&h)[5], const unsigned char* data, std::size_t nblocks) {
  const __m128i kByteSwap =
      _mm_set_epi64x(0x0001020304050607LL, 0x08090a0b0c0d0e0fLL);
  __m128i abcd = _mm_shuffle_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(h)), 0x1B);
  __m128i e0 = _mm_set_epi32(static_cast<int>(h[4]), 0, 0, 0);
  for (; nblocks > 0; --nblocks, data += kBlockSize) {
    const __m128i abcd_save = abcd;
    const __m128i e_save = e0;
    __m128i w[20];
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm_shuffle_epi8(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + 16 * i)),
          kByteSwap);
    }
    for (int i = 4; i < 20; ++i) {
      w[i] = _mm_sha1msg2_epu32(
          _mm_xor_si128(_mm_sha1msg1_epu32(w[i - 4], w[i - 3]), w[i - 2]),
          w[i - 1]);
    }
    __m128i prev = abcd;  // ABCD before the previous group
    __m128i e = _mm_add_epi32(e0, w[0]);
    ShaNiGroups<0>(0, w, prev, abcd, e);
    ShaNiGroups<1>(5, w, prev, abcd, e);
    ShaNiGroups<2>(10, w, prev, abcd, e);
    ShaNiGroups<3>(15, w, prev, abcd, e);
    e0 = _mm_sha1nexte_epu32(prev, e_save);
    abcd = _mm_add_epi32(abcd, abcd_save);
  }
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h),
                   _mm_shuffle_epi32(abcd, 0x1B));
  h[4] = static_cast<uint32_t>(_mm_extract_epi32(e0, 3));
}

bool CpuHasShaNi() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  const bool sse41 = (c & (1u << 19)) != 0;
  const bool ssse3 = (c & (1u << 9)) != 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool sha = (b & (1u << 29)) != 0;
  return sse41 && ssse3 && sha;
}
#endif

void Sha1CompressPortable(uint32_t (&h)[5], const unsigned char* data,
                          std::size_t nblocks) {
  for (; nblocks > 0; --nblocks, data += kBlockSize) {
    uint32_t v[5] = {h[0], h[1], h[2], h[3], h[4]};
    uint32_t w[16];
    Sha1Steps(v, w, data, std::make_index_sequence<80>{});
    // 80 steps rotate the slots 80 mod 5 = 0 times: A..E are back in v[0..4].
    for (int i = 0; i < 5; ++i) h[i] += v[i];
  }
}

void Sha1Compress(uint32_t (&h)[5], const unsigned char* data,
                  std::size_t nblocks) {
#if defined(__x86_64__)
  static const bool kShaNi = CpuHasShaNi();
  if (kShaNi) {
    Sha1CompressShaNi(h, data, nblocks);
    return;
  }
#endif
  Sha1CompressPortable(h, data, nblocks);
}

// ---------------------------------------------------------------------------
// MD5 (RFC 1321 section 3.4).
//
// The four variables A..D are kept in v[0..3] and rotated by index: at step i
// the variable being updated ("a" in the RFC's [abcd k s i]) is
// v[(4 - i mod 4) mod 4], followed by b, c, d in the next slots.

// T[i] = floor(2^32 * |sin(i + 1)|), RFC 1321 section 3.4.
constexpr uint32_t kMd5Sine[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

// Per-round rotation amounts, indexed by [round][step mod 4].
constexpr int kMd5Shift[4][4] = {
    {7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

template <std::size_t I>
inline void Md5Step(uint32_t (&v)[4], const uint32_t (&x)[16]) {
  constexpr std::size_t kRound = I / 16;
  constexpr std::size_t kA = (4 - I % 4) % 4;
  constexpr std::size_t kB = (kA + 1) % 4;
  constexpr std::size_t kC = (kA + 2) % 4;
  constexpr std::size_t kD = (kA + 3) % 4;

  const uint32_t b = v[kB];
  const uint32_t c = v[kC];
  const uint32_t d = v[kD];
  uint32_t f;
  std::size_t k;  // message word index
  if constexpr (kRound == 0) {
    f = d ^ (b & (c ^ d));  // F = XY v not(X) Z
    k = I % 16;
  } else if constexpr (kRound == 1) {
    f = c ^ (d & (b ^ c));  // G = XZ v Y not(Z)
    k = (5 * I + 1) % 16;
  } else if constexpr (kRound == 2) {
    f = b ^ c ^ d;  // H = X xor Y xor Z
    k = (3 * I + 5) % 16;
  } else {
    f = c ^ (b | ~d);  // I = Y xor (X v not(Z))
    k = (7 * I) % 16;
  }
  v[kA] =
      b + std::rotl(v[kA] + f + x[k] + kMd5Sine[I], kMd5Shift[kRound][I % 4]);
}

template <std::size_t... I>
inline void Md5Steps(uint32_t (&v)[4], const uint32_t (&x)[16],
                     std::index_sequence<I...>) {
  (Md5Step<I>(v, x), ...);
}

void Md5Compress(uint32_t (&h)[4], const unsigned char* data,
                 std::size_t nblocks) {
  for (; nblocks > 0; --nblocks, data += kBlockSize) {
    uint32_t x[16];
    for (int i = 0; i < 16; ++i) x[i] = LoadLittleEndian32(data + 4 * i);
    uint32_t v[4] = {h[0], h[1], h[2], h[3]};
    Md5Steps(v, x, std::make_index_sequence<64>{});
    // 64 steps rotate the slots 64 mod 4 = 0 times.
    for (int i = 0; i < 4; ++i) h[i] += v[i];
  }
}

using Sha1CompressFn = void (*)(uint32_t (&)[5], const unsigned char*,
                                std::size_t);

// Appends the hex digest to *out.
void Sha1HexWith(Sha1CompressFn compress, std::string_view data,
                 std::string* out) {
  uint32_t h[5] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u,
                   0xc3d2e1f0u};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t full = data.size() / kBlockSize;
  compress(h, p, full);

  unsigned char buf[2 * kBlockSize];
  const std::size_t n =
      PadTail(p + full * kBlockSize, data.size() % kBlockSize, data.size(),
              /*big_endian=*/true, buf);
  compress(h, buf, n / kBlockSize);

  unsigned char digest[20];
  for (int i = 0; i < 5; ++i) {
    digest[4 * i] = static_cast<unsigned char>(h[i] >> 24);
    digest[4 * i + 1] = static_cast<unsigned char>(h[i] >> 16);
    digest[4 * i + 2] = static_cast<unsigned char>(h[i] >> 8);
    digest[4 * i + 3] = static_cast<unsigned char>(h[i]);
  }
  AppendHex(digest, out);
}

}  // namespace

std::string Sha1Hex(std::string_view data) {
  std::string out;
  Sha1HexWith(Sha1Compress, data, &out);
  return out;
}

void internal::AppendSha1Hex(std::string_view data, std::string* out) {
  Sha1HexWith(Sha1Compress, data, out);
}

std::string internal::Sha1HexPortable(std::string_view data) {
  std::string out;
  Sha1HexWith(Sha1CompressPortable, data, &out);
  return out;
}

std::string Md5Hex(std::string_view data) {
  uint32_t h[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const std::size_t full = data.size() / kBlockSize;
  Md5Compress(h, p, full);

  unsigned char buf[2 * kBlockSize];
  const std::size_t n =
      PadTail(p + full * kBlockSize, data.size() % kBlockSize, data.size(),
              /*big_endian=*/false, buf);
  Md5Compress(h, buf, n / kBlockSize);

  unsigned char digest[16];
  for (int i = 0; i < 4; ++i) {
    digest[4 * i] = static_cast<unsigned char>(h[i]);
    digest[4 * i + 1] = static_cast<unsigned char>(h[i] >> 8);
    digest[4 * i + 2] = static_cast<unsigned char>(h[i] >> 16);
    digest[4 * i + 3] = static_cast<unsigned char>(h[i] >> 24);
  }
  return ToHex(digest);
}

}  // namespace converge
