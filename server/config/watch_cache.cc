#include "server/config/watch_cache.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace warren::config {

// One watched subtree (or single node). All its state is behind its own lock;
// ZooKeeper callbacks hold a weak pointer, so a tree that was dropped simply
// ignores the answers still in flight.
class WatchCache::Tree : public std::enable_shared_from_this<Tree> {
 public:
  // How long changes may wait for the reads in flight to be answered.
  static constexpr absl::Duration kMaxFlushDelay = absl::Milliseconds(100);

  Tree(zk::ZkClient& zk, const KeySpace& keys, std::string root_path,
       bool prefix)
      : zk_(zk),
        keys_(keys),
        root_path_(std::move(root_path)),
        prefix_(prefix) {}

  void AddSubscriber(SubscriptionId id, WatchListener* listener) {
    warren::MutexLock lock(&mu_);
    subscribers_[id] = Subscriber{listener, false, 0};
    if (synced_) {
      subscribers_[id].initialized = true;
      // Its snapshot holds the changes not flushed yet.
      subscribers_[id].skip = unflushed_.size();
      listener->OnInitialState(SnapshotLocked());
    }
  }

  // Answers whether subscribers remain.
  bool RemoveSubscriber(SubscriptionId id) {
    warren::MutexLock lock(&mu_);
    subscribers_.erase(id);
    return !subscribers_.empty();
  }

  void OnSessionState(zk::SessionState state) {
    warren::MutexLock lock(&mu_);
    switch (state) {
      case zk::SessionState::kConnected:
        StartEpochLocked();
        break;
      case zk::SessionState::kExpired:
        // The session's watches died with it.
        data_watched_.clear();
        child_watched_.clear();
        synced_ = false;
        break;
      default:
        synced_ = false;
        break;
    }
  }

  void Start() {
    warren::MutexLock lock(&mu_);
    if (zk_.state() == zk::SessionState::kConnected) StartEpochLocked();
  }

  std::optional<std::optional<CachedEntry>> Lookup(const std::string& path) {
    warren::MutexLock lock(&mu_);
    if (!synced_) return std::nullopt;
    auto it = nodes_.find(path);
    if (it == nodes_.end() || !IsKey(it->first, it->second)) {
      return std::optional<CachedEntry>();
    }
    return std::optional<CachedEntry>(EntryOf(it->first, it->second));
  }

 private:
  struct Node {
    std::string value;
    bool null_data = false;  // a namespace node: watched, never reported
    zk::NodeStat stat;
    uint64_t seen_epoch = 0;
  };
  struct Subscriber {
    WatchListener* listener;
    bool initialized;
    // How many of unflushed_ its initial state already holds.
    size_t skip;
  };

  CachedEntry EntryOf(const std::string& path, const Node& node) const {
    return CachedEntry{keys_.KeyOf(path).value_or(path), node.value, node.stat};
  }

  // Neither the base node of all keys nor a namespace node is a key.
  bool IsKey(const std::string& path, const Node& node) const {
    return path != keys_.base() && !node.null_data;
  }

  std::vector<CachedEntry> SnapshotLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<CachedEntry> entries;
    entries.reserve(nodes_.size());
    for (const auto& [path, node] : nodes_) {
      if (IsKey(path, node)) entries.push_back(EntryOf(path, node));
    }
    return entries;
  }

  // Changes wait until every read in flight has been answered, so that the
  // changes of one write (one multi) reach subscribers together: ZooKeeper
  // sends all of a transaction's watch events before its answer to any
  // later request, and each event starts a read (a barrier for a delete).
  // Under a steady stream of writes below the watched root some read is
  // always in flight, so the wait is capped (kMaxFlushDelay): then what is
  // gathered goes out as it is, and one transaction's changes may arrive
  // split in two.
  void EmitLocked(std::vector<Change> changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (unflushed_.empty() && !changes.empty()) {
      oldest_unflushed_ = absl::Now();
    }
    for (auto& change : changes) unflushed_.push_back(std::move(change));
  }

  void FlushLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (unflushed_.empty()) return;
    for (auto& [id, subscriber] : subscribers_) {
      if (!subscriber.initialized) continue;
      if (subscriber.skip == 0) {
        subscriber.listener->OnChanges(unflushed_);
      } else if (subscriber.skip < unflushed_.size()) {
        subscriber.listener->OnChanges(std::vector<Change>(
            unflushed_.begin() + subscriber.skip, unflushed_.end()));
      }
      subscriber.skip = 0;
    }
    unflushed_.clear();
  }

  // A read whose answer comes after every watch event already sent.
  void BarrierLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++pending_;
    zk_.Exists(root_path_, nullptr,
               [weak = weak()](absl::StatusOr<std::optional<zk::NodeStat>>) {
                 auto tree = weak.lock();
                 if (!tree) return;
                 warren::MutexLock lock(&tree->mu_);
                 --tree->pending_;
                 tree->MaybeFinishLocked();
               });
  }

  void StartEpochLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++epoch_;
    epoch_failed_ = false;
    LoadLocked(root_path_);
  }

  std::weak_ptr<Tree> weak() { return weak_from_this(); }

  zk::WatchFn DataWatchLocked(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!data_watched_.insert(path).second) return nullptr;
    return [weak = weak()](const zk::WatchEvent& event) {
      if (auto tree = weak.lock()) tree->OnDataEvent(event);
    };
  }

  zk::WatchFn ChildWatchLocked(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!child_watched_.insert(path).second) return nullptr;
    return [weak = weak()](const zk::WatchEvent& event) {
      if (auto tree = weak.lock()) tree->OnChildEvent(event);
    };
  }

  // Reads a node (and, for a prefix, its children) and keeps watching it.
  void LoadLocked(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++pending_;
    zk::WatchFn watch = DataWatchLocked(path);
    const bool watching = static_cast<bool>(watch);
    zk_.Get(path, std::move(watch),
            [weak = weak(), path, watching](absl::StatusOr<zk::NodeData> r) {
              if (auto tree = weak.lock()) tree->OnData(path, watching, r);
            });
  }

  void OnData(const std::string& path, bool set_watch,
              const absl::StatusOr<zk::NodeData>& result) {
    warren::MutexLock lock(&mu_);
    --pending_;
    if (result.ok()) {
      Node& node = nodes_[path];
      const bool changed = node.seen_epoch == 0 ||
                           node.stat.mzxid != result->stat.mzxid ||
                           node.stat.czxid != result->stat.czxid;
      // A key deleted while it had children turns into a namespace node.
      std::optional<CachedEntry> deleted;
      if (node.seen_epoch != 0 && IsKey(path, node) && result->null_data) {
        deleted = EntryOf(path, node);
      }
      node.value = result->value;
      node.null_data = result->null_data;
      node.stat = result->stat;
      node.seen_epoch = epoch_;
      if (changed && IsKey(path, node)) {
        EmitLocked({Change{Change::Type::kPut, EntryOf(path, node)}});
      } else if (deleted.has_value()) {
        EmitLocked({Change{Change::Type::kDelete, *std::move(deleted)}});
      }
      if (prefix_) LoadChildrenLocked(path);
    } else {
      // Without a node ZooKeeper sets no data watch.
      if (set_watch) data_watched_.erase(path);
      if (zk::ZkErrorOf(result.status()) == zk::ZkError::kNoNode) {
        RemoveLocked(path);
        if (path == root_path_) WatchRootCreationLocked();
      } else {
        FailLocked(path, result.status());
      }
    }
    MaybeFinishLocked();
  }

  void LoadChildrenLocked(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++pending_;
    zk::WatchFn watch = ChildWatchLocked(path);
    const bool watching = static_cast<bool>(watch);
    zk_.GetChildren(
        path, std::move(watch),
        [weak = weak(), path, watching](absl::StatusOr<zk::Children> r) {
          if (auto tree = weak.lock()) tree->OnChildren(path, watching, r);
        });
  }

  void OnChildren(const std::string& path, bool set_watch,
                  const absl::StatusOr<zk::Children>& result) {
    warren::MutexLock lock(&mu_);
    --pending_;
    if (result.ok()) {
      for (const std::string& name : result->names) {
        const std::string child =
            absl::StrCat(path == "/" ? "" : path, "/", name);
        auto it = nodes_.find(child);
        if (it == nodes_.end() || it->second.seen_epoch < epoch_) {
          LoadLocked(child);
        }
      }
    } else {
      if (set_watch) child_watched_.erase(path);
      // A vanished node is reported by its data watch.
      if (zk::ZkErrorOf(result.status()) != zk::ZkError::kNoNode) {
        FailLocked(path, result.status());
      }
    }
    MaybeFinishLocked();
  }

  void WatchRootCreationLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++pending_;
    zk::WatchFn watch = DataWatchLocked(root_path_);
    const bool watching = static_cast<bool>(watch);
    zk_.Exists(root_path_, std::move(watch),
               [weak = weak(),
                watching](absl::StatusOr<std::optional<zk::NodeStat>> r) {
                 if (auto tree = weak.lock()) tree->OnRootExists(watching, r);
               });
  }

  void OnRootExists(bool set_watch,
                    const absl::StatusOr<std::optional<zk::NodeStat>>& result) {
    warren::MutexLock lock(&mu_);
    --pending_;
    if (!result.ok()) {
      if (set_watch) data_watched_.erase(root_path_);
      FailLocked(root_path_, result.status());
    } else if (result->has_value()) {
      // Created between our read and the exists call.
      LoadLocked(root_path_);
    }
    MaybeFinishLocked();
  }

  void OnDataEvent(const zk::WatchEvent& event) {
    warren::MutexLock lock(&mu_);
    data_watched_.erase(event.path);
    if (event.type == zk::EventType::kDeleted) {
      // ZooKeeper deletes only nodes without children, and reports those
      // first, so this removes the node alone (or a remnant subtree).
      child_watched_.erase(event.path);
      RemoveLocked(event.path);
      if (event.path == root_path_) {
        WatchRootCreationLocked();
      } else {
        BarrierLocked();
      }
    } else {
      LoadLocked(event.path);
    }
  }

  void OnChildEvent(const zk::WatchEvent& event) {
    warren::MutexLock lock(&mu_);
    child_watched_.erase(event.path);
    if (event.type == zk::EventType::kChildrenChanged) {
      LoadChildrenLocked(event.path);
    }
  }

  // Forgets a node and everything below it, telling subscribers.
  void RemoveLocked(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<Change> changes;
    auto it = nodes_.find(path);
    if (it == nodes_.end()) it = nodes_.upper_bound(path);
    while (it != nodes_.end() && IsSelfOrDescendant(it->first, path)) {
      if (IsKey(it->first, it->second)) {
        changes.push_back(
            Change{Change::Type::kDelete, EntryOf(it->first, it->second)});
      }
      it = nodes_.erase(it);
    }
    // Children before parents, as ZooKeeper itself would report them.
    std::reverse(changes.begin(), changes.end());
    EmitLocked(std::move(changes));
  }

  void FailLocked(const std::string& path, const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Connection trouble: the next (re)connection reads everything again.
    epoch_failed_ = true;
    WARREN_LOG_DEBUG("config watch on {}: reading {} failed: {}", root_path_,
                     path, status.ToString());
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (pending_ != 0) {
      // Each answered read comes here: under churn the answers keep coming,
      // and so does this check.
      if (!unflushed_.empty() &&
          absl::Now() - oldest_unflushed_ > kMaxFlushDelay) {
        FlushLocked();
      }
      return;
    }
    if (epoch_failed_ || epoch_ == 0 || synced_) {
      FlushLocked();
      return;
    }
    // Whatever this reading did not see is gone.
    std::vector<std::string> stale;
    for (const auto& [path, node] : nodes_) {
      if (node.seen_epoch < epoch_) stale.push_back(path);
    }
    for (auto it = stale.rbegin(); it != stale.rend(); ++it) {
      if (nodes_.count(*it) != 0) RemoveLocked(*it);
    }
    // To the subscribers that had a state before this reading; the new
    // ones get the state as it is now.
    FlushLocked();
    synced_ = true;
    std::vector<CachedEntry> snapshot;
    bool snapshot_taken = false;
    for (auto& [id, subscriber] : subscribers_) {
      if (subscriber.initialized) continue;
      if (!snapshot_taken) {
        snapshot = SnapshotLocked();
        snapshot_taken = true;
      }
      subscriber.initialized = true;
      subscriber.listener->OnInitialState(snapshot);
    }
  }

  zk::ZkClient& zk_;
  const KeySpace& keys_;
  const std::string root_path_;
  const bool prefix_;

  warren::Mutex mu_;
  std::map<std::string, Node, PathLessFn> nodes_ ABSL_GUARDED_BY(mu_);
  // Paths with a watch of ours registered and not yet fired: ZooKeeper holds
  // one per path anyway, and this keeps our callbacks at one per path too.
  std::set<std::string> data_watched_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> child_watched_ ABSL_GUARDED_BY(mu_);
  std::map<SubscriptionId, Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  std::vector<Change> unflushed_ ABSL_GUARDED_BY(mu_);
  // When the first of unflushed_ was gathered.
  absl::Time oldest_unflushed_ ABSL_GUARDED_BY(mu_);
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool epoch_failed_ ABSL_GUARDED_BY(mu_) = false;
  // True while the tree matches ZooKeeper as of its last reading and the
  // session is connected: only then are reads served from it.
  bool synced_ ABSL_GUARDED_BY(mu_) = false;
};

WatchCache::WatchCache(zk::ZkClient& zk, KeySpace keys)
    : zk_(zk), keys_(std::move(keys)) {
  listener_id_ = zk_.AddSessionListener(
      [this](zk::SessionState state) { OnSessionState(state); });
}

WatchCache::~WatchCache() { zk_.RemoveSessionListener(listener_id_); }

void WatchCache::OnSessionState(zk::SessionState state) {
  std::vector<std::shared_ptr<Tree>> trees;
  {
    warren::MutexLock lock(&mu_);
    for (auto& [key, tree] : trees_) trees.push_back(tree);
  }
  for (auto& tree : trees) tree->OnSessionState(state);
}

WatchCache::SubscriptionId WatchCache::Subscribe(const std::string& key,
                                                 bool prefix,
                                                 WatchListener* listener) {
  std::shared_ptr<Tree> tree;
  SubscriptionId id;
  bool fresh = false;
  {
    warren::MutexLock lock(&mu_);
    const std::string path = keys_.PathOf(key);
    const std::string tree_key = prefix ? path + "+" : path;
    auto& slot = trees_[tree_key];
    if (slot == nullptr) {
      slot = std::make_shared<Tree>(zk_, keys_, path, prefix);
      fresh = true;
    }
    tree = slot;
    id = next_id_++;
    subscriptions_[id] = Subscription{tree};
  }
  tree->AddSubscriber(id, listener);
  if (fresh) tree->Start();
  return id;
}

void WatchCache::Unsubscribe(SubscriptionId id) {
  warren::MutexLock lock(&mu_);
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  std::shared_ptr<Tree> tree = std::move(it->second.tree);
  subscriptions_.erase(it);
  if (!tree->RemoveSubscriber(id)) {
    for (auto t = trees_.begin(); t != trees_.end(); ++t) {
      if (t->second == tree) {
        trees_.erase(t);
        break;
      }
    }
  }
}

std::optional<std::optional<CachedEntry>> WatchCache::Lookup(
    const std::string& key) {
  std::vector<std::shared_ptr<Tree>> candidates;
  {
    warren::MutexLock lock(&mu_);
    const std::string path = keys_.PathOf(key);
    for (const std::string& tree_key : {path, path + "+"}) {
      auto it = trees_.find(tree_key);
      if (it != trees_.end()) candidates.push_back(it->second);
    }
    // Prefix watches on every ancestor, up to the base.
    std::string ancestor = path;
    while (ancestor != keys_.base()) {
      const size_t slash = ancestor.rfind('/');
      if (slash == std::string::npos || slash == 0) break;
      ancestor.resize(slash);
      auto it = trees_.find(ancestor + "+");
      if (it != trees_.end()) candidates.push_back(it->second);
    }
  }
  const std::string path = keys_.PathOf(key);
  for (auto& tree : candidates) {
    if (auto hit = tree->Lookup(path)) return hit;
  }
  return std::nullopt;
}

size_t WatchCache::tree_count() const {
  warren::MutexLock lock(&mu_);
  return trees_.size();
}

size_t WatchCache::subscription_count() const {
  warren::MutexLock lock(&mu_);
  return subscriptions_.size();
}

}  // namespace warren::config
