#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/amqp/amqp_client.h"

namespace warren::amqp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ParseBrokerUrlTest, ParsesEveryPart) {
  auto a = ParseBrokerUrl("amqps://user:secret@broker.example:5671/prod");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "broker.example");
  EXPECT_EQ(a->port, 5671);
  EXPECT_EQ(a->user, "user");
  EXPECT_EQ(a->password, "secret");
  EXPECT_EQ(a->vhost, "prod");
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->redacted, "amqps://user:****@broker.example:5671/prod");

  auto defaults = ParseBrokerUrl("amqp://localhost");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->port, 5672);
  EXPECT_EQ(defaults->user, "guest");
  EXPECT_EQ(defaults->vhost, "/");
  EXPECT_FALSE(defaults->tls);
}

TEST(ParseBrokerUrlTest, RefusesMalformedUrlsWithoutEchoingThePassword) {
  auto bad = ParseBrokerUrl("http://u:hunter2@host/");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("amqp_urls"));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("hunter2")));
}

TEST(AmqpClientTest, ReportsAnUnreachableBrokerAsUnavailable) {
  AmqpOptions options;
  // Port 1 on loopback: nothing listens there, the connect is refused.
  options.urls = {"amqp://guest:guest@127.0.0.1:1/"};
  auto monitor = AmqpClient::Create(options);
  ASSERT_TRUE(monitor.ok());
  absl::Status waited = (*monitor)->WaitConnected(absl::Milliseconds(300));
  EXPECT_EQ(waited.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(waited.message(), HasSubstr("127.0.0.1:1"));
  EXPECT_FALSE((*monitor)->reachable());
}

TEST(AmqpClientTest, ConnectsToTheTestBroker) {
  const char* url = std::getenv("WARREN_TEST_AMQP_URL");
  ASSERT_NE(url, nullptr)
      << "WARREN_TEST_AMQP_URL is not set: run the suite with scripts/test.sh";
  AmqpOptions options;
  // A dead broker first: the monitor must move on to the next URL.
  options.urls = {"amqp://guest:guest@127.0.0.1:1/", url};
  options.heartbeat = absl::Seconds(2);
  auto monitor = AmqpClient::Create(options);
  ASSERT_TRUE(monitor.ok());
  ASSERT_TRUE((*monitor)->WaitConnected(absl::Seconds(20)).ok());
  EXPECT_EQ((*monitor)->state(), BrokerState::kConnected);
}

}  // namespace
}  // namespace warren::amqp
