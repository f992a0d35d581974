// Test-side clients of MessagingService streams: a subscriber that reads on
// its own thread and lets the test wait for conditions on what arrived, a
// pipelined publisher over PublishStream, and the fixture the messaging
// integration tests share.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/mutex.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {

class TestSubscriber {
 public:
  TestSubscriber(warren::v1::MessagingService::Stub& stub,
                 const warren::v1::SubscribeStart& start);
  ~TestSubscriber();

  // Waits for the `subscribed` response; answers the queue name ("" if the
  // stream ended first).
  std::string WaitSubscribed(absl::Duration timeout = absl::Seconds(30));
  // Waits until at least `n` deliveries arrived (or the stream ended).
  bool WaitDeliveries(size_t n, absl::Duration timeout = absl::Seconds(60));
  bool WaitEnded(grpc::Status* status,
                 absl::Duration timeout = absl::Seconds(30));
  std::vector<warren::v1::Delivery> deliveries();
  size_t delivery_count();
  // When each delivery was read, in the order of deliveries().
  std::vector<absl::Time> arrivals();

  bool Ack(const std::vector<uint64_t>& ids);
  bool Nack(const std::vector<uint64_t>& ids, bool requeue);
  bool Send(const warren::v1::SubscribeRequest& request);
  void Cancel() { context_.TryCancel(); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<warren::v1::SubscribeRequest,
                                           warren::v1::SubscribeResponse>>
      stream_;
  std::thread reader_;
  warren::Mutex mu_;
  std::string queue_ ABSL_GUARDED_BY(mu_);
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<warren::v1::Delivery> deliveries_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> arrivals_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  warren::Mutex write_mu_;
};

// Many Subscribe streams at once on gRPC's callback API (no thread per
// stream), all opened with the same `start`. Each reads until its stream ends
// and counts its deliveries (it never acks: give max_in_flight room).
class SubscriberSwarm {
 public:
  SubscriberSwarm(warren::v1::MessagingService::Stub& stub,
                  const warren::v1::SubscribeStart& start, size_t streams);
  ~SubscriberSwarm();  // cancels every stream and waits for it to end

  size_t size() const { return streams_.size(); }
  // Streams that were answered `subscribed`, that received at least `n`
  // deliveries, that ended.
  size_t subscribed();
  size_t with_deliveries(size_t n);
  size_t ended();
  // How many streams ended with each status code.
  std::map<grpc::StatusCode, size_t> end_codes();
  // One message of a stream that ended with `code` ("" if none did).
  std::string end_message(grpc::StatusCode code);
  // Waits until `condition` holds over the swarm (checked at every event).
  bool WaitUntil(const std::function<bool(SubscriberSwarm&)>& condition,
                 absl::Duration timeout);
  void CancelAll();

 private:
  class Stream;
  warren::Mutex mu_;
  std::vector<std::unique_ptr<Stream>> streams_;
};

struct PublishOutcome {
  uint64_t sequence;
  std::string message_id;
  int32_t code;
  std::string error;
};

// Publishes `count` messages built by `make` over one PublishStream and
// answers every response (in arrival order) and the stream's status.
std::vector<PublishOutcome> PublishAll(
    warren::v1::MessagingService::Stub& stub, size_t count,
    const std::function<warren::v1::PublishRequest(size_t)>& make,
    grpc::Status* status,
    const std::function<void(const PublishOutcome&)>& on_response = nullptr);

// A warrend shared by the suite (started with `Flags::Args()`), a
// MessagingService stub to it and an AMQP connection to the test broker
// for setting up and inspecting queues directly.
template <typename Flags>
class MessagingTestBase : public SharedWarrendTest<Flags> {
 protected:
  void SetUp() override {
    SharedWarrendTest<Flags>::SetUp();
    if (this->HasFatalFailure()) return;
    stub_ = warren::v1::MessagingService::NewStub(this->warrend_->channel());
    auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = *std::move(admin);
  }

  std::unique_ptr<warren::v1::MessagingService::Stub> stub_;
  std::unique_ptr<AmqpAdmin> admin_;
};

}  // namespace warren::testing
