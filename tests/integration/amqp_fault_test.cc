// MessagingService across a RabbitMQ crash, on a private broker the test
// kills: kill -9 in the middle of a PublishStream run, then a restart. What
// must hold: every message whose response was OK is consumed afterwards
// (durable queue, persistent messages); every other one got a non-OK code;
// the server recovers by itself and health returns to SERVING.
#include <atomic>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using grpc::health::v1::HealthCheckResponse;

TEST(RabbitMqFaultTest, ConfirmedMessagesSurviveABrokerKill) {
  auto broker = RabbitMqServer::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto warrend =
      WarrendProcess::Start({"--amqp_urls=" + (*broker)->url(),
                             "--amqp_heartbeat=2s", "--operation_timeout=5s"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  {
    auto admin = AmqpAdmin::Connect((*broker)->url());
    ASSERT_TRUE(admin.ok());
    ASSERT_TRUE((*admin)->DeclareQueue("survivors").ok());
  }
  // RabbitMQ writes queue definitions to its metadata store with a delay; a
  // crash right after a declaration can lose the queue (and with it the
  // messages confirmed into it). A clean restart makes the definition
  // durable before the test starts, so the crash below tests messages only.
  ASSERT_TRUE((*broker)->Stop().ok());
  ASSERT_TRUE((*broker)->Restart().ok());
  ASSERT_TRUE(WaitFor(
      [&] { return HealthOf(**warrend) == HealthCheckResponse::SERVING; },
      absl::Seconds(90)));
  auto stub = v1::MessagingService::NewStub((*warrend)->channel());

  constexpr size_t kMessages = 20000;
  std::atomic<size_t> confirmed_so_far{0};
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    // Mid-run: once a good share is confirmed, the broker dies.
    WaitFor([&] { return confirmed_so_far.load() >= 2000; },
            absl::Seconds(120));
    (*broker)->Kill9();
    killed = true;
  });
  grpc::Status status;
  auto outcomes = PublishAll(
      *stub, kMessages,
      [&](size_t i) {
        v1::PublishRequest r;
        r.set_routing_key("survivors");
        r.set_message_id(absl::StrCat("s-", i));
        r.set_payload("persistent");
        return r;
      },
      &status,
      [&](const PublishOutcome& o) {
        if (o.code == 0) confirmed_so_far++;
      });
  killer.join();
  ASSERT_TRUE(killed.load());
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(outcomes.size(), kMessages) << "one response per request";
  std::set<std::string> confirmed;
  size_t failed = 0;
  for (const auto& o : outcomes) {
    if (o.code == 0) {
      confirmed.insert(o.message_id);
    } else {
      ++failed;
      EXPECT_TRUE(o.code == static_cast<int>(grpc::StatusCode::UNAVAILABLE) ||
                  o.code ==
                      static_cast<int>(grpc::StatusCode::DEADLINE_EXCEEDED))
          << o.code << " " << o.error;
    }
  }
  EXPECT_GE(confirmed.size(), 2000u);
  EXPECT_GT(failed, 0u) << "the kill came after every confirm";
  RecordProperty("confirmed_before_kill", static_cast<int>(confirmed.size()));

  // While it is down: NOT_SERVING, and publishes fail fast, never OK.
  EXPECT_TRUE(WaitFor(
      [&] { return HealthOf(**warrend) == HealthCheckResponse::NOT_SERVING; },
      absl::Seconds(30)));
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    v1::PublishRequest r;
    r.set_routing_key("survivors");
    v1::PublishResponse response;
    grpc::Status down = stub->Publish(&context, r, &response);
    EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE);
  }

  ASSERT_TRUE((*broker)->Restart().ok());
  EXPECT_TRUE(WaitFor(
      [&] { return HealthOf(**warrend) == HealthCheckResponse::SERVING; },
      absl::Seconds(90)))
      << (*warrend)->Log();

  {
    auto admin = AmqpAdmin::Connect((*broker)->url());
    ASSERT_TRUE(admin.ok());
    auto ready = (*admin)->ReadyCount("survivors");
    ASSERT_TRUE(ready.ok()) << ready.status();
    EXPECT_GE(*ready, confirmed.size()) << "the broker kept fewer messages";
  }
  v1::SubscribeStart start;
  start.set_queue("survivors");
  start.set_max_in_flight(1000);
  // Consume like a client does: a subscription that ends with UNAVAILABLE
  // (the broker was still settling) is opened again; what it did not ack
  // comes back, and the set of ids absorbs the repeats.
  auto sub = std::make_unique<TestSubscriber>(*stub, start);
  std::set<std::string> consumed;
  size_t acked = 0;
  int resubscribed = 0;
  const bool all = WaitFor(
      [&] {
        auto ds = sub->deliveries();
        std::vector<uint64_t> ids;
        for (size_t i = acked; i < ds.size(); ++i) {
          consumed.insert(ds[i].message_id());
          ids.push_back(ds[i].delivery_id());
        }
        if (!ids.empty()) sub->Ack(ids);
        acked = ds.size();
        grpc::Status ended;
        if (sub->WaitEnded(&ended, absl::ZeroDuration())) {
          EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE)
              << ended.error_message();
          sub = std::make_unique<TestSubscriber>(*stub, start);
          acked = 0;
          ++resubscribed;
        }
        return std::includes(consumed.begin(), consumed.end(),
                             confirmed.begin(), confirmed.end());
      },
      absl::Seconds(120));
  RecordProperty("resubscribed", resubscribed);
  size_t missing = 0;
  for (const auto& id : confirmed) missing += consumed.count(id) == 0;
  EXPECT_TRUE(all) << missing << " confirmed messages were lost";
  EXPECT_EQ(missing, 0u);

  // And it publishes again.
  grpc::ClientContext context;
  v1::PublishRequest r;
  r.set_routing_key("survivors");
  v1::PublishResponse response;
  EXPECT_TRUE(stub->Publish(&context, r, &response).ok());
}

// A resource alarm makes the broker block publishers (connection.blocked):
// publishes answer RESOURCE_EXHAUSTED instead of piling up, the state is
// logged, and publishing works again once the broker unblocks.
TEST(RabbitMqFaultTest, BrokerFlowControlIsRespectedAndSurfaced) {
  auto broker = RabbitMqServer::Start();
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto warrend = WarrendProcess::Start({"--amqp_urls=" + (*broker)->url()});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto stub = v1::MessagingService::NewStub((*warrend)->channel());
  auto publish = [&] {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(3)));
    v1::PublishRequest r;
    r.set_routing_key("flow");
    v1::PublishResponse response;
    return stub->Publish(&context, r, &response);
  };
  ASSERT_TRUE(publish().ok());

  // Every byte of memory is over the limit: the broker raises an alarm.
  ASSERT_TRUE((*broker)->Ctl("set_vm_memory_high_watermark 0.000001").ok());
  // The alarm is raised by the broker's next memory check, and the block
  // reaches us with the next publish attempt.
  grpc::Status last;
  EXPECT_TRUE(WaitFor(
      [&] {
        last = publish();
        return last.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
      },
      absl::Seconds(60)))
      << last.error_message();
  EXPECT_EQ(publish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(last.error_message(), ::testing::HasSubstr("flow control"));
  EXPECT_THAT((*warrend)->Log(), ::testing::HasSubstr("blocked"));
  EXPECT_EQ(HealthOf(**warrend), HealthCheckResponse::SERVING)
      << "a blocked broker is reachable";

  ASSERT_TRUE((*broker)->Ctl("set_vm_memory_high_watermark 0.4").ok());
  EXPECT_TRUE(WaitFor([&] { return publish().ok(); }, absl::Seconds(60)));
}

// Subscriptions beyond one connection's channels live on a second AMQP
// connection. kill -9 of the broker must end those exactly like the
// primary's, with UNAVAILABLE (so that clients resubscribe), not leave them
// open and silent; after a restart, as many subscribe again.
TEST(RabbitMqFaultTest, SubscriptionsOnEveryConnectionEndWhenTheBrokerDies) {
  // A connection of this broker carries 29 subscriptions (channel_max 32,
  // less the connection's own channel and warrend's publish, scratch and
  // spare publish channels): a few streams fill three connections.
  auto broker = RabbitMqServer::Start(/*channel_max=*/32);
  ASSERT_TRUE(broker.ok()) << broker.status();
  auto warrend = WarrendProcess::Start(
      {"--amqp_urls=" + (*broker)->url(), "--amqp_heartbeat=2s"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto stub = v1::MessagingService::NewStub((*warrend)->channel());
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("fault-fanout");
  start.mutable_topic()->set_exchange_type(v1::EXCHANGE_TYPE_FANOUT);
  constexpr size_t kStreams = 70;
  auto all_answered = [](SubscriberSwarm& s) {
    return s.subscribed() + s.ended() == s.size();
  };
  {
    SubscriberSwarm swarm(*stub, start, kStreams);
    ASSERT_TRUE(swarm.WaitUntil(all_answered, absl::Seconds(60)));
    ASSERT_EQ(swarm.subscribed(), kStreams);
    ASSERT_THAT((*warrend)->Log(),
                ::testing::HasSubstr("opening connection 3 of"));

    (*broker)->Kill9();
    EXPECT_TRUE(swarm.WaitUntil(
        [](SubscriberSwarm& s) { return s.ended() == s.size(); },
        absl::Seconds(30)))
        << swarm.ended() << " of " << kStreams << " ended";
    const auto codes = swarm.end_codes();
    EXPECT_EQ(codes.size(), 1u);
    EXPECT_EQ(codes.count(grpc::StatusCode::UNAVAILABLE) == 0
                  ? 0
                  : codes.at(grpc::StatusCode::UNAVAILABLE),
              kStreams);
  }
  ASSERT_TRUE((*broker)->Restart().ok());
  ASSERT_TRUE(WaitFor(
      [&] { return HealthOf(**warrend) == HealthCheckResponse::SERVING; },
      absl::Seconds(90)));
  // Clients resubscribe; the secondary reconnected by itself (a
  // subscription sent to it while it still reconnects ends UNAVAILABLE and
  // is opened again, as a client would).
  size_t subscribed = 0;
  const bool all = WaitFor(
      [&] {
        SubscriberSwarm swarm(*stub, start, kStreams);
        if (!swarm.WaitUntil(all_answered, absl::Seconds(60))) return false;
        subscribed = swarm.subscribed();
        return subscribed == kStreams;
      },
      absl::Seconds(120));
  EXPECT_TRUE(all) << subscribed << " of " << kStreams << " subscribed";
}

}  // namespace
}  // namespace warren::testing
