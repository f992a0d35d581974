// Authentication and authorization end to end: the real warrend with a
// tokens file and a policy file, called through the generated stubs with
// "authorization: Bearer <token>" metadata, for every RPC family: one call
// the policy allows, one it denies, and calls without or with a wrong token.
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "reflection.grpc.pb.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "tests/integration/lock_clients.h"
#include "tests/integration/messaging_clients.h"
#include "warren/client/channel.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"
#include "warren/v1/lock.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
namespace client = ::warren::client;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-token-7c1e0b5d9a3f4e2b8d6c";
constexpr char kBobToken[] = "bob-token-2f9a8e7d6c5b4a3f2e1d";
constexpr char kCarolToken[] = "carol-token-5e4d3c2b1a0f9e8d7c6b";
constexpr char kWrongToken[] = "wrong-token-0000000000000000";

constexpr char kPolicy[] = R"yaml(principals:
  alice:
    publish: ["(default)"]
    subscribe: ["amq.topic"]
    campaign: ["jobs/*"]
    observe: ["jobs/**"]
    lock: ["locks/*"]
    config_read: ["app/**"]
    config_write: ["app/**"]
  bob:
    config_read: ["app/**"]
)yaml";

std::string Tokens(bool with_carol) {
  std::string text =
      absl::StrCat("tokens:\n  - {principal: alice, token: ", kAliceToken,
                   "}\n  - {principal: bob, token: ", kBobToken, "}\n");
  if (with_carol) {
    absl::StrAppend(&text, "  - {principal: carol, token: ", kCarolToken,
                    "}\n");
  }
  return text;
}

// Replaced by a rename, as deployments do (a reader never sees half a file).
void WriteFile(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  std::ofstream(temp) << text;
  ASSERT_EQ(std::rename(temp.c_str(), path.c_str()), 0);
}

// A channel whose every call carries the token, the way a client sets it
// once for all of its stubs.
std::shared_ptr<grpc::Channel> ChannelWithToken(const std::string& address,
                                                const std::string& token) {
  return client::MakeChannel(address, client::ChannelOptions{token});
}

struct AuthFlags {
  static std::vector<std::string> Args() {
    dir = MakeTempDir("warren-auth");
    WriteFile(dir + "/tokens.yaml", Tokens(false));
    WriteFile(dir + "/policy.yaml", kPolicy);
    return {"--auth_tokens_file=" + dir + "/tokens.yaml",
            "--auth_policy_file=" + dir + "/policy.yaml",
            "--auth_reload_interval=100ms"};
  }
  static inline std::string dir;
};

// Stubs per caller: alice, bob, none (no token), wrong (an unknown token).
template <typename Service>
struct Stubs {
  std::unique_ptr<typename Service::Stub> alice, bob, none, wrong;
};

class AuthTest : public SharedWarrendTest<AuthFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    const std::string& address = warrend_->address();
    Make(&config_, address);
    Make(&messaging_, address);
    Make(&election_, address);
    Make(&lock_, address);
  }

  template <typename Service>
  static void Make(Stubs<Service>* stubs, const std::string& address) {
    stubs->alice = Service::NewStub(ChannelWithToken(address, kAliceToken));
    stubs->bob = Service::NewStub(ChannelWithToken(address, kBobToken));
    stubs->wrong = Service::NewStub(ChannelWithToken(address, kWrongToken));
    stubs->none = Service::NewStub(warrend_->channel());
  }

  static grpc::Status Put(v1::ConfigService::Stub& stub,
                          const std::string& key) {
    v1::PutConfigRequest request;
    request.set_key(key);
    request.set_value("v");
    v1::PutConfigResponse response;
    return stub.PutConfig(CallContext().get(), request, &response);
  }
  static grpc::Status Get(v1::ConfigService::Stub& stub,
                          const std::string& key) {
    v1::GetConfigRequest request;
    request.set_key(key);
    v1::GetConfigResponse response;
    return stub.GetConfig(CallContext().get(), request, &response);
  }
  static grpc::Status Delete(v1::ConfigService::Stub& stub,
                             const std::string& key, bool recursive = false) {
    v1::DeleteConfigRequest request;
    request.set_key(key);
    request.set_recursive(recursive);
    v1::DeleteConfigResponse response;
    return stub.DeleteConfig(CallContext().get(), request, &response);
  }
  static grpc::Status List(v1::ConfigService::Stub& stub,
                           const std::string& prefix) {
    v1::ListConfigRequest request;
    request.set_prefix(prefix);
    v1::ListConfigResponse response;
    return stub.ListConfig(CallContext().get(), request, &response);
  }
  // The first response of a watch, or its status when it ends first.
  static grpc::Status Watch(v1::ConfigService::Stub& stub,
                            const std::string& key, bool* got_initial) {
    v1::WatchConfigRequest request;
    request.set_key(key);
    request.set_prefix(true);
    auto context = CallContext();
    auto reader = stub.WatchConfig(context.get(), request);
    v1::WatchConfigResponse response;
    *got_initial = reader->Read(&response) && response.initial_state();
    if (*got_initial) {
      context->TryCancel();
      return grpc::Status::OK;
    }
    return reader->Finish();
  }
  static grpc::Status Publish(v1::MessagingService::Stub& stub,
                              const std::string& exchange) {
    v1::PublishRequest request;
    request.set_exchange(exchange);
    request.set_routing_key("warren-auth-test-nowhere");
    request.set_payload("p");
    v1::PublishResponse response;
    return stub.Publish(CallContext().get(), request, &response);
  }
  static grpc::Status GetLeader(v1::ElectionService::Stub& stub,
                                const std::string& election) {
    v1::GetLeaderRequest request;
    request.set_election(election);
    v1::GetLeaderResponse response;
    return stub.GetLeader(CallContext().get(), request, &response);
  }
  // The first response of ObserveLeader, or its status when it ends first.
  static grpc::Status Observe(v1::ElectionService::Stub& stub,
                              const std::string& election, bool* got_first) {
    v1::ObserveLeaderRequest request;
    request.set_election(election);
    auto context = CallContext();
    auto reader = stub.ObserveLeader(context.get(), request);
    v1::ObserveLeaderResponse response;
    *got_first = reader->Read(&response);
    if (*got_first) {
      context->TryCancel();
      return grpc::Status::OK;
    }
    return reader->Finish();
  }

  Stubs<v1::ConfigService> config_;
  Stubs<v1::MessagingService> messaging_;
  Stubs<v1::ElectionService> election_;
  Stubs<v1::LockService> lock_;
};

void ExpectDenied(const grpc::Status& status, absl::string_view principal,
                  absl::string_view action, absl::string_view resource) {
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  EXPECT_EQ(status.error_message(),
            absl::StrCat("principal '", principal, "' may not ", action,
                         " on '", resource, "'"));
}

TEST_F(AuthTest, MissingOrInvalidTokensAreUnauthenticated) {
  grpc::Status missing = Get(*config_.none, "app/x");
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("missing bearer token"));
  grpc::Status invalid = Get(*config_.wrong, "app/x");
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(invalid.error_message(), "invalid bearer token");
  // Another scheme is not a bearer token.
  auto context = CallContext();
  context->AddMetadata("authorization", "Basic YWxpY2U6c2VjcmV0");
  v1::GetConfigRequest request;
  request.set_key("app/x");
  v1::GetConfigResponse response;
  EXPECT_EQ(
      config_.none->GetConfig(context.get(), request, &response).error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  // Streams too, before anything is read.
  grpc::Status status;
  PublishAll(
      *messaging_.none, 1, [](size_t) { return v1::PublishRequest(); },
      &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::SubscribeStart start;
  start.mutable_topic()->set_exchange("amq.topic");
  TestSubscriber subscriber(*messaging_.wrong, start);
  ASSERT_TRUE(subscriber.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::Campaign campaign;
  campaign.set_election("jobs/unauthenticated");
  TestCandidate candidate(*election_.none, campaign);
  ASSERT_TRUE(candidate.WaitEnded(&status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // One log line per rejection, without the token.
  ASSERT_TRUE(WaitFor(
      [] {
        return absl::StrContains(warrend_->Log(), "auth: rejected Elect from");
      },
      absl::Seconds(10)));
  const std::string log = warrend_->Log();
  EXPECT_THAT(log, HasSubstr("auth: rejected GetConfig from"));
  EXPECT_THAT(log, HasSubstr("invalid bearer token"));
  EXPECT_THAT(log, Not(HasSubstr(kWrongToken)));
  EXPECT_THAT(log, Not(HasSubstr(kAliceToken)));
  EXPECT_THAT(log, Not(HasSubstr("YWxpY2U6c2VjcmV0")));
}

// The `warren` CLI sends its token from --token or $WARREN_TOKEN; the exit
// code and message say which refusal it met (both map to exit code 1).
TEST_F(AuthTest, CliSendsItsTokenFromTheFlagOrTheEnvironment) {
  const std::string dir = MakeTempDir("warren-cli-auth");
  auto cli = [&](const std::string& prefix, const std::string& flags) {
    const std::string command = absl::StrCat(
        prefix, " '", WARREN_CLI_PATH, "' --server=", warrend_->address(), " ",
        flags, " >'", dir, "/out' 2>'", dir, "/err'");
    const int rc = std::system(command.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  };
  // Without one, whatever the caller's environment holds.
  const std::string no_env = "env -u WARREN_TOKEN";
  EXPECT_EQ(cli(no_env, absl::StrCat("--token=", kAliceToken,
                                     " config put app/cli/flag v")),
            0)
      << ReadFile(dir + "/err");
  EXPECT_EQ(cli(absl::StrCat("WARREN_TOKEN=", kAliceToken),
                "config get app/cli/flag"),
            0)
      << ReadFile(dir + "/err");
  EXPECT_EQ(ReadFile(dir + "/out"), "v\n");

  EXPECT_EQ(cli(no_env, "config get app/cli/flag"), 1);
  EXPECT_THAT(ReadFile(dir + "/err"), HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(cli(no_env, absl::StrCat("--token=", kBobToken,
                                     " config put app/cli/flag w")),
            1);
  EXPECT_THAT(ReadFile(dir + "/err"), HasSubstr("PERMISSION_DENIED"));
  // The flag wins over the variable.
  EXPECT_EQ(
      cli(absl::StrCat("WARREN_TOKEN=", kWrongToken),
          absl::StrCat("--token=", kAliceToken, " config get app/cli/flag")),
      0)
      << ReadFile(dir + "/err");
  EXPECT_THAT(ReadFile(dir + "/err"), Not(HasSubstr(kAliceToken)));
}

TEST_F(AuthTest, HealthAndReflectionStayOpen) {
  auto health = grpc::health::v1::Health::NewStub(warrend_->channel());
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(health->Check(CallContext().get(), request, &response).ok());
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  auto reflection =
      grpc::reflection::v1alpha::ServerReflection::NewStub(warrend_->channel());
  auto context = CallContext();
  auto stream = reflection->ServerReflectionInfo(context.get());
  grpc::reflection::v1alpha::ServerReflectionRequest list;
  list.set_list_services("");
  ASSERT_TRUE(stream->Write(list));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse services;
  ASSERT_TRUE(stream->Read(&services));
  EXPECT_GT(services.list_services_response().service_size(), 3);
}

TEST_F(AuthTest, PutAndDeleteConfigNeedConfigWrite) {
  EXPECT_TRUE(Put(*config_.alice, "app/written").ok());
  ExpectDenied(Put(*config_.bob, "app/written"), "bob", "config_write",
               "app/written");
  ExpectDenied(Put(*config_.alice, "secret/x"), "alice", "config_write",
               "secret/x");
  ExpectDenied(Delete(*config_.bob, "app/written"), "bob", "config_write",
               "app/written");
  // A recursive delete needs the whole subtree.
  ExpectDenied(Delete(*config_.alice, "secret", /*recursive=*/true), "alice",
               "config_write", "secret/**");
  EXPECT_TRUE(Delete(*config_.alice, "app/written").ok());
  // Denied before the backend: the key does not exist, and a denial is what
  // the caller learns, not NOT_FOUND.
  EXPECT_EQ(Get(*config_.bob, "app/written").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Get(*config_.bob, "elsewhere/nothing").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(AuthTest, GetListAndWatchConfigNeedConfigRead) {
  ASSERT_TRUE(Put(*config_.alice, "app/read/a").ok());
  EXPECT_TRUE(Get(*config_.bob, "app/read/a").ok());
  ExpectDenied(Get(*config_.bob, "secret/a"), "bob", "config_read", "secret/a");
  EXPECT_TRUE(List(*config_.bob, "app").ok());
  // Listing everything needs read on everything.
  ExpectDenied(List(*config_.bob, ""), "bob", "config_read", "**");
  bool initial = false;
  EXPECT_TRUE(Watch(*config_.bob, "app/read", &initial).ok());
  EXPECT_TRUE(initial);
  ExpectDenied(Watch(*config_.bob, "secret", &initial), "bob", "config_read",
               "secret/**");
  EXPECT_FALSE(initial);
}

TEST_F(AuthTest, PublishNeedsPublishOnTheExchange) {
  EXPECT_TRUE(Publish(*messaging_.alice, "").ok());
  ExpectDenied(Publish(*messaging_.alice, "amq.direct"), "alice", "publish",
               "amq.direct");
  // On the default exchange the routing key (the queue) is the resource.
  ExpectDenied(Publish(*messaging_.bob, ""), "bob", "publish",
               "(default)/warren-auth-test-nowhere");
}

// A Call publishes its request: the same grant as a Publish of it.
TEST_F(AuthTest, CallNeedsPublishOnTheRequestsExchange) {
  v1::CallRequest request;
  request.mutable_message()->set_routing_key("warren-auth-test-nowhere");
  request.mutable_message()->set_mandatory(true);
  v1::CallResponse response;
  // Allowed: it then fails at the broker (no queue takes the request).
  EXPECT_EQ(messaging_.alice->Call(CallContext().get(), request, &response)
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  ExpectDenied(messaging_.bob->Call(CallContext().get(), request, &response),
               "bob", "publish", "(default)/warren-auth-test-nowhere");
  request.mutable_message()->set_exchange("amq.direct");
  ExpectDenied(messaging_.alice->Call(CallContext().get(), request, &response),
               "alice", "publish", "amq.direct");
}

// A fence reveals whether its owner still leads or holds: it needs observe
// on the election or lock on the lock, besides publish.
TEST_F(AuthTest, AFencedPublishNeedsTheFencesGrantToo) {
  v1::PublishRequest request;
  request.set_routing_key("warren-auth-test-nowhere");
  request.set_payload("p");
  request.mutable_fence()->set_election("other/dispatcher");
  request.mutable_fence()->set_fencing_token(7);
  v1::PublishResponse response;
  grpc::Status status =
      messaging_.alice->Publish(CallContext().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("may not observe on 'other/dispatcher'"));

  request.mutable_fence()->set_lock("jobs/printer");
  status = messaging_.alice->Publish(CallContext().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("may not lock on 'jobs/printer'"));

  // Granted: the fence is checked (nobody leads this election).
  request.mutable_fence()->set_election("jobs/dispatcher");
  status = messaging_.alice->Publish(CallContext().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << status.error_message();
}

// Alice's plain "(default)" still grants every queue, and the log says so
// (docs/policy.md: "(default)/<queue pattern>" narrows it).
TEST_F(AuthTest, PlainDefaultExchangeGrantIsWarnedAboutAtStartup) {
  EXPECT_THAT(warrend_->Log(),
              HasSubstr("principal 'alice', publish '(default)' grants the "
                        "default exchange with every routing key"));
  EXPECT_TRUE(Publish(*messaging_.alice, "").ok());
}

TEST_F(AuthTest, PublishStreamChecksEveryMessageAndGoesOn) {
  grpc::Status status;
  auto outcomes = PublishAll(
      *messaging_.alice, 3,
      [](size_t i) {
        v1::PublishRequest r;
        r.set_exchange(i == 1 ? "amq.direct" : "");
        r.set_routing_key("warren-auth-test-nowhere");
        r.set_message_id(absl::StrCat("auth-stream-", i));
        return r;
      },
      &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(outcomes.size(), 3u);
  std::map<uint64_t, PublishOutcome> by_sequence;
  for (const auto& o : outcomes) by_sequence[o.sequence] = o;
  ASSERT_EQ(by_sequence.size(), 3u);
  auto first = by_sequence.begin();
  EXPECT_EQ(first->second.code, 0) << first->second.error;
  auto second = std::next(first);
  EXPECT_EQ(second->second.code, grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(second->second.error,
            "principal 'alice' may not publish on 'amq.direct'");
  EXPECT_EQ(std::next(second)->second.code, 0)
      << std::next(second)->second.error;
}

TEST_F(AuthTest, SubscribeNeedsSubscribeOnTheQueueOrExchange) {
  v1::SubscribeStart topic;
  topic.mutable_topic()->set_exchange("amq.topic");
  topic.mutable_topic()->add_binding_keys("warren.auth.test");
  TestSubscriber allowed(*messaging_.alice, topic);
  EXPECT_FALSE(allowed.WaitSubscribed().empty());

  grpc::Status status;
  v1::SubscribeStart queue;
  queue.set_queue("warren-auth-test-no-such-queue");
  TestSubscriber denied_queue(*messaging_.alice, queue);
  ASSERT_TRUE(denied_queue.WaitEnded(&status));
  ExpectDenied(status, "alice", "subscribe", "warren-auth-test-no-such-queue");

  // With a group, the group's queue needs a grant too.
  v1::SubscribeStart group = topic;
  group.set_group("warren-auth-test-group");
  TestSubscriber denied_group(*messaging_.alice, group);
  ASSERT_TRUE(denied_group.WaitEnded(&status));
  ExpectDenied(status, "alice", "subscribe", "warren-auth-test-group");

  TestSubscriber denied_exchange(*messaging_.bob, topic);
  ASSERT_TRUE(denied_exchange.WaitEnded(&status));
  ExpectDenied(status, "bob", "subscribe", "amq.topic");
}

TEST_F(AuthTest, ElectNeedsCampaignOnTheElection) {
  v1::Campaign campaign;
  campaign.set_election("jobs/elect");
  TestCandidate allowed(*election_.alice, campaign);
  EXPECT_GE(allowed.WaitElected(), 0);

  grpc::Status status;
  TestCandidate denied(*election_.bob, campaign);
  ASSERT_TRUE(denied.WaitEnded(&status));
  ExpectDenied(status, "bob", "campaign", "jobs/elect");
  v1::Campaign elsewhere;
  elsewhere.set_election("jobs/elect/deeper");
  TestCandidate denied_deeper(*election_.alice, elsewhere);
  ASSERT_TRUE(denied_deeper.WaitEnded(&status));
  ExpectDenied(status, "alice", "campaign", "jobs/elect/deeper");
  EXPECT_TRUE(allowed.Resign());
}

TEST_F(AuthTest, GetLeaderAndObserveLeaderNeedObserve) {
  // Allowed: the answer is the backend's (nobody leads).
  EXPECT_EQ(GetLeader(*election_.alice, "jobs/observed").error_code(),
            grpc::StatusCode::NOT_FOUND);
  ExpectDenied(GetLeader(*election_.bob, "jobs/observed"), "bob", "observe",
               "jobs/observed");
  bool first = false;
  EXPECT_TRUE(Observe(*election_.alice, "jobs/observed", &first).ok());
  EXPECT_TRUE(first);
  ExpectDenied(Observe(*election_.alice, "other/observed", &first), "alice",
               "observe", "other/observed");
  EXPECT_FALSE(first);
}

TEST_F(AuthTest, LockAndGetLockNeedLockOnTheLock) {
  TestLocker allowed(*lock_.alice, MakeAcquire("locks/locked", "a"));
  EXPECT_GE(allowed.WaitAcquired(), 0);
  grpc::Status status;
  TestLocker denied(*lock_.bob, MakeAcquire("locks/locked", "b"));
  ASSERT_TRUE(denied.WaitEnded(&status));
  ExpectDenied(status, "bob", "lock", "locks/locked");
  TestLocker denied_deeper(*lock_.alice,
                           MakeAcquire("locks/locked/deeper", "a"));
  ASSERT_TRUE(denied_deeper.WaitEnded(&status));
  ExpectDenied(status, "alice", "lock", "locks/locked/deeper");

  v1::GetLockRequest request;
  request.set_name("locks/locked");
  v1::GetLockResponse response;
  ASSERT_TRUE(
      lock_.alice->GetLock(CallContext().get(), request, &response).ok());
  ASSERT_EQ(response.holders_size(), 1);
  EXPECT_EQ(response.holders(0).holder_id(), "a");
  ExpectDenied(lock_.bob->GetLock(CallContext().get(), request, &response),
               "bob", "lock", "locks/locked");
  allowed.Release();
  ASSERT_TRUE(allowed.WaitEnded(&status));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(AuthTest, ChangedFilesAreReloaded) {
  auto carol = v1::ConfigService::NewStub(
      ChannelWithToken(warrend_->address(), kCarolToken));
  EXPECT_EQ(Get(*carol, "app/x").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  WriteFile(AuthFlags::dir + "/tokens.yaml", Tokens(true));
  // Known now, but without grants.
  EXPECT_TRUE(WaitFor(
      [&] {
        return Get(*carol, "app/x").error_code() ==
               grpc::StatusCode::PERMISSION_DENIED;
      },
      absl::Seconds(20)));
  WriteFile(AuthFlags::dir + "/policy.yaml",
            absl::StrCat(kPolicy, "  carol:\n    config_read: [\"app/**\"]\n"));
  EXPECT_TRUE(WaitFor(
      [&] {
        return Get(*carol, "app/x").error_code() == grpc::StatusCode::NOT_FOUND;
      },
      absl::Seconds(20)));
  // A broken file is refused and logged; what was in force stays.
  WriteFile(AuthFlags::dir + "/tokens.yaml", "tokens: [\n");
  EXPECT_TRUE(WaitFor(
      [] { return absl::StrContains(warrend_->Log(), "auth: reload failed"); },
      absl::Seconds(20)));
  EXPECT_EQ(Get(*carol, "app/x").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Put(*config_.alice, "app/still").ok());
  WriteFile(AuthFlags::dir + "/tokens.yaml", Tokens(true));
}

// SIGHUP reloads at once, also without polling.
TEST(AuthReloadTest, SighupReloadsTheFiles) {
  const std::string dir = MakeTempDir("warren-auth-hup");
  WriteFile(dir + "/tokens.yaml", Tokens(false));
  auto warrend =
      WarrendProcess::Start({"--auth_tokens_file=" + dir + "/tokens.yaml",
                             "--auth_reload_interval=0"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  EXPECT_THAT((*warrend)->Log(), HasSubstr("auth is on: 2 bearer tokens"));
  EXPECT_THAT((*warrend)->Log(), HasSubstr("no policy file"));
  auto carol = v1::ConfigService::NewStub(
      ChannelWithToken((*warrend)->address(), kCarolToken));
  v1::GetConfigRequest request;
  request.set_key("app/x");
  v1::GetConfigResponse response;
  EXPECT_EQ(
      carol->GetConfig(CallContext().get(), request, &response).error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
  WriteFile(dir + "/tokens.yaml", Tokens(true));
  ASSERT_TRUE((*warrend)->Signal(SIGHUP));
  // Without a policy, every authenticated caller may do everything.
  EXPECT_TRUE(WaitFor(
      [&] {
        return carol->GetConfig(CallContext().get(), request, &response)
                   .error_code() == grpc::StatusCode::NOT_FOUND;
      },
      absl::Seconds(20)));
  EXPECT_THAT((*warrend)->Log(), HasSubstr("received SIGHUP"));
  EXPECT_EQ((*warrend)->Terminate(), 0);
}

TEST(AuthStartupTest, BadTokensFileStopsStartupWithOneLine) {
  const std::string dir = MakeTempDir("warren-auth-bad");
  const std::string secret = "tooshort";
  WriteFile(dir + "/tokens.yaml",
            absl::StrCat("tokens:\n  - {principal: a, token: ", secret, "}\n"));
  ExitResult result = RunWarrendToExit(
      {"--auth_tokens_file=" + dir + "/tokens.yaml", "--listen=127.0.0.1:0",
       "--zk_connect=" + TestEnv("WARREN_TEST_ZK")});
  EXPECT_EQ(result.code, 1);
  // One line, naming the file and the entry (and never the token).
  EXPECT_THAT(
      result.stderr_text,
      HasSubstr(absl::StrCat("warrend: cannot start: auth_tokens_file ", dir,
                             "/tokens.yaml: tokens[0] (line 2): "
                             "the token of 'a' must be at least 16")));
  EXPECT_EQ(
      std::count(result.stderr_text.begin(), result.stderr_text.end(), '\n'), 1)
      << result.stderr_text;
  EXPECT_THAT(result.stderr_text, Not(HasSubstr(secret)));
}

TEST(AuthStartupTest, AuthOffIsSaidAtStartup) {
  auto warrend = WarrendProcess::Start();
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  EXPECT_THAT((*warrend)->Log(), HasSubstr("auth is off"));
}

}  // namespace
}  // namespace warren::testing
