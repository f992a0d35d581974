#include "server/auth/token_table.h"

#include <openssl/evp.h>

#include "absl/strings/str_cat.h"
#include "server/auth/policy.h"
#include "server/auth/yaml_document.h"
#include "yaml-cpp/yaml.h"

namespace warren::auth {
namespace {

// What an HTTP/2 header value may carry after "Bearer ": visible ASCII.
bool IsTokenText(absl::string_view token) {
  for (char c : token) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// SHA-256 of the token. The table is keyed by it so that a lookup's timing
// (hashing, comparing) depends on the digest, which tells an attacker
// nothing about the tokens, not on how much of a guess matches one.
std::string Digest(absl::string_view token) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(token.data(), token.size(), digest, &length, EVP_sha256(),
                 nullptr) != 1) {
    // Only on allocation failure inside OpenSSL; no token matches then.
    return std::string();
  }
  return std::string(reinterpret_cast<const char*>(digest), length);
}

}  // namespace

absl::StatusOr<TokenTable> TokenTable::Parse(const std::string& yaml) {
  absl::StatusOr<YAML::Node> loaded = ParseYamlDocument(yaml);
  if (!loaded.ok()) return loaded.status();
  // Const: a non-const operator[] would add the keys it looks up.
  const YAML::Node& root = *loaded;
  if (!root.IsMap() || !root["tokens"] || root.size() != 1) {
    return absl::InvalidArgumentError(
        "expected a map with one key, 'tokens': a list of "
        "{principal, token}");
  }
  const YAML::Node tokens = root["tokens"];
  TokenTable table;
  if (tokens.IsNull()) return table;
  if (!tokens.IsSequence()) {
    return absl::InvalidArgumentError(
        "'tokens' must be a list of {principal, token}");
  }
  int index = 0;
  for (const auto& entry : tokens) {
    const std::string where = absl::StrCat("tokens[", index++, "] (line ",
                                           entry.Mark().line + 1, ")");
    if (!entry.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected {principal, token}"));
    }
    for (const auto& field : entry) {
      const std::string name = field.first.Scalar();
      if (name != "principal" && name != "token") {
        // Not echoed: in this file an unexpected key is most often a token
        // written where a field name belongs, and the error reaches logs.
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": unknown field of ", name.size(),
            " characters (not shown, as it may be a secret; the fields are "
            "principal and token)"));
      }
    }
    const YAML::Node principal = entry["principal"];
    const YAML::Node token = entry["token"];
    if (!principal || !principal.IsScalar() || principal.Scalar().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": 'principal' must be a non-empty string"));
    }
    if (principal.Scalar() == kAnyPrincipal) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": principal '*' is reserved for the grants of "
                       "every authenticated principal"));
    }
    if (!token || !token.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": 'token' must be a string"));
    }
    const std::string& text = token.Scalar();
    if (text.size() < kMinTokenLength || !IsTokenText(text)) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the token of '", principal.Scalar(), "' must be at least ",
          kMinTokenLength,
          " visible ASCII characters without spaces (e.g. openssl rand -hex "
          "32)"));
    }
    if (!table.principals_.emplace(Digest(text), principal.Scalar()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where,
                       ": this token is already listed for another "
                       "entry; each token must be unique"));
    }
  }
  return table;
}

const std::string* TokenTable::Find(absl::string_view token) const {
  const std::string digest = Digest(token);
  if (digest.empty()) return nullptr;
  auto found = principals_.find(digest);
  return found == principals_.end() ? nullptr : &found->second;
}

}  // namespace warren::auth
