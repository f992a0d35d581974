// Unit tests of the config component's logic: the key space, the write
// planning of ConfigStore and the watch cache against an in-memory ZooKeeper
// (FakeZk). The RPCs themselves are
// tested end to end against a real ZooKeeper in tests/integration.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/config/config_limits.h"
#include "server/config/config_store.h"
#include "server/config/key_space.h"
#include "server/config/watch_cache.h"
#include "server/zk/request_size.h"
#include "tests/fakes/fake_zk.h"

namespace warren::config {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(KeySpaceTest, MapsKeysUnderTheConfigBase) {
  KeySpace keys("/warren");
  EXPECT_EQ(keys.base(), "/warren/config");
  EXPECT_EQ(keys.PathOf("app/db"), "/warren/config/app/db");
  EXPECT_EQ(keys.PathOf(""), "/warren/config");
  EXPECT_EQ(keys.KeyOf("/warren/config/app/db"), "app/db");
  EXPECT_EQ(keys.KeyOf("/warren/config"), "");
  EXPECT_EQ(keys.KeyOf("/warren/configx/a"), std::nullopt);
  EXPECT_EQ(keys.KeyOf("/warren"), std::nullopt);
  EXPECT_EQ(KeySpace("/warren/").base(), "/warren/config");
  EXPECT_EQ(KeySpace("/").base(), "/config");
}

TEST(PathLessTest, DescendantsComeBeforeLaterSiblings) {
  std::vector<std::string> keys = {"a-c",   "a/b", "a",  "a.x",
                                   "a/b/c", "b",   "a/a"};
  std::sort(keys.begin(), keys.end(), PathLess);
  EXPECT_THAT(keys, ElementsAre("a", "a/a", "a/b", "a/b/c", "a-c", "a.x", "b"));
  EXPECT_TRUE(IsSelfOrDescendant("a/b", "a"));
  EXPECT_TRUE(IsSelfOrDescendant("a", "a"));
  EXPECT_FALSE(IsSelfOrDescendant("ab", "a"));
  EXPECT_TRUE(IsSelfOrDescendant("x", ""));
}

// The sizes jute gives these requests, counted by hand (each was also sent
// to a real ZooKeeper at its limit: tests/security/oversized_value_test).
TEST(RequestSizeTest, CountsEveryByteOfTheRequest) {
  const std::vector<zk::AclEntry> open = {{"world", "anyone", zk::kPermAll}};
  // header 8 + path (4+2) + data (4+3) + version 4
  EXPECT_EQ(zk::RequestBytes(zk::Op::Kind::kSetData, 2, 3, open), 25u);
  // header 8 + path 6 + data 7 + acl (4 + 4+(4+5)+(4+6)) + flags 4
  EXPECT_EQ(zk::RequestBytes(zk::Op::Kind::kCreate, 2, 3, open), 52u);
  // header 8 + (9 + path 6 + data 7 + acl 27 + flags 4) + end 9
  EXPECT_EQ(zk::MultiRequestBytes({zk::Op::Create("/a", "xyz")}, open), 70u);
  // The chroot is part of every path.
  EXPECT_EQ(zk::MultiRequestBytes({zk::Op::Create("/a", "xyz")}, open, 5), 75u);
  EXPECT_EQ(zk::ChrootOf("h1:2181,h2:2181/apps/warren"), "/apps/warren");
  EXPECT_EQ(zk::ChrootOf("h1:2181"), "");
  EXPECT_EQ(zk::ChrootOf("h1:2181/"), "");
}

TEST(ConfigLimitsTest, PutBoundCountsEveryMissingParent) {
  const KeySpace keys("/warren");
  const zk::AclPolicy open_policy;
  const RequestLimits limits{&keys, &open_policy.node_acl(), 0,
                             zk::kStockMaxRequestBytes};
  const auto& acl = open_policy.node_acl();
  EXPECT_EQ(
      PutRequestBound(limits, "a", 10),
      zk::MultiRequestBytes({zk::Op::Create("/warren/config/a", "")}, acl) +
          10);
  EXPECT_EQ(PutRequestBound(limits, "a/b/c", 10),
            zk::MultiRequestBytes({zk::Op::Create("/warren/config/a", ""),
                                   zk::Op::Create("/warren/config/a/b", ""),
                                   zk::Op::Create("/warren/config/a/b/c", "")},
                                  acl) +
                10);
}

TEST(ConfigLimitsTest, AValueTheEnsembleWouldRefuseFailsNamingBothLimits) {
  const KeySpace keys("/warren");
  const zk::AclPolicy open_policy;
  const RequestLimits limits{&keys, &open_policy.node_acl(), 0,
                             zk::kStockMaxRequestBytes};
  const size_t fits =
      zk::kStockMaxRequestBytes - PutRequestBound(limits, "app/key", 0);
  EXPECT_TRUE(CheckPutFits(limits, "app/key", fits, fits).ok());
  const absl::Status over = CheckPutFits(limits, "app/key", fits + 1, fits + 1);
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(over.message(), HasSubstr("value is"));
  EXPECT_THAT(over.message(), HasSubstr("zk_max_request_bytes (1048575)"));
  EXPECT_THAT(over.message(),
              HasSubstr(absl::StrCat("max_config_value_bytes is ", fits + 1)));
}

TEST(ConfigLimitsTest, TheDefaultValueLimitFitsAStockEnsemble) {
  const KeySpace keys("/warren");
  const zk::AclPolicy open_policy;
  const zk::AclPolicy digest_policy(
      zk::DigestCredentials{"warren-service-user", "secret"},
      /*world_read=*/true);
  for (const zk::AclPolicy* policy : {&open_policy, &digest_policy}) {
    const RequestLimits limits{&keys, &policy->node_acl(),
                               zk::ChrootOf("zk:2181/some/chroot").size(),
                               zk::kStockMaxRequestBytes};
    EXPECT_TRUE(CheckValueLimitFits(limits, kDefaultMaxValueBytes).ok());
    // The old default, 1 MiB, cannot fit: start-up says what would.
    const absl::Status refused = CheckValueLimitFits(limits, 1 << 20);
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(refused.message(),
                HasSubstr("lower max_config_value_bytes to at most"));
    // Under the longest key (parent existing) the default value fits.
    EXPECT_LE(
        PutRequestBound(limits, std::string(1024, 'k'), kDefaultMaxValueBytes),
        zk::kStockMaxRequestBytes);
  }
}

TEST(ConfigLimitsTest, ResponsesStayBelowTheMessageLimitsAndHoldOneEntry) {
  EXPECT_EQ(ResponseBudget(4 << 20), (4u << 20) - (64u << 10));
  // Clients accept 4 MiB by default, whatever the server's own limit.
  EXPECT_EQ(ResponseBudget(64 << 20), (4u << 20) - (64u << 10));
  EXPECT_LT(ResponseBudget(1 << 20), 1u << 20);
  EXPECT_GT(ResponseBudget(8 << 10), 0u);
  EXPECT_GE(EntryBytes(1024, 100), 1124u);
}

// Records what a subscriber is told, as "PUT key=value@version" strings.
class RecordingListener : public WatchListener {
 public:
  void OnInitialState(std::vector<CachedEntry> entries) override {
    ++initial_count;
    initial.clear();
    for (auto& e : entries) initial.push_back(Describe("PUT", e));
  }
  void OnChanges(std::vector<Change> changes) override {
    for (auto& c : changes) {
      events.push_back(
          Describe(c.type == Change::Type::kPut ? "PUT" : "DELETE", c.entry));
    }
  }
  static std::string Describe(const char* type, const CachedEntry& e) {
    return std::string(type) + " " + e.key + "=" + e.value + "@" +
           std::to_string(e.stat.version);
  }
  int initial_count = 0;
  std::vector<std::string> initial;
  std::vector<std::string> events;
};

class WatchCacheTest : public ::testing::Test {
 protected:
  WatchCacheTest() : cache_(zk_, KeySpace("/w")) {
    zk_.ExternalPut("/w", "");
    zk_.ExternalPut("/w/config", "");
    zk_.RunUntilIdle();
  }
  void Put(const std::string& key, const std::string& value) {
    zk_.ExternalPut("/w/config/" + key, value);
  }
  void Delete(const std::string& key) {
    zk_.ExternalDelete("/w/config/" + key);
  }
  testing::FakeZk zk_;
  WatchCache cache_;
};

TEST_F(WatchCacheTest, KeyWatchSeesInitialValueThenEveryChange) {
  Put("app", "");
  Put("app/url", "v0");
  RecordingListener listener;
  auto id = cache_.Subscribe("app/url", false, &listener);
  zk_.RunUntilIdle();
  EXPECT_EQ(listener.initial_count, 1);
  EXPECT_THAT(listener.initial, ElementsAre("PUT app/url=v0@0"));

  Put("app/url", "v1");
  zk_.RunUntilIdle();
  Delete("app/url");
  zk_.RunUntilIdle();
  Put("app/url", "v2");
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.events,
              ElementsAre("PUT app/url=v1@1", "DELETE app/url=v1@1",
                          "PUT app/url=v2@0"));
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, KeyWatchOnMissingKeyStartsEmptyAndSeesCreation) {
  RecordingListener listener;
  auto id = cache_.Subscribe("later", false, &listener);
  zk_.RunUntilIdle();
  EXPECT_EQ(listener.initial_count, 1);
  EXPECT_THAT(listener.initial, IsEmpty());
  Put("later", "x");
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.events, ElementsAre("PUT later=x@0"));
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, PrefixWatchSeesDescendantsCreatedLaterAtAnyDepth) {
  Put("svc", "root");
  Put("svc/a", "1");
  RecordingListener listener;
  auto id = cache_.Subscribe("svc", true, &listener);
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.initial, ElementsAre("PUT svc=root@0", "PUT svc/a=1@0"));

  Put("svc/b", "");
  zk_.RunUntilIdle();
  Put("svc/b/c", "deep");
  zk_.RunUntilIdle();
  Put("svc/a", "2");
  zk_.RunUntilIdle();
  Delete("svc/b/c");
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.events,
              ElementsAre("PUT svc/b=@0", "PUT svc/b/c=deep@0", "PUT svc/a=2@1",
                          "DELETE svc/b/c=deep@0"));
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, ChangesReachSubscribersWhileWritesKeepComing) {
  Put("busy", "");
  Put("busy/a", "");
  Put("busy/b", "");
  RecordingListener listener;
  auto id = cache_.Subscribe("busy", true, &listener);
  zk_.RunUntilIdle();
  // Writes to two keys between the answers: some read is always in flight,
  // so without a cap on the wait nothing would ever be flushed.
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  int writes = 0;
  while (listener.events.empty() && absl::Now() < give_up) {
    Put("busy/a", std::to_string(writes));
    Put("busy/b", std::to_string(writes++));
    zk_.RunOne();
  }
  ASSERT_FALSE(listener.events.empty());
  EXPECT_THAT(listener.events.front(), ::testing::StartsWith("PUT busy/"));
  zk_.RunUntilIdle();
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, WholeTreeWatchDoesNotReportTheBaseAsAKey) {
  Put("x", "1");
  RecordingListener listener;
  auto id = cache_.Subscribe("", true, &listener);
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.initial, ElementsAre("PUT x=1@0"));
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, ChangesWhileDisconnectedArriveAfterReconnect) {
  Put("k", "old");
  RecordingListener listener;
  auto id = cache_.Subscribe("k", true, &listener);
  zk_.RunUntilIdle();
  zk_.Disconnect();
  zk_.RunUntilIdle();
  Put("k", "new");
  Put("k/child", "c");
  zk_.Reconnect();
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.events, ElementsAre("PUT k=new@1", "PUT k/child=c@0"));
  EXPECT_EQ(listener.initial_count, 1);
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, NewSessionDeliversOnlyTheDifferences) {
  Put("p", "");
  Put("p/same", "s");
  Put("p/changed", "before");
  Put("p/deleted", "d");
  RecordingListener listener;
  auto id = cache_.Subscribe("p", true, &listener);
  zk_.RunUntilIdle();
  zk_.Disconnect();
  zk_.RunUntilIdle();
  // The session expires; what changed meanwhile is not reported by any watch.
  zk_.Expire();
  Put("p/changed", "after");
  Delete("p/deleted");
  Put("p/added", "a");
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.events, ::testing::UnorderedElementsAre(
                                   "PUT p/changed=after@1",
                                   "DELETE p/deleted=d@0", "PUT p/added=a@0"));
  // And the tree keeps watching on the new session.
  Put("p/same", "s2");
  zk_.RunUntilIdle();
  EXPECT_EQ(listener.events.back(), "PUT p/same=s2@1");
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, LookupServesOnlyWhileInSync) {
  Put("a", "");
  Put("a/b", "v");
  EXPECT_EQ(cache_.Lookup("a/b"), std::nullopt);  // not watched
  RecordingListener listener;
  auto id = cache_.Subscribe("a", true, &listener);
  zk_.RunUntilIdle();
  auto hit = cache_.Lookup("a/b");
  ASSERT_TRUE(hit.has_value());
  ASSERT_TRUE(hit->has_value());
  EXPECT_EQ((*hit)->value, "v");
  auto missing = cache_.Lookup("a/zzz");
  ASSERT_TRUE(missing.has_value());
  EXPECT_FALSE(missing->has_value());
  EXPECT_EQ(cache_.Lookup("other"), std::nullopt);

  zk_.Disconnect();
  zk_.RunUntilIdle();
  EXPECT_EQ(cache_.Lookup("a/b"), std::nullopt);
  zk_.Reconnect();
  zk_.RunUntilIdle();
  EXPECT_TRUE(cache_.Lookup("a/b").has_value());
  cache_.Unsubscribe(id);
  EXPECT_EQ(cache_.Lookup("a/b"), std::nullopt);
}

TEST_F(WatchCacheTest, SubscribersShareOneTreeAndLateOnesGetTheState) {
  Put("shared", "1");
  RecordingListener first, second;
  auto a = cache_.Subscribe("shared", false, &first);
  zk_.RunUntilIdle();
  auto b = cache_.Subscribe("shared", false, &second);
  EXPECT_EQ(cache_.tree_count(), 1u);
  EXPECT_THAT(second.initial, ElementsAre("PUT shared=1@0"));
  cache_.Unsubscribe(a);
  Put("shared", "2");
  zk_.RunUntilIdle();
  EXPECT_THAT(first.events, IsEmpty());
  EXPECT_THAT(second.events, ElementsAre("PUT shared=2@1"));
  cache_.Unsubscribe(b);
  EXPECT_EQ(cache_.tree_count(), 0u);
}

TEST_F(WatchCacheTest, ReconnectsDoNotMultiplyWatches) {
  Put("m", "");
  for (int i = 0; i < 5; ++i) Put("m/" + std::to_string(i), "x");
  RecordingListener listener;
  auto id = cache_.Subscribe("m", true, &listener);
  zk_.RunUntilIdle();
  const size_t watches = zk_.registered_watch_count();
  EXPECT_EQ(watches, 12u);  // a data and a children watch on each of 6 nodes
  for (int i = 0; i < 3; ++i) {
    zk_.Disconnect();
    zk_.RunUntilIdle();
    zk_.Reconnect();
    zk_.RunUntilIdle();
  }
  EXPECT_EQ(zk_.registered_watch_count(), watches);
  EXPECT_THAT(listener.events, IsEmpty());
  cache_.Unsubscribe(id);
}

TEST_F(WatchCacheTest, NamespaceNodesAreWatchedButNotReported) {
  RecordingListener listener;
  auto id = cache_.Subscribe("ns", true, &listener);
  zk_.RunUntilIdle();
  // A key put below two namespace nodes, in one multi as ConfigStore does.
  zk_.Multi(
      {zk::Op::CreateNull("/w/config/ns"), zk::Op::CreateNull("/w/config/ns/a"),
       zk::Op::Create("/w/config/ns/a/k", "v")},
      [](zk::MultiResult r) { ASSERT_TRUE(r.status.ok()); });
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.events, ElementsAre("PUT ns/a/k=v@0"));
  // Served from the cache, and not found.
  auto cached = cache_.Lookup("ns/a");
  ASSERT_TRUE(cached.has_value());
  EXPECT_FALSE(cached->has_value());
  // A key with children deleted: a namespace node, reported as a DELETE.
  zk_.Multi({zk::Op::SetData("/w/config/ns/a", "now a key")},
            [](zk::MultiResult) {});
  zk_.RunUntilIdle();
  zk_.Multi({zk::Op::SetNull("/w/config/ns/a")}, [](zk::MultiResult) {});
  zk_.RunUntilIdle();
  EXPECT_THAT(listener.events,
              ElementsAre("PUT ns/a/k=v@0", "PUT ns/a=now a key@1",
                          "DELETE ns/a=now a key@1"));
  cache_.Unsubscribe(id);
}

PutParams PutOf(const std::string& key, const std::string& value) {
  PutParams params;
  params.key = key;
  params.value = value;
  return params;
}
DeleteParams DeleteOf(const std::string& key) {
  DeleteParams params;
  params.key = key;
  return params;
}

// ConfigStore's blocking calls run on a thread of their own while the test
// runs the fake's callbacks.
class ConfigStoreTest : public ::testing::Test {
 protected:
  ConfigStoreTest() : store_(zk_, KeySpace("/w")) {
    zk_.ExternalPut("/w", "");
    zk_.ExternalPut("/w/config", "");
    zk_.RunUntilIdle();
  }

  absl::StatusOr<WriteOutcome> Write(const WriteBatch& batch) {
    absl::StatusOr<WriteOutcome> result;
    std::atomic<bool> done{false};
    std::thread writer([&] {
      result = store_.Write(batch, absl::Now() + absl::Seconds(10));
      done = true;
    });
    while (!done) {
      if (!zk_.RunOne()) std::this_thread::yield();
    }
    writer.join();
    zk_.RunUntilIdle();
    return result;
  }
  absl::StatusOr<WriteOutcome> Put(const std::string& key,
                                   const std::string& value) {
    WriteBatch batch;
    batch.ops.push_back(PutOf(key, value));
    return Write(batch);
  }
  absl::StatusOr<WriteOutcome> Delete(const std::string& key) {
    WriteBatch batch;
    batch.ops.push_back(DeleteOf(key));
    return Write(batch);
  }
  // "<key>" for a key, "<key>/" for a namespace node, in path order.
  std::vector<std::string> Tree() {
    std::vector<std::string> out;
    std::vector<std::string> stack = {"/w/config"};
    while (!stack.empty()) {
      const std::string path = stack.back();
      stack.pop_back();
      if (path != "/w/config") {
        absl::StatusOr<zk::NodeData> data;
        zk_.Get(path, nullptr,
                [&](absl::StatusOr<zk::NodeData> r) { data = std::move(r); });
        zk_.RunUntilIdle();
        out.push_back(path.substr(10) + (data->null_data ? "/" : ""));
      }
      auto children = zk_.Children(path);
      std::sort(children.rbegin(), children.rend());
      for (const auto& c : children) stack.push_back(path + "/" + c);
    }
    return out;
  }

  testing::FakeZk zk_;
  ConfigStore store_;
};

TEST_F(ConfigStoreTest, APutCreatesNamespaceParentsInOneStep) {
  auto put = Put("a/b/c", "v");
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_THAT(Tree(), ElementsAre("a/", "a/b/", "a/b/c"));
  ASSERT_EQ(put->changes.size(), 1u);
  EXPECT_EQ(put->changes[0].entry.key, "a/b/c");
  // A put on a namespace node makes it a key; create-only counts it as
  // missing, expected_version as not a key.
  WriteBatch version;
  PutParams versioned = PutOf("a/b", "x");
  versioned.expected_version = 0;
  version.ops.push_back(versioned);
  EXPECT_EQ(Write(version).status().code(), absl::StatusCode::kNotFound);
  WriteBatch create;
  PutParams create_only = PutOf("a/b", "x");
  create_only.create_only = true;
  create.ops.push_back(create_only);
  ASSERT_TRUE(Write(create).ok());
  EXPECT_THAT(Tree(), ElementsAre("a/", "a/b", "a/b/c"));
  // An empty value is a key.
  ASSERT_TRUE(Put("a/e", "").ok());
  EXPECT_THAT(Tree(), ElementsAre("a/", "a/b", "a/b/c", "a/e"));
}

TEST_F(ConfigStoreTest, AHoldTakesTheEmptyNamespaceNodeAnExpiredHolderLeft) {
  WriteBatch below;
  PutParams held_below = PutOf("a/b/c", "v");
  held_below.hold = true;
  below.ops.push_back(held_below);
  ASSERT_TRUE(Write(below).ok());
  // The holder's session ends: its key goes, the namespace nodes stay.
  zk_.Expire();
  zk_.RunUntilIdle();
  EXPECT_THAT(Tree(), ElementsAre("a/", "a/b/"));
  WriteBatch on_empty;
  PutParams held = PutOf("a/b", "x");
  held.hold = true;
  on_empty.ops.push_back(held);
  auto written = Write(on_empty);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_NE(written->puts.at(0).stat.ephemeral_owner, 0);
  EXPECT_THAT(Tree(), ElementsAre("a/", "a/b"));
  // A namespace node with keys below it is still refused.
  WriteBatch on_parent;
  PutParams parent = PutOf("a", "y");
  parent.hold = true;
  on_parent.ops.push_back(parent);
  EXPECT_EQ(Write(on_parent).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Tree(), ElementsAre("a/", "a/b"));
}

TEST_F(ConfigStoreTest, ADeleteKeepsChildrenAndRemovesEmptyNamespaces) {
  ASSERT_TRUE(Put("a/b", "parent").ok());
  ASSERT_TRUE(Put("a/b/c/d", "child").ok());
  auto deleted = Delete("a/b");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_THAT(Tree(), ElementsAre("a/", "a/b/", "a/b/c/", "a/b/c/d"));
  ASSERT_EQ(deleted->changes.size(), 1u);
  EXPECT_EQ(deleted->changes[0].type, Change::Type::kDelete);
  EXPECT_EQ(Delete("a/b").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Delete("a/b/c/d").ok());
  EXPECT_THAT(Tree(), IsEmpty());
}

TEST_F(ConfigStoreTest, ATransactionRefusalNamesTheStepAndChangesNothing) {
  ASSERT_TRUE(Put("k", "v").ok());
  const auto before = Tree();
  WriteBatch txn;
  txn.txn = true;
  txn.checks.push_back(CheckParams{"k", 0, std::nullopt});
  txn.checks.push_back(CheckParams{"missing/deep", std::nullopt, false});
  txn.ops.push_back(PutOf("n/new", "x"));
  txn.ops.push_back(DeleteOf("gone"));
  auto refused = Write(txn);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::StartsWith("ops[1]: "));
  EXPECT_EQ(Tree(), before);
  // The same without the failing op: the "does not exist" check is a
  // create and delete that leave nothing.
  txn.ops.pop_back();
  ASSERT_TRUE(Write(txn).ok());
  EXPECT_THAT(Tree(), ElementsAre("k", "n/", "n/new"));
}

TEST_F(ConfigStoreTest, AFailedGuardAnswersItsStatusAndWritesNothing) {
  WriteBatch batch;
  batch.ops.push_back(PutOf("fenced", "v"));
  batch.guard = zk::Op::Check("/w/elections/e/c_1-0000000001", -1);
  batch.guard_failed = absl::FailedPreconditionError("fence: gone");
  EXPECT_EQ(Write(batch).status(), batch.guard_failed);
  EXPECT_THAT(Tree(), IsEmpty());
  zk_.ExternalPut("/w/elections", "");
  zk_.ExternalPut("/w/elections/e", "");
  zk_.ExternalPut("/w/elections/e/c_1-0000000001", "");
  ASSERT_TRUE(Write(batch).ok());
  EXPECT_THAT(Tree(), ElementsAre("fenced"));
}

TEST_F(ConfigStoreTest, AHeldKeyIsEphemeralAndHasNoChildren) {
  WriteBatch hold;
  PutParams create_held = PutOf("svc/one", "addr");
  create_held.hold = true;
  hold.ops.push_back(create_held);
  auto held = Write(hold);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_NE(held->puts[0].stat.ephemeral_owner, 0);
  EXPECT_EQ(zk_.EphemeralNodes(),
            std::vector<std::string>{"/w/config/svc/one"});
  EXPECT_EQ(Write(hold).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Put("svc/one/below", "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Only its holder's session may write or delete it through `holder`.
  WriteBatch other;
  DeleteParams release = DeleteOf("svc/one");
  release.holder = held->puts[0].stat.ephemeral_owner + 1;
  other.ops.push_back(release);
  EXPECT_EQ(Write(other).status().code(), absl::StatusCode::kNotFound);
  release.holder = held->puts[0].stat.ephemeral_owner;
  other.ops[0] = release;
  ASSERT_TRUE(Write(other).ok());
  EXPECT_THAT(Tree(), IsEmpty());
}

}  // namespace
}  // namespace warren::config
