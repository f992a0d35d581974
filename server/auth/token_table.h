// Bearer tokens and the principals they stand for. Loaded from YAML:
//
//   tokens:
//     - principal: billing
//       token: 6f1c0a4d2b9e8f7a5c3d1e0b9a8f7e6d   # e.g. openssl rand -hex 32
//     - principal: ops
//       token: ...
//
// A principal may have several tokens (to rotate one without downtime); a
// token belongs to one principal. Tokens are secrets: no message or log
// line of this component ever shows one. Immutable once parsed.
#pragma once

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace warren::auth {

// The shortest token accepted: shorter ones are guessable.
inline constexpr size_t kMinTokenLength = 16;

class TokenTable {
 public:
  // INVALID_ARGUMENT naming the entry (by index and line, never by its
  // token): a missing field, a token shorter than kMinTokenLength or with
  // characters a header cannot carry, a token listed twice, principal "*".
  static absl::StatusOr<TokenTable> Parse(const std::string& yaml);

  // The principal of `token`, or nullptr.
  const std::string* Find(absl::string_view token) const;

  size_t size() const { return principals_.size(); }

 private:
  // SHA-256 of a token → its principal (token_table.cc says why).
  absl::flat_hash_map<std::string, std::string> principals_;
};

}  // namespace warren::auth
