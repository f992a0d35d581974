// The messaging wrappers' own logic against an in-process fake
// MessagingService (no warrend, no broker): a stream subscription resumes
// after the last handled offset, failed deliveries are nacked with the
// retry delay the handler or the options ask for, a delayed publish is not
// made mandatory, Call answers the reply or DEADLINE_EXCEEDED, and a
// Responder publishes the reply before it acks the request.
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "warren/client/channel.h"
#include "warren/client/publisher.h"
#include "warren/client/responder.h"
#include "warren/client/stream_offset.h"
#include "warren/client/subscriber.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::client {
namespace {

namespace v1 = ::warren::v1;

v1::Delivery StreamDelivery(uint64_t id, uint64_t offset) {
  v1::Delivery d;
  d.set_delivery_id(id);
  d.set_stream_offset(offset);
  d.set_payload(absl::StrCat("m", offset));
  return d;
}

// Subscribe streams follow a script: stream n delivers script[n-1]; every
// stream but the last ends with UNAVAILABLE once all its deliveries are
// settled, the last one stays open until the client half-closes. Everything
// the client sends is recorded, in one event log shared with Publish.
class FakeMessaging final : public v1::MessagingService::Service {
 public:
  explicit FakeMessaging(std::vector<std::vector<v1::Delivery>> script = {{}})
      : script_(std::move(script)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeMessaging() override {
    server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }
  std::shared_ptr<grpc::Channel> channel() const {
    return MakeChannel(absl::StrCat("127.0.0.1:", port_));
  }

  std::vector<v1::SubscribeStart> starts() const {
    warren::MutexLock lock(&mu_);
    return starts_;
  }
  std::vector<v1::PublishRequest> publishes() const {
    warren::MutexLock lock(&mu_);
    return publishes_;
  }
  std::vector<v1::CallRequest> calls() const {
    warren::MutexLock lock(&mu_);
    return calls_;
  }
  // "publish", "ack <id>", "nack <id>" in the order the server saw them.
  std::vector<std::string> events() const {
    warren::MutexLock lock(&mu_);
    return events_;
  }
  std::vector<v1::SubscribeRequest> settlements() const {
    warren::MutexLock lock(&mu_);
    return settlements_;
  }
  bool AwaitSettlements(size_t n) const {
    warren::MutexLock lock(&mu_);
    auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return settlements_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  }

  grpc::Status Subscribe(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::SubscribeResponse, v1::SubscribeRequest>*
          stream) override {
    v1::SubscribeRequest request;
    if (!stream->Read(&request)) return grpc::Status::CANCELLED;
    size_t n;
    {
      warren::MutexLock lock(&mu_);
      starts_.push_back(request.start());
      n = starts_.size();
    }
    v1::SubscribeResponse subscribed;
    subscribed.mutable_subscribed()->set_queue("q");
    stream->Write(subscribed);
    const bool last = n >= script_.size();
    const std::vector<v1::Delivery>& deliveries =
        script_[std::min(n, script_.size()) - 1];
    for (const v1::Delivery& d : deliveries) {
      v1::SubscribeResponse response;
      *response.mutable_delivery() = d;
      stream->Write(response);
    }
    size_t settled = 0;
    while ((last || settled < deliveries.size()) && stream->Read(&request)) {
      warren::MutexLock lock(&mu_);
      settlements_.push_back(request);
      const bool ack = request.has_ack();
      for (uint64_t id :
           ack ? request.ack().delivery_ids() : request.nack().delivery_ids()) {
        events_.push_back(absl::StrCat(ack ? "ack " : "nack ", id));
        ++settled;
      }
    }
    if (last) return grpc::Status::OK;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "broken on purpose");
  }

  grpc::Status Publish(grpc::ServerContext*, const v1::PublishRequest* request,
                       v1::PublishResponse* response) override {
    warren::MutexLock lock(&mu_);
    publishes_.push_back(*request);
    events_.push_back("publish");
    response->set_message_id(request->message_id());
    return grpc::Status::OK;
  }

  grpc::Status Call(grpc::ServerContext* context,
                    const v1::CallRequest* request,
                    v1::CallResponse* response) override {
    {
      warren::MutexLock lock(&mu_);
      calls_.push_back(*request);
    }
    if (request->message().payload() == "unanswered") {
      // No responder: the client's deadline ends the call.
      while (!context->IsCancelled()) absl::SleepFor(absl::Milliseconds(5));
      return grpc::Status::CANCELLED;
    }
    response->mutable_reply()->set_payload(
        absl::StrCat("re:", request->message().payload()));
    response->mutable_reply()->set_correlation_id("fresh-id");
    return grpc::Status::OK;
  }

 private:
  const std::vector<std::vector<v1::Delivery>> script_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable warren::Mutex mu_;
  std::vector<v1::SubscribeStart> starts_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SubscribeRequest> settlements_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::PublishRequest> publishes_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::CallRequest> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

SubscriberOptions Options(v1::QueueType type) {
  SubscriberOptions options;
  options.start.set_queue("q");
  options.start.mutable_queue_options()->set_queue_type(type);
  options.max_in_flight = 1;  // one handler: settlements in delivery order
  options.backoff.initial = absl::Milliseconds(10);
  options.backoff.max = absl::Milliseconds(50);
  return options;
}

// What handlers saw, thread-safe.
class Seen {
 public:
  void Add(const v1::Delivery& d) {
    warren::MutexLock lock(&mu_);
    offsets_.push_back(d.stream_offset());
  }
  std::vector<uint64_t> offsets() const {
    warren::MutexLock lock(&mu_);
    return offsets_;
  }

 private:
  mutable warren::Mutex mu_;
  std::vector<uint64_t> offsets_ ABSL_GUARDED_BY(mu_);
};

TEST(MessagingUnitTest, StreamResumesAfterTheLastHandledOffset) {
  // The second stream repeats 11, as a broker's chunk may: the handler must
  // not see it twice.
  FakeMessaging fake({{StreamDelivery(1, 10), StreamDelivery(2, 11)},
                      {StreamDelivery(1, 11), StreamDelivery(2, 12)}});
  SubscriberOptions options = Options(v1::QUEUE_TYPE_STREAM);
  *options.start.mutable_offset() = StreamFirst();
  Seen seen;
  auto subscriber =
      Subscriber::Start(fake.channel(), options, [&](const v1::Delivery& d) {
        seen.Add(d);
        return absl::OkStatus();
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  ASSERT_TRUE(fake.AwaitSettlements(4));
  (*subscriber)->Stop();

  EXPECT_EQ(seen.offsets(), (std::vector<uint64_t>{10, 11, 12}));
  EXPECT_EQ((*subscriber)->last_stream_offset(), 12u);
  const auto starts = fake.starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_TRUE(starts[0].offset().first());
  EXPECT_EQ(starts[1].offset().offset(), 12u);
  // The repeated delivery is acked all the same: the stream needs its acks.
  EXPECT_EQ(fake.events(),
            (std::vector<std::string>{"ack 1", "ack 2", "ack 1", "ack 2"}));
}

TEST(MessagingUnitTest, FailedDeliveriesComeBackAfterTheirDelay) {
  std::vector<v1::Delivery> deliveries;
  for (uint64_t id : {1, 2, 3}) deliveries.push_back(StreamDelivery(id, 0));
  FakeMessaging fake({deliveries});
  SubscriberOptions options = Options(v1::QUEUE_TYPE_CLASSIC);
  options.retry_after = absl::Seconds(2);
  auto subscriber = Subscriber::Start(
      fake.channel(), options, [](const v1::Delivery& d) -> absl::Status {
        if (d.delivery_id() == 1) {
          return RetryAfter(absl::Milliseconds(500),
                            absl::InternalError("database down"));
        }
        if (d.delivery_id() == 2) return absl::InternalError("bad");
        return absl::OkStatus();
      });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  ASSERT_TRUE(fake.AwaitSettlements(3));
  (*subscriber)->Stop();

  const auto settled = fake.settlements();
  ASSERT_EQ(settled.size(), 3u);
  ASSERT_TRUE(settled[0].has_nack());
  EXPECT_EQ(settled[0].nack().retry_after().nanos(), 500000000);
  EXPECT_EQ(settled[0].nack().retry_after().seconds(), 0);
  ASSERT_TRUE(settled[1].has_nack());
  EXPECT_EQ(settled[1].nack().retry_after().seconds(), 2);
  EXPECT_TRUE(settled[2].has_ack());
}

TEST(MessagingUnitTest, RetryAfterKeepsTheErrorAndItsDelay) {
  const absl::Status error =
      RetryAfter(absl::Seconds(3), absl::InternalError("down"));
  EXPECT_EQ(error.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(error.message(), "down");
  EXPECT_EQ(RetryDelayOf(error), absl::Seconds(3));
  EXPECT_EQ(RetryAfter(absl::Seconds(1)).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(RetryDelayOf(absl::InternalError("plain")), std::nullopt);
}

TEST(MessagingUnitTest, AStreamNackOnlySettles) {
  FakeMessaging fake({{StreamDelivery(1, 5)}});
  auto subscriber = Subscriber::Start(
      fake.channel(), Options(v1::QUEUE_TYPE_STREAM),
      [](const v1::Delivery&) { return RetryAfter(absl::Seconds(1)); });
  ASSERT_TRUE(subscriber.ok()) << subscriber.status();
  ASSERT_TRUE(fake.AwaitSettlements(1));
  (*subscriber)->Stop();
  ASSERT_TRUE(fake.settlements()[0].has_nack());
  EXPECT_FALSE(fake.settlements()[0].nack().has_retry_after());

  SubscriberOptions options = Options(v1::QUEUE_TYPE_STREAM);
  options.retry_after = absl::Seconds(1);
  auto refused =
      Subscriber::Start(fake.channel(), options,
                        [](const v1::Delivery&) { return absl::OkStatus(); });
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MessagingUnitTest, StreamOffsetsSayWhereToStart) {
  EXPECT_TRUE(StreamLast().last());
  EXPECT_TRUE(StreamNext().next());
  EXPECT_EQ(ResumeAfter(41).offset(), 42u);
  const v1::StreamOffset since =
      StreamSince(absl::FromUnixMillis(1700000000250));
  EXPECT_EQ(since.timestamp().seconds(), 1700000000);
  EXPECT_EQ(since.timestamp().nanos(), 250000000);
}

TEST(MessagingUnitTest, ADelayedPublishIsNotMandatory) {
  FakeMessaging fake;
  Publisher publisher(fake.channel());
  v1::PublishRequest request;
  request.set_routing_key("q");
  ASSERT_TRUE(publisher.PublishDelayed(request, absl::Milliseconds(1500)).ok());
  ASSERT_TRUE(publisher.Publish(request).ok());
  const auto published = fake.publishes();
  ASSERT_EQ(published.size(), 2u);
  EXPECT_EQ(published[0].delay().seconds(), 1);
  EXPECT_EQ(published[0].delay().nanos(), 500000000);
  EXPECT_FALSE(published[0].mandatory());
  EXPECT_TRUE(published[1].mandatory());
}

TEST(MessagingUnitTest, CallAnswersTheReplyOrDeadlineExceeded) {
  FakeMessaging fake;
  Publisher publisher(fake.channel());
  v1::PublishRequest request;
  request.set_routing_key("prices");
  request.set_payload("ping");
  auto reply = publisher.Call(request, absl::Seconds(10));
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->payload(), "re:ping");
  const auto calls = fake.calls();
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_TRUE(calls[0].message().mandatory());
  EXPECT_FALSE(calls[0].message().message_id().empty());

  request.set_payload("unanswered");
  const absl::Time start = absl::Now();
  reply = publisher.Call(request, absl::Milliseconds(300));
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(reply.status().message()),
              ::testing::HasSubstr("no reply within 300ms"));
  // It waited for the reply (gRPC's clock and absl's may differ by a
  // fraction of a millisecond), rather than failing at once.
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(290));
  EXPECT_EQ(fake.calls().size(), 2u);  // not retried
}

TEST(MessagingUnitTest, AResponderRepliesBeforeItAcks) {
  v1::Delivery answered;
  answered.set_delivery_id(1);
  answered.set_payload("ping");
  answered.set_reply_to("amq.rabbitmq.reply-to.abc");
  answered.set_correlation_id("corr-1");
  v1::Delivery no_reply_to;
  no_reply_to.set_delivery_id(2);
  v1::Delivery failing = answered;
  failing.set_delivery_id(3);
  failing.set_payload("fail");
  FakeMessaging fake({{answered, no_reply_to, failing}});

  ResponderOptions options;
  options.subscriber = Options(v1::QUEUE_TYPE_UNSPECIFIED);
  options.subscriber.start.clear_queue_options();
  warren::Mutex mu;
  std::vector<uint64_t> dropped;
  options.on_dropped = [&](const v1::Delivery& request, const absl::Status&) {
    warren::MutexLock lock(&mu);
    dropped.push_back(request.delivery_id());
  };
  auto responder = Responder::Start(
      fake.channel(), options,
      [](const v1::Delivery& request) -> absl::StatusOr<Reply> {
        if (request.payload() == "fail") return absl::InternalError("no");
        return Reply{absl::StrCat("pong:", request.payload()),
                     {{"served-by", "test"}},
                     "text/plain"};
      });
  ASSERT_TRUE(responder.ok()) << responder.status();
  ASSERT_TRUE(fake.AwaitSettlements(3));
  (*responder)->Stop();

  EXPECT_EQ(fake.events(),
            (std::vector<std::string>{"publish", "ack 1", "ack 2", "nack 3"}));
  const auto published = fake.publishes();
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].exchange(), "");
  EXPECT_EQ(published[0].routing_key(), "amq.rabbitmq.reply-to.abc");
  EXPECT_EQ(published[0].correlation_id(), "corr-1");
  EXPECT_EQ(published[0].payload(), "pong:ping");
  EXPECT_EQ(published[0].content_type(), "text/plain");
  EXPECT_EQ(published[0].headers().at("served-by"), "test");
  warren::MutexLock lock(&mu);
  EXPECT_EQ(dropped, (std::vector<uint64_t>{2}));
}

}  // namespace
}  // namespace warren::client
