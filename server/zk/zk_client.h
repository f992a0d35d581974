// The ZooKeeper layer: one session per process, asynchronous operations with
// absl::Status results, one-shot watches, and a session state machine that the
// rest of the server observes.
//
// Threading contract: every callback (operation results, watches, session
// listeners) runs on the client's callback thread, never inline in the call
// that started the operation, and must not block: hand work to a reactor or a
// worker and return. Operations may be started from any thread, including
// from inside a callback.
//
// ZkClient is an interface because the watch cache and the recipes are unit
// tested against an in-memory fake; the server uses ZooKeeperClient.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/zk/zk_acl.h"

namespace warren::zk {

// kConnecting: a new session is being established (at start and after an
// expiry). kConnected: the session is usable. kSuspended: the connection was
// lost; the session may survive if it comes back within the timeout (watches
// and ephemeral nodes survive with it). kExpired: the session is gone, with
// its watches and ephemeral nodes; a new session follows (kConnecting).
// kClosed: the client was shut down.
// A stock ensemble's jute.maxbuffer: the largest request it accepts (the
// whole request, request_size.h).
inline constexpr size_t kStockMaxRequestBytes = 0xfffff;

enum class SessionState {
  kConnecting,
  kConnected,
  kSuspended,
  kExpired,
  kClosed
};

const char* SessionStateName(SessionState state);

// ZooKeeper's node metadata (a subset of `struct Stat`).
struct NodeStat {
  int64_t czxid = 0;     // zxid of the create
  int64_t mzxid = 0;     // zxid of the last write
  int64_t ctime_ms = 0;  // creation time, ms since the epoch
  int64_t mtime_ms = 0;  // last write time, ms since the epoch
  int32_t version = 0;   // data version
  int32_t cversion = 0;  // children version
  int64_t ephemeral_owner = 0;
  int32_t num_children = 0;
};

struct NodeData {
  std::string value;
  // ZooKeeper tells "no data" (null) from empty data; Warren's config marks
  // namespace nodes (parents nobody put) with null data.
  bool null_data = false;
  NodeStat stat;
};

struct Children {
  std::vector<std::string> names;  // unsorted, as ZooKeeper answers
  NodeStat stat;
};

struct NodeAcl {
  std::vector<AclEntry> entries;
  NodeStat stat;
};

struct Created {
  std::string path;  // differs from the requested path for sequential nodes
  NodeStat stat;
};

enum class CreateMode {
  kPersistent,
  kEphemeral,
  kEphemeralSequential,
  kContainer
};

enum class EventType { kCreated, kDeleted, kDataChanged, kChildrenChanged };

struct WatchEvent {
  EventType type;
  std::string path;
};

// A one-shot watch: called once for the next change of the node, or never if
// the session expires first (observe kExpired and read again).
using WatchFn = absl::AnyInvocable<void(const WatchEvent&)>;

template <typename T>
using Callback = absl::AnyInvocable<void(absl::StatusOr<T>)>;
using DoneCallback = absl::AnyInvocable<void(absl::Status)>;

// One step of an atomic multi-operation.
struct Op {
  enum class Kind { kCreate, kDelete, kSetData, kCheck };
  Kind kind;
  std::string path;
  std::string value;                          // kCreate, kSetData
  CreateMode mode = CreateMode::kPersistent;  // kCreate
  int32_t version = -1;    // kDelete, kSetData, kCheck; -1 = any
  bool null_data = false;  // kCreate, kSetData: write null, not `value`

  static Op Create(std::string path, std::string value,
                   CreateMode mode = CreateMode::kPersistent) {
    return Op{Kind::kCreate, std::move(path), std::move(value), mode, -1};
  }
  static Op Delete(std::string path, int32_t version = -1) {
    return Op{
        Kind::kDelete, std::move(path), {}, CreateMode::kPersistent, version};
  }
  static Op SetData(std::string path, std::string value, int32_t version = -1) {
    return Op{Kind::kSetData, std::move(path), std::move(value),
              CreateMode::kPersistent, version};
  }
  // Creates a node, or sets one, with null data (NodeData::null_data).
  static Op CreateNull(std::string path) {
    Op op = Create(std::move(path), "");
    op.null_data = true;
    return op;
  }
  static Op SetNull(std::string path, int32_t version = -1) {
    Op op = SetData(std::move(path), "", version);
    op.null_data = true;
    return op;
  }
  static Op Check(std::string path, int32_t version) {
    return Op{
        Kind::kCheck, std::move(path), {}, CreateMode::kPersistent, version};
  }
};

struct OpResult {
  absl::Status status;
  std::string created_path;  // kCreate
  NodeStat stat;             // kCreate, kSetData
};

// The outcome of Multi: `status` is OK only if every step succeeded (and then
// every step took effect); otherwise none did, `failed_op` is the index of the
// step that failed and `status` is its error.
struct MultiResult {
  absl::Status status;
  int failed_op = -1;
  std::vector<OpResult> results;
};

using SessionListener = absl::AnyInvocable<void(SessionState)>;

// The ZooKeeper outcomes callers branch on. Statuses made by MakeZkError carry
// it as a payload, so that two FAILED_PRECONDITION causes (a version mismatch
// and a node with children) stay apart.
enum class ZkError {
  kNone,
  kNoNode,
  kNodeExists,
  kBadVersion,
  kNotEmpty,
  kConnectionLoss,
  kNoAuth,
  kOther
};

absl::Status MakeZkError(ZkError error, absl::string_view message);
// kNone for OK or for a status not made by MakeZkError.
ZkError ZkErrorOf(const absl::Status& status);

class ZkClient {
 public:
  virtual ~ZkClient() = default;

  virtual SessionState state() const = 0;
  // Who the sessions authenticate as, and the ACL of every node this client
  // creates (Create and the creates of Multi): callers never pass an ACL.
  virtual const AclPolicy& acl_policy() const = 0;
  // Increments with every new session: lets callers tell "reconnected to the
  // same session" (watches survived) from "a new session" (they did not).
  virtual uint64_t session_generation() const = 0;
  // The session timeout the ensemble granted (within its min/max session
  // timeout, so it may differ from the one asked for); 0 while not
  // connected. Leases are capped by it.
  virtual absl::Duration negotiated_session_timeout() const = 0;
  // The largest request this client sends (zk_max_request_bytes: what the
  // ensemble's jute.maxbuffer accepts), and the bytes the connect string's
  // chroot adds to every path. Create, Set and Multi answer INVALID_ARGUMENT
  // for a larger request instead of sending it (request_size.h says why).
  virtual size_t max_request_bytes() const { return kStockMaxRequestBytes; }
  virtual size_t path_prefix_bytes() const { return 0; }

  // Listeners are called on the callback thread for every transition. A
  // listener must not add or remove listeners. After RemoveSessionListener
  // returns, the listener is not running and will not be called again.
  virtual int AddSessionListener(SessionListener listener) = 0;
  virtual void RemoveSessionListener(int id) = 0;

  // Errors: NOT_FOUND (no node), ALREADY_EXISTS (node exists),
  // FAILED_PRECONDITION (version mismatch, node not empty, parent missing is
  // NOT_FOUND), UNAVAILABLE (not connected, connection lost, closing),
  // PERMISSION_DENIED (ACL), INTERNAL (anything else).
  //
  // `watch` may be empty. Get and GetChildren set it only when the node
  // exists; Exists sets it in both cases (to see a creation).
  virtual void Get(const std::string& path, WatchFn watch,
                   Callback<NodeData> done) = 0;
  virtual void Exists(const std::string& path, WatchFn watch,
                      Callback<std::optional<NodeStat>> done) = 0;
  virtual void GetChildren(const std::string& path, WatchFn watch,
                           Callback<Children> done) = 0;
  virtual void Create(const std::string& path, const std::string& value,
                      CreateMode mode, Callback<Created> done) = 0;
  virtual void Set(const std::string& path, const std::string& value,
                   int32_t version, Callback<NodeStat> done) = 0;
  virtual void Delete(const std::string& path, int32_t version,
                      DoneCallback done) = 0;
  // The node's ACL. ZooKeeper answers it to sessions with read or admin
  // permission on the node; PERMISSION_DENIED otherwise.
  virtual void GetAcl(const std::string& path, Callback<NodeAcl> done) = 0;
  // Makes this session's later reads see every write committed before it.
  virtual void Sync(const std::string& path, DoneCallback done) = 0;
  virtual void Multi(std::vector<Op> ops,
                     absl::AnyInvocable<void(MultiResult)> done) = 0;
};

}  // namespace warren::zk
