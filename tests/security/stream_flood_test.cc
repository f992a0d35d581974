// Every stream kind is bounded per client, not only in total: one client
// that opens Subscribe or PublishStream streams in a loop (a leak, or an
// attack with a valid token) is refused with RESOURCE_EXHAUSTED naming
// max_streams_per_client once it holds its share, while another client
// still opens streams and gets answers.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "tests/security/security_support.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing::security {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;

const Principal kMallory{"mallory", "mallory-token-5c4b3a2918f7e6d5c4b3"};
const Principal kBob{"bob", "bob-token-1f2e3d4c5b6a79880f1e"};

constexpr char kPolicy[] = R"yaml(principals:
  mallory:
    subscribe: ["amq.topic"]
    publish: ["amq.topic"]
  bob:
    subscribe: ["amq.topic"]
    config_read: ["**"]
)yaml";

constexpr size_t kShare = 20;

TEST(StreamFloodTest, OneClientIsRefusedPastItsShareAndOthersAreNot) {
  AuthFiles files({kMallory, kBob}, kPolicy);
  std::vector<std::string> flags = files.Flags();
  flags.push_back(absl::StrCat("--max_streams_per_client=", kShare));
  auto started = WarrendProcess::Start(flags);
  ASSERT_TRUE(started.ok()) << started.status();
  auto& warrend = **started;
  auto mallory = v1::MessagingService::NewStub(
      ChannelAs(warrend.address(), kMallory.token));

  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("amq.topic");
  start.mutable_topic()->add_binding_keys("stream-flood.#");
  // Half her share in Subscribe streams, half in PublishStreams: one budget.
  std::vector<std::unique_ptr<TestSubscriber>> held;
  for (size_t i = 0; i < kShare / 2; ++i) {
    held.push_back(std::make_unique<TestSubscriber>(*mallory, start));
    ASSERT_NE(held.back()->WaitSubscribed(), "") << i;
  }
  struct OpenPublisher {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::PublishStreamRequest,
                                             v1::PublishStreamResponse>>
        stream;
  };
  std::vector<std::unique_ptr<OpenPublisher>> publishers;
  for (size_t i = 0; i < kShare / 2; ++i) {
    auto publisher = std::make_unique<OpenPublisher>();
    publisher->stream = mallory->PublishStream(&publisher->context);
    v1::PublishStreamRequest request;
    request.set_sequence(1);
    request.mutable_message()->set_exchange("amq.topic");
    request.mutable_message()->set_routing_key("stream-flood.x");
    ASSERT_TRUE(publisher->stream->Write(request));
    v1::PublishStreamResponse response;
    ASSERT_TRUE(publisher->stream->Read(&response)) << i;
    ASSERT_EQ(response.code(), 0) << response.error_message();
    publishers.push_back(std::move(publisher));
  }

  // One more of either kind is refused, naming the limit and the client.
  TestSubscriber refused(*mallory, start);
  grpc::Status status;
  ASSERT_TRUE(refused.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("max_streams_per_client (20) streams are open for "
                        "client 'mallory'"));

  // Bob is another client: his stream opens and his calls are answered.
  auto bob_channel = ChannelAs(warrend.address(), kBob.token);
  auto bob = v1::MessagingService::NewStub(bob_channel);
  TestSubscriber bobs(*bob, start);
  EXPECT_NE(bobs.WaitSubscribed(), "");
  auto bob_config = v1::ConfigService::NewStub(bob_channel);
  v1::ListConfigRequest list;
  v1::ListConfigResponse listed;
  EXPECT_TRUE(
      bob_config->ListConfig(CallContext(absl::Seconds(5)).get(), list, &listed)
          .ok());

  // A slot she gives back is hers again.
  held.back()->Cancel();
  ASSERT_TRUE(held.back()->WaitEnded(&status));
  EXPECT_TRUE(WaitFor(
      [&] {
        TestSubscriber again(*mallory, start);
        return again.WaitSubscribed(absl::Seconds(10)) != "";
      },
      absl::Seconds(20)));
}

}  // namespace
}  // namespace warren::testing::security
