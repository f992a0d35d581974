// The watch-maintained cache behind WatchConfig and cached GetConfig reads
// (the idea of Curator's CuratorCache).
//
// One watched tree per distinct (key, prefix) pair, shared by every subscriber
// of that pair in the process. A tree keeps a ZooKeeper data watch on each of
// its nodes and, for a prefix, a children watch, so that nodes created later
// at any depth join it. After every (re)connection of the session the tree is
// read again from the top and compared with what it holds: subscribers get the
// differences as changes, so a watch never goes silent across a reconnect or a
// new session, and always ends at the latest state.
//
// Threading: thread-safe. Listeners are called on ZooKeeper's callback thread
// with the tree's lock held; they must not block and must not call back into
// the cache. Once Unsubscribe returns, the listener is not called again.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "server/common/mutex.h"
#include "server/config/key_space.h"
#include "server/zk/zk_client.h"

namespace warren::config {

struct CachedEntry {
  std::string key;
  std::string value;
  zk::NodeStat stat;
};

struct Change {
  enum class Type { kPut, kDelete };
  Type type;
  CachedEntry entry;
};

class WatchListener {
 public:
  virtual ~WatchListener() = default;
  // Called once, when the tree has been read completely: every key it holds,
  // in path order.
  virtual void OnInitialState(std::vector<CachedEntry> entries) = 0;
  // Called after OnInitialState for every later change, in order.
  virtual void OnChanges(std::vector<Change> changes) = 0;
};

class WatchCache {
 public:
  using SubscriptionId = uint64_t;

  WatchCache(zk::ZkClient& zk, KeySpace keys);
  ~WatchCache();
  WatchCache(const WatchCache&) = delete;
  WatchCache& operator=(const WatchCache&) = delete;

  // Watches `key` (with `prefix`: and everything below it; the empty key with
  // `prefix` watches every key). `listener` must stay valid until
  // Unsubscribe(id) returns.
  SubscriptionId Subscribe(const std::string& key, bool prefix,
                           WatchListener* listener);
  void Unsubscribe(SubscriptionId id);

  // A read served from the cache: nullopt when no watch that is in sync with
  // ZooKeeper covers `key`; otherwise the entry, or an empty optional when the
  // key does not exist.
  std::optional<std::optional<CachedEntry>> Lookup(const std::string& key);

  // The number of watched trees and of subscriptions (for limits and
  // metrics).
  size_t tree_count() const;
  size_t subscription_count() const;

 private:
  class Tree;

  void OnSessionState(zk::SessionState state);

  zk::ZkClient& zk_;
  const KeySpace keys_;
  int listener_id_ = 0;

  mutable warren::Mutex mu_;
  // Keyed by the watched node's path plus "+" for a prefix watch.
  std::map<std::string, std::shared_ptr<Tree>> trees_ ABSL_GUARDED_BY(mu_);
  struct Subscription {
    std::shared_ptr<Tree> tree;
  };
  std::map<SubscriptionId, Subscription> subscriptions_ ABSL_GUARDED_BY(mu_);
  SubscriptionId next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace warren::config
