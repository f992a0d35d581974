// Blocking forms of the ZkClient operations, for worker threads that run a
// multi-step operation (never for gRPC reactions or ZooKeeper callbacks).
// Every call waits at most until the deadline given at construction; an
// answer that arrives later is dropped safely.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/zk/zk_client.h"

namespace warren::zk {

class ZkSync {
 public:
  ZkSync(ZkClient& client, absl::Time deadline)
      : client_(client), deadline_(deadline) {}

  absl::StatusOr<NodeData> Get(const std::string& path) {
    return Await<NodeData>([&](Callback<NodeData> done) {
      client_.Get(path, nullptr, std::move(done));
    });
  }
  absl::StatusOr<std::optional<NodeStat>> Exists(const std::string& path) {
    return Await<std::optional<NodeStat>>(
        [&](Callback<std::optional<NodeStat>> done) {
          client_.Exists(path, nullptr, std::move(done));
        });
  }
  absl::StatusOr<Children> GetChildren(const std::string& path) {
    return Await<Children>([&](Callback<Children> done) {
      client_.GetChildren(path, nullptr, std::move(done));
    });
  }
  absl::StatusOr<NodeAcl> GetAcl(const std::string& path) {
    return Await<NodeAcl>(
        [&](Callback<NodeAcl> done) { client_.GetAcl(path, std::move(done)); });
  }
  absl::StatusOr<NodeStat> Set(const std::string& path,
                               const std::string& value, int32_t version) {
    return Await<NodeStat>([&](Callback<NodeStat> done) {
      client_.Set(path, value, version, std::move(done));
    });
  }
  absl::Status Sync(const std::string& path) {
    return Await<bool>([&](Callback<bool> done) {
             client_.Sync(
                 path, [done = std::move(done)](absl::Status status) mutable {
                   if (status.ok()) {
                     done(true);
                   } else {
                     done(status);
                   }
                 });
           })
        .status();
  }
  absl::StatusOr<MultiResult> Multi(std::vector<Op> ops) {
    return Await<MultiResult>([&](Callback<MultiResult> done) {
      client_.Multi(std::move(ops),
                    [done = std::move(done)](MultiResult result) mutable {
                      done(std::move(result));
                    });
    });
  }

  absl::Time deadline() const { return deadline_; }

  // Creates `path` and its missing ancestors as persistent nodes, from the
  // top; a node someone else created meanwhile is fine.
  absl::Status EnsurePath(const std::string& path) {
    std::vector<std::string> chain;
    for (std::string p = path; !p.empty() && p != "/"; p.resize(p.rfind('/'))) {
      chain.push_back(p);
    }
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      auto exists = Exists(*it);
      if (!exists.ok()) return exists.status();
      if (exists->has_value()) continue;
      auto created = Multi({Op::Create(*it, "")});
      if (!created.ok()) return created.status();
      if (!created->status.ok() &&
          ZkErrorOf(created->status) != ZkError::kNodeExists) {
        return created->status;
      }
    }
    return absl::OkStatus();
  }

 private:
  template <typename T, typename Start>
  absl::StatusOr<T> Await(Start start) {
    struct Shared {
      warren::Mutex mu;
      std::optional<absl::StatusOr<T>> result ABSL_GUARDED_BY(mu);
    };
    auto shared = std::make_shared<Shared>();
    start([shared](absl::StatusOr<T> result) {
      warren::MutexLock lock(&shared->mu);
      shared->result = std::move(result);
    });
    warren::MutexLock lock(&shared->mu);
    auto answered = [&shared]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(shared->mu) {
      return shared->result.has_value();
    };
    shared->mu.AwaitWithDeadline(absl::Condition(&answered), deadline_);
    if (!shared->result.has_value()) {
      return absl::DeadlineExceededError(
          "ZooKeeper did not answer before the deadline");
    }
    return std::move(*shared->result);
  }

  ZkClient& client_;
  const absl::Time deadline_;
};

}  // namespace warren::zk
