// The sizes of the format and the one package-count rule, on this side of the boundary.
//
// Each constant here has a twin of the same name in src/crypto/constants.ts; the loader
// refuses an addon whose exported constants differ, and test/crypto/packages.test.ts checks
// that CountPackages below gives the same answer as src/crypto/packages.ts for every length.
#pragma once

#include <cstddef>
#include <cstdint>

namespace s3sse {

constexpr size_t PACKAGE_SIZE = 65536;
constexpr size_t TAG_SIZE = 16;
constexpr size_t KEY_SIZE = 32;
constexpr size_t NONCE_PREFIX_SIZE = 7;
constexpr size_t NONCE_SIZE = 12;
constexpr uint64_t MAX_PACKAGE_NUMBER = 0xffffffffull;
constexpr size_t MAX_PACKAGE_SIZE = 16 * 1024 * 1024;

enum class Direction { Seal, Open };

enum class CountError {
  None,
  // Opening zero sealed bytes as the end of a stream: even an empty stream has one package.
  EmptyFinal,
  // The sealed input ends in a piece shorter than a tag.
  ShortPiece,
};

struct Count {
  uint64_t packages = 0;
  // Bytes the call writes: plaintext + a tag per package (seal), or sealed - the tags (open).
  size_t outLength = 0;
  // For ShortPiece: the number of whole packages before the piece.
  uint64_t whole = 0;
  CountError error = CountError::None;
};

// docs/FORMAT.md, "Packages": sealing n bytes makes ceil(n / P) packages, and an empty final
// call one empty package; opening L sealed bytes finds floor(L / (P + TAG_SIZE)) whole
// packages plus one shorter piece when L leaves a remainder, which must hold a whole tag.
inline Count CountPackages(Direction direction, size_t inLength, bool final, size_t packageSize) {
  Count c;
  if (direction == Direction::Seal) {
    c.packages = inLength == 0 ? (final ? 1 : 0) : (inLength + packageSize - 1) / packageSize;
    c.outLength = inLength + c.packages * TAG_SIZE;
    return c;
  }
  if (inLength == 0) {
    if (final) c.error = CountError::EmptyFinal;
    return c;
  }
  const size_t sealedSize = packageSize + TAG_SIZE;
  c.whole = inLength / sealedSize;
  const size_t rest = inLength % sealedSize;
  if (rest != 0 && rest < TAG_SIZE) {
    c.error = CountError::ShortPiece;
    return c;
  }
  c.packages = c.whole + (rest != 0 ? 1 : 0);
  c.outLength = inLength - c.packages * TAG_SIZE;
  return c;
}

}  // namespace s3sse
