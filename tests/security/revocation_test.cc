// Revocation reaches open streams (issue: "after alice's token and then all
// her grants were removed, new calls were refused within 3 s, but her open
// WatchConfig kept delivering, Subscribe kept delivering, Elect kept sending
// lease heartbeats"). After a reload of the tokens or the policy, every
// stream whose caller lost the token or the grant it was opened with ends:
// UNAUTHENTICATED or PERMISSION_DENIED, within the reload interval (here
// 100 ms; the tests allow seconds). Another principal's streams stay open.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/uuid.h"
#include "tests/integration/config_clients.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "tests/security/security_support.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing::security {
namespace {

namespace v1 = ::warren::v1;

const Principal kAlice{"alice", "alice-token-9d8c7b6a5f4e3d2c1b0a"};
const Principal kBob{"bob", "bob-token-0a1b2c3d4e5f6a7b8c9d"};

constexpr char kBothGranted[] = R"yaml(principals:
  alice:
    config_read: ["app/**"]
    subscribe: ["amq.topic"]
    publish: ["(default)"]
    campaign: ["jobs/**"]
    observe: ["jobs/**"]
  bob:
    config_read: ["app/**"]
    config_write: ["app/**"]
    observe: ["jobs/**"]
)yaml";

// Alice's grants are gone; bob's stay.
constexpr char kOnlyBob[] = R"yaml(principals:
  bob:
    config_read: ["app/**"]
    config_write: ["app/**"]
    observe: ["jobs/**"]
)yaml";

// A PublishStream kept open: one message published and confirmed, then the
// stream idles until the server ends it.
class OpenPublishStream {
 public:
  explicit OpenPublishStream(v1::MessagingService::Stub& stub) {
    stream_ = stub.PublishStream(&context_);
  }
  ~OpenPublishStream() { context_.TryCancel(); }
  // Publishes one message to the default exchange; answers its result code.
  int32_t PublishOne() {
    v1::PublishStreamRequest request;
    request.set_sequence(++sequence_);
    request.mutable_message()->set_routing_key("revocation-nowhere");
    request.mutable_message()->set_payload("x");
    if (!stream_->Write(request)) return -1;
    v1::PublishStreamResponse response;
    if (!stream_->Read(&response)) return -1;
    return response.code();
  }
  // Reads until the stream ends; its status.
  grpc::Status WaitEnded() {
    v1::PublishStreamResponse response;
    while (stream_->Read(&response)) {
    }
    return stream_->Finish();
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::PublishStreamRequest,
                                           v1::PublishStreamResponse>>
      stream_;
  uint64_t sequence_ = 0;
};

class RevocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    files_ = std::make_unique<AuthFiles>(std::vector<Principal>{kAlice, kBob},
                                         kBothGranted);
    auto started = WarrendProcess::Start(files_->Flags("100ms"));
    ASSERT_TRUE(started.ok()) << started.status();
    warrend_ = *std::move(started);
    alice_ = ChannelAs(warrend_->address(), kAlice.token);
    bob_ = ChannelAs(warrend_->address(), kBob.token);
  }

  std::unique_ptr<WatchReader> WatchAsAlice(v1::ConfigService::Stub& stub) {
    auto watch = std::make_unique<WatchReader>(&stub, "app/x", false);
    // The initial state arrives first: the stream is open and authorized.
    EXPECT_TRUE(watch->WaitUntil(
        [](const std::vector<v1::WatchConfigResponse>& responses) {
          return !responses.empty();
        }));
    return watch;
  }

  std::unique_ptr<AuthFiles> files_;
  std::unique_ptr<WarrendProcess> warrend_;
  std::shared_ptr<grpc::Channel> alice_, bob_;
};

TEST_F(RevocationTest, RemovedGrantsEndEveryStreamWithPermissionDenied) {
  auto config = v1::ConfigService::NewStub(alice_);
  auto messaging = v1::MessagingService::NewStub(alice_);
  auto election = v1::ElectionService::NewStub(alice_);
  auto bob_config = v1::ConfigService::NewStub(bob_);

  auto watch = WatchAsAlice(*config);
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("amq.topic");
  start.mutable_topic()->add_binding_keys("revocation.#");
  TestSubscriber subscriber(*messaging, start);
  ASSERT_NE(subscriber.WaitSubscribed(), "");
  v1::Campaign campaign;
  campaign.set_election(absl::StrCat("jobs/revocation-", NewUuid()));
  TestCandidate candidate(*election, campaign);
  ASSERT_GE(candidate.WaitElected(), 0);
  TestObserver observer(*election, campaign.election());
  ASSERT_TRUE(observer.WaitUntil(
      [](const std::vector<v1::ObserveLeaderResponse>& seen) {
        return !seen.empty();
      }));
  // Bob's watch on the same key: a control that must stay open.
  WatchReader bob_watch(bob_config.get(), "app/x", false);

  files_->WritePolicy(kOnlyBob);

  grpc::Status status;
  ASSERT_TRUE(watch->WaitEnded(absl::Seconds(10), &status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("'alice'"));
  ASSERT_TRUE(subscriber.WaitEnded(&status, absl::Seconds(10)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  ASSERT_TRUE(candidate.WaitEnded(&status, absl::Seconds(10)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  ASSERT_TRUE(observer.WaitEnded(&status, absl::Seconds(10)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();

  // The candidacy ended with the stream: the election has no leader now.
  auto bob_election = v1::ElectionService::NewStub(bob_);
  v1::GetLeaderRequest get;
  get.set_election(campaign.election());
  EXPECT_TRUE(WaitFor(
      [&] {
        v1::GetLeaderResponse leader;
        return bob_election->GetLeader(CallContext().get(), get, &leader)
                   .error_code() == grpc::StatusCode::NOT_FOUND;
      },
      absl::Seconds(10)));

  // Bob keeps his stream: a change he makes reaches it.
  v1::PutConfigRequest put;
  put.set_key("app/x");
  put.set_value("after-revocation");
  v1::PutConfigResponse put_response;
  ASSERT_TRUE(
      bob_config->PutConfig(CallContext().get(), put, &put_response).ok());
  EXPECT_TRUE(bob_watch.WaitForValue("app/x", "after-revocation"));
}

TEST_F(RevocationTest, ARemovedTokenEndsStreamsWithUnauthenticated) {
  auto config = v1::ConfigService::NewStub(alice_);
  auto messaging = v1::MessagingService::NewStub(alice_);
  auto watch = WatchAsAlice(*config);
  OpenPublishStream publisher(*messaging);
  ASSERT_EQ(publisher.PublishOne(), 0);

  files_->WriteTokens({kBob});

  grpc::Status status;
  ASSERT_TRUE(watch->WaitEnded(absl::Seconds(10), &status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << status.error_message();
  EXPECT_THAT(status.error_message(), ::testing::HasSubstr("revoked"));
  status = publisher.WaitEnded();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << status.error_message();
}

TEST_F(RevocationTest, APublishStreamWhoseGrantWentRefusesEachMessage) {
  auto messaging = v1::MessagingService::NewStub(alice_);
  OpenPublishStream publisher(*messaging);
  ASSERT_EQ(publisher.PublishOne(), 0);
  files_->WritePolicy(kOnlyBob);
  // Each message is checked against the policy in force when it arrives;
  // the reload lands within the interval.
  EXPECT_TRUE(WaitFor(
      [&] {
        return publisher.PublishOne() ==
               static_cast<int32_t>(grpc::StatusCode::PERMISSION_DENIED);
      },
      absl::Seconds(10)));
}

}  // namespace
}  // namespace warren::testing::security
