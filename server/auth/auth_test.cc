#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth/authorizer.h"
#include "server/auth/identity.h"
#include "server/auth/pattern.h"
#include "server/auth/policy.h"
#include "server/auth/token_table.h"
#include "server/common/grpc_status.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBillingToken[] = "billing-token-0123456789abcdef";
constexpr char kOpsToken[] = "ops-token-0123456789abcdef0123";

// ---------------------------------------------------------------------------
// Patterns

bool Match(absl::string_view pattern, absl::string_view resource,
           char separator = '.') {
  auto parsed = ResourcePattern::Parse(pattern, separator);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() && parsed->Matches(resource);
}

bool Covers(absl::string_view pattern, absl::string_view prefix) {
  auto parsed = ResourcePattern::Parse(pattern, '/');
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() && parsed->CoversSubtree(prefix);
}

TEST(ResourcePatternTest, ExactNamesMatchOnlyThemselves) {
  EXPECT_TRUE(Match("orders", "orders"));
  EXPECT_FALSE(Match("orders", "orders2"));
  EXPECT_FALSE(Match("orders", "orders.eu"));
  EXPECT_FALSE(Match("orders", "ord"));
  EXPECT_TRUE(Match("(default)", "(default)"));
}

TEST(ResourcePatternTest, StarIsOneSegmentOrPartOfOne) {
  EXPECT_TRUE(Match("orders.*", "orders.eu"));
  EXPECT_FALSE(Match("orders.*", "orders"));
  EXPECT_FALSE(Match("orders.*", "orders.eu.paris"));
  EXPECT_TRUE(Match("*.events", "billing.events"));
  EXPECT_TRUE(Match("orders-*", "orders-eu"));
  EXPECT_TRUE(Match("orders-*", "orders-"));
  EXPECT_FALSE(Match("orders-*", "orders-eu.x"));
  EXPECT_TRUE(Match("a*c*e", "abcde"));
  EXPECT_FALSE(Match("a*c*e", "abcdef"));
  EXPECT_TRUE(Match("*", "anything"));
  EXPECT_FALSE(Match("*", "two.segments"));
  // The separator depends on the resource kind.
  EXPECT_TRUE(Match("app/*", "app/db", '/'));
  EXPECT_TRUE(Match("app/*", "app/db.url", '/'));
  EXPECT_FALSE(Match("app/*", "app/db/url", '/'));
}

TEST(ResourcePatternTest, DoubleStarIsAnyNumberOfSegments) {
  EXPECT_TRUE(Match("orders.**", "orders"));
  EXPECT_TRUE(Match("orders.**", "orders.eu"));
  EXPECT_TRUE(Match("orders.**", "orders.eu.paris"));
  EXPECT_FALSE(Match("orders.**", "ordersx"));
  EXPECT_TRUE(Match("**", "anything.at.all"));
  EXPECT_TRUE(Match("**", "(default)"));
  EXPECT_TRUE(Match("**.dlq", "orders.eu.dlq"));
  EXPECT_TRUE(Match("**.dlq", "dlq"));
  EXPECT_TRUE(Match("a/**/z", "a/z", '/'));
  EXPECT_TRUE(Match("a/**/z", "a/b/c/z", '/'));
  EXPECT_FALSE(Match("a/**/z", "a/b/c", '/'));
  EXPECT_TRUE(Match("a/**/**/z", "a/b/z", '/'));
}

TEST(ResourcePatternTest, SubtreeNeedsAPatternThatAcceptsEveryTail) {
  EXPECT_TRUE(Covers("**", ""));
  EXPECT_TRUE(Covers("**", "app"));
  EXPECT_TRUE(Covers("app/**", "app"));
  EXPECT_TRUE(Covers("app/**", "app/db"));
  EXPECT_FALSE(Covers("app/**", ""));
  EXPECT_FALSE(Covers("app/**", "other"));
  EXPECT_FALSE(Covers("app", "app"));
  EXPECT_FALSE(Covers("app/*", "app"));
  EXPECT_FALSE(Covers("app/**/url", "app"));
  EXPECT_TRUE(Covers("*/**", "app"));
}

TEST(ResourcePatternTest, RejectsEmptyAndPartialDoubleStar) {
  EXPECT_FALSE(ResourcePattern::Parse("", '.').ok());
  auto partial = ResourcePattern::Parse("orders**", '.');
  ASSERT_FALSE(partial.ok());
  EXPECT_THAT(partial.status().message(), HasSubstr("whole segment"));
  EXPECT_FALSE(ResourcePattern::Parse("a/**b/c", '/').ok());
}

// ---------------------------------------------------------------------------
// Policy

constexpr char kPolicy[] = R"yaml(
principals:
  billing:
    publish: [orders, "(default)"]
    subscribe: ["orders.**"]
    config_read: ["billing/**"]
    config_write: "billing/state"
  "CN=ops,O=Acme":
    config_write: ["**"]
    campaign: ["ops/*"]
  "*":
    observe: ["**"]
  nobody:
)yaml";

TEST(PolicyTest, GrantsWhatIsListedAndNothingElse) {
  auto policy = Policy::Parse(kPolicy);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->principal_count(), 4u);
  EXPECT_TRUE(policy->Allows("billing", Action::kPublish, {"orders"}));
  EXPECT_TRUE(policy->Allows("billing", Action::kPublish,
                             {std::string(kDefaultExchange)}));
  EXPECT_FALSE(policy->Allows("billing", Action::kPublish, {"payments"}));
  EXPECT_FALSE(policy->Allows("billing", Action::kSubscribe, {"payments"}));
  EXPECT_TRUE(policy->Allows("billing", Action::kSubscribe, {"orders.eu"}));
  // An action is not another: publish on orders grants no subscribe.
  EXPECT_FALSE(policy->Allows("billing", Action::kCampaign, {"orders"}));
  EXPECT_TRUE(policy->Allows("billing", Action::kConfigRead, {"billing/a/b"}));
  EXPECT_TRUE(
      policy->Allows("billing", Action::kConfigRead, {"billing", true}));
  EXPECT_FALSE(policy->Allows("billing", Action::kConfigRead, {"", true}));
  EXPECT_TRUE(
      policy->Allows("billing", Action::kConfigWrite, {"billing/state"}));
  EXPECT_FALSE(
      policy->Allows("billing", Action::kConfigWrite, {"billing/other"}));
  EXPECT_FALSE(
      policy->Allows("billing", Action::kConfigWrite, {"billing/state", true}));
  EXPECT_TRUE(
      policy->Allows("CN=ops,O=Acme", Action::kConfigWrite, {"", true}));
  EXPECT_TRUE(policy->Allows("CN=ops,O=Acme", Action::kCampaign, {"ops/db"}));
  // "*" grants every authenticated principal, listed or not.
  EXPECT_TRUE(policy->Allows("billing", Action::kObserve, {"ops/db"}));
  EXPECT_TRUE(policy->Allows("stranger", Action::kObserve, {"x"}));
  EXPECT_FALSE(policy->Allows("stranger", Action::kConfigRead, {"x"}));
  EXPECT_FALSE(policy->Allows("nobody", Action::kPublish, {"orders"}));
}

Resource DefaultExchange(std::optional<std::string> routing_key) {
  return PublishResource("", routing_key);
}

// What docs/policy.md tells operators to grant a Call responder: replies
// to RabbitMQ's direct reply-to addresses (base64 with '/', '+' and '=',
// and a '.' of their own), and nothing else of the default exchange.
TEST(PolicyTest, AResponderGrantCoversDirectReplyToAddressesOnly) {
  auto policy = Policy::Parse(R"yaml(principals:
  responder:
    publish: ["(default)/amq.rabbitmq.reply-to.**"]
)yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(policy->Allows(
      "responder", Action::kPublish,
      DefaultExchange("amq.rabbitmq.reply-to.g1h2AA5yZXBseUA0MDUwNDA1MgAACfEAAA"
                      "ACaxdmlg==.f+xGQzlJC5DS/exdBxAn4A==")));
  EXPECT_FALSE(
      policy->Allows("responder", Action::kPublish, DefaultExchange("jobs")));
  EXPECT_FALSE(policy->Allows("responder", Action::kPublish,
                              DefaultExchange(std::nullopt)));
}

TEST(PolicyTest, DefaultExchangeGrantsAreScopedByQueueName) {
  auto policy = Policy::Parse(R"yaml(principals:
  alice:
    publish: [alice-ex, "(default)/alice-*", "(default)/shared.**"]
  admin:
    publish: ["(default)/**"]
  legacy:
    publish: ["(default)"]
)yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_TRUE(
      policy->Allows("alice", Action::kPublish, DefaultExchange("alice-jobs")));
  EXPECT_TRUE(
      policy->Allows("alice", Action::kPublish, DefaultExchange("shared.a.b")));
  EXPECT_FALSE(
      policy->Allows("alice", Action::kPublish, DefaultExchange("bob-jobs")));
  // A '*' stays within one segment, as in every pattern.
  EXPECT_FALSE(policy->Allows("alice", Action::kPublish,
                              DefaultExchange("alice-jobs.x")));
  // Any routing key (a dead-letter exchange without a key) needs a
  // pattern that accepts every queue.
  EXPECT_FALSE(
      policy->Allows("alice", Action::kPublish, DefaultExchange(std::nullopt)));
  EXPECT_TRUE(
      policy->Allows("admin", Action::kPublish, DefaultExchange(std::nullopt)));
  EXPECT_TRUE(
      policy->Allows("admin", Action::kPublish, DefaultExchange("bob-jobs")));
  // The scoped grant is about the default exchange only.
  EXPECT_FALSE(policy->Allows("admin", Action::kPublish, {"alice-ex"}));
  EXPECT_FALSE(policy->Allows("alice", Action::kPublish, {"alice-jobs"}));
  EXPECT_FALSE(policy->Allows("alice", Action::kSubscribe, {"alice-jobs"}));
  EXPECT_TRUE(policy->Allows("alice", Action::kPublish,
                             PublishResource("alice-ex", "anything")));
  // Plain "(default)" keeps its meaning: every queue.
  EXPECT_TRUE(
      policy->Allows("legacy", Action::kPublish, DefaultExchange("bob-jobs")));
  EXPECT_TRUE(policy->Allows("legacy", Action::kPublish,
                             DefaultExchange(std::nullopt)));
  // Under other actions "(default)/..." is an ordinary (one-segment) name.
  auto subscribe =
      Policy::Parse("principals:\n  a:\n    subscribe: [\"(default)/x\"]\n");
  ASSERT_TRUE(subscribe.ok()) << subscribe.status();
  EXPECT_TRUE(subscribe->Allows("a", Action::kSubscribe, {"(default)/x"}));
}

TEST(PolicyTest, GrantsOfEveryQueueAreWarnedAbout) {
  auto policy = Policy::Parse(R"yaml(principals:
  alice:
    publish: [alice-ex, "(default)/alice-*"]
  legacy:
    publish: [orders, "(default)"]
  admin:
    publish: ["**"]
    subscribe: ["**"]
)yaml");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_THAT(
      policy->warnings(),
      ::testing::ElementsAre(HasSubstr("principal 'legacy', publish "
                                       "'(default)' grants the default "
                                       "exchange with every routing key"),
                             HasSubstr("principal 'admin', publish '**'")));
}

TEST(PolicyTest, DeniedDefaultExchangePublishesNameTheQueue) {
  EXPECT_EQ(DefaultExchange("bob-jobs").ToString('.'), "'(default)/bob-jobs'");
  EXPECT_EQ(DefaultExchange(std::nullopt).ToString('.'), "'(default)/**'");
  EXPECT_EQ(PublishResource("orders", "k").ToString('.'), "'orders'");
  auto bad =
      Policy::Parse("principals:\n  a:\n    publish: [\"(default)/x**\"]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("'(default)/x**': the queue pattern"));
  EXPECT_FALSE(
      Policy::Parse("principals:\n  a:\n    publish: [\"(default)/\"]\n").ok());
}

TEST(PolicyTest, EmptyPolicyAllowsNothing) {
  auto policy = Policy::Parse("principals: {}\n");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_FALSE(policy->Allows("billing", Action::kObserve, {"x"}));
  auto null_principals = Policy::Parse("principals:\n");
  ASSERT_TRUE(null_principals.ok()) << null_principals.status();
  EXPECT_FALSE(null_principals->Allows("billing", Action::kObserve, {"x"}));
}

TEST(PolicyTest, ErrorsNameWhatIsWrong) {
  auto unknown_action = Policy::Parse("principals:\n  a:\n    publsh: [x]\n");
  ASSERT_FALSE(unknown_action.ok());
  EXPECT_THAT(unknown_action.status().message(),
              HasSubstr("unknown action 'publsh' (line 3)"));
  auto unknown_key = Policy::Parse("principal:\n  a: {}\n");
  ASSERT_FALSE(unknown_key.ok());
  EXPECT_THAT(unknown_key.status().message(),
              HasSubstr("unknown key 'principal'"));
  auto bad_pattern =
      Policy::Parse("principals:\n  a:\n    publish: [\"x**\"]\n");
  ASSERT_FALSE(bad_pattern.ok());
  EXPECT_THAT(bad_pattern.status().message(), HasSubstr("whole segment"));
  auto not_a_list = Policy::Parse("principals:\n  a:\n    publish: {x: 1}\n");
  ASSERT_FALSE(not_a_list.ok());
  EXPECT_THAT(not_a_list.status().message(), HasSubstr("list of resource"));
  EXPECT_FALSE(Policy::Parse("principals: [a, b]\n").ok());
  EXPECT_FALSE(Policy::Parse("- just a list\n").ok());
  EXPECT_FALSE(Policy::Parse("principals: {a: {publish: [x]}\n").ok());
}

// ---------------------------------------------------------------------------
// Tokens

TEST(TokenTableTest, MapsTokensToPrincipals) {
  auto table = TokenTable::Parse(absl::StrCat(
      "tokens:\n"
      "  - principal: billing\n"
      "    token: ",
      kBillingToken,
      "\n"
      "  - {principal: billing, token: billing-second-token-0000}\n"
      "  - principal: ops\n"
      "    token: \"",
      kOpsToken, "\"\n"));
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->size(), 3u);
  ASSERT_NE(table->Find(kBillingToken), nullptr);
  EXPECT_EQ(*table->Find(kBillingToken), "billing");
  ASSERT_NE(table->Find("billing-second-token-0000"), nullptr);
  EXPECT_EQ(*table->Find("billing-second-token-0000"), "billing");
  EXPECT_EQ(*table->Find(kOpsToken), "ops");
  EXPECT_EQ(table->Find("ops-token"), nullptr);
  EXPECT_EQ(table->Find(""), nullptr);
}

TEST(TokenTableTest, ErrorsNameTheEntryButNeverTheToken) {
  const std::string short_token = "short-secret";
  auto too_short = TokenTable::Parse(
      absl::StrCat("tokens:\n  - {principal: a, token: ", kBillingToken,
                   "}\n  - {principal: b, token: ", short_token, "}\n"));
  ASSERT_FALSE(too_short.ok());
  EXPECT_THAT(too_short.status().message(), HasSubstr("tokens[1] (line 3)"));
  EXPECT_THAT(too_short.status().message(), HasSubstr("at least 16"));
  EXPECT_THAT(too_short.status().message(), Not(HasSubstr(short_token)));

  auto twice = TokenTable::Parse(
      absl::StrCat("tokens:\n  - {principal: a, token: ", kBillingToken,
                   "}\n  - {principal: b, token: ", kBillingToken, "}\n"));
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(twice.status().message(), HasSubstr("unique"));
  EXPECT_THAT(twice.status().message(), Not(HasSubstr(kBillingToken)));

  const std::string spaced = "has a space in it 0123456789";
  auto with_space = TokenTable::Parse(
      absl::StrCat("tokens:\n  - {principal: a, token: \"", spaced, "\"}\n"));
  ASSERT_FALSE(with_space.ok());
  EXPECT_THAT(with_space.status().message(), Not(HasSubstr(spaced)));

  auto any = TokenTable::Parse(absl::StrCat(
      "tokens:\n  - {principal: \"*\", token: ", kBillingToken, "}\n"));
  ASSERT_FALSE(any.ok());
  EXPECT_THAT(any.status().message(), HasSubstr("reserved"));

  auto no_principal = TokenTable::Parse(
      absl::StrCat("tokens:\n  - {token: ", kBillingToken, "}\n"));
  ASSERT_FALSE(no_principal.ok());
  EXPECT_THAT(no_principal.status().message(), HasSubstr("'principal'"));

  auto typo = TokenTable::Parse(
      absl::StrCat("tokens:\n  - {principal: a, tokn: ", kBillingToken, "}\n"));
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(typo.status().message(),
              HasSubstr("tokens[0] (line 2): unknown field of 4 characters"));
  EXPECT_THAT(typo.status().message(), Not(HasSubstr(kBillingToken)));

  // The mistake the issue found: the token written as a key (here as the
  // key of the principal's entry). The error names the place, never the
  // secret.
  auto token_as_key = TokenTable::Parse(
      absl::StrCat("tokens:\n  - {principal: a, ", kBillingToken, ": a}\n"));
  ASSERT_FALSE(token_as_key.ok());
  EXPECT_THAT(token_as_key.status().message(), HasSubstr("line 2"));
  EXPECT_THAT(token_as_key.status().message(), Not(HasSubstr(kBillingToken)));
  auto token_as_map_key = TokenTable::Parse(
      absl::StrCat("tokens:\n  - principal: a\n    ", kBillingToken, ":\n"));
  ASSERT_FALSE(token_as_map_key.ok());
  EXPECT_THAT(token_as_map_key.status().message(),
              Not(HasSubstr(kBillingToken)));

  EXPECT_FALSE(TokenTable::Parse("tokens: {a: b}\n").ok());
  EXPECT_FALSE(TokenTable::Parse("other: []\n").ok());
  EXPECT_FALSE(TokenTable::Parse("tokens: [\n").ok());
}

// ---------------------------------------------------------------------------
// Credentials of a call

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

TEST(BearerTokenTest, ReadsTheAuthorizationEntry) {
  EXPECT_EQ(*BearerToken(Metadata{}), std::nullopt);
  EXPECT_EQ(*BearerToken(Metadata{{"x-other", "Bearer abc"}}), std::nullopt);
  EXPECT_EQ(*BearerToken(Metadata{{"authorization", "Bearer abc"}}), "abc");
  EXPECT_EQ(*BearerToken(Metadata{{"authorization", "bearer  abc "}}), "abc");
  auto basic = BearerToken(Metadata{{"authorization", "Basic dXNlcjpwYXNz"}});
  ASSERT_FALSE(basic.ok());
  EXPECT_EQ(basic.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(basic.status().message(), Not(HasSubstr("dXNlcjpwYXNz")));
  EXPECT_FALSE(BearerToken(Metadata{{"authorization", "Bearer "}}).ok());
  EXPECT_FALSE(BearerToken(Metadata{{"authorization", "Bearer a"},
                                    {"authorization", "Bearer b"}})
                   .ok());
}

// ---------------------------------------------------------------------------
// The Authorizer over files, through a real gRPC server.

std::string TempDir() {
  static int counter = 0;
  std::string dir = absl::StrCat(::testing::TempDir(), "/auth_test_", getpid(),
                                 "_", counter++);
  EXPECT_EQ(
      std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()),
      0);
  return dir;
}

void WriteFile(const std::string& path, const std::string& text) {
  // Replaced by a rename, the way deployments update such files: a reader
  // never sees half a file.
  const std::string temp = path + ".tmp";
  std::ofstream(temp) << text;
  ASSERT_EQ(std::rename(temp.c_str(), path.c_str()), 0);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Tokens(absl::string_view billing_token) {
  return absl::StrCat(
      "tokens:\n  - {principal: billing, token: ", billing_token,
      "}\n  - {principal: ops, token: ", kOpsToken, "}\n");
}

// GetConfig answers the caller's principal as the entry's key, after the
// check of config_read on the requested key.
class WhoAmIService final : public v1::ConfigService::CallbackService {
 public:
  explicit WhoAmIService(const Authorizer* authorizer)
      : authorizer_(authorizer) {}
  grpc::ServerUnaryReactor* GetConfig(
      grpc::CallbackServerContext* context, const v1::GetConfigRequest* request,
      v1::GetConfigResponse* response) override {
    auto* reactor = context->DefaultReactor();
    auto caller = Authorize(authorizer_, *context, "GetConfig",
                            Action::kConfigRead, {request->key()});
    if (caller.ok()) response->mutable_entry()->set_key(caller->principal());
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }

 private:
  const Authorizer* authorizer_;
};

class TestServer {
 public:
  TestServer(const Authorizer* authorizer,
             std::shared_ptr<grpc::ServerCredentials> credentials)
      : service_(authorizer) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", std::move(credentials), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~TestServer() { server_->Shutdown(); }
  int port() const { return port_; }

 private:
  WhoAmIService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

grpc::Status WhoAmI(const std::shared_ptr<grpc::Channel>& channel,
                    const std::string& token, std::string* principal,
                    const std::string& key = "billing/x") {
  auto stub = v1::ConfigService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::GetConfigRequest request;
  request.set_key(key);
  v1::GetConfigResponse response;
  grpc::Status status = stub->GetConfig(&context, request, &response);
  *principal = response.entry().key();
  return status;
}

constexpr char kReadPolicy[] = R"(
principals:
  billing: {config_read: ["billing/**"]}
  "*": {config_read: ["shared/*"]}
)";

TEST(AuthorizerTest, AuthenticatesByTokenAndAuthorizesByPolicy) {
  const std::string dir = TempDir();
  WriteFile(dir + "/tokens.yaml", Tokens(kBillingToken));
  WriteFile(dir + "/policy.yaml", kReadPolicy);
  auto authorizer = Authorizer::Create(
      {dir + "/tokens.yaml", dir + "/policy.yaml", absl::ZeroDuration()});
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  EXPECT_THAT((*authorizer)->Describe(), HasSubstr("2 bearer tokens"));
  TestServer server(authorizer->get(), grpc::InsecureServerCredentials());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                     grpc::InsecureChannelCredentials());
  std::string principal;
  grpc::Status ok = WhoAmI(channel, kBillingToken, &principal);
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(principal, "billing");

  grpc::Status missing = WhoAmI(channel, "", &principal);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(missing.error_message(), HasSubstr("missing bearer token"));

  const std::string wrong = "not-a-known-token-0123456789";
  grpc::Status invalid = WhoAmI(channel, wrong, &principal);
  EXPECT_EQ(invalid.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(invalid.error_message(), HasSubstr("invalid bearer token"));
  EXPECT_THAT(invalid.error_message(), Not(HasSubstr(wrong)));

  grpc::Status denied = WhoAmI(channel, kOpsToken, &principal, "billing/x");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(),
              HasSubstr("'ops' may not config_read on 'billing/x'"));
  EXPECT_THAT(denied.error_message(), Not(HasSubstr(kOpsToken)));
  // ... but "*" grants ops what every principal may do.
  EXPECT_TRUE(WhoAmI(channel, kOpsToken, &principal, "shared/x").ok());
}

TEST(AuthorizerTest, TokensWithoutPolicyAllowEveryAuthenticatedCaller) {
  const std::string dir = TempDir();
  WriteFile(dir + "/tokens.yaml", Tokens(kBillingToken));
  auto authorizer =
      Authorizer::Create({dir + "/tokens.yaml", "", absl::ZeroDuration()});
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  TestServer server(authorizer->get(), grpc::InsecureServerCredentials());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                     grpc::InsecureChannelCredentials());
  std::string principal;
  EXPECT_TRUE(WhoAmI(channel, kOpsToken, &principal, "anything").ok());
  EXPECT_EQ(WhoAmI(channel, "", &principal).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(AuthorizerTest, NullAuthorizerIsAuthOff) {
  grpc::ServerContext unused;  // never consulted
  EXPECT_TRUE(
      Check(nullptr, unused, "GetConfig", Action::kConfigRead, {"x"}).ok());
  auto caller = Authenticate(nullptr, unused, "Elect");
  ASSERT_TRUE(caller.ok());
  EXPECT_TRUE(caller->Check(Action::kCampaign, {"x"}).ok());
  auto authorized =
      Authorize(nullptr, unused, "WatchConfig", Action::kConfigRead, {"x"});
  ASSERT_TRUE(authorized.ok());
  EXPECT_TRUE(authorized->Recheck(Action::kConfigRead, {"x"}).ok());
}

TEST(AuthorizerTest, BadFilesAreRefusedAtStartWithTheirName) {
  const std::string dir = TempDir();
  auto missing =
      Authorizer::Create({dir + "/nope.yaml", "", absl::ZeroDuration()});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr(dir + "/nope.yaml"));
  WriteFile(dir + "/policy.yaml", "principals:\n  a: {publsh: [x]}\n");
  auto bad =
      Authorizer::Create({"", dir + "/policy.yaml", absl::ZeroDuration()});
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("auth_policy_file " + dir + "/policy.yaml"));
  EXPECT_FALSE(Authorizer::Create({"", "", absl::ZeroDuration()}).ok());
}

TEST(AuthorizerTest, ReloadTakesNewFilesAndKeepsTheOldOnesOnError) {
  const std::string dir = TempDir();
  const std::string tokens = dir + "/tokens.yaml";
  const std::string policy = dir + "/policy.yaml";
  WriteFile(tokens, Tokens(kBillingToken));
  WriteFile(policy, kReadPolicy);
  auto authorizer = Authorizer::Create({tokens, policy, absl::ZeroDuration()});
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  TestServer server(authorizer->get(), grpc::InsecureServerCredentials());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                     grpc::InsecureChannelCredentials());
  std::string principal;
  const std::string rotated = "billing-rotated-token-000000";

  // A broken token file: refused, the old tokens stay.
  WriteFile(tokens, "tokens: [\n");
  EXPECT_FALSE((*authorizer)->Reload().ok());
  EXPECT_TRUE(WhoAmI(channel, kBillingToken, &principal).ok());

  // A good one: the old token is gone, the new one works.
  WriteFile(tokens, Tokens(rotated));
  ASSERT_TRUE((*authorizer)->Reload().ok());
  EXPECT_EQ(WhoAmI(channel, kBillingToken, &principal).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(WhoAmI(channel, rotated, &principal).ok());

  // The policy reloads too; a missing file is a failed reload.
  WriteFile(policy, "principals:\n  billing: {config_read: [\"other/*\"]}\n");
  ASSERT_TRUE((*authorizer)->Reload().ok());
  EXPECT_EQ(WhoAmI(channel, rotated, &principal).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  ASSERT_EQ(std::remove(policy.c_str()), 0);
  EXPECT_FALSE((*authorizer)->Reload().ok());
  EXPECT_TRUE(WhoAmI(channel, rotated, &principal, "other/x").ok());
}

TEST(AuthorizerTest, PollingNoticesAChangedFile) {
  const std::string dir = TempDir();
  const std::string tokens = dir + "/tokens.yaml";
  WriteFile(tokens, Tokens(kBillingToken));
  auto authorizer = Authorizer::Create({tokens, "", absl::Milliseconds(20)});
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  (*authorizer)->StartPolling();
  TestServer server(authorizer->get(), grpc::InsecureServerCredentials());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port()),
                                     grpc::InsecureChannelCredentials());
  const std::string rotated = "billing-rotated-token-111111";
  WriteFile(tokens, Tokens(rotated));
  std::string principal;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  bool accepted = false;
  while (!accepted && absl::Now() < deadline) {
    accepted = WhoAmI(channel, rotated, &principal).ok();
    if (!accepted) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(accepted);
  EXPECT_EQ(WhoAmI(channel, kBillingToken, &principal).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

// Mutual TLS: the verified client certificate's subject is the principal
// when the call has no bearer token.
class MutualTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir();
    const std::string script = absl::StrCat(
        "cd '", dir_, "' && {",
        " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
        " -nodes -keyout ca.key -out ca.crt -days 2 -subj '/CN=Test CA' &&",
        " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout server.key -out server.csr -subj '/CN=localhost' &&",
        " printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > server.ext &&",
        " openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key"
        " -CAcreateserial -out server.crt -days 2 -extfile server.ext &&",
        " openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout client.key -out client.csr -subj '/O=Acme/CN=billing' &&",
        " openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key"
        " -CAcreateserial -out client.crt -days 2; } >openssl.log 2>&1");
    ASSERT_EQ(std::system(script.c_str()), 0) << ReadAll(dir_ + "/openssl.log");
  }

  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() {
    grpc::SslServerCredentialsOptions options(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    options.pem_root_certs = ReadAll(dir_ + "/ca.crt");
    options.pem_key_cert_pairs.push_back(
        {ReadAll(dir_ + "/server.key"), ReadAll(dir_ + "/server.crt")});
    return grpc::SslServerCredentials(options);
  }

  std::shared_ptr<grpc::Channel> Channel(int port) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ReadAll(dir_ + "/ca.crt");
    options.pem_private_key = ReadAll(dir_ + "/client.key");
    options.pem_cert_chain = ReadAll(dir_ + "/client.crt");
    return grpc::CreateChannel(absl::StrCat("localhost:", port),
                               grpc::SslCredentials(options));
  }

  std::string dir_;
};

TEST_F(MutualTlsTest, CertificateSubjectIsThePrincipal) {
  WriteFile(dir_ + "/policy.yaml",
            "principals:\n  \"CN=billing,O=Acme\": {config_read: "
            "[\"billing/**\"]}\n");
  auto authorizer =
      Authorizer::Create({"", dir_ + "/policy.yaml", absl::ZeroDuration()});
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  TestServer server(authorizer->get(), ServerCredentials());
  ASSERT_NE(server.port(), 0);
  auto channel = Channel(server.port());
  std::string principal;
  grpc::Status ok = WhoAmI(channel, "", &principal);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(principal, "CN=billing,O=Acme");
  grpc::Status denied = WhoAmI(channel, "", &principal, "ops/x");
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(),
              HasSubstr("'CN=billing,O=Acme' may not config_read on 'ops/x'"));
  // Without a tokens file, a bearer token is refused, not ignored.
  EXPECT_EQ(WhoAmI(channel, kOpsToken, &principal).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(MutualTlsTest, ABearerTokenWinsOverTheCertificate) {
  WriteFile(dir_ + "/tokens.yaml", Tokens(kBillingToken));
  auto authorizer =
      Authorizer::Create({dir_ + "/tokens.yaml", "", absl::ZeroDuration()});
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  TestServer server(authorizer->get(), ServerCredentials());
  auto channel = Channel(server.port());
  std::string principal;
  ASSERT_TRUE(WhoAmI(channel, kOpsToken, &principal).ok());
  EXPECT_EQ(principal, "ops");
  ASSERT_TRUE(WhoAmI(channel, "", &principal).ok());
  EXPECT_EQ(principal, "CN=billing,O=Acme");
  // An invalid token is refused even with a good certificate.
  EXPECT_EQ(
      WhoAmI(channel, "wrong-token-0000000000000", &principal).error_code(),
      grpc::StatusCode::UNAUTHENTICATED);
}

}  // namespace
}  // namespace warren::auth
