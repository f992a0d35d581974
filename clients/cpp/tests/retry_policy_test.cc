// The wrappers against the shared files every language's client follows:
// clients/retry-policy.json (each status code's unary and stream decision,
// the backoff, the channel) and clients/defaults.json. Both are read at test
// time, so a change there that this client does not follow fails here.
#include "warren/client/retry_policy.h"

#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "warren/client/backoff.h"
#include "warren/client/config_client.h"
#include "warren/client/config_watcher.h"
#include "warren/client/elector.h"
#include "warren/client/locker.h"
#include "warren/client/publisher.h"
#include "warren/client/registration.h"
#include "warren/client/subscriber.h"

namespace warren::client {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;

Struct ReadJson(const std::string& name) {
  const std::string path = std::string(WARREN_CLIENTS_DIR) + "/" + name;
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  Struct parsed;
  const auto status =
      google::protobuf::util::JsonStringToMessage(text.str(), &parsed);
  EXPECT_TRUE(status.ok()) << path << ": " << status.ToString();
  return parsed;
}

const Value& Field(const Struct& object, const std::string& name) {
  static const Value* const kMissing = new Value;
  auto it = object.fields().find(name);
  EXPECT_NE(it, object.fields().end()) << "no field " << name;
  return it == object.fields().end() ? *kMissing : it->second;
}

std::string UnaryName(UnaryDecision decision) {
  switch (decision) {
    case UnaryDecision::kDone:
      return "done";
    case UnaryDecision::kRetry:
      return "retry";
    case UnaryDecision::kFatal:
      return "fatal";
  }
  return "?";
}

std::string StreamName(StreamDecision decision) {
  return decision == StreamDecision::kResubscribe ? "resubscribe" : "fatal";
}

TEST(RetryPolicyTest, EveryCodeIsClassifiedAsThePolicyFileSays) {
  const Struct policy = ReadJson("retry-policy.json");
  const Struct& codes = Field(policy, "codes").struct_value();
  // All 17 codes of gRPC, none missing from the file.
  EXPECT_EQ(codes.fields().size(), 17u);
  for (const auto& [name, row] : codes.fields()) {
    SCOPED_TRACE(name);
    const auto number =
        static_cast<int>(Field(row.struct_value(), "number").number_value());
    const auto code = static_cast<absl::StatusCode>(number);
    // The file's name and number agree with absl's (and gRPC's) code.
    EXPECT_EQ(absl::AsciiStrToUpper(absl::StatusCodeToString(code)), name);
    EXPECT_EQ(UnaryName(UnaryDecisionFor(code)),
              Field(row.struct_value(), "unary").string_value());
    EXPECT_EQ(StreamName(StreamDecisionFor(code)),
              Field(row.struct_value(), "stream").string_value());
  }
}

TEST(RetryPolicyTest, BackoffDefaultsAreThePolicyFiles) {
  const Struct backoff =
      Field(ReadJson("retry-policy.json"), "backoff").struct_value();
  const BackoffPolicy defaults;
  EXPECT_EQ(defaults.initial,
            absl::Milliseconds(Field(backoff, "initial_ms").number_value()));
  EXPECT_EQ(defaults.max,
            absl::Milliseconds(Field(backoff, "max_ms").number_value()));
  EXPECT_EQ(defaults.multiplier, Field(backoff, "multiplier").number_value());
  // Equal jitter: a delay d is drawn from [d/2, d].
  EXPECT_EQ(defaults.jitter, 0.5);
  // Every wrapper retries with these defaults.
  EXPECT_EQ(PublisherOptions().backoff.max, defaults.max);
  EXPECT_EQ(SubscriberOptions().backoff.max, defaults.max);
  EXPECT_EQ(ConfigWatcherOptions().backoff.max, defaults.max);
  EXPECT_EQ(ElectorOptions().backoff.max, defaults.max);
  EXPECT_EQ(LockOptions().backoff.max, defaults.max);
  EXPECT_EQ(RegistrationOptions().backoff.max, defaults.max);
  EXPECT_EQ(ConfigClientOptions().backoff.max, defaults.max);
}

TEST(RetryPolicyTest, BackoffDelaysGrowWithEqualJitterUpToTheCap) {
  const Struct backoff =
      Field(ReadJson("retry-policy.json"), "backoff").struct_value();
  const double initial_ms = Field(backoff, "initial_ms").number_value();
  const double multiplier = Field(backoff, "multiplier").number_value();
  const double max_ms = Field(backoff, "max_ms").number_value();
  for (int run = 0; run < 50; ++run) {
    Backoff delays;
    double d = initial_ms;
    for (int attempt = 0; attempt < 12; ++attempt) {
      const double full = std::min(d, max_ms);
      const double got = absl::ToDoubleMilliseconds(delays.Next());
      EXPECT_GE(got, full / 2) << "attempt " << attempt;
      EXPECT_LE(got, full) << "attempt " << attempt;
      d *= multiplier;
    }
    delays.Reset();
    EXPECT_LE(absl::ToDoubleMilliseconds(delays.Next()), initial_ms);
  }
}

TEST(RetryPolicyTest, ChannelSettingsAreThePolicyFiles) {
  const Struct channel =
      Field(ReadJson("retry-policy.json"), "channel").struct_value();
  EXPECT_EQ(kInitialReconnectBackoff,
            absl::Milliseconds(
                Field(channel, "initial_reconnect_backoff_ms").number_value()));
  EXPECT_EQ(kMaxReconnectBackoff,
            absl::Milliseconds(
                Field(channel, "max_reconnect_backoff_ms").number_value()));
  EXPECT_EQ(kStreamsWaitForReady,
            Field(channel, "streams_wait_for_ready").bool_value());
}

TEST(DefaultsTest, WrapperDefaultsAreTheDefaultsFiles) {
  const Struct defaults = ReadJson("defaults.json");
  const Struct& publisher = Field(defaults, "publisher").struct_value();
  const Struct& subscriber = Field(defaults, "subscriber").struct_value();
  const Struct& elector = Field(defaults, "elector").struct_value();
  EXPECT_EQ(PublisherOptions().mandatory,
            Field(publisher, "mandatory").bool_value());
  EXPECT_EQ(SubscriberOptions().max_in_flight,
            Field(subscriber, "max_in_flight").number_value());
  EXPECT_EQ(ElectorOptions().heartbeat_interval,
            absl::Milliseconds(
                Field(elector, "heartbeat_interval_ms").number_value()));
  EXPECT_EQ(ElectorOptions().rejoin_after_expiry,
            Field(elector, "rejoin_after_expiry").bool_value());
  // Locks and held keys follow the Elector's lease, with its heartbeat.
  EXPECT_EQ(LockOptions().heartbeat_interval,
            ElectorOptions().heartbeat_interval);
  EXPECT_EQ(RegistrationOptions().heartbeat_interval,
            ElectorOptions().heartbeat_interval);
}

}  // namespace
}  // namespace warren::client
