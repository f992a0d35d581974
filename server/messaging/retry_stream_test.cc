// The Subscribe stream's retries (Nack.retry_after) over FakeAmqp: what is
// republished where, when the original is settled and how, and what a
// message back from its retry queue looks like. Timing against RabbitMQ:
// tests/integration/messaging_depth_delays_test.cc.
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/messaging/delay_queues.h"
#include "server/messaging/messaging_service.h"
#include "tests/fakes/fake_amqp.h"

namespace warren::messaging {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class RetryStreamTest : public ::testing::Test {
 protected:
  RetryStreamTest() : service_(broker_, timers_, streams_, Options()) {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    stub_ = v1::MessagingService::NewStub(
        server_->InProcessChannel(grpc::ChannelArguments()));
  }
  ~RetryStreamTest() override { server_->Shutdown(); }

  static MessagingServiceOptions Options() {
    MessagingServiceOptions options;
    options.max_retry_delay = absl::Minutes(5);
    return options;
  }

  // Opens a stream on `queue` and hands it one delivery; answers the
  // delivery as the subscriber saw it.
  v1::Delivery Open(v1::SubscribeStart start, amqp::Delivery delivery) {
    stream_ = stub_->Subscribe(&context_);
    v1::SubscribeRequest request;
    *request.mutable_start() = std::move(start);
    EXPECT_TRUE(stream_->Write(request));
    // The server reads the start on its own threads.
    AwaitTrue([&] { return broker_.open() == 1; });
    broker_.Deliver(broker_.open_ids()[0], std::move(delivery));
    broker_.RunUntilIdle();
    v1::SubscribeResponse response;
    EXPECT_TRUE(stream_->Read(&response));  // subscribed
    EXPECT_TRUE(stream_->Read(&response));
    return response.delivery();
  }

  void Nack(uint64_t id, absl::Duration after) {
    v1::SubscribeRequest nack;
    nack.mutable_nack()->add_delivery_ids(id);
    nack.mutable_nack()->mutable_retry_after()->set_nanos(
        static_cast<int32_t>(absl::ToInt64Nanoseconds(after) % 1000000000));
    nack.mutable_nack()->mutable_retry_after()->set_seconds(
        absl::ToInt64Seconds(after));
    ASSERT_TRUE(stream_->Write(nack));
  }

  template <typename Condition>
  void AwaitTrue(Condition condition) {
    const absl::Time end = absl::Now() + absl::Seconds(10);
    while (!condition() && absl::Now() < end) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_TRUE(condition());
  }

  static v1::SubscribeStart QueueStart(const std::string& queue) {
    v1::SubscribeStart start;
    start.set_queue(queue);
    return start;
  }

  testing::FakeAmqp broker_;
  TimerQueue timers_;
  StreamRegistry streams_;
  MessagingServiceImpl service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::MessagingService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SubscribeRequest, v1::SubscribeResponse>>
      stream_;
};

TEST_F(RetryStreamTest, AckedOnlyOnceTheCopyIsInTheRetryQueue) {
  amqp::Delivery d;
  d.exchange = "events";
  d.routing_key = "a.b";
  d.payload = "poison";
  const v1::Delivery got = Open(QueueStart("orders"), d);
  Nack(got.delivery_id(), absl::Milliseconds(1234));
  AwaitTrue([&] { return !broker_.delay_queues().empty(); });
  EXPECT_TRUE(broker_.settled().empty());  // not before the confirm
  broker_.RunUntilIdle();
  EXPECT_EQ(broker_.delay_queues()[0].name, "warren.retry.1300ms.orders");
  ASSERT_EQ(broker_.published().size(), 1u);
  EXPECT_EQ(broker_.published()[0].routing_key, "warren.retry.1300ms.orders");
  EXPECT_EQ(broker_.published()[0].payload, "poison");
  EXPECT_THAT(broker_.settle_kinds(), ElementsAre(amqp::Settle::kAck));
  EXPECT_EQ(broker_.unsettled(), 0u);
  EXPECT_EQ(service_.unacked_deliveries(), 0);
}

TEST_F(RetryStreamTest, AFailedRepublishRequeuesTheOriginal) {
  broker_.FailNextPublishes({absl::UnavailableError("basic.nack"),
                             absl::UnavailableError("basic.nack")});
  const v1::Delivery got = Open(QueueStart("orders"), amqp::Delivery());
  Nack(got.delivery_id(), absl::Seconds(1));
  AwaitTrue([&] { return !broker_.delay_queues().empty(); });
  broker_.RunUntilIdle();
  EXPECT_THAT(broker_.settle_kinds(), ElementsAre(amqp::Settle::kRequeue));
}

TEST_F(RetryStreamTest, TheLastDeliveryTheLimitAllowsIsDeadLettered) {
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("events");
  start.set_group("jobs");
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  start.mutable_queue_options()->set_delivery_limit(3);
  amqp::Delivery d;
  d.delivery_count = 1;  // the broker's own count of requeues
  d.headers = {{kRetriesHeader, "1"}};
  const v1::Delivery got = Open(start, d);
  EXPECT_EQ(got.delivery_count(), 2u);
  Nack(got.delivery_id(), absl::Seconds(1));
  AwaitTrue([&] { return !broker_.settled().empty(); });
  EXPECT_THAT(broker_.settle_kinds(), ElementsAre(amqp::Settle::kReject));
  EXPECT_TRUE(broker_.published().empty());
}

// A retried copy is a new message to the broker (its own count restarts),
// so a plain requeue of the last delivery the limit allows dead-letters it.
TEST_F(RetryStreamTest, ARequeueAfterRetriesStillHonoursTheLimit) {
  v1::SubscribeStart start;
  start.set_group("jobs");
  start.mutable_topic()->set_exchange("events");
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  start.mutable_queue_options()->set_delivery_limit(3);
  amqp::Delivery d;
  d.headers = {{kRetriesHeader, "2"}};
  const v1::Delivery got = Open(start, d);
  v1::SubscribeRequest nack;
  nack.mutable_nack()->add_delivery_ids(got.delivery_id());
  nack.mutable_nack()->set_requeue(true);
  ASSERT_TRUE(stream_->Write(nack));
  AwaitTrue([&] { return !broker_.settled().empty(); });
  EXPECT_THAT(broker_.settle_kinds(), ElementsAre(amqp::Settle::kReject));
}

// An existing queue consumed as it is turns out to be a stream: its
// deliveries carry offsets, and a retry is refused.
TEST_F(RetryStreamTest, ARetryOnAnExistingStreamIsRefused) {
  amqp::Delivery d;
  d.stream_offset = 7;
  const v1::Delivery got = Open(QueueStart("events-log"), d);
  EXPECT_EQ(got.stream_offset(), 7u);
  Nack(got.delivery_id(), absl::Seconds(1));
  v1::SubscribeResponse response;
  while (stream_->Read(&response)) {
  }
  const grpc::Status status = stream_->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("nack.retry_after"));
  EXPECT_TRUE(broker_.delay_queues().empty());
}

TEST_F(RetryStreamTest, BackFromTheRetryQueueItLooksAsPublished) {
  amqp::Delivery d;
  d.exchange = "";
  d.routing_key = "orders";
  d.headers = {{"tenant", "acme"},
               {kRetriesHeader, "2"},
               {kRetryExchangeHeader, "events"},
               {kRetryRoutingKeyHeader, "a.b"}};
  const v1::Delivery got = Open(QueueStart("orders"), d);
  EXPECT_EQ(got.exchange(), "events");
  EXPECT_EQ(got.routing_key(), "a.b");
  EXPECT_EQ(got.delivery_count(), 2u);
  EXPECT_EQ(got.headers().size(), 1u);
  EXPECT_EQ(got.headers().at("tenant"), "acme");
  // Retried again: the origin and the count carry on.
  Nack(got.delivery_id(), absl::Seconds(1));
  AwaitTrue([&] { return !broker_.delay_queues().empty(); });
  broker_.RunUntilIdle();
  ASSERT_EQ(broker_.published().size(), 1u);
  EXPECT_THAT(
      broker_.published()[0].headers,
      ::testing::UnorderedElementsAre(
          std::pair<std::string, std::string>("tenant", "acme"),
          std::pair<std::string, std::string>(kRetriesHeader, "3"),
          std::pair<std::string, std::string>(kRetryExchangeHeader, "events"),
          std::pair<std::string, std::string>(kRetryRoutingKeyHeader, "a.b")));
}

TEST_F(RetryStreamTest, ARetryAfterOverTheMaxEndsTheStream) {
  const v1::Delivery got = Open(QueueStart("orders"), amqp::Delivery());
  Nack(got.delivery_id(), absl::Minutes(6));
  v1::SubscribeResponse response;
  EXPECT_FALSE(stream_->Read(&response));
  const grpc::Status status = stream_->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("nack.retry_after is 6m"));
  EXPECT_TRUE(broker_.published().empty());
}

TEST_F(RetryStreamTest, AZeroRetryAfterIsAPlainNack) {
  const v1::Delivery got = Open(QueueStart("orders"), amqp::Delivery());
  Nack(got.delivery_id(), absl::ZeroDuration());
  AwaitTrue([&] { return !broker_.settled().empty(); });
  EXPECT_THAT(broker_.settle_kinds(), ElementsAre(amqp::Settle::kReject));
  EXPECT_TRUE(broker_.delay_queues().empty());
}

}  // namespace
}  // namespace warren::messaging
