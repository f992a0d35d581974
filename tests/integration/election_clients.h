// Test-side clients of ElectionService: a candidate whose stream is read on
// its own thread, logging every event with the time it arrived, and an
// ObserveLeader stream read the same way.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/mutex.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing {

// A campaign of candidate `id` in `election`, offering `value`
// ("<id>:8080" when empty).
warren::v1::Campaign MakeCampaign(const std::string& election,
                                  const std::string& id,
                                  const std::string& value = "");

struct ElectEvent {
  absl::Time time;
  warren::v1::ElectResponse response;
};

class TestCandidate {
 public:
  TestCandidate(warren::v1::ElectionService::Stub& stub,
                const warren::v1::Campaign& campaign);
  ~TestCandidate();

  // Waits for an event matching `predicate` among those after `from`
  // (an index into events()); answers its index or -1.
  int WaitFor(
      const std::function<bool(const warren::v1::ElectResponse&)>& predicate,
      size_t from = 0, absl::Duration timeout = absl::Seconds(60));
  int WaitElected(size_t from = 0, absl::Duration timeout = absl::Seconds(60));
  bool WaitEnded(grpc::Status* status,
                 absl::Duration timeout = absl::Seconds(60));
  std::vector<ElectEvent> events();
  bool ended();

  bool Send(const warren::v1::ElectRequest& request);
  bool Proclaim(const std::string& value);
  bool Resign();
  void Cancel() { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<warren::v1::ElectRequest,
                                           warren::v1::ElectResponse>>
      stream_;
  std::thread reader_;
  warren::Mutex mu_;
  std::vector<ElectEvent> events_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  warren::Mutex write_mu_;
};

// Reads an ObserveLeader stream on its own thread until it ends.
class TestObserver {
 public:
  TestObserver(warren::v1::ElectionService::Stub& stub,
               const std::string& election);
  ~TestObserver();  // cancels the stream and waits for its end

  // Waits until `pred` holds over the responses so far (or the stream
  // ended); answers whether it holds.
  bool WaitUntil(
      const std::function<
          bool(const std::vector<warren::v1::ObserveLeaderResponse>&)>& pred,
      absl::Duration timeout = absl::Seconds(60));
  std::vector<warren::v1::ObserveLeaderResponse> seen();
  // Waits for the stream's end and answers its status; false on timeout.
  bool WaitEnded(grpc::Status* status,
                 absl::Duration timeout = absl::Seconds(30));

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<warren::v1::ObserveLeaderResponse>>
      reader_;
  std::thread thread_;
  warren::Mutex mu_;
  std::vector<warren::v1::ObserveLeaderResponse> seen_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::testing
