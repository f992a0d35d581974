#include "server/zk/zk_acl.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/logging.h"
#include "server/zk/zk_sync.h"

namespace warren::zk {
namespace {

constexpr char kWorld[] = "world";
constexpr char kAnyone[] = "anyone";
constexpr char kDigest[] = "digest";

bool IsWorld(const AclEntry& entry) {
  return entry.scheme == kWorld && entry.id == kAnyone;
}

int32_t WorldPerms(const std::vector<AclEntry>& acl) {
  int32_t perms = 0;
  for (const AclEntry& entry : acl) {
    if (IsWorld(entry)) perms |= entry.perms;
  }
  return perms;
}

// "digest:user:<hash>:cdrwa": the hash is not the password, but it can be
// attacked offline, so logs leave it out.
std::string Redacted(const std::vector<AclEntry>& acl) {
  return absl::StrJoin(acl, ",", [](std::string* out, const AclEntry& e) {
    std::string id = e.id;
    if (e.scheme == kDigest) id = id.substr(0, id.find(':')) + ":<hash>";
    absl::StrAppend(out, e.scheme, ":", id, ":", PermsString(e.perms));
  });
}

}  // namespace

std::string PermsString(int32_t perms) {
  // zkCli's order.
  std::string out;
  if (perms & kPermCreate) out += 'c';
  if (perms & kPermDelete) out += 'd';
  if (perms & kPermRead) out += 'r';
  if (perms & kPermWrite) out += 'w';
  if (perms & kPermAdmin) out += 'a';
  return out.empty() ? "none" : out;
}

std::string AclString(const std::vector<AclEntry>& acl) {
  return absl::StrJoin(acl, ",", [](std::string* out, const AclEntry& e) {
    absl::StrAppend(out, e.scheme, ":", e.id, ":", PermsString(e.perms));
  });
}

absl::StatusOr<DigestCredentials> ParseDigestCredentials(
    absl::string_view text) {
  // One line; editors and `echo` add a final newline, which is not part of
  // the password.
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
    text.remove_suffix(1);
  }
  if (text.find('\n') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "expected one line user:password, found several lines");
  }
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError("expected user:password, found no ':'");
  }
  DigestCredentials out{std::string(text.substr(0, colon)),
                        std::string(text.substr(colon + 1))};
  if (out.user.empty()) {
    return absl::InvalidArgumentError("the user before ':' is empty");
  }
  for (char c : out.user) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) ||
        absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError(
          "the user holds whitespace or control characters");
    }
  }
  if (out.password.empty()) {
    return absl::InvalidArgumentError("the password after ':' is empty");
  }
  return out;
}

absl::StatusOr<DigestCredentials> ReadDigestCredentialsFile(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("zk_auth_file ", path, ": cannot be read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = ParseDigestCredentials(text.str());
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("zk_auth_file ", path, ": ", parsed.status().message()));
  }
  return parsed;
}

std::string DigestId(const DigestCredentials& credentials) {
  const std::string plain =
      absl::StrCat(credentials.user, ":", credentials.password);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // SHA-1 because ZooKeeper's DigestAuthenticationProvider uses it: the id
  // must be the one the server computes from the same credentials.
  if (EVP_Digest(plain.data(), plain.size(), digest, &size, EVP_sha1(),
                 nullptr) != 1) {
    // Only without a usable SHA-1 (a FIPS-restricted libcrypto): no node
    // could be given a matching ACL, and running unprotected silently would
    // be worse than stopping.
    WARREN_LOG_ERROR("libcrypto cannot compute SHA-1 for the ZooKeeper digest");
    std::abort();
  }
  return absl::StrCat(
      credentials.user, ":",
      absl::Base64Escape(absl::string_view(
          reinterpret_cast<const char*>(digest), static_cast<size_t>(size))));
}

AclPolicy::AclPolicy() : node_acl_{{kWorld, kAnyone, kPermAll}} {}

AclPolicy::AclPolicy(DigestCredentials credentials, bool world_read)
    : credentials_(std::move(credentials)) {
  digest_id_ = DigestId(*credentials_);
  node_acl_.push_back({kDigest, digest_id_, kPermAll});
  if (world_read) node_acl_.push_back({kWorld, kAnyone, kPermRead});
}

int32_t AclPolicy::PermsOn(const std::vector<AclEntry>& acl) const {
  int32_t perms = 0;
  for (const AclEntry& entry : acl) {
    if (IsWorld(entry) || (authenticated() && entry.scheme == kDigest &&
                           entry.id == digest_id_)) {
      perms |= entry.perms;
    }
  }
  return perms;
}

std::string AclPolicy::Describe() const {
  if (!authenticated()) {
    return absl::StrCat("unauthenticated; new nodes get ", Redacted(node_acl_));
  }
  return absl::StrCat("digest user '", credentials_->user, "'; new nodes get ",
                      Redacted(node_acl_));
}

absl::Status CheckAccess(ZkClient& zk, const std::string& path,
                         absl::Time deadline) {
  const AclPolicy& policy = zk.acl_policy();
  const std::string who =
      policy.authenticated()
          ? absl::StrCat("digest user '", policy.credentials()->user, "'")
          : std::string("an unauthenticated client");
  const std::string fix =
      policy.authenticated()
          ? "it belongs to another ZooKeeper identity (check the user and "
            "password in zk_auth_file: a wrong password is another identity)"
          : "it belongs to a ZooKeeper identity (set zk_auth_file to its "
            "credentials)";
  ZkSync sync(zk, deadline);
  auto acl = sync.GetAcl(path);
  if (!acl.ok()) {
    if (ZkErrorOf(acl.status()) == ZkError::kNoAuth) {
      return absl::PermissionDeniedError(absl::StrCat(
          "ZooKeeper denies ", who, " access to ", path, ": ", fix));
    }
    return acl.status();
  }
  const int32_t granted = policy.PermsOn(acl->entries);
  if ((granted & kPermsWarrenNeeds) != kPermsWarrenNeeds) {
    // ZooKeeper shows digest ids as "user:x" to sessions without admin
    // permission on the node: such an entry for our user is either another
    // password or our identity without 'a'; both must be fixed.
    std::string hidden;
    if (policy.authenticated()) {
      const std::string masked = policy.credentials()->user + ":x";
      for (const AclEntry& entry : acl->entries) {
        if (entry.scheme == kDigest && entry.id == masked) {
          hidden =
              "; ZooKeeper hides the digest of that user's entry from "
              "identities without admin permission, so either the password "
              "differs or the entry lacks 'a' (Warren's identity needs "
              "'cdrwa' on its nodes)";
        }
      }
    }
    return absl::PermissionDeniedError(absl::StrCat(
        "ZooKeeper grants ", who, " only '", PermsString(granted), "' on ",
        path, " (ACL ", Redacted(acl->entries), "); Warren needs '",
        PermsString(kPermsWarrenNeeds), "': ", fix, hidden));
  }
  const int32_t extra =
      WorldPerms(acl->entries) & ~WorldPerms(policy.node_acl());
  if (extra != 0) {
    WARREN_LOG_WARN(
        "ZooKeeper node {} lets every ZooKeeper client '{}' (ACL {}), more "
        "than the nodes Warren creates now ({}). It was probably created "
        "before zk_auth_file was set; Warren leaves existing ACLs as they "
        "are (see README, \"ZooKeeper ACLs\", to protect them).",
        path, PermsString(extra), Redacted(acl->entries),
        Redacted(policy.node_acl()));
  }
  return absl::OkStatus();
}

}  // namespace warren::zk
