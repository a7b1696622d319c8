// Internal entry points of hash.cc, for tests.

#ifndef CONVERGE_INTERNAL_HASH_H_
#define CONVERGE_INTERNAL_HASH_H_

#include <string>
#include <string_view>

namespace converge::internal {

// SHA-1 as Sha1Hex, always with the portable code (never the SHA extensions),
// so that tests can compare the two paths on the same machine.
std::string Sha1HexPortable(std::string_view data);

// Appends Sha1Hex(data) to *out (no temporary string).
void AppendSha1Hex(std::string_view data, std::string* out);

}  // namespace converge::internal

#endif  // CONVERGE_INTERNAL_HASH_H_
