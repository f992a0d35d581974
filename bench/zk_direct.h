// The direct ZooKeeper side of the benchmark: the ZooKeeper C client
// (zookeeper_mt) used the way an application that links it would, with
// asynchronous calls pipelined where that is the library's best.
#pragma once

#include <zookeeper/zookeeper.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace warren::bench {

class ZkSession {
 public:
  // Starts connecting; Wait() blocks until the session is connected.
  static std::unique_ptr<ZkSession> Start(const std::string& connect);
  static absl::StatusOr<std::unique_ptr<ZkSession>> Connect(
      const std::string& connect, absl::Duration timeout);
  ~ZkSession();
  ZkSession(const ZkSession&) = delete;
  ZkSession& operator=(const ZkSession&) = delete;

  absl::Status Wait(absl::Duration timeout);
  zhandle_t* get() const { return zh_; }

  // Creates `path` and its missing parents as persistent nodes, `path`
  // itself with `value`; an existing node gets `value` set.
  absl::Status Put(const std::string& path, const std::string& value);
  // Creates the missing parents of `path` (persistent, empty).
  absl::Status EnsureParents(const std::string& path);
  // Deletes `path` and everything below it (best effort).
  void DeleteTree(const std::string& path);

 private:
  ZkSession() = default;
  static void OnSession(zhandle_t* zh, int type, int state, const char* path,
                        void* context);
  zhandle_t* zh_ = nullptr;
  absl::Notification connected_;
};

absl::Status ZkError(int rc, const std::string& what);

}  // namespace warren::bench
