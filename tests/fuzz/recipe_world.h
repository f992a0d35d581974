// What the recipe fuzzers (elect_fuzzer, lock_fuzzer) share: a service of the
// elections' recipe on an in-process gRPC server over an in-memory ZooKeeper,
// and the clean-up of that ZooKeeper between inputs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "tests/fakes/fake_zk.h"
#include "tests/fuzz/fuzz_support.h"

namespace warren::fuzz {

// `Manager` keeps the recipe's nodes under `base` (its root "/w");
// `Service` is its gRPC service, `Grpc` the generated service class.
template <typename Manager, typename Service, typename Options, typename Grpc>
struct RecipeWorld {
  explicit RecipeWorld(const std::string& base)
      : manager(zk, "/w"), workers(2, 1000) {
    zk.ExternalPut("/w", "");
    zk.ExternalPut(base, "");
    zk.RunUntilIdle();
    Options options;
    options.session_timeout = absl::Seconds(3);
    options.max_value_bytes = 1024;
    service =
        std::make_unique<Service>(manager, workers, timers, streams, options);
    server = StartInProcessServer({service.get()});
    stub = Grpc::NewStub(server->InProcessChannel(grpc::ChannelArguments()));
  }
  testing::FakeZk zk;
  Manager manager;
  WorkerPool workers;
  TimerQueue timers;
  StreamRegistry streams;
  std::unique_ptr<Service> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<typename Grpc::Stub> stub;
  Pump pump{[this] {
    zk.RunUntilIdle();
    return false;
  }};
};

// Deletes every node below `base` (children before parents): the recipes'
// containers, which ZooKeeper would remove once empty, so that the tree
// stays small over millions of inputs.
inline void DeleteEverythingBelow(testing::FakeZk& zk,
                                  const std::string& base) {
  std::vector<std::string> nodes;  // parents before children
  std::vector<std::string> pending = {base};
  while (!pending.empty()) {
    const std::string path = pending.back();
    pending.pop_back();
    for (const auto& child : zk.Children(path)) {
      nodes.push_back(absl::StrCat(path, "/", child));
      pending.push_back(nodes.back());
    }
  }
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    zk.ExternalDelete(*it);
  }
}

}  // namespace warren::fuzz
