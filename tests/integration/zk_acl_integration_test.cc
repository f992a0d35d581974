// ZooKeeper digest authentication and ACLs, end to end: the real warrend
// started with zk_auth_file creates config keys and election candidates, and
// plain ZooKeeper C client sessions (the "other clients") try to tamper with
// them: without the digest (or with a wrong password) they can neither
// change, delete, add children to nor read them; with it they can. Warren
// keeps its identity across a session expiry, and a warrend with a wrong
// password against another identity's nodes stops with a clear error
// instead of touching them.
#include <signal.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include <atomic>
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
#include "server/zk/zk_acl.h"
#include "tests/integration/election_clients.h"
#include "tests/integration/harness.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using grpc::health::v1::HealthCheckResponse;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kUser[] = "warren-acl";

std::atomic<int> counter{0};

// A password no other test run shares.
std::string FreshPassword() {
  return absl::StrCat("pw-", getpid(), "-", counter++, ":with-colon");
}

// A credentials file as an operator writes it (with a final newline).
std::string WriteAuthFile(const std::string& password) {
  const std::string dir = MakeTempDir("zk-auth");
  const std::string path = dir + "/zk-auth";
  std::ofstream(path) << kUser << ":" << password << "\n";
  return path;
}

std::string UniqueRoot(const std::string& tag) {
  return absl::StrCat("/warren-acl-test-", getpid(), "-", tag, "-", counter++);
}

// A plain ZooKeeper C client session: "another client" of the ensemble,
// optionally authenticated with digest credentials.
class RawZk {
 public:
  // Connects, and authenticates when `credentials` ("user:password") is not
  // empty; answers nullptr (after adding a failure) if it cannot.
  static std::unique_ptr<RawZk> Connect(const std::string& connect,
                                        const std::string& credentials = "") {
    std::unique_ptr<RawZk> raw(new RawZk);
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    raw->zh_ = zookeeper_init(connect.c_str(), &RawZk::Watcher, 20000, nullptr,
                              raw.get(), 0);
    if (raw->zh_ == nullptr) {
      ADD_FAILURE() << "zookeeper_init failed";
      return nullptr;
    }
    if (!WaitFor([&] { return raw->connected_.load(); }, absl::Seconds(30))) {
      ADD_FAILURE() << "no ZooKeeper session to " << connect;
      return nullptr;
    }
    if (!credentials.empty()) {
      const int rc = zoo_add_auth(
          raw->zh_, "digest", credentials.data(),
          static_cast<int>(credentials.size()),
          [](int result, const void* data) {
            static_cast<RawZk*>(const_cast<void*>(data))
                ->auth_rc_.store(result);
          },
          raw.get());
      if (rc != ZOK ||
          !WaitFor([&] { return raw->auth_rc_.load() != kPending; },
                   absl::Seconds(30)) ||
          raw->auth_rc_.load() != ZOK) {
        ADD_FAILURE() << "digest authentication failed: " << zerror(rc);
        return nullptr;
      }
    }
    return raw;
  }
  ~RawZk() {
    if (zh_ != nullptr) zookeeper_close(zh_);
  }

  int Get(const std::string& path, std::string* value = nullptr) {
    std::string buffer(1 << 16, '\0');
    int len = static_cast<int>(buffer.size());
    struct Stat stat;
    const int rc = zoo_get(zh_, path.c_str(), 0, buffer.data(), &len, &stat);
    if (rc == ZOK && value != nullptr)
      value->assign(buffer.data(), len < 0 ? 0 : len);
    return rc;
  }
  int Set(const std::string& path, const std::string& value) {
    return zoo_set(zh_, path.c_str(), value.data(),
                   static_cast<int>(value.size()), -1);
  }
  int Create(const std::string& path, const std::string& value = "") {
    return zoo_create(zh_, path.c_str(), value.data(),
                      static_cast<int>(value.size()), &ZOO_OPEN_ACL_UNSAFE,
                      ZOO_PERSISTENT, nullptr, 0);
  }
  int Delete(const std::string& path) {
    return zoo_delete(zh_, path.c_str(), -1);
  }
  int Children(const std::string& path, std::vector<std::string>* names) {
    struct String_vector strings = {0, nullptr};
    const int rc = zoo_get_children(zh_, path.c_str(), 0, &strings);
    if (rc == ZOK && names != nullptr) {
      names->clear();
      for (int i = 0; i < strings.count; ++i) names->push_back(strings.data[i]);
    }
    deallocate_String_vector(&strings);
    return rc;
  }
  int Acl(const std::string& path, std::vector<zk::AclEntry>* acl) {
    struct ACL_vector vector = {0, nullptr};
    struct Stat stat;
    const int rc = zoo_get_acl(zh_, path.c_str(), &vector, &stat);
    if (rc == ZOK) {
      acl->clear();
      for (int i = 0; i < vector.count; ++i) {
        acl->push_back({vector.data[i].id.scheme, vector.data[i].id.id,
                        vector.data[i].perms});
      }
    }
    deallocate_ACL_vector(&vector);
    return rc;
  }
  // `path` and every node below it, parents first.
  std::vector<std::string> Tree(const std::string& path) {
    std::vector<std::string> out = {path};
    for (size_t i = 0; i < out.size(); ++i) {
      std::vector<std::string> names;
      if (Children(out[i], &names) != ZOK) continue;
      for (const auto& name : names) out.push_back(out[i] + "/" + name);
    }
    return out;
  }
  // Best effort: the tree below and at `path`, children first.
  void DeleteTree(const std::string& path) {
    std::vector<std::string> tree = Tree(path);
    for (auto it = tree.rbegin(); it != tree.rend(); ++it) Delete(*it);
  }

 private:
  static constexpr int kPending = 1 << 30;
  RawZk() = default;
  static void Watcher(zhandle_t*, int type, int state, const char*,
                      void* context) {
    if (type == ZOO_SESSION_EVENT && state == ZOO_CONNECTED_STATE) {
      static_cast<RawZk*>(context)->connected_.store(true);
    }
  }

  zhandle_t* zh_ = nullptr;
  std::atomic<bool> connected_{false};
  std::atomic<int> auth_rc_{kPending};
};

grpc::Status Put(v1::ConfigService::Stub& stub, const std::string& key,
                 const std::string& value) {
  v1::PutConfigRequest put;
  put.set_key(key);
  put.set_value(value);
  v1::PutConfigResponse response;
  return stub.PutConfig(CallContext().get(), put, &response);
}

absl::StatusOr<std::string> GetValue(v1::ConfigService::Stub& stub,
                                     const std::string& key) {
  v1::GetConfigRequest get;
  get.set_key(key);
  get.set_consistent(true);
  v1::GetConfigResponse response;
  grpc::Status status = stub.GetConfig(CallContext().get(), get, &response);
  if (!status.ok()) return absl::UnknownError(status.error_message());
  return response.entry().value();
}

// The arguments WarrendProcess::Start gives, for runs that must exit.
std::vector<std::string> BaseArgs(const std::string& root,
                                  const std::string& zk_connect) {
  return {"--listen=127.0.0.1:0",
          "--zk_connect=" + zk_connect,
          "--amqp_urls=" + TestEnv("WARREN_TEST_AMQP_URL"),
          "--root=" + root,
          "--backend_wait=60s",
          "--log_level=debug"};
}

// Every node under `root`, with the key and the candidate nodes found.
struct WarrenNodes {
  std::vector<std::string> all;
  std::string key;
  std::string candidate;
};

WarrenNodes FindNodes(RawZk& admin, const std::string& root,
                      const std::string& key_path,
                      const std::string& election_path) {
  WarrenNodes nodes;
  nodes.all = admin.Tree(root);
  for (const auto& path : nodes.all) {
    if (path == key_path) nodes.key = path;
    if (absl::StartsWith(path, election_path + "/c_")) nodes.candidate = path;
  }
  return nodes;
}

class ZkAclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    zk_connect_ = TestEnv("WARREN_TEST_ZK");
    password_ = FreshPassword();
    credentials_ = absl::StrCat(kUser, ":", password_);
    auth_file_ = WriteAuthFile(password_);
    digest_id_ = zk::DigestId({kUser, password_});
  }

  std::string zk_connect_;
  std::string password_;
  std::string credentials_;
  std::string auth_file_;
  std::string digest_id_;
};

TEST_F(ZkAclTest, OtherClientsCannotTamperWithOrReadWarrensNodes) {
  const std::string root = UniqueRoot("protected");
  auto warrend =
      WarrendProcess::Start({"--zk_auth_file=" + auth_file_, "--root=" + root});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  EXPECT_THAT((*warrend)->Log(), HasSubstr("authenticating as digest user"));
  EXPECT_THAT((*warrend)->Log(), Not(HasSubstr(password_)));
  auto config = v1::ConfigService::NewStub((*warrend)->channel());
  auto elections = v1::ElectionService::NewStub((*warrend)->channel());

  // A key with implicit parents (one multi-operation) and a candidacy with
  // its election containers.
  ASSERT_TRUE(Put(*config, "app/db/url", "postgres://user:secret@db/").ok());
  TestCandidate candidate(*elections, MakeCampaign("jobs/reindex", "c1"));
  ASSERT_GE(candidate.WaitElected(), 0);

  auto admin = RawZk::Connect(zk_connect_, credentials_);
  ASSERT_NE(admin, nullptr);
  const std::string key_path = root + "/config/app/db/url";
  const std::string election_path = root + "/elections/jobs/reindex";
  const WarrenNodes nodes = FindNodes(*admin, root, key_path, election_path);
  ASSERT_EQ(nodes.key, key_path);
  ASSERT_FALSE(nodes.candidate.empty());
  EXPECT_THAT(nodes.all,
              ::testing::IsSupersetOf(
                  {root, root + "/config", root + "/config/app",
                   root + "/config/app/db", key_path, root + "/elections",
                   root + "/elections/jobs", election_path, nodes.candidate}));

  // Every node carries exactly Warren's identity, with every permission.
  for (const std::string& path : nodes.all) {
    std::vector<zk::AclEntry> acl;
    ASSERT_EQ(admin->Acl(path, &acl), ZOK) << path;
    EXPECT_THAT(acl,
                ElementsAre(zk::AclEntry{"digest", digest_id_, zk::kPermAll}))
        << path;
  }

  // Another client: unauthenticated, and authenticated with a wrong
  // password (which ZooKeeper accepts as a different identity).
  auto anonymous = RawZk::Connect(zk_connect_);
  auto impostor =
      RawZk::Connect(zk_connect_, absl::StrCat(kUser, ":not-", password_));
  ASSERT_NE(anonymous, nullptr);
  ASSERT_NE(impostor, nullptr);
  for (RawZk* other : {anonymous.get(), impostor.get()}) {
    for (const std::string& path : nodes.all) {
      std::string value;
      EXPECT_EQ(other->Get(path, &value), ZNOAUTH) << path;
      EXPECT_EQ(other->Children(path, nullptr), ZNOAUTH) << path;
      EXPECT_EQ(other->Set(path, "tampered"), ZNOAUTH) << path;
      EXPECT_EQ(other->Create(path + "/intruder"), ZNOAUTH) << path;
      // Deleting needs the parent's permission; the root's parent is not
      // Warren's (and the root is not empty).
      if (path != root) {
        EXPECT_EQ(other->Delete(path), ZNOAUTH) << path;
      }
      std::vector<zk::AclEntry> acl;
      EXPECT_EQ(other->Acl(path, &acl), ZNOAUTH) << path;
    }
  }

  // Nothing changed: the leader still leads, the key keeps its value.
  EXPECT_EQ(
      candidate.WaitFor([](const v1::ElectResponse& r) { return r.has_lost(); },
                        0, absl::ZeroDuration()),
      -1);
  auto value = GetValue(*config, "app/db/url");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "postgres://user:secret@db/");

  // The holder of the digest (an operator with zkCli) can do everything.
  std::string read;
  EXPECT_EQ(admin->Get(key_path, &read), ZOK);
  EXPECT_EQ(read, "postgres://user:secret@db/");
  EXPECT_EQ(admin->Set(key_path, "postgres://rotated@db/"), ZOK);
  EXPECT_EQ(admin->Create(key_path + "/note"), ZOK);
  EXPECT_EQ(admin->Delete(key_path + "/note"), ZOK);
  value = GetValue(*config, "app/db/url");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "postgres://rotated@db/");

  candidate.Cancel();
  (*warrend)->Terminate();
  admin->DeleteTree(root);
}

TEST_F(ZkAclTest, WorldReadLetsOthersReadButNeverChange) {
  const std::string root = UniqueRoot("world-read");
  auto warrend =
      WarrendProcess::Start({"--zk_auth_file=" + auth_file_,
                             "--zk_acl_world_read", "--root=" + root});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto config = v1::ConfigService::NewStub((*warrend)->channel());
  ASSERT_TRUE(Put(*config, "public/flag", "on").ok());

  const std::string key_path = root + "/config/public/flag";
  auto anonymous = RawZk::Connect(zk_connect_);
  ASSERT_NE(anonymous, nullptr);
  std::string value;
  EXPECT_EQ(anonymous->Get(key_path, &value), ZOK);
  EXPECT_EQ(value, "on");
  // ZooKeeper shows the digest only to identities with admin permission;
  // others see "user:x".
  std::vector<zk::AclEntry> acl;
  ASSERT_EQ(anonymous->Acl(key_path, &acl), ZOK);
  EXPECT_THAT(acl, ElementsAre(zk::AclEntry{"digest", absl::StrCat(kUser, ":x"),
                                            zk::kPermAll},
                               zk::AclEntry{"world", "anyone", zk::kPermRead}));
  auto admin = RawZk::Connect(zk_connect_, credentials_);
  ASSERT_NE(admin, nullptr);
  ASSERT_EQ(admin->Acl(key_path, &acl), ZOK);
  EXPECT_THAT(acl, ElementsAre(zk::AclEntry{"digest", digest_id_, zk::kPermAll},
                               zk::AclEntry{"world", "anyone", zk::kPermRead}));
  EXPECT_EQ(anonymous->Set(key_path, "off"), ZNOAUTH);
  EXPECT_EQ(anonymous->Create(key_path + "/intruder"), ZNOAUTH);
  EXPECT_EQ(anonymous->Delete(key_path), ZNOAUTH);

  (*warrend)->Terminate();
  admin->DeleteTree(root);
}

// The new session after an expiry must authenticate again before it works:
// without that, every write under the protected root would be refused.
TEST_F(ZkAclTest, IdentitySurvivesSessionExpiry) {
  auto zk = ZooKeeperServer::Start();
  ASSERT_TRUE(zk.ok()) << zk.status();
  // The test server's tick is 1s: 2s is the shortest session it grants.
  auto warrend = WarrendProcess::Start(
      {"--zk_session_timeout=2s", "--zk_auth_file=" + auth_file_},
      (*zk)->connect());
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  const std::string root = (*warrend)->root();
  auto config = v1::ConfigService::NewStub((*warrend)->channel());
  auto elections = v1::ElectionService::NewStub((*warrend)->channel());
  PutConfigEventually(*config, "svc/key", "before");
  v1::Campaign rejoining = MakeCampaign("svc/leader", "c1");
  rejoining.set_rejoin_after_expiry(true);
  TestCandidate candidate(*elections, rejoining);
  ASSERT_GE(candidate.WaitElected(), 0);

  // Expire the session for certain: freeze warrend (the client) well past
  // the session timeout while ZooKeeper runs on (zk_fault_test's technique).
  (*warrend)->Signal(SIGSTOP);
  const absl::Time frozen = absl::Now();
  // Waiting for wall-clock time to pass is the point here, not a stand-in
  // for a condition.
  absl::SleepFor(frozen + absl::Seconds(6) - absl::Now());
  (*warrend)->Signal(SIGCONT);
  EXPECT_TRUE(WaitFor(
      [&] { return (*warrend)->Log().find("-> expired") != std::string::npos; },
      absl::Seconds(30)))
      << "the session did not expire: " << (*warrend)->Log();
  EXPECT_TRUE(WaitFor(
      [&] { return HealthOf(**warrend) == HealthCheckResponse::SERVING; },
      absl::Seconds(60)))
      << (*warrend)->Log();

  // The new session authenticated before serving (with the old identity's
  // nodes digest-only, an unauthenticated one would be refused below).
  const std::string log = (*warrend)->Log();
  size_t authenticated = 0;
  for (size_t at = log.find("zookeeper session authenticated as");
       at != std::string::npos;
       at = log.find("zookeeper session authenticated as", at + 1)) {
    ++authenticated;
  }
  EXPECT_GE(authenticated, 2u) << log;

  // The new session reads and writes the protected nodes, and campaigns.
  PutConfigEventually(*config, "svc/key", "after-expiry");
  PutConfigEventually(*config, "svc/new/key", "created-after-expiry");
  auto value = GetValue(*config, "svc/key");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "after-expiry");
  const int lost = candidate.WaitFor(
      [](const v1::ElectResponse& r) { return r.has_lost(); });
  ASSERT_GE(lost, 0);
  ASSERT_GE(candidate.WaitElected(lost + 1), 0) << (*warrend)->Log();

  // And what it created on the new session is protected like the rest.
  auto admin = RawZk::Connect((*zk)->connect(), credentials_);
  ASSERT_NE(admin, nullptr);
  const WarrenNodes nodes =
      FindNodes(*admin, root, root + "/config/svc/new/key",
                root + "/elections/svc/leader");
  ASSERT_FALSE(nodes.key.empty());
  ASSERT_FALSE(nodes.candidate.empty());
  for (const std::string& path :
       {nodes.key, root + "/config/svc/new", nodes.candidate}) {
    std::vector<zk::AclEntry> acl;
    ASSERT_EQ(admin->Acl(path, &acl), ZOK) << path;
    EXPECT_THAT(acl,
                ElementsAre(zk::AclEntry{"digest", digest_id_, zk::kPermAll}))
        << path;
  }
  auto anonymous = RawZk::Connect((*zk)->connect());
  ASSERT_NE(anonymous, nullptr);
  EXPECT_EQ(anonymous->Set(nodes.key, "tampered"), ZNOAUTH);
  candidate.Cancel();
}

// ZooKeeper rejects credentials outright (AUTH_FAILED) only when it cannot
// check them at all: here, a private server with its digest provider
// switched off (zkServer.sh passes SERVER_JVMFLAGS to the JVM; stack.sh
// runs it with this process's environment).
constexpr char kDigestOff[] =
    "-Dzookeeper.DigestAuthenticationProvider.enabled=false";

absl::Status RestartZooKeeper(ZooKeeperServer& zk, bool digest_enabled) {
  if (absl::Status stopped = zk.Stop(); !stopped.ok()) return stopped;
  if (!digest_enabled) setenv("SERVER_JVMFLAGS", kDigestOff, 1);
  absl::Status started = zk.Restart();
  unsetenv("SERVER_JVMFLAGS");
  return started;
}

TEST_F(ZkAclTest, RejectedCredentialsStopStartUpAndMeanNotServing) {
  setenv("SERVER_JVMFLAGS", kDigestOff, 1);
  auto zk = ZooKeeperServer::Start();
  unsetenv("SERVER_JVMFLAGS");
  ASSERT_TRUE(zk.ok()) << zk.status();

  // At start-up: a clear error, at once (not after backend_wait).
  std::vector<std::string> args =
      BaseArgs(UniqueRoot("rejected"), (*zk)->connect());
  args.push_back("--zk_auth_file=" + auth_file_);
  ExitResult result = RunWarrendToExit(args);
  EXPECT_EQ(result.code, 1) << result.stderr_text;
  EXPECT_THAT(result.stderr_text,
              HasSubstr("rejected the credentials of digest user '" +
                        std::string(kUser) + "'"));
  EXPECT_THAT(result.stderr_text, HasSubstr("AUTH_FAILED"));
  EXPECT_THAT(result.stderr_text, Not(HasSubstr(password_)));

  // While running: NOT_SERVING for as long as the credentials are refused,
  // SERVING again once they are accepted.
  ASSERT_TRUE(RestartZooKeeper(**zk, /*digest_enabled=*/true).ok());
  auto warrend =
      WarrendProcess::Start({"--zk_auth_file=" + auth_file_}, (*zk)->connect());
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto config = v1::ConfigService::NewStub((*warrend)->channel());
  PutConfigEventually(*config, "k", "before");

  ASSERT_TRUE(RestartZooKeeper(**zk, /*digest_enabled=*/false).ok());
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains((*warrend)->Log(), "rejected the credentials");
      },
      absl::Seconds(60)))
      << (*warrend)->Log();
  EXPECT_EQ(HealthOf(**warrend), HealthCheckResponse::NOT_SERVING);
  grpc::Status refused = Put(*config, "k", "while-rejected");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.error_message();

  ASSERT_TRUE(RestartZooKeeper(**zk, /*digest_enabled=*/true).ok());
  EXPECT_TRUE(WaitFor(
      [&] { return HealthOf(**warrend) == HealthCheckResponse::SERVING; },
      absl::Seconds(60)))
      << (*warrend)->Log();
  PutConfigEventually(*config, "k", "after");
  auto value = GetValue(*config, "k");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "after");
}

// A wrong password is simply another identity to ZooKeeper: such a warrend
// must stop at start-up with an error that says so, not run and fail (or,
// worse, succeed) call by call.
TEST_F(ZkAclTest, WrongPasswordStopsAtStartUpAndTouchesNothing) {
  const std::string root = UniqueRoot("owned");
  auto owner =
      WarrendProcess::Start({"--zk_auth_file=" + auth_file_, "--root=" + root});
  ASSERT_TRUE(owner.ok()) << owner.status();
  auto config = v1::ConfigService::NewStub((*owner)->channel());
  ASSERT_TRUE(Put(*config, "owned/key", "original").ok());

  const std::string wrong = FreshPassword();
  std::vector<std::string> args = BaseArgs(root, zk_connect_);
  args.push_back("--zk_auth_file=" + WriteAuthFile(wrong));
  ExitResult result = RunWarrendToExit(args);
  EXPECT_EQ(result.code, 1) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("cannot start"));
  EXPECT_THAT(result.stderr_text, HasSubstr("another ZooKeeper identity"));
  EXPECT_THAT(result.stderr_text, HasSubstr("zk_auth_file"));
  EXPECT_THAT(result.stderr_text, Not(HasSubstr(wrong)));

  // Without credentials at all: the same, and it says to set them.
  result = RunWarrendToExit(BaseArgs(root, zk_connect_));
  EXPECT_EQ(result.code, 1) << result.stderr_text;
  EXPECT_THAT(result.stderr_text, HasSubstr("set zk_auth_file"));

  auto value = GetValue(*config, "owned/key");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "original");
  (*owner)->Terminate();
  auto admin = RawZk::Connect(zk_connect_, credentials_);
  ASSERT_NE(admin, nullptr);
  admin->DeleteTree(root);
}

// Without zk_auth_file nodes are open, and warrend says so. Switching
// credentials on later keeps working on the old open nodes (they are left
// as they are, with a warning) and protects every node created from then on.
TEST_F(ZkAclTest, UnprotectedUntilCredentialsAreSetThenNewNodesAreProtected) {
  const std::string root = UniqueRoot("upgrade");
  auto open = WarrendProcess::Start({"--root=" + root});
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_THAT((*open)->Log(), HasSubstr("unprotected"));
  auto config = v1::ConfigService::NewStub((*open)->channel());
  ASSERT_TRUE(Put(*config, "old/key", "v1").ok());
  ASSERT_EQ((*open)->Terminate(), 0);

  auto protected_warrend =
      WarrendProcess::Start({"--root=" + root, "--zk_auth_file=" + auth_file_});
  ASSERT_TRUE(protected_warrend.ok()) << protected_warrend.status();
  EXPECT_THAT((*protected_warrend)->Log(), HasSubstr("ZooKeeper node " + root +
                                                     " lets every ZooKeeper "
                                                     "client 'cdrwa'"));
  config = v1::ConfigService::NewStub((*protected_warrend)->channel());
  ASSERT_TRUE(Put(*config, "old/key", "v2").ok());
  ASSERT_TRUE(Put(*config, "new/key", "v1").ok());

  auto anonymous = RawZk::Connect(zk_connect_);
  ASSERT_NE(anonymous, nullptr);
  std::string value;
  EXPECT_EQ(anonymous->Get(root + "/config/old/key", &value), ZOK);
  EXPECT_EQ(value, "v2");
  EXPECT_EQ(anonymous->Get(root + "/config/new/key", &value), ZNOAUTH);
  EXPECT_EQ(anonymous->Set(root + "/config/new/key", "x"), ZNOAUTH);
  EXPECT_EQ(anonymous->Create(root + "/config/new/intruder"), ZNOAUTH);

  (*protected_warrend)->Terminate();
  auto admin = RawZk::Connect(zk_connect_, credentials_);
  ASSERT_NE(admin, nullptr);
  admin->DeleteTree(root);
}

}  // namespace
}  // namespace warren::testing
