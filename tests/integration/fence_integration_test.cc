// Fenced publishes end to end: the real warrend, ZooKeeper and RabbitMQ.
// A fence is a leader's (or lock holder's) token; the publish goes out only
// while it holds, stamped with the fence's headers, and a deposed leader's
// late publish is refused with nothing published.
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "tests/integration/lock_clients.h"
#include "tests/integration/messaging_clients.h"
#include "tests/util/http_get.h"
#include "warren/v1/election.grpc.pb.h"
#include "warren/v1/lock.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Unique per process and run: queues and elections outlive a run.
std::string Name(const std::string& base) {
  static const std::string* const suffix = new std::string(
      absl::StrCat(getpid(), "-", absl::ToUnixMicros(absl::Now())));
  return absl::StrCat(base, "-", *suffix);
}

v1::Fence ElectionFence(const std::string& election, uint64_t token) {
  v1::Fence fence;
  fence.set_election(election);
  fence.set_fencing_token(token);
  return fence;
}

struct FenceFlags {
  static std::vector<std::string> Args() {
    metrics_port = FreePort();
    return {absl::StrCat("--metrics_listen=127.0.0.1:", metrics_port)};
  }
  static inline int metrics_port = 0;
};

// The publish refusals warren_fence_rejections_total counts so far; -1 when
// the scrape failed.
int64_t PublishRejections() {
  const std::string response = HttpGet(FenceFlags::metrics_port, "/metrics");
  const std::string kSeries =
      "\nwarren_fence_rejections_total{where=\"publish\"} ";
  const size_t at = response.find(kSeries);
  if (at == std::string::npos) return -1;
  int64_t count = -1;
  const size_t from = at + kSeries.size();
  if (!absl::SimpleAtoi(response.substr(from, response.find('\n', from) - from),
                        &count)) {
    return -1;
  }
  return count;
}

class FencedPublishTest : public SharedWarrendTest<FenceFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    messaging_ = v1::MessagingService::NewStub(warrend_->channel());
    elections_ = v1::ElectionService::NewStub(warrend_->channel());
    locks_ = v1::LockService::NewStub(warrend_->channel());
    auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
    ASSERT_TRUE(admin.ok()) << admin.status();
    admin_ = *std::move(admin);
    queue_ =
        Name(::testing::UnitTest::GetInstance()->current_test_info()->name());
    ASSERT_TRUE(admin_->DeclareQueue(queue_).ok());
  }
  void TearDown() override {
    if (admin_ != nullptr) (void)admin_->DeleteQueue(queue_);
  }

  v1::PublishRequest Message(const std::string& payload) {
    v1::PublishRequest request;
    request.set_routing_key(queue_);
    request.set_payload(payload);
    return request;
  }
  v1::PublishRequest Fenced(const std::string& payload, v1::Fence fence) {
    v1::PublishRequest request = Message(payload);
    *request.mutable_fence() = std::move(fence);
    return request;
  }
  grpc::Status Publish(const v1::PublishRequest& request) {
    v1::PublishResponse response;
    return messaging_->Publish(CallContext().get(), request, &response);
  }
  // A candidate that leads `election`, and its token.
  std::pair<std::unique_ptr<TestCandidate>, uint64_t> Lead(
      const std::string& election, const std::string& id) {
    auto candidate = std::make_unique<TestCandidate>(
        *elections_, MakeCampaign(election, id));
    const int at = candidate->WaitElected();
    EXPECT_GE(at, 0) << id << " was not elected";
    const uint64_t token = at < 0 ? 0
                                  : candidate->events()[at]
                                        .response.elected()
                                        .leader()
                                        .fencing_token();
    return {std::move(candidate), token};
  }
  // The payloads the queue holds now, in order (consumed).
  std::vector<v1::Delivery> Drain(size_t expected) {
    v1::SubscribeStart start;
    start.set_queue(queue_);
    TestSubscriber subscriber(*messaging_, start);
    EXPECT_EQ(subscriber.WaitSubscribed(), queue_);
    EXPECT_TRUE(subscriber.WaitDeliveries(expected));
    std::vector<v1::Delivery> deliveries = subscriber.deliveries();
    std::vector<uint64_t> ids;
    for (const auto& d : deliveries) ids.push_back(d.delivery_id());
    EXPECT_TRUE(subscriber.Ack(ids));
    return deliveries;
  }

  std::unique_ptr<v1::MessagingService::Stub> messaging_;
  std::unique_ptr<v1::ElectionService::Stub> elections_;
  std::unique_ptr<v1::LockService::Stub> locks_;
  std::unique_ptr<AmqpAdmin> admin_;
  std::string queue_;
};

TEST_F(FencedPublishTest,
       ALeadersPublishCarriesTheFenceAndADeposedOnesIsRefused) {
  const std::string election = Name("fence/dispatcher");
  auto [leader, token] = Lead(election, "first");
  ASSERT_NE(token, 0u);
  auto follower = std::make_unique<TestCandidate>(
      *elections_, MakeCampaign(election, "second"));

  ASSERT_TRUE(
      Publish(Fenced("while leading", ElectionFence(election, token))).ok());

  ASSERT_TRUE(leader->Resign());
  grpc::Status ended;
  ASSERT_TRUE(leader->WaitEnded(&ended));
  const int at = follower->WaitElected();
  ASSERT_GE(at, 0);
  const uint64_t next_token =
      follower->events()[at].response.elected().leader().fencing_token();

  const grpc::Status late =
      Publish(Fenced("after resigning", ElectionFence(election, token)));
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(late.error_message(),
            absl::StrCat("fence: election:", election, " token ", token,
                         " no longer holds (the leader's token is ", next_token,
                         ")"));
  ASSERT_TRUE(
      Publish(Fenced("new leader", ElectionFence(election, next_token))).ok());
  // An unfenced message last: once it arrives, anything published before
  // it has arrived too.
  ASSERT_TRUE(Publish(Message("marker")).ok());

  const std::vector<v1::Delivery> got = Drain(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].payload(), "while leading");
  EXPECT_EQ(got[0].headers().at("warren-fence"),
            absl::StrCat("election:", election));
  EXPECT_EQ(got[0].headers().at("warren-fencing-token"), absl::StrCat(token));
  EXPECT_EQ(got[1].payload(), "new leader");
  EXPECT_EQ(got[1].headers().at("warren-fencing-token"),
            absl::StrCat(next_token));
  EXPECT_EQ(got[2].payload(), "marker");
  EXPECT_EQ(got[2].headers().count("warren-fence"), 0u);
}

TEST_F(FencedPublishTest, ALockHoldersPublishHoldsUntilItReleases) {
  const std::string lock = Name("fence/printer");
  auto fence = [&](uint64_t token) {
    v1::Fence f;
    f.set_lock(lock);
    f.set_fencing_token(token);
    return f;
  };
  auto token_of = [](TestLocker& locker) -> uint64_t {
    const int at = locker.WaitAcquired();
    if (at < 0) return 0;
    return locker.events()[at].response.acquired().holder().fencing_token();
  };
  TestLocker first(*locks_, MakeAcquire(lock, "first"));
  const uint64_t first_token = token_of(first);
  ASSERT_NE(first_token, 0u);
  TestLocker second(*locks_, MakeAcquire(lock, "second"));
  ASSERT_GE(
      second.WaitFor([](const v1::LockResponse& r) { return r.has_queued(); }),
      0);

  ASSERT_TRUE(Publish(Fenced("first holds", fence(first_token))).ok());
  first.Release();
  grpc::Status ended;
  ASSERT_TRUE(first.WaitEnded(&ended));
  EXPECT_TRUE(ended.ok()) << ended.error_message();
  const uint64_t second_token = token_of(second);
  ASSERT_NE(second_token, 0u);

  const grpc::Status late = Publish(Fenced("first again", fence(first_token)));
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(late.error_message(),
            absl::StrCat("fence: lock:", lock, " token ", first_token,
                         " no longer holds (the holder's token is ",
                         second_token, ")"));
  ASSERT_TRUE(Publish(Fenced("second holds", fence(second_token))).ok());

  const std::vector<v1::Delivery> got = Drain(2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload(), "first holds");
  EXPECT_EQ(got[0].headers().at("warren-fence"), absl::StrCat("lock:", lock));
  EXPECT_EQ(got[1].payload(), "second holds");
  EXPECT_EQ(got[1].headers().at("warren-fencing-token"),
            absl::StrCat(second_token));
}

TEST_F(FencedPublishTest, EverySemaphoreHolderHoldsItsFence) {
  const std::string lock = Name("fence/pool");
  std::vector<std::unique_ptr<TestLocker>> holders;
  for (const char* id : {"a", "b"}) {
    holders.push_back(
        std::make_unique<TestLocker>(*locks_, MakeAcquire(lock, id, 2)));
  }
  for (auto& holder : holders) {
    const int at = holder->WaitAcquired();
    ASSERT_GE(at, 0);
    v1::Fence fence;
    fence.set_lock(lock);
    fence.set_fencing_token(
        holder->events()[at].response.acquired().holder().fencing_token());
    EXPECT_TRUE(Publish(Fenced("holder", fence)).ok());
  }
  EXPECT_EQ(Drain(2).size(), 2u);
}

TEST_F(FencedPublishTest, APublishStreamRefusesAStaleFenceAndKeepsTheOrder) {
  const std::string election = Name("fence/stream");
  auto [leader, token] = Lead(election, "only");
  ASSERT_NE(token, 0u);
  grpc::Status status;
  // 0: fenced and holding, 1: a token that is not the leader's, 2:
  // unfenced, 3: fenced again. 2 must not overtake 1's check, nor 3 2.
  const std::vector<PublishOutcome> outcomes = PublishAll(
      *messaging_, 4,
      [&](size_t i) {
        v1::PublishRequest request = Message(absl::StrCat("m", i));
        if (i != 2) {
          *request.mutable_fence() =
              ElectionFence(election, i == 1 ? token + 1 : token);
        }
        return request;
      },
      &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(outcomes.size(), 4u);
  std::map<uint64_t, PublishOutcome> by_sequence;
  for (const auto& o : outcomes) by_sequence[o.sequence] = o;
  ASSERT_EQ(by_sequence.size(), 4u);
  std::vector<int32_t> codes;
  for (const auto& [sequence, o] : by_sequence) codes.push_back(o.code);
  EXPECT_THAT(codes, ::testing::ElementsAre(
                         0, grpc::StatusCode::FAILED_PRECONDITION, 0, 0));
  EXPECT_THAT(std::next(by_sequence.begin())->second.error,
              StartsWith(absl::StrCat("fence: election:", election)));

  const std::vector<v1::Delivery> got = Drain(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].payload(), "m0");
  EXPECT_EQ(got[1].payload(), "m2");
  EXPECT_EQ(got[2].payload(), "m3");
  EXPECT_EQ(got[2].headers().at("warren-fencing-token"), absl::StrCat(token));
}

TEST_F(FencedPublishTest, ClientsCannotForgeTheFenceHeaders) {
  for (const char* header :
       {"warren-fence", "warren-fencing-token", "Warren-Fencing-Token"}) {
    v1::PublishRequest request = Message("forged");
    (*request.mutable_headers())[header] = "election:jobs";
    const grpc::Status refused = Publish(request);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << header;
    EXPECT_THAT(
        refused.error_message(),
        StartsWith(absl::StrCat("headers key '", header, "' is reserved")));
  }
  // Not even alongside a fence that holds.
  const std::string election = Name("fence/forge");
  auto [leader, token] = Lead(election, "only");
  v1::PublishRequest both = Fenced("forged", ElectionFence(election, token));
  (*both.mutable_headers())["warren-fencing-token"] = "99999999999";
  EXPECT_EQ(Publish(both).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(admin_->ReadyCount(queue_).value_or(1), 0u);
}

TEST_F(FencedPublishTest, AFenceOfAnElectionOrLockNobodyHoldsDoesNotHold) {
  const int64_t rejections = PublishRejections();
  ASSERT_GE(rejections, 0) << "no metrics";
  const grpc::Status election =
      Publish(Fenced("x", ElectionFence(Name("fence/no-such-election"), 42)));
  EXPECT_EQ(election.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(election.error_message(), HasSubstr("(nobody leads)"));

  v1::Fence lock;
  lock.set_lock(Name("fence/no-such-lock"));
  lock.set_fencing_token(42);
  const grpc::Status locked = Publish(Fenced("x", lock));
  EXPECT_EQ(locked.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(locked.error_message(),
            absl::StrCat("fence: lock:", lock.lock(),
                         " token 42 no longer holds (nobody holds the lock)"));
  EXPECT_EQ(admin_->ReadyCount(queue_).value_or(1), 0u);
  EXPECT_EQ(PublishRejections(), rejections + 2);
}

TEST_F(FencedPublishTest, BadFencesAreInvalidArgumentsNamingTheField) {
  struct Case {
    v1::Fence fence;
    std::string field;
  };
  std::vector<Case> cases;
  v1::Fence no_owner;
  no_owner.set_fencing_token(1);
  cases.push_back({no_owner, "fence "});
  cases.push_back({ElectionFence("", 1), "fence.election"});
  cases.push_back({ElectionFence("jobs//x", 1), "fence.election"});
  cases.push_back({ElectionFence("jobs/c_x", 1), "fence.election"});
  v1::Fence bad_lock;
  bad_lock.set_lock("../up");
  bad_lock.set_fencing_token(1);
  cases.push_back({bad_lock, "fence.lock"});
  cases.push_back({ElectionFence("jobs", 0), "fence.fencing_token"});
  for (const Case& c : cases) {
    const grpc::Status refused = Publish(Fenced("bad", c.fence));
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.fence.ShortDebugString();
    EXPECT_THAT(refused.error_message(), StartsWith(c.field))
        << c.fence.ShortDebugString();
  }
  // On a stream, the field is the message's.
  grpc::Status status;
  const std::vector<PublishOutcome> outcomes = PublishAll(
      *messaging_, 1,
      [&](size_t) { return Fenced("bad", ElectionFence("jobs", 0)); }, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(outcomes.size(), 1u);
  EXPECT_EQ(outcomes[0].code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(outcomes[0].error, StartsWith("message.fence.fencing_token"));
  EXPECT_EQ(admin_->ReadyCount(queue_).value_or(1), 0u);
}

}  // namespace
}  // namespace warren::testing
