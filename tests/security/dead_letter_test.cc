// Security issue 15, item 3: broker-side effects are authorized like direct
// ones. Alice may publish only to her exchange and, on the default exchange,
// to her own queues; Bob's subscription on his exchange must never receive
// a message of hers, whether she publishes it there directly, has the broker
// dead-letter it there, or writes into his queue through the default
// exchange. Every "nothing arrived" is checked after a control message,
// published after the attempt, did arrive.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "tests/security/security_support.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing::security {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;

// Unique per process and run: the broker keeps durable queues of earlier
// runs. No '.' in it, so that `alice-*` patterns match whole names.
const std::string& Suffix() {
  static const std::string* const suffix = new std::string(
      absl::StrCat(getpid(), "-", absl::ToUnixMicros(absl::Now())));
  return *suffix;
}
std::string Name(const std::string& base) {
  return absl::StrCat(base, "-", Suffix());
}

const Principal kAlice{"alice", "alice-token-0d9e8f7a6b5c4d3e2f1a"};
const Principal kBob{"bob", "bob-token-1a2b3c4d5e6f7a8b9c0d"};

// Alice: her exchange, her queues on the default exchange, and
// "amq.default" (to show that it is no alias); Bob likewise; both may use
// a shared exchange.
std::string PolicyText() {
  const std::string shared = Name("shared-ex");
  return absl::StrCat("principals:\n",  //
                      "  alice:\n",     //
                      "    publish: [", Name("alice-ex"),
                      ", \"(default)/alice-*\", amq.default]\n",       //
                      "    subscribe: [\"alice-*\", ", shared, "]\n",  //
                      "  bob:\n",                                      //
                      "    publish: [", Name("bob-ex"), ", ", shared,
                      ", \"(default)/bob-*\"]\n",  //
                      "    subscribe: [\"bob-*\", ", shared, "]\n");
}

struct Flags {
  static std::vector<std::string> Args() {
    files = new AuthFiles({kAlice, kBob}, PolicyText());
    return files->Flags();
  }
  static inline AuthFiles* files = nullptr;
};

class DeadLetterTest : public SharedWarrendTest<Flags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    alice_ = v1::MessagingService::NewStub(
        ChannelAs(warrend_->address(), kAlice.token));
    bob_ = v1::MessagingService::NewStub(
        ChannelAs(warrend_->address(), kBob.token));
    auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = *std::move(admin);
  }

  static grpc::Status Publish(v1::MessagingService::Stub& stub,
                              const std::string& exchange,
                              const std::string& routing_key,
                              const std::string& payload,
                              bool mandatory = false) {
    v1::PublishRequest request;
    request.set_exchange(exchange);
    request.set_routing_key(routing_key);
    request.set_payload(payload);
    request.set_mandatory(mandatory);
    v1::PublishResponse response;
    return stub.Publish(CallContext().get(), request, &response);
  }

  static v1::SubscribeStart TopicStart(const std::string& exchange) {
    v1::SubscribeStart start;
    start.mutable_topic()->set_exchange(exchange);
    start.mutable_topic()->add_binding_keys("#");
    return start;
  }

  static v1::SubscribeStart QueueStart(const std::string& queue,
                                       const std::string& dlx,
                                       const std::string& dl_key) {
    v1::SubscribeStart start;
    start.set_queue(queue);
    start.mutable_queue_options()->set_dead_letter_exchange(dlx);
    start.mutable_queue_options()->set_dead_letter_routing_key(dl_key);
    return start;
  }

  static std::vector<std::string> Payloads(TestSubscriber& subscriber) {
    std::vector<std::string> payloads;
    for (const auto& d : subscriber.deliveries()) {
      payloads.push_back(d.payload());
    }
    return payloads;
  }

  // Bob's exchange gets a control message from Bob; answers once his
  // subscriber has it, so that what was sent before it had its chance.
  void ExpectOnlyControlReaches(TestSubscriber& bob_sub,
                                const std::string& control) {
    ASSERT_TRUE(Publish(*bob_, Name("bob-ex"), "control", control).ok());
    ASSERT_TRUE(bob_sub.WaitDeliveries(1));
    EXPECT_THAT(Payloads(bob_sub), ::testing::ElementsAre(control));
  }

  std::unique_ptr<v1::MessagingService::Stub> alice_, bob_;
  std::unique_ptr<AmqpAdmin> admin_;
};

void ExpectDeniedNaming(const grpc::Status& status, const std::string& text,
                        const std::string& field) {
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr(text));
  EXPECT_THAT(status.error_message(), HasSubstr(field));
}

// The issue as reported: a dead-letter exchange of her queue that she may
// not publish to is refused at Subscribe, naming the field, and her queue
// is not declared; nothing she publishes and nacks reaches Bob.
TEST_F(DeadLetterTest, DeadLetterExchangeNeedsPublishOnIt) {
  TestSubscriber bob_sub(*bob_, TopicStart(Name("bob-ex")));
  ASSERT_FALSE(bob_sub.WaitSubscribed().empty());
  // Her direct publish is refused, as before.
  EXPECT_EQ(Publish(*alice_, Name("bob-ex"), "injected.by.alice", "direct")
                .error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  const std::string queue = Name("alice-q");
  TestSubscriber attack(*alice_,
                        QueueStart(queue, Name("bob-ex"), "injected.by.alice"));
  if (!attack.WaitSubscribed().empty()) {
    ADD_FAILURE() << "a dead-letter exchange she may not publish to was "
                     "accepted; carrying the attack through";
    ASSERT_TRUE(Publish(*alice_, "", queue, "injected").ok());
    ASSERT_TRUE(attack.WaitDeliveries(1));
    ASSERT_TRUE(attack.Nack({attack.deliveries()[0].delivery_id()}, false));
    ASSERT_TRUE(bob_sub.WaitDeliveries(1));
    EXPECT_THAT(Payloads(bob_sub),
                ::testing::Not(::testing::Contains(std::string("injected"))));
    return;
  }
  grpc::Status status;
  ASSERT_TRUE(attack.WaitEnded(&status));
  ExpectDeniedNaming(status,
                     absl::StrCat("principal 'alice' may not publish on '",
                                  Name("bob-ex"), "'"),
                     "start.queue_options.dead_letter_exchange");
  // Refused before the broker saw it: the queue does not exist, so a
  // mandatory publish to it is unroutable.
  EXPECT_EQ(
      Publish(*alice_, "", queue, "probe", /*mandatory=*/true).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);

  // Her queue without a dead-letter exchange is hers to use: what she
  // nacks without requeue is dropped, not sent anywhere.
  v1::SubscribeStart plain;
  plain.set_queue(queue);
  {
    TestSubscriber mine(*alice_, plain);
    ASSERT_FALSE(mine.WaitSubscribed().empty());
    ASSERT_TRUE(Publish(*alice_, "", queue, "alice-secret").ok());
    ASSERT_TRUE(mine.WaitDeliveries(1));
    ASSERT_TRUE(mine.Nack({mine.deliveries()[0].delivery_id()}, false));
    // The same stream, redeclaring with the options, is refused too.
    TestSubscriber again(
        *alice_, QueueStart(queue, Name("bob-ex"), "injected.by.alice"));
    ASSERT_TRUE(again.WaitEnded(&status));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    // A marker after the nack comes first on a fresh read: the nacked
    // message is gone from her queue.
    ASSERT_TRUE(Publish(*alice_, "", queue, "marker").ok());
    ASSERT_TRUE(mine.WaitDeliveries(2));
    EXPECT_EQ(mine.deliveries()[1].payload(), "marker");
    EXPECT_TRUE(mine.Ack({mine.deliveries()[1].delivery_id()}));
  }
  ExpectOnlyControlReaches(bob_sub, "control-1");
}

// Without a dead-letter routing key the broker keeps each message's own
// keys, which can be any: the grant must cover the whole exchange.
TEST_F(DeadLetterTest, DeadLetterWithOriginalKeysNeedsTheWholeExchange) {
  TestSubscriber attack(*alice_, QueueStart(Name("alice-q2"), Name("bob-ex"),
                                            /*dl_key=*/""));
  grpc::Status status;
  ASSERT_TRUE(attack.WaitEnded(&status));
  ExpectDeniedNaming(status, "original routing keys",
                     "start.queue_options.dead_letter_exchange");
}

// A dead-letter exchange she may publish to works as before: the grant
// is what decides, not the feature.
TEST_F(DeadLetterTest, DeadLetterExchangeSheMayPublishToWorks) {
  TestSubscriber dead(*alice_, TopicStart(Name("alice-ex")));
  ASSERT_FALSE(dead.WaitSubscribed().empty());
  const std::string queue = Name("alice-q3");
  TestSubscriber mine(*alice_, QueueStart(queue, Name("alice-ex"), "dead"));
  ASSERT_FALSE(mine.WaitSubscribed().empty());
  ASSERT_TRUE(Publish(*alice_, "", queue, "to-be-dead-lettered").ok());
  ASSERT_TRUE(mine.WaitDeliveries(1));
  ASSERT_TRUE(mine.Nack({mine.deliveries()[0].delivery_id()}, false));
  ASSERT_TRUE(dead.WaitDeliveries(1));
  EXPECT_EQ(dead.deliveries()[0].payload(), "to-be-dead-lettered");
  EXPECT_EQ(dead.deliveries()[0].routing_key(), "dead");
}

// The default exchange writes into the queue named by the routing key:
// `(default)/alice-*` lets her write into her queues, not into Bob's.
TEST_F(DeadLetterTest, DefaultExchangeGrantIsScopedByQueueName) {
  const std::string bob_queue = Name("bob-q");
  v1::SubscribeStart start;
  start.set_queue(bob_queue);
  TestSubscriber bob_sub(*bob_, start);
  ASSERT_FALSE(bob_sub.WaitSubscribed().empty());

  grpc::Status denied = Publish(*alice_, "", bob_queue, "injected");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(denied.error_message(),
            absl::StrCat("principal 'alice' may not publish on '(default)/",
                         bob_queue, "'"));
  grpc::Status stream_status;
  auto outcomes = PublishAll(
      *alice_, 1,
      [&](size_t) {
        v1::PublishRequest r;
        r.set_routing_key(bob_queue);
        r.set_payload("injected-by-stream");
        return r;
      },
      &stream_status);
  ASSERT_TRUE(stream_status.ok()) << stream_status.error_message();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].code, grpc::StatusCode::PERMISSION_DENIED);

  // Bob's own publish into his queue arrives, and alone.
  ASSERT_TRUE(Publish(*bob_, "", bob_queue, "control").ok());
  ASSERT_TRUE(bob_sub.WaitDeliveries(1));
  EXPECT_THAT(Payloads(bob_sub), ::testing::ElementsAre("control"));
  // Her own queues stay open to her.
  EXPECT_TRUE(Publish(*alice_, "", Name("alice-nowhere"), "p").ok());
}

// Reading Bob's exchange through a binding of her own queue needs a
// subscribe grant on the exchange, whatever queue she binds.
TEST_F(DeadLetterTest, BindingHerQueueToBobsExchangeNeedsSubscribeOnIt) {
  TestSubscriber bob_sub(*bob_, TopicStart(Name("bob-ex")));
  ASSERT_FALSE(bob_sub.WaitSubscribed().empty());
  const std::string queue = Name("alice-q6");
  v1::SubscribeStart mine;
  mine.set_queue(queue);
  TestSubscriber declared(*alice_, mine);
  ASSERT_FALSE(declared.WaitSubscribed().empty());

  v1::SubscribeStart bind = TopicStart(Name("bob-ex"));
  bind.set_group(queue);
  TestSubscriber attack(*alice_, bind);
  grpc::Status status;
  ASSERT_TRUE(attack.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            absl::StrCat("principal 'alice' may not subscribe on '",
                         Name("bob-ex"), "'"));
  // A confirmed publish has been routed to every bound queue: Bob's got it,
  // hers did not.
  ExpectOnlyControlReaches(bob_sub, "control-bind");
  EXPECT_EQ(declared.delivery_count(), 0u);
  auto ready = admin_->ReadyCount(queue);
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(*ready, 0u);
}

// With a grant on a shared exchange, declaring it with another type is
// refused by the broker and changes nothing for the others.
TEST_F(DeadLetterTest,
       RedeclaringASharedExchangeWithAnotherTypeChangesNothing) {
  const std::string shared = Name("shared-ex");
  TestSubscriber bob_sub(*bob_, TopicStart(shared));
  ASSERT_FALSE(bob_sub.WaitSubscribed().empty());
  v1::SubscribeStart fanout = TopicStart(shared);
  fanout.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_FANOUT);
  TestSubscriber attack(*alice_, fanout);
  grpc::Status status;
  ASSERT_TRUE(attack.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
  // Still a topic exchange routing to Bob's binding.
  ASSERT_TRUE(Publish(*bob_, shared, "still.topic", "after").ok());
  ASSERT_TRUE(bob_sub.WaitDeliveries(1));
  EXPECT_THAT(Payloads(bob_sub), ::testing::ElementsAre("after"));
}

// RabbitMQ routes copies to the queues named in CC/BCC headers, and closes
// the channel over a string-typed one (Warren's headers are strings): the
// confirm channel that every principal's publishes share. Both headers are
// refused before anything reaches the broker, and Bob's publishes go on.
TEST_F(DeadLetterTest, CcAndBccHeadersAreRefused) {
  const std::string bob_queue = Name("bob-q3");
  v1::SubscribeStart start;
  start.set_queue(bob_queue);
  TestSubscriber bob_sub(*bob_, start);
  ASSERT_FALSE(bob_sub.WaitSubscribed().empty());
  for (const char* header : {"CC", "BCC"}) {
    v1::PublishRequest request;
    request.set_routing_key(Name("alice-q7"));
    request.set_payload(absl::StrCat("via-", header));
    (*request.mutable_headers())[header] = bob_queue;
    v1::PublishResponse response;
    grpc::Status status =
        alice_->Publish(CallContext().get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                HasSubstr(absl::StrCat("headers key '", header, "'")));
  }
  ASSERT_TRUE(Publish(*bob_, "", bob_queue, "control").ok());
  ASSERT_TRUE(bob_sub.WaitDeliveries(1));
  EXPECT_THAT(Payloads(bob_sub), ::testing::ElementsAre("control"));
}

// "amq.default" is not the default exchange for RabbitMQ (no exchange of
// that name exists): a grant on it neither writes into queues nor lets a
// queue dead-letter into them. If a broker ever made it an alias, this
// fails and the name must be authorized as the default exchange.
TEST_F(DeadLetterTest, AmqDefaultIsNotAnAliasOfTheDefaultExchange) {
  const std::string bob_queue = Name("bob-q2");
  v1::SubscribeStart start;
  start.set_queue(bob_queue);
  TestSubscriber bob_sub(*bob_, start);
  ASSERT_FALSE(bob_sub.WaitSubscribed().empty());

  EXPECT_EQ(Publish(*alice_, "amq.default", bob_queue, "direct").error_code(),
            grpc::StatusCode::NOT_FOUND);
  const std::string queue = Name("alice-q4");
  {
    TestSubscriber mine(*alice_, QueueStart(queue, "amq.default", bob_queue));
    ASSERT_FALSE(mine.WaitSubscribed().empty());
    ASSERT_TRUE(Publish(*alice_, "", queue, "dead-lettered").ok());
    ASSERT_TRUE(mine.WaitDeliveries(1));
    ASSERT_TRUE(mine.Nack({mine.deliveries()[0].delivery_id()}, false));
    ASSERT_TRUE(Publish(*alice_, "", queue, "marker").ok());
    ASSERT_TRUE(mine.WaitDeliveries(2));
    EXPECT_EQ(mine.deliveries()[1].payload(), "marker");
  }
  ASSERT_TRUE(Publish(*bob_, "", bob_queue, "control").ok());
  ASSERT_TRUE(bob_sub.WaitDeliveries(1));
  EXPECT_THAT(Payloads(bob_sub), ::testing::ElementsAre("control"));
}

// Policies spell the default exchange "(default)": a real exchange of that
// name would be granted by the default exchange's grants, so the name is
// refused wherever a request names an exchange.
TEST_F(DeadLetterTest, TheDefaultExchangesSpellingIsNotAnExchangeName) {
  // Unary Publish authorizes before it validates today, so Alice (who has
  // no grant on such a name) may get either refusal; neither publishes.
  grpc::Status publish = Publish(*alice_, "(default)", "alice-q", "p");
  EXPECT_THAT(publish.error_code(),
              ::testing::AnyOf(grpc::StatusCode::INVALID_ARGUMENT,
                               grpc::StatusCode::PERMISSION_DENIED));
  grpc::Status stream_status;
  auto outcomes = PublishAll(
      *alice_, 1,
      [](size_t) {
        v1::PublishRequest r;
        r.set_exchange("(default)");
        r.set_routing_key("alice-q");
        return r;
      },
      &stream_status);
  ASSERT_TRUE(stream_status.ok()) << stream_status.error_message();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(outcomes[0].error, HasSubstr("exchange '(default)'"));
  grpc::Status status;
  TestSubscriber topic(*alice_, TopicStart("(default)"));
  ASSERT_TRUE(topic.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("start.topic.exchange"));
  TestSubscriber dlx(*alice_,
                     QueueStart(Name("alice-q5"), "(default)/bob-q", "x"));
  ASSERT_TRUE(dlx.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("start.queue_options.dead_letter_exchange"));
}

}  // namespace
}  // namespace warren::testing::security
