#include "server/common/uuid.h"

#include "absl/random/random.h"
#include "absl/strings/str_format.h"

namespace warren {

std::string NewUuid() {
  static thread_local absl::BitGen rng;
  const uint64_t hi = absl::Uniform<uint64_t>(rng);
  const uint64_t lo = absl::Uniform<uint64_t>(rng);
  // Version 4, variant 10.
  const uint64_t a = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  const uint64_t b = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", a >> 32,
                         (a >> 16) & 0xffff, a & 0xffff, b >> 48,
                         b & 0xffffffffffffULL);
}

}  // namespace warren
