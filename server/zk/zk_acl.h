// ZooKeeper access control for Warren's nodes: who this process is to
// ZooKeeper (digest credentials, or nobody) and which ACL every node it
// creates gets.
//
// With credentials `user:password`, ZooKeeper's digest scheme knows the
// session as `digest:user:base64(sha1("user:password"))`; Warren gives each
// node it creates exactly that id with every permission (optionally plus
// world:anyone read), so other ZooKeeper clients can neither change nor
// (without world read) read elections and config. Without credentials nodes
// are open to everyone (world:anyone:cdrwa), as ZooKeeper's own default.
//
// Everything here is a value type or a pure function, safe on any thread;
// CheckAccess blocks (worker or start-up threads only, like ZkSync).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace warren::zk {

class ZkClient;

// ZooKeeper's permission bits (ZOO_PERM_* of the C client).
inline constexpr int32_t kPermRead = 1;
inline constexpr int32_t kPermWrite = 2;
inline constexpr int32_t kPermCreate = 4;
inline constexpr int32_t kPermDelete = 8;
inline constexpr int32_t kPermAdmin = 16;
inline constexpr int32_t kPermAll = 31;

struct AclEntry {
  std::string scheme;  // "world", "digest", "ip", ...
  std::string id;      // "anyone", "user:base64(sha1(user:password))", ...
  int32_t perms = 0;

  bool operator==(const AclEntry& other) const {
    return scheme == other.scheme && id == other.id && perms == other.perms;
  }
};

// zkCli's notation: "cdrwa" for kPermAll, "r" for kPermRead.
std::string PermsString(int32_t perms);
// "digest:user:HASH:cdrwa,world:anyone:r"
std::string AclString(const std::vector<AclEntry>& acl);

struct DigestCredentials {
  std::string user;
  std::string password;
};

// Parses "user:password" (one line; a trailing newline is dropped). The user
// must not be empty or hold ':' or whitespace (ZooKeeper splits the id at
// the first ':'); the password must not be empty and may hold ':'.
absl::StatusOr<DigestCredentials> ParseDigestCredentials(
    absl::string_view text);
// Reads and parses a credentials file; errors name the file, never the
// password.
absl::StatusOr<DigestCredentials> ReadDigestCredentialsFile(
    const std::string& path);

// The id ZooKeeper's digest scheme gives a session authenticated with
// `credentials`: "user:" + base64(sha1("user:password")).
std::string DigestId(const DigestCredentials& credentials);

// Who this client is and what ACL its nodes get.
class AclPolicy {
 public:
  // Unauthenticated: nodes open to every client.
  AclPolicy();
  // Authenticated with digest credentials: nodes grant that identity every
  // permission, and everyone read if `world_read`.
  AclPolicy(DigestCredentials credentials, bool world_read);

  bool authenticated() const { return credentials_.has_value(); }
  // The credentials for zoo_add_auth; nullopt when unauthenticated.
  const std::optional<DigestCredentials>& credentials() const {
    return credentials_;
  }
  // The ACL of every node this client creates.
  const std::vector<AclEntry>& node_acl() const { return node_acl_; }
  // What this identity may do on a node with `acl` (world:anyone entries
  // count for everyone).
  int32_t PermsOn(const std::vector<AclEntry>& acl) const;
  // For logs: the identity and the node ACL, with the digest hash elided and
  // never the password.
  std::string Describe() const;

 private:
  std::optional<DigestCredentials> credentials_;
  std::string digest_id_;
  std::vector<AclEntry> node_acl_;
};

// What Warren needs on its base nodes: read, write, create and delete
// (admin is only needed to change ACLs, which Warren never does).
inline constexpr int32_t kPermsWarrenNeeds =
    kPermRead | kPermWrite | kPermCreate | kPermDelete;

// The start-up check of a base node that Warren created or found (the root,
// the config and elections nodes). PERMISSION_DENIED, with a message that
// says what to fix, when `zk`'s identity may not do everything Warren does
// there (the node belongs to another identity: a wrong password gives a
// different identity); OK otherwise. Logs a warning when the node grants
// every ZooKeeper client more than this client's own ACL would (an open node
// created before zk_auth_file was set): such nodes are left as they are.
absl::Status CheckAccess(ZkClient& zk, const std::string& path,
                         absl::Time deadline);

}  // namespace warren::zk
