// The clients of the cluster fault suite: each runs on a thread of its own
// until Stop(), keeps working through every fault (a stream that ends is
// opened again, a failed call is retried), and tells the Recorder what it
// saw. Clients that may move (publishers, subscribers, the config writer)
// go to the next replica when theirs is unreachable, as a client behind a
// Service would; watchers and candidates stay on their replica.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/mutex.h"
#include "tests/cluster/recorder.h"

namespace warren::cluster {

struct WorkloadOptions {
  // One channel per warrend replica (fixed addresses: a restarted replica
  // comes back on the same one).
  std::vector<std::shared_ptr<grpc::Channel>> replicas;
  std::string queue;     // a quorum queue, shared by every subscriber
  std::string key;       // the config key written and watched
  std::string election;  // the election every candidate joins
  absl::Duration publish_every = absl::Milliseconds(50);
  absl::Duration write_every = absl::Milliseconds(100);
  absl::Duration lease_heartbeat = absl::Milliseconds(500);
  absl::Duration stream_heartbeat = absl::Seconds(1);
  // A call (or a PublishStream response) that takes longer is given up.
  absl::Duration call_timeout = absl::Seconds(5);
};

class Workload {
 public:
  Workload(WorkloadOptions options, Recorder* recorder);
  ~Workload();  // Stop()

  // Subscribers first (they declare the quorum queue), once subscribed the
  // rest; answers false when the subscribers did not subscribe in time.
  bool Start(absl::Duration timeout);
  // Stops every client; waits for their threads.
  void Stop();
  // Stops only the config writer (for the final config check).
  void StopWriter();

  const std::vector<std::string>& publishers() const { return publishers_; }
  const std::vector<std::string>& subscribers() const { return subscribers_; }
  const std::vector<std::string>& watchers() const { return watchers_; }
  const std::vector<std::string>& candidates() const { return candidates_; }
  const WorkloadOptions& options() const { return options_; }

 private:
  // Registers a context that Stop() cancels; false once stopping.
  bool Track(grpc::ClientContext* context);
  void Untrack(grpc::ClientContext* context);
  // Sleeps up to `d`; false when stopping.
  bool Pause(absl::Duration d);

  void StreamPublisher(const std::string& actor, size_t replica);
  void UnaryPublisher(const std::string& actor, size_t replica);
  void Subscriber(const std::string& actor, size_t replica);
  void Watcher(const std::string& actor, size_t replica);
  void Candidate(const std::string& actor, size_t replica);
  void Writer(const std::string& actor);

  const WorkloadOptions options_;
  Recorder* const recorder_;
  std::vector<std::string> publishers_, subscribers_, watchers_, candidates_;
  std::vector<std::thread> threads_;
  std::thread writer_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> writer_stopping_{false};
  warren::Mutex mu_;
  std::vector<grpc::ClientContext*> contexts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::cluster
