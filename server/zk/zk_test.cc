// Unit tests of the ZooKeeper ACL component: digest ids as ZooKeeper computes
// them, the credentials file, the ACL Warren gives its nodes, and the
// start-up access check (against the in-memory fake).
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/zk/zk_acl.h"
#include "server/zk/zk_client.h"
#include "tests/fakes/fake_zk.h"

namespace warren::zk {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = std::string(::testing::TempDir()) + "/" + name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// The expected ids were printed by ZooKeeper 3.8's own implementation:
//   java -cp zookeeper.jar:zookeeper-jute.jar:slf4j-api.jar
//     org.apache.zookeeper.server.auth.DigestAuthenticationProvider super:test
TEST(DigestIdTest, MatchesZooKeepersDigestAuthenticationProvider) {
  EXPECT_EQ(DigestId({"super", "test"}), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
  // ZooKeeper splits at the first ':' only: the rest is the password.
  EXPECT_EQ(DigestId({"warren", "s3cret:with:colons"}),
            "warren:GCOffjwRLg7Ivkeg4qUVpl93WmQ=");
}

TEST(ParseDigestCredentialsTest, OneLineUserColonPassword) {
  auto parsed = ParseDigestCredentials("warren:s3cret:with:colons\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->user, "warren");
  EXPECT_EQ(parsed->password, "s3cret:with:colons");
  // Windows line ends too; inner spaces belong to the password.
  parsed = ParseDigestCredentials("warren: pass word \r\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->password, " pass word ");
}

TEST(ParseDigestCredentialsTest, RejectsMalformedTextWithoutEchoingIt) {
  for (const char* text :
       {"", "\n", "no-colon-secret", ":secret", "warren:", "warren:\n",
        "war ren:secret", "warren:secret\nsecond:line"}) {
    auto parsed = ParseDigestCredentials(text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << text << "'";
    EXPECT_THAT(std::string(parsed.status().message()),
                Not(HasSubstr("secret")));
  }
}

TEST(ReadDigestCredentialsFileTest, NamesTheFileNeverThePassword) {
  const std::string good = WriteTemp("zk-good", "warren:s3cret\n");
  auto read = ReadDigestCredentialsFile(good);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->user, "warren");
  EXPECT_EQ(read->password, "s3cret");

  const std::string bad = WriteTemp("zk-bad", "s3cret-without-user\n");
  read = ReadDigestCredentialsFile(bad);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(read.status().message()), HasSubstr(bad));
  EXPECT_THAT(std::string(read.status().message()), Not(HasSubstr("s3cret")));

  read = ReadDigestCredentialsFile(good + ".missing");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(read.status().message()), HasSubstr(".missing"));
}

TEST(AclPolicyTest, WithoutCredentialsNodesAreOpen) {
  AclPolicy open;
  EXPECT_FALSE(open.authenticated());
  EXPECT_THAT(open.node_acl(),
              ElementsAre(AclEntry{"world", "anyone", kPermAll}));
  EXPECT_EQ(AclString(open.node_acl()), "world:anyone:cdrwa");
}

TEST(AclPolicyTest, WithCredentialsNodesGrantOnlyThatIdentity) {
  AclPolicy policy({"super", "test"}, /*world_read=*/false);
  EXPECT_TRUE(policy.authenticated());
  EXPECT_THAT(policy.node_acl(),
              ElementsAre(AclEntry{
                  "digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=", kPermAll}));
  AclPolicy readable({"super", "test"}, /*world_read=*/true);
  EXPECT_EQ(AclString(readable.node_acl()),
            "digest:super:D/InIHSb7yEEbrWz8b9l71RjZJU=:cdrwa,"
            "world:anyone:r");
}

TEST(AclPolicyTest, PermsOnCountsOwnDigestAndWorldOnly) {
  AclPolicy me({"warren", "right"}, false);
  AclPolicy impostor({"warren", "wrong"}, false);
  AclPolicy nobody;
  const std::vector<AclEntry> mine = me.node_acl();
  EXPECT_EQ(me.PermsOn(mine), kPermAll);
  EXPECT_EQ(impostor.PermsOn(mine), 0);
  EXPECT_EQ(nobody.PermsOn(mine), 0);
  const std::vector<AclEntry> shared = {mine[0],
                                        {"world", "anyone", kPermRead}};
  EXPECT_EQ(impostor.PermsOn(shared), kPermRead);
  EXPECT_EQ(me.PermsOn(shared), kPermAll);
}

TEST(AclPolicyTest, DescribeShowsNeitherPasswordNorHash) {
  AclPolicy policy({"super", "test"}, true);
  const std::string text = policy.Describe();
  EXPECT_THAT(text, HasSubstr("super"));
  EXPECT_THAT(text, HasSubstr("world:anyone:r"));
  EXPECT_THAT(text, Not(HasSubstr("test")));
  EXPECT_THAT(text, Not(HasSubstr("D/InIHSb7yEEbrWz8b9l71RjZJU=")));
}

// CheckAccess blocks on the client's answer; the fake answers on the thread
// that runs it, so run that on a helper thread until the check returns.
absl::Status CheckOnFake(testing::FakeZk& fake, const std::string& path) {
  std::atomic<bool> done{false};
  std::thread pump([&] {
    while (!done.load()) {
      fake.RunUntilIdle();
      std::this_thread::yield();
    }
  });
  absl::Status status =
      CheckAccess(fake, path, absl::Now() + absl::Seconds(10));
  done.store(true);
  pump.join();
  return status;
}

TEST(CheckAccessTest, NodesThisIdentityCreatedPass) {
  testing::FakeZk fake;
  fake.SetAclPolicy(AclPolicy({"warren", "right"}, false));
  fake.Create("/w", "", CreateMode::kPersistent, [](auto) {});
  fake.RunUntilIdle();
  EXPECT_TRUE(CheckOnFake(fake, "/w").ok());
}

TEST(CheckAccessTest, OpenNodesPassWithAndWithoutCredentials) {
  testing::FakeZk fake;
  fake.ExternalPut("/w", "");
  EXPECT_TRUE(CheckOnFake(fake, "/w").ok());
  // Credentials added later: the old open node is usable (and left open,
  // with a warning).
  fake.SetAclPolicy(AclPolicy({"warren", "right"}, false));
  EXPECT_TRUE(CheckOnFake(fake, "/w").ok());
}

TEST(CheckAccessTest, AWrongPasswordIsAnotherIdentityAndIsToldSo) {
  testing::FakeZk fake;
  fake.ExternalPut("/w", "");
  fake.ExternalSetAcl("/w", AclPolicy({"warren", "right"}, false).node_acl());
  fake.SetAclPolicy(AclPolicy({"warren", "Xpass-42"}, false));
  absl::Status denied = CheckOnFake(fake, "/w");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("zk_auth_file"));
  EXPECT_THAT(std::string(denied.message()), HasSubstr("/w"));
  EXPECT_THAT(std::string(denied.message()), Not(HasSubstr("Xpass-42")));

  // World-readable: the ACL can be read, and the missing rights are named.
  fake.ExternalSetAcl("/w", AclPolicy({"warren", "right"}, true).node_acl());
  denied = CheckOnFake(fake, "/w");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("only 'r'"));
  EXPECT_THAT(std::string(denied.message()), HasSubstr("zk_auth_file"));
}

TEST(CheckAccessTest,
     UnauthenticatedClientOnAProtectedNodeIsToldToAuthenticate) {
  testing::FakeZk fake;
  fake.ExternalPut("/w", "");
  fake.ExternalSetAcl("/w", AclPolicy({"warren", "right"}, false).node_acl());
  absl::Status denied = CheckOnFake(fake, "/w");
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.message()), HasSubstr("set zk_auth_file"));
}

TEST(CheckAccessTest, MissingNodeIsNotFound) {
  testing::FakeZk fake;
  EXPECT_EQ(CheckOnFake(fake, "/missing").code(), absl::StatusCode::kNotFound);
}

// The fake keeps ACLs the way ZooKeeper does, so that recipes tested on it
// meet the same refusals as on a real ensemble.
TEST(FakeZkAclTest, ForeignNodesRefuseThisClient) {
  testing::FakeZk fake;
  fake.ExternalPut("/w", "v");
  fake.ExternalSetAcl("/w", AclPolicy({"warren", "right"}, false).node_acl());
  fake.SetAclPolicy(AclPolicy({"warren", "Xpass-42"}, false));
  std::vector<absl::Status> results;
  fake.Get("/w", nullptr,
           [&](absl::StatusOr<NodeData> r) { results.push_back(r.status()); });
  fake.Set("/w", "x", -1,
           [&](absl::StatusOr<NodeStat> r) { results.push_back(r.status()); });
  fake.Create(
      "/w/child", "", CreateMode::kPersistent,
      [&](absl::StatusOr<Created> r) { results.push_back(r.status()); });
  fake.GetChildren("/w", nullptr, [&](absl::StatusOr<Children> r) {
    results.push_back(r.status());
  });
  fake.RunUntilIdle();
  ASSERT_EQ(results.size(), 4u);
  for (const absl::Status& s : results) {
    EXPECT_EQ(ZkErrorOf(s), ZkError::kNoAuth) << s;
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  }
  // Exists is never checked, as in ZooKeeper.
  bool exists = false;
  fake.Exists("/w", nullptr, [&](absl::StatusOr<std::optional<NodeStat>> r) {
    exists = r.ok() && r->has_value();
  });
  fake.RunUntilIdle();
  EXPECT_TRUE(exists);
}

}  // namespace
}  // namespace warren::zk
