// Retries (Nack.retry_after) and delayed publishes (PublishRequest.delay)
// end to end: the real warrend and the real RabbitMQ, whose delay queues
// hold the messages (server/messaging/delay_queues.h).
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/integration/lock_clients.h"
#include "tests/integration/messaging_clients.h"
#include "warren/v1/lock.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using google::protobuf::util::TimeUtil;
using ::testing::HasSubstr;

// Unique per process and run: the broker keeps queues from earlier runs.
std::string Name(const std::string& base) {
  static const std::string* const suffix = new std::string(
      absl::StrCat(getpid(), "-", absl::ToUnixMicros(absl::Now())));
  return absl::StrCat(base, "-", *suffix);
}

google::protobuf::Duration Millis(int64_t ms) {
  return TimeUtil::MillisecondsToDuration(ms);
}

struct DelayFlags {
  static std::vector<std::string> Args() { return {}; }
};

class DelaysTest : public MessagingTestBase<DelayFlags> {
 protected:
  grpc::Status Publish(const v1::PublishRequest& request) {
    v1::PublishResponse ignored;
    return stub_->Publish(CallContext().get(), request, &ignored);
  }

  // A shared group queue bound to a topic exchange.
  static v1::SubscribeStart GroupStart(const std::string& exchange,
                                       const std::string& group,
                                       const std::string& key,
                                       uint32_t max_in_flight = 10) {
    v1::SubscribeStart start;
    start.mutable_topic()->set_exchange(exchange);
    start.mutable_topic()->add_binding_keys(key);
    start.set_group(group);
    start.set_max_in_flight(max_in_flight);
    return start;
  }

  static v1::SubscribeRequest RetryNack(uint64_t id, int64_t after_ms) {
    v1::SubscribeRequest nack;
    nack.mutable_nack()->add_delivery_ids(id);
    *nack.mutable_nack()->mutable_retry_after() = Millis(after_ms);
    return nack;
  }
};

TEST_F(DelaysTest, RetryAfterComesBackLaterWhileOthersFlow) {
  const std::string exchange = Name("retry-x");
  const std::string group = Name("retry-q");
  TestSubscriber sub(*stub_, GroupStart(exchange, group, "jobs.#"));
  ASSERT_EQ(sub.WaitSubscribed(), group);

  v1::PublishRequest poison;
  poison.set_exchange(exchange);
  poison.set_routing_key("jobs.poison");
  poison.set_payload("poison");
  (*poison.mutable_headers())["tenant"] = "acme";
  ASSERT_TRUE(Publish(poison).ok());
  ASSERT_TRUE(sub.WaitDeliveries(1));
  const v1::Delivery first = sub.deliveries()[0];
  EXPECT_EQ(first.delivery_count(), 0u);

  int64_t retries = 0;
  for (size_t round = 0; round < 2; ++round) {
    const uint64_t id = sub.deliveries().back().delivery_id();
    const size_t before = sub.delivery_count();
    const absl::Time nacked = absl::Now();
    ASSERT_TRUE(sub.Send(RetryNack(id, 500)));
    ++retries;
    // Other messages flow while the poison one waits.
    v1::PublishRequest other = poison;
    other.set_payload(absl::StrCat("other-", round));
    other.clear_headers();
    ASSERT_TRUE(Publish(other).ok());
    ASSERT_TRUE(sub.WaitDeliveries(before + 1));
    EXPECT_EQ(sub.deliveries()[before].payload(), other.payload());
    EXPECT_LT(sub.arrivals()[before] - nacked, absl::Milliseconds(400));
    ASSERT_TRUE(sub.Ack({sub.deliveries()[before].delivery_id()}));

    ASSERT_TRUE(sub.WaitDeliveries(before + 2));
    const v1::Delivery back = sub.deliveries()[before + 1];
    const absl::Duration waited = sub.arrivals()[before + 1] - nacked;
    EXPECT_GE(waited, absl::Milliseconds(500));
    EXPECT_LE(waited, absl::Seconds(1));
    EXPECT_EQ(back.payload(), "poison");
    EXPECT_EQ(back.message_id(), first.message_id());
    EXPECT_EQ(back.delivery_count(), retries);
    // Shown as published, not as it came back from the retry queue.
    EXPECT_EQ(back.exchange(), exchange);
    EXPECT_EQ(back.routing_key(), "jobs.poison");
    EXPECT_EQ(back.headers().at("tenant"), "acme");
    EXPECT_EQ(back.headers().count("warren-retries"), 0u);
    EXPECT_EQ(back.headers().count("warren-retry-exchange"), 0u);
    EXPECT_EQ(back.headers().count("warren-retry-routing-key"), 0u);
  }
  ASSERT_TRUE(sub.Ack({sub.deliveries().back().delivery_id()}));
  // The retry queue is the broker's, under its documented name, and empty.
  auto waiting = admin_->ReadyCount(absl::StrCat("warren.retry.500ms.", group));
  ASSERT_TRUE(waiting.ok()) << waiting.status();
  EXPECT_EQ(*waiting, 0u);
}

TEST_F(DelaysTest, QuorumDeliveryLimitDeadLettersAfterThreeDeliveries) {
  const std::string exchange = Name("limit-x");
  const std::string group = Name("limit-q");
  const std::string dlx = Name("limit-dlx");
  const std::string dlq = Name("limit-dlq");
  ASSERT_TRUE(admin_->DeclareExchange(dlx, "fanout").ok());
  ASSERT_TRUE(admin_->DeclareQueue(dlq).ok());
  ASSERT_TRUE(admin_->Bind(dlq, dlx, "").ok());
  TestSubscriber dead(*stub_, [&] {
    v1::SubscribeStart start;
    start.set_queue(dlq);
    return start;
  }());
  ASSERT_EQ(dead.WaitSubscribed(), dlq);

  v1::SubscribeStart start = GroupStart(exchange, group, "#");
  start.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
  start.mutable_queue_options()->set_dead_letter_exchange(dlx);
  start.mutable_queue_options()->set_delivery_limit(3);
  TestSubscriber sub(*stub_, start);
  ASSERT_EQ(sub.WaitSubscribed(), group);
  v1::PublishRequest poison;
  poison.set_exchange(exchange);
  poison.set_routing_key("poison");
  poison.set_payload("poison");
  ASSERT_TRUE(Publish(poison).ok());

  for (size_t n = 1; n <= 3; ++n) {
    ASSERT_TRUE(sub.WaitDeliveries(n)) << n;
    const v1::Delivery d = sub.deliveries()[n - 1];
    EXPECT_EQ(d.delivery_count(), n - 1);
    ASSERT_TRUE(sub.Send(RetryNack(d.delivery_id(), 100)));
  }
  ASSERT_TRUE(dead.WaitDeliveries(1));
  EXPECT_EQ(dead.deliveries()[0].payload(), "poison");
  EXPECT_EQ(sub.delivery_count(), 3u);
}

TEST_F(DelaysTest, DelayedPublishesArriveInDelayOrderAfterTheirDelays) {
  const std::string exchange = Name("delay-x");
  const std::string group = Name("delay-q");
  TestSubscriber sub(*stub_, GroupStart(exchange, group, "d.#"));
  ASSERT_EQ(sub.WaitSubscribed(), group);
  const std::vector<int64_t> delays = {900, 300, 600};
  auto request = [&](int64_t ms, const std::string& key) {
    v1::PublishRequest r;
    r.set_exchange(exchange);
    r.set_routing_key(key);
    r.set_payload(absl::StrCat(ms));
    (*r.mutable_headers())["delay"] = absl::StrCat(ms);
    *r.mutable_delay() = Millis(ms);
    return r;
  };
  // The first publish of a delay declares its queue: done beforehand (into
  // a key nobody binds), so that the three below go out back to back.
  for (int64_t ms : delays) {
    ASSERT_TRUE(Publish(request(ms, "warm-up")).ok());
  }

  std::vector<absl::Time> sent, confirmed;
  for (int64_t ms : delays) {
    sent.push_back(absl::Now());
    ASSERT_TRUE(Publish(request(ms, absl::StrCat("d.", ms))).ok());
    confirmed.push_back(absl::Now());
  }
  ASSERT_TRUE(sub.WaitDeliveries(3));
  const auto ds = sub.deliveries();
  const auto arrived = sub.arrivals();
  // Out of order as published, in the order they were due.
  const std::vector<std::string> order = {"300", "600", "900"};
  ASSERT_LT(sent[2] + absl::Milliseconds(600),
            sent[0] + absl::Milliseconds(900))
      << "the publishes were too slow to tell the order apart";
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(ds[i].payload(), order[i]);
    EXPECT_EQ(ds[i].routing_key(), absl::StrCat("d.", order[i]));
    EXPECT_EQ(ds[i].exchange(), exchange);
    EXPECT_EQ(ds[i].headers().at("delay"), order[i]);
  }
  for (size_t i = 0; i < 3; ++i) {
    const size_t got =
        std::find_if(ds.begin(), ds.end(),
                     [&](const v1::Delivery& d) {
                       return d.payload() == absl::StrCat(delays[i]);
                     }) -
        ds.begin();
    ASSERT_LT(got, ds.size());
    // Confirmed while it waited in the delay queue; never early.
    EXPECT_LT(confirmed[i], arrived[got]);
    EXPECT_GE(arrived[got] - sent[i], absl::Milliseconds(delays[i]));
    EXPECT_LE(arrived[got] - sent[i],
              absl::Milliseconds(delays[i] * 11 / 10 + 500));
  }
  EXPECT_TRUE(
      sub.Ack({ds[0].delivery_id(), ds[1].delivery_id(), ds[2].delivery_id()}));
}

TEST_F(DelaysTest, DelayedPublishRoutesByItsKeyWhenItsDelayEnds) {
  const std::string exchange = Name("late-x");
  ASSERT_TRUE(admin_->DeclareExchange(exchange, "topic").ok());
  v1::PublishRequest r;
  r.set_exchange(exchange);
  r.set_routing_key("late.1");
  r.set_payload("late");
  *r.mutable_delay() = Millis(1500);
  ASSERT_TRUE(Publish(r).ok());
  // Bound only after the publish: the message is routed when it leaves the
  // delay queue.
  const std::string group = Name("late-q");
  TestSubscriber sub(*stub_, GroupStart(exchange, group, "late.#"));
  ASSERT_EQ(sub.WaitSubscribed(), group);
  ASSERT_TRUE(sub.WaitDeliveries(1));
  EXPECT_EQ(sub.deliveries()[0].payload(), "late");
  EXPECT_EQ(sub.deliveries()[0].routing_key(), "late.1");
}

TEST_F(DelaysTest, PublishStreamAndTheDefaultExchangeDelayToo) {
  const std::string queue = Name("delay-default");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  grpc::Status status;
  const absl::Time start = absl::Now();
  auto outcomes = PublishAll(
      *stub_, 2,
      [&](size_t i) {
        v1::PublishRequest r;
        r.set_routing_key(queue);
        r.set_payload(absl::StrCat(i));
        *r.mutable_delay() = Millis(i == 0 ? 400 : 200);
        return r;
      },
      &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(outcomes.size(), 2u);
  for (const auto& o : outcomes) EXPECT_EQ(o.code, 0) << o.error;
  v1::SubscribeStart s;
  s.set_queue(queue);
  TestSubscriber sub(*stub_, s);
  ASSERT_TRUE(sub.WaitDeliveries(2));
  EXPECT_GE(sub.arrivals()[0] - start, absl::Milliseconds(200));
  EXPECT_EQ(sub.deliveries()[0].payload(), "1");
  EXPECT_EQ(sub.deliveries()[1].payload(), "0");
  EXPECT_EQ(sub.deliveries()[1].routing_key(), queue);
  EXPECT_EQ(sub.deliveries()[1].exchange(), "");
}

TEST_F(DelaysTest, AFencedDelayedPublishIsCheckedWhenPublished) {
  auto locks = v1::LockService::NewStub(warrend_->channel());
  const std::string lock = Name("delay/fence");
  TestLocker holder(*locks, MakeAcquire(lock, "holder"));
  const int at = holder.WaitAcquired();
  ASSERT_GE(at, 0);
  const uint64_t token =
      holder.events()[at].response.acquired().holder().fencing_token();
  const std::string queue = Name("delay-fenced");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());

  v1::PublishRequest r;
  r.set_routing_key(queue);
  r.set_payload("fenced");
  *r.mutable_delay() = Millis(300);
  r.mutable_fence()->set_lock(lock);
  r.mutable_fence()->set_fencing_token(token + 1);
  const grpc::Status stale = Publish(r);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  r.mutable_fence()->set_fencing_token(token);
  ASSERT_TRUE(Publish(r).ok());
  // Confirmed while it waits in the delay queue, not in its target yet.
  auto ready = admin_->ReadyCount(queue);
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(*ready, 0u);

  v1::SubscribeStart start;
  start.set_queue(queue);
  TestSubscriber sub(*stub_, start);
  ASSERT_TRUE(sub.WaitDeliveries(1));
  EXPECT_EQ(sub.deliveries()[0].payload(), "fenced");
  EXPECT_EQ(sub.deliveries()[0].headers().at("warren-fencing-token"),
            absl::StrCat(token));
  // Only the publish that held went out.
  EXPECT_FALSE(sub.WaitDeliveries(2, absl::Milliseconds(600)));
}

TEST_F(DelaysTest, BadDelaysAreRefusedNamingTheField) {
  auto refused = [&](v1::PublishRequest r, const std::string& what) {
    r.set_routing_key(Name("never"));
    const grpc::Status s = Publish(r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_THAT(s.error_message(), HasSubstr(what));
  };
  v1::PublishRequest r;
  *r.mutable_delay() = Millis(-1);
  refused(r, "delay must not be negative");
  *r.mutable_delay() = TimeUtil::SecondsToDuration(24 * 3600 + 1);
  refused(r, "delay is 24h1s; this server allows at most 24h");
  *r.mutable_delay() = Millis(100);
  *r.mutable_ttl() = Millis(100);
  refused(r, "delay cannot be combined with ttl");
  r.clear_ttl();
  r.set_mandatory(true);
  refused(r, "delay cannot be combined with mandatory");
  r.set_mandatory(false);
  (*r.mutable_headers())["warren-retries"] = "3";
  refused(r, "headers key 'warren-retries' is reserved");

  // A target exchange that does not exist would drop the message unseen
  // when its delay ends: refused now, as a plain publish is.
  v1::PublishRequest missing;
  missing.set_exchange(Name("no-such-exchange"));
  *missing.mutable_delay() = Millis(100);
  const grpc::Status not_found = Publish(missing);
  EXPECT_EQ(not_found.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(not_found.error_message(), HasSubstr("does not exist"));

  grpc::Status status;
  auto outcomes = PublishAll(
      *stub_, 1,
      [&](size_t) {
        v1::PublishRequest bad;
        *bad.mutable_delay() = Millis(-5);
        return bad;
      },
      &status);
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(outcomes[0].error, HasSubstr("message.delay"));
}

TEST_F(DelaysTest, BadRetriesEndTheStreamNamingTheField) {
  const std::string queue = Name("bad-retry");
  ASSERT_TRUE(admin_->DeclareQueue(queue).ok());
  v1::PublishRequest r;
  r.set_routing_key(queue);
  ASSERT_TRUE(Publish(r).ok());
  for (int64_t ms : {int64_t{-1}, int64_t{3600 * 1000 + 1}}) {
    v1::SubscribeStart s;
    s.set_queue(queue);
    TestSubscriber sub(*stub_, s);
    ASSERT_TRUE(sub.WaitDeliveries(1));
    ASSERT_TRUE(sub.Send(RetryNack(sub.deliveries()[0].delivery_id(), ms)));
    grpc::Status ended;
    ASSERT_TRUE(sub.WaitEnded(&ended));
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(ended.error_message(), HasSubstr("nack.retry_after"));
  }
  // Nothing was lost: the message went back to its queue.
  v1::SubscribeStart s;
  s.set_queue(queue);
  TestSubscriber sub(*stub_, s);
  ASSERT_TRUE(sub.WaitDeliveries(1));
  EXPECT_TRUE(sub.deliveries()[0].redelivered());
}

TEST_F(DelaysTest, RetryAfterOnAStreamQueueIsRefused) {
  const std::string queue = Name("stream-retry");
  v1::SubscribeStart s;
  s.set_queue(queue);
  s.mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_STREAM);
  *s.mutable_offset() = v1::StreamOffset();
  s.mutable_offset()->set_first(true);
  TestSubscriber sub(*stub_, s);
  ASSERT_EQ(sub.WaitSubscribed(), queue);
  v1::PublishRequest r;
  r.set_routing_key(queue);
  ASSERT_TRUE(Publish(r).ok());
  ASSERT_TRUE(sub.WaitDeliveries(1));
  ASSERT_TRUE(sub.Send(RetryNack(sub.deliveries()[0].delivery_id(), 100)));
  grpc::Status ended;
  ASSERT_TRUE(sub.WaitEnded(&ended));
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(ended.error_message(), HasSubstr("nack.retry_after"));
}

}  // namespace
}  // namespace warren::testing
