// ConfigService end to end: the real warrend, the real ZooKeeper, the
// generated stubs over a real socket.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "health.grpc.pb.h"
#include "reflection.grpc.pb.h"
#include "server/common/mutex.h"
#include "tests/integration/config_clients.h"
#include "tests/integration/harness.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

struct ConfigFlags {
  static std::vector<std::string> Args() { return {}; }
};

class ConfigServiceTest : public SharedWarrendTest<ConfigFlags> {
 protected:
  void SetUp() override {
    SharedWarrendTest::SetUp();
    if (HasFatalFailure()) return;
    stub_ = v1::ConfigService::NewStub(warrend_->channel());
  }

  grpc::Status Put(const std::string& key, const std::string& value,
                   v1::PutConfigResponse* response = nullptr,
                   std::optional<int64_t> expected = std::nullopt,
                   bool create_only = false) {
    v1::PutConfigRequest request;
    request.set_key(key);
    request.set_value(value);
    if (expected) request.set_expected_version(*expected);
    request.set_create_only(create_only);
    v1::PutConfigResponse ignored;
    return stub_->PutConfig(CallContext().get(), request,
                            response ? response : &ignored);
  }

  grpc::Status Get(const std::string& key, v1::GetConfigResponse* response,
                   bool consistent = false) {
    v1::GetConfigRequest request;
    request.set_key(key);
    request.set_consistent(consistent);
    return stub_->GetConfig(CallContext().get(), request, response);
  }

  grpc::Status Delete(const std::string& key,
                      std::optional<int64_t> expected = std::nullopt,
                      bool recursive = false) {
    v1::DeleteConfigRequest request;
    request.set_key(key);
    if (expected) request.set_expected_version(*expected);
    request.set_recursive(recursive);
    v1::DeleteConfigResponse response;
    return stub_->DeleteConfig(CallContext().get(), request, &response);
  }

  // Every key below `prefix`, through all pages.
  std::vector<std::string> ListAll(const std::string& prefix, int page_size,
                                   int* pages = nullptr) {
    std::vector<std::string> keys;
    std::string token;
    int count = 0;
    do {
      v1::ListConfigRequest request;
      request.set_prefix(prefix);
      request.set_page_size(page_size);
      request.set_page_token(token);
      request.set_keys_only(true);
      v1::ListConfigResponse response;
      grpc::Status status =
          stub_->ListConfig(CallContext().get(), request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok()) break;
      EXPECT_LE(response.entries_size(), page_size);
      for (const auto& entry : response.entries()) {
        EXPECT_TRUE(entry.value().empty());
        keys.push_back(entry.key());
      }
      token = response.next_page_token();
      ++count;
    } while (!token.empty());
    if (pages != nullptr) *pages = count;
    return keys;
  }

  std::unique_ptr<v1::ConfigService::Stub> stub_;
};

TEST_F(ConfigServiceTest, PutGetListDeleteRoundTrip) {
  v1::PutConfigResponse put;
  ASSERT_TRUE(Put("rt/db/url", "postgres://db:5432", &put).ok());
  EXPECT_EQ(put.entry().key(), "rt/db/url");
  EXPECT_EQ(put.entry().value(), "postgres://db:5432");
  EXPECT_EQ(put.entry().version(), 0);
  EXPECT_GT(put.entry().modify_time().seconds(), 1700000000);

  v1::GetConfigResponse got;
  ASSERT_TRUE(Get("rt/db/url", &got).ok());
  EXPECT_EQ(got.entry().value(), "postgres://db:5432");
  EXPECT_EQ(got.entry().version(), 0);

  ASSERT_TRUE(Put("rt/db/url", "postgres://db2:5432", &put).ok());
  EXPECT_EQ(put.entry().version(), 1);
  ASSERT_TRUE(Get("rt/db/url", &got, /*consistent=*/true).ok());
  EXPECT_EQ(got.entry().value(), "postgres://db2:5432");
  EXPECT_EQ(got.entry().version(), 1);

  // The parents made for it are namespace nodes, not keys.
  EXPECT_THAT(ListAll("rt", 10), ElementsAre("rt/db/url"));
  v1::ListConfigRequest list;
  list.set_prefix("rt/db");
  v1::ListConfigResponse listed;
  ASSERT_TRUE(stub_->ListConfig(CallContext().get(), list, &listed).ok());
  ASSERT_EQ(listed.entries_size(), 1);
  EXPECT_EQ(listed.entries(0).value(), "postgres://db2:5432");
  EXPECT_EQ(listed.entries(0).version(), 1);
  EXPECT_FALSE(listed.entries(0).held());
  EXPECT_TRUE(listed.next_page_token().empty());

  ASSERT_TRUE(Delete("rt/db/url").ok());
  EXPECT_EQ(Get("rt/db/url", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(ListAll("rt", 10).empty());
}

TEST_F(ConfigServiceTest, MissingKeysAreNotFound) {
  v1::GetConfigResponse got;
  grpc::Status status = Get("nf/none", &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("nf/none"));
  EXPECT_EQ(Get("nf/none", &got, true).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Delete("nf/none").error_code(), grpc::StatusCode::NOT_FOUND);
  status = Put("nf/none", "v", nullptr, /*expected=*/0);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  // A refused write created nothing, not even parents.
  EXPECT_EQ(Get("nf", &got, true).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ConfigServiceTest, CreateOnlyRefusesAnExistingKey) {
  ASSERT_TRUE(Put("co/key", "first", nullptr, std::nullopt, true).ok());
  grpc::Status status = Put("co/key", "second", nullptr, std::nullopt, true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(status.error_message(), HasSubstr("co/key"));
  v1::GetConfigResponse got;
  ASSERT_TRUE(Get("co/key", &got, true).ok());
  EXPECT_EQ(got.entry().value(), "first");
}

TEST_F(ConfigServiceTest, VersionMismatchesAreFailedPrecondition) {
  v1::PutConfigResponse put;
  ASSERT_TRUE(Put("cas/key", "v0", &put).ok());
  ASSERT_TRUE(Put("cas/key", "v1", &put, /*expected=*/0).ok());
  EXPECT_EQ(put.entry().version(), 1);
  grpc::Status status = Put("cas/key", "stale", nullptr, /*expected=*/0);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("expected_version 0"));

  status = Delete("cas/key", /*expected=*/5);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(Put("cas/key/child", "c").ok());
  status = Delete("cas/key", /*expected=*/5);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // A recursive delete with a wrong version deletes nothing.
  status = Delete("cas/key", /*expected=*/7, /*recursive=*/true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::GetConfigResponse got;
  EXPECT_TRUE(Get("cas/key/child", &got, true).ok());
  EXPECT_TRUE(Delete("cas/key", /*expected=*/1, /*recursive=*/true).ok());
  EXPECT_EQ(Get("cas/key/child", &got, true).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ConfigServiceTest, ImplicitParentsAreNotKeys) {
  // 250 keys below two levels of parents nobody put.
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 5; ++w) {
    writers.emplace_back([&, w] {
      auto stub = v1::ConfigService::NewStub(warrend_->channel());
      for (int i = w; i < 250; i += 5) {
        v1::PutConfigRequest put;
        put.set_key(absl::StrCat("ip/svc/g", i % 5, "/k", i));
        put.set_value(std::to_string(i));
        v1::PutConfigResponse written;
        if (!stub->PutConfig(CallContext().get(), put, &written).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  EXPECT_EQ(ListAll("ip", 100).size(), 250u);
  EXPECT_EQ(ListAll("ip/svc/g3", 1000).size(), 50u);
  v1::GetConfigResponse got;
  for (const char* parent : {"ip", "ip/svc", "ip/svc/g0"}) {
    EXPECT_EQ(Get(parent, &got).error_code(), grpc::StatusCode::NOT_FOUND)
        << parent;
    EXPECT_EQ(Get(parent, &got, /*consistent=*/true).error_code(),
              grpc::StatusCode::NOT_FOUND)
        << parent;
    // Deleting a namespace node without recursive: there is no such key.
    EXPECT_EQ(Delete(parent).error_code(), grpc::StatusCode::NOT_FOUND);
    // expected_version needs a key.
    EXPECT_EQ(Put(parent, "v", nullptr, /*expected=*/0).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
  // Served from a watch's cache as well.
  WatchReader watch(stub_.get(), "ip/svc", /*prefix=*/true);
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    return !responses.empty() && responses.back().initial_state();
  }));
  EXPECT_EQ(watch.Events().size(), 250u);
  EXPECT_EQ(Get("ip/svc/g1", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Get("ip/svc/g1/k1", &got).ok());

  // A put on a namespace node makes it a key; create-only counts it as
  // missing.
  ASSERT_TRUE(Put("ip/svc", "now a key", nullptr, std::nullopt,
                  /*create_only=*/true)
                  .ok());
  ASSERT_TRUE(Get("ip/svc", &got, true).ok());
  EXPECT_EQ(got.entry().value(), "now a key");
  EXPECT_EQ(ListAll("ip", 1000).size(), 251u);
  ASSERT_TRUE(watch.WaitForValue("ip/svc", "now a key"));
  ASSERT_TRUE(Delete("ip", std::nullopt, /*recursive=*/true).ok());
  EXPECT_TRUE(ListAll("ip", 1000).empty());
}

TEST_F(ConfigServiceTest, PrefixWatchReportsOnlyWhatWasPut) {
  WatchReader watch(stub_.get(), "pw", /*prefix=*/true);
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    return !responses.empty() && responses.back().initial_state();
  }));
  ASSERT_TRUE(Put("pw/a/b/c", "1").ok());
  ASSERT_TRUE(Put("pw/empty", "").ok());
  ASSERT_TRUE(watch.WaitForValue("pw/empty", ""));
  // (A key found by walking down new levels may come after a later one.)
  EXPECT_THAT(watch.Events(),
              UnorderedElementsAre("PUT pw/a/b/c=1@0", "PUT pw/empty=@0"));
  ASSERT_TRUE(Delete("pw", std::nullopt, /*recursive=*/true).ok());
}

TEST_F(ConfigServiceTest, DeletingAKeyWithChildrenKeepsThem) {
  ASSERT_TRUE(Put("dk/a", "parent").ok());
  ASSERT_TRUE(Put("dk/a/b", "child").ok());
  WatchReader watch(stub_.get(), "dk", /*prefix=*/true);
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    return !responses.empty() && responses.back().initial_state();
  }));
  ASSERT_TRUE(Delete("dk/a", /*expected=*/0).ok());
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    return WatchReader::EventsOf(responses).size() == 3;
  }));
  EXPECT_THAT(
      watch.Events(),
      ElementsAre("PUT dk/a=parent@0", "PUT dk/a/b=child@0", "DELETE dk/a@0"));
  v1::GetConfigResponse got;
  EXPECT_EQ(Get("dk/a", &got, true).error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Get("dk/a/b", &got, true).ok());
  EXPECT_EQ(got.entry().value(), "child");
  EXPECT_THAT(ListAll("dk", 10), ElementsAre("dk/a/b"));
  // Put again, it is a key again.
  ASSERT_TRUE(Put("dk/a", "again").ok());
  ASSERT_TRUE(watch.WaitForValue("dk/a", "again"));
  EXPECT_THAT(ListAll("dk", 10), ElementsAre("dk/a", "dk/a/b"));
  ASSERT_TRUE(Delete("dk", std::nullopt, /*recursive=*/true).ok());
}

TEST_F(ConfigServiceTest, DeletingTheLastKeyRemovesItsNamespaceParents) {
  ASSERT_TRUE(Put("lk/x/y/z", "1").ok());
  ASSERT_TRUE(Put("lk/x/kept", "2").ok());
  ASSERT_TRUE(Delete("lk/x/y/z").ok());
  // lk/x/y had only z: gone. lk/x still holds a key.
  EXPECT_EQ(Delete("lk/x/y", std::nullopt, /*recursive=*/true).error_code(),
            grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Delete("lk/x/kept").ok());
  // Now nothing is left of the tree, namespace nodes included.
  EXPECT_EQ(Delete("lk", std::nullopt, /*recursive=*/true).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // An empty value is a key, and stays one when its children go.
  ASSERT_TRUE(Put("lk/empty", "").ok());
  ASSERT_TRUE(Put("lk/empty/child", "c").ok());
  ASSERT_TRUE(Delete("lk/empty/child").ok());
  v1::GetConfigResponse got;
  ASSERT_TRUE(Get("lk/empty", &got, true).ok());
  EXPECT_EQ(got.entry().value(), "");
  ASSERT_TRUE(Delete("lk/empty").ok());
  EXPECT_EQ(Delete("lk", std::nullopt, true).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ConfigServiceTest, InvalidInputIsRefusedWithTheFieldNamed) {
  struct Case {
    std::string key;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{{"", "key"},
                                         {"/abs", "key"},
                                         {"a//b", "key"},
                                         {"../escape", "key"},
                                         {"a/./b", "key"},
                                         {"sp ace", "key"},
                                         {"caf\xc3\xa9", "key"},
                                         {std::string(1025, 'k'), "key"}}) {
    v1::GetConfigResponse got;
    grpc::Status status = Get(c.key, &got);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.key;
    EXPECT_THAT(status.error_message(), HasSubstr(c.field));
    EXPECT_EQ(Put(c.key, "v").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(Delete(c.key).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  grpc::Status both = Put("inv/k", "v", nullptr, /*expected=*/0, true);
  EXPECT_EQ(both.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(both.error_message(), HasSubstr("expected_version"));

  // The largest allowed value (max_config_value_bytes' default, 960 KiB) is
  // accepted, one byte more is refused before ZooKeeper sees it.
  constexpr size_t kMaxValue = 960 << 10;
  ASSERT_TRUE(Put("inv/big", std::string(kMaxValue, 'x')).ok());
  grpc::Status big = Put("inv/big", std::string(kMaxValue + 1, 'x'));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(big.error_message(), HasSubstr("value"));
  v1::GetConfigResponse got;
  ASSERT_TRUE(Get("inv/big", &got, true).ok());
  EXPECT_EQ(got.entry().value().size(), kMaxValue);

  v1::ListConfigRequest list;
  list.set_page_token("not-a-token");
  v1::ListConfigResponse listed;
  grpc::Status token = stub_->ListConfig(CallContext().get(), list, &listed);
  EXPECT_EQ(token.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(token.error_message(), HasSubstr("page_token"));
  list.set_page_token("");
  list.set_page_size(-1);
  EXPECT_EQ(stub_->ListConfig(CallContext().get(), list, &listed).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  v1::WatchConfigRequest watch;
  watch.set_key("a/../b");
  auto context = CallContext();
  auto reader = stub_->WatchConfig(context.get(), watch);
  v1::WatchConfigResponse response;
  EXPECT_FALSE(reader->Read(&response));
  grpc::Status watched = reader->Finish();
  EXPECT_EQ(watched.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(watched.error_message(), HasSubstr("key"));

  // Each rejection is one log line naming the method and the code (the
  // status message names the field; no payload).
  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(
            warrend_->Log(),
            "rejected /warren.v1.ConfigService/GetConfig from ipv4:127.0.0.1:");
      },
      absl::Seconds(10)));
  EXPECT_THAT(warrend_->Log(), HasSubstr(": INVALID_ARGUMENT: key"));
}

// A client that sends bad requests as fast as it can gets each one refused,
// but costs the log at most 20 lines a second; the line after a held-back
// stretch says how many were held back.
TEST_F(ConfigServiceTest, RejectionLinesAreRateLimited) {
  const auto count_lines = [] {
    size_t lines = 0;
    for (absl::string_view line : absl::StrSplit(warrend_->Log(), '\n')) {
      if (absl::StrContains(line,
                            "rejected /warren.v1.ConfigService/GetConfig"))
        ++lines;
    }
    return lines;
  };
  const size_t before = count_lines();
  // At least 300 calls, and long enough that a new budget window begins
  // during the flood (the suite's earlier tests may have spent the current
  // one).
  constexpr int kFlood = 300;
  const absl::Time start = absl::Now();
  for (int i = 0; i < kFlood || absl::Now() - start < absl::Milliseconds(1500);
       ++i) {
    v1::GetConfigResponse got;
    ASSERT_EQ(Get("flood//key", &got).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  const int64_t windows = absl::ToInt64Seconds(absl::Now() - start) +
                          2;  // partial ones at both ends
  const size_t flood_lines = count_lines() - before;
  EXPECT_GE(flood_lines, 1u);
  EXPECT_LE(flood_lines, static_cast<size_t>(20 * windows))
      << "in " << absl::Now() - start;
  // Once a new second has begun, the next rejection is written with the
  // count of those held back.
  EXPECT_TRUE(WaitFor(
      [&] {
        v1::GetConfigResponse got;
        Get("flood//key", &got);
        return absl::StrContains(warrend_->Log(), "similar lines suppressed)");
      },
      absl::Seconds(10)))
      << warrend_->Log();
}

// Health checks that their clients gave up on while warrend was frozen
// arrive cancelled when it resumes; their failed requests are nobody's
// mistake and not worth a line each. Real rejections still are.
TEST_F(ConfigServiceTest, CallsCancelledWhileFrozenAreNotLoggedAsRejections) {
  auto health = grpc::health::v1::Health::NewStub(warrend_->channel());
  ASSERT_TRUE(warrend_->Signal(SIGSTOP));
  // SIGSTOP takes effect asynchronously: wait until the process is stopped.
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string stat =
            ReadFile(absl::StrCat("/proc/", warrend_->pid(), "/stat"));
        const size_t paren = stat.rfind(')');
        return paren != std::string::npos && paren + 2 < stat.size() &&
               stat[paren + 2] == 'T';
      },
      absl::Seconds(10)));
  for (int i = 0; i < 20; ++i) {
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Milliseconds(100)));
    grpc::health::v1::HealthCheckRequest request;
    grpc::health::v1::HealthCheckResponse response;
    EXPECT_EQ(health->Check(&context, request, &response).error_code(),
              grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  ASSERT_TRUE(warrend_->Signal(SIGCONT));
  // A rejection after the cancelled calls: once it is in the log, they have
  // all been answered.
  EXPECT_TRUE(WaitFor(
      [&] {
        v1::GetConfigResponse got;
        Get("after//freeze", &got);
        return absl::StrContains(warrend_->Log(), "after//freeze");
      },
      absl::Seconds(30)))
      << warrend_->Log();
  EXPECT_THAT(warrend_->Log(),
              ::testing::Not(HasSubstr("could not parse request")));
  EXPECT_THAT(warrend_->Log(), ::testing::Not(HasSubstr("Health/Check")));
}

TEST_F(ConfigServiceTest, ConcurrentCompareAndSetIncrementsLoseNothing) {
  constexpr int kWorkers = 20;
  constexpr int kIncrementsEach = 10;
  ASSERT_TRUE(Put("counter", "0").ok());
  std::atomic<int> conflicts{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      auto stub = v1::ConfigService::NewStub(warrend_->channel());
      for (int done = 0; done < kIncrementsEach;) {
        v1::GetConfigRequest get;
        get.set_key("counter");
        get.set_consistent(true);
        v1::GetConfigResponse current;
        ASSERT_TRUE(stub->GetConfig(CallContext().get(), get, &current).ok());
        v1::PutConfigRequest put;
        put.set_key("counter");
        put.set_value(std::to_string(std::stoi(current.entry().value()) + 1));
        put.set_expected_version(current.entry().version());
        v1::PutConfigResponse written;
        grpc::Status status =
            stub->PutConfig(CallContext().get(), put, &written);
        if (status.ok()) {
          ++done;
        } else {
          ASSERT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
              << status.error_message();
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  v1::GetConfigResponse final_value;
  ASSERT_TRUE(Get("counter", &final_value, true).ok());
  EXPECT_EQ(final_value.entry().value(),
            std::to_string(kWorkers * kIncrementsEach));
  EXPECT_EQ(final_value.entry().version(), kWorkers * kIncrementsEach);
  RecordProperty("cas_conflicts", conflicts.load());
}

TEST_F(ConfigServiceTest, PaginationListsEveryKeyExactlyOnceInPathOrder) {
  constexpr int kKeys = 1000;
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < 8; ++w) {
    writers.emplace_back([&, w] {
      auto stub = v1::ConfigService::NewStub(warrend_->channel());
      for (int i = w; i < kKeys; i += 8) {
        v1::PutConfigRequest put;
        // Two levels, with names that sort differently byte-wise and
        // segment-wise ('-' and '.' sort below '/').
        put.set_key(
            absl::StrCat("many/g", i % 10, i % 3 == 0 ? "-x" : "", "/k", i));
        put.set_value(std::to_string(i));
        v1::PutConfigResponse written;
        if (!stub->PutConfig(CallContext().get(), put, &written).ok())
          ++failures;
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);

  int pages = 0;
  std::vector<std::string> listed = ListAll("many", 100, &pages);
  std::set<std::string> unique(listed.begin(), listed.end());
  EXPECT_EQ(unique.size(), listed.size()) << "a key was listed twice";
  // 1000 keys; the 20 group nodes and the prefix are namespace nodes.
  EXPECT_EQ(listed.size(), 1000u);
  EXPECT_GE(pages, 10);
  // Path order: every key after its parent, siblings sorted.
  for (size_t i = 1; i < listed.size(); ++i) {
    const std::string& a = listed[i - 1];
    const std::string& b = listed[i];
    std::string ma = a, mb = b;
    std::replace(ma.begin(), ma.end(), '/', '\x01');
    std::replace(mb.begin(), mb.end(), '/', '\x01');
    EXPECT_LT(ma, mb) << a << " listed before " << b;
  }
  // An odd page size gives the same result.
  EXPECT_EQ(ListAll("many", 37), listed);
  ASSERT_TRUE(Delete("many", std::nullopt, true).ok());
}

TEST_F(ConfigServiceTest, WatchDeliversCurrentStateThenEveryChange) {
  ASSERT_TRUE(Put("w1/flag", "off").ok());
  WatchReader watch(stub_.get(), "w1/flag", /*prefix=*/false);
  ASSERT_TRUE(watch.WaitUntil([](const auto& r) { return !r.empty(); }));
  auto first = watch.responses()[0];
  EXPECT_TRUE(first.initial_state());
  ASSERT_EQ(first.events_size(), 1);
  EXPECT_EQ(first.events(0).entry().value(), "off");

  // A cached read of the watched key sees each write once the watch has.
  for (const char* value : {"on", "off2", "on3"}) {
    ASSERT_TRUE(Put("w1/flag", value).ok());
    ASSERT_TRUE(watch.WaitForValue("w1/flag", value));
    v1::GetConfigResponse cached;
    ASSERT_TRUE(Get("w1/flag", &cached).ok());
    EXPECT_EQ(cached.entry().value(), value);
  }
  ASSERT_TRUE(Delete("w1/flag").ok());
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    for (const auto& r : responses) {
      for (const auto& e : r.events()) {
        if (e.type() == v1::CONFIG_EVENT_TYPE_DELETE) return true;
      }
    }
    return false;
  }));
  v1::GetConfigResponse gone;
  EXPECT_EQ(Get("w1/flag", &gone).error_code(), grpc::StatusCode::NOT_FOUND);
  // Versions only grow, and no response after the first is initial.
  int64_t last = -1;
  const auto responses = watch.responses();
  for (size_t i = 0; i < responses.size(); ++i) {
    const auto& r = responses[i];
    EXPECT_EQ(r.initial_state(), i == 0);
    for (const auto& e : r.events()) {
      if (e.type() == v1::CONFIG_EVENT_TYPE_PUT) {
        EXPECT_GT(e.entry().version(), last);
        last = e.entry().version();
      }
    }
  }
  EXPECT_THAT(
      watch.Events(),
      ElementsAre("PUT w1/flag=off@0", "PUT w1/flag=on@1", "PUT w1/flag=off2@2",
                  "PUT w1/flag=on3@3", "DELETE w1/flag@3"));
}

TEST_F(ConfigServiceTest, PrefixWatchSeesChildrenAndGrandchildrenCreatedLater) {
  ASSERT_TRUE(Put("w2/app/a", "1").ok());
  WatchReader watch(stub_.get(), "w2/app", /*prefix=*/true);
  ASSERT_TRUE(watch.WaitUntil([](const auto& r) { return !r.empty(); }));
  EXPECT_THAT(watch.Events(), ElementsAre("PUT w2/app/a=1@0"));
  ASSERT_TRUE(Put("w2/app/b/c/d", "deep").ok());
  ASSERT_TRUE(watch.WaitForValue("w2/app/b/c/d", "deep"));
  ASSERT_TRUE(Put("w2/app/b/c/d", "deeper").ok());
  ASSERT_TRUE(watch.WaitForValue("w2/app/b/c/d", "deeper"));
  ASSERT_TRUE(Put("w2/other", "x").ok());  // outside the prefix
  ASSERT_TRUE(Delete("w2/app/b", std::nullopt, true).ok());
  ASSERT_TRUE(watch.WaitUntil([&](const auto& responses) {
    auto events = WatchReader::EventsOf(responses);
    return std::count_if(events.begin(), events.end(), [](const auto& e) {
             return e.rfind("DELETE", 0) == 0;
           }) == 1;
  }));
  for (const auto& e : watch.Events()) {
    EXPECT_THAT(e, ::testing::Not(HasSubstr("w2/other")));
  }
  // Cached reads under a prefix watch, including a key that does not exist.
  v1::GetConfigResponse got;
  ASSERT_TRUE(Get("w2/app/a", &got).ok());
  EXPECT_EQ(got.entry().value(), "1");
  EXPECT_EQ(Get("w2/app/b/c/d", &got).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ConfigServiceTest, QuietWatchCarriesHeartbeats) {
  WatchReader watch(stub_.get(), "w3/quiet", false, absl::Milliseconds(200));
  ASSERT_TRUE(watch.WaitUntil([](const auto& responses) {
    int heartbeats = 0;
    for (const auto& r : responses) {
      if (r.has_heartbeat()) {
        EXPECT_EQ(r.events_size(), 0);
        EXPECT_GT(r.heartbeat().server_time().seconds(), 1700000000);
        ++heartbeats;
      }
    }
    return heartbeats >= 2;
  }));
}

TEST_F(ConfigServiceTest, HealthIsServingAndReflectionListsTheServices) {
  auto health = grpc::health::v1::Health::NewStub(warrend_->channel());
  for (const char* service : {"", "warren.v1.ConfigService"}) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(CallContext().get(), request, &response).ok());
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
  auto reflection =
      grpc::reflection::v1alpha::ServerReflection::NewStub(warrend_->channel());
  auto context = CallContext();
  auto stream = reflection->ServerReflectionInfo(context.get());
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::set<std::string> names;
  for (const auto& s : response.list_services_response().service()) {
    names.insert(s.name());
  }
  EXPECT_TRUE(names.count("warren.v1.ConfigService"));
  EXPECT_TRUE(names.count("warren.v1.MessagingService"));
  EXPECT_TRUE(names.count("warren.v1.ElectionService"));
  EXPECT_TRUE(names.count("grpc.health.v1.Health"));
}

// Its own warrend: SIGTERM ends open streams with UNAVAILABLE, turns health
// to NOT_SERVING first, and exits 0.
TEST(ShutdownTest, SigtermEndsStreamsWithUnavailableAndExitsZero) {
  auto started = WarrendProcess::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  auto& warrend = *started;
  auto stub = v1::ConfigService::NewStub(warrend->channel());
  WatchReader watch(stub.get(), "", /*prefix=*/true);
  ASSERT_TRUE(watch.WaitUntil([](const auto& r) { return !r.empty(); }));
  EXPECT_EQ(warrend->Terminate(), 0) << warrend->Log();
  grpc::Status status;
  ASSERT_TRUE(watch.WaitEnded(absl::Seconds(30), &status));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(warrend->Log(), HasSubstr("draining"));
}

// A flood of streams beyond max_streams is refused with RESOURCE_EXHAUSTED
// naming the limit, while the streams already open keep working; a slot
// that frees up is taken again.
TEST(StreamLimitTest, StreamsBeyondMaxStreamsAreRefusedAndOpenOnesKeepWorking) {
  auto started = WarrendProcess::Start({"--max_streams=3"});
  ASSERT_TRUE(started.ok()) << started.status();
  auto& warrend = *started;
  auto stub = v1::ConfigService::NewStub(warrend->channel());
  auto has_state = [](const std::vector<v1::WatchConfigResponse>& r) {
    return !r.empty();
  };
  std::vector<std::unique_ptr<WatchReader>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<WatchReader>(stub.get(), "flood/key",
                                                 /*prefix=*/false));
    ASSERT_TRUE(open.back()->WaitUntil(has_state)) << i;
  }
  for (int i = 0; i < 5; ++i) {
    WatchReader refused(stub.get(), "flood/key", /*prefix=*/false);
    grpc::Status status;
    ASSERT_TRUE(refused.WaitEnded(absl::Seconds(30), &status));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("max_streams (3)"));
  }
  // The open ones still see changes.
  v1::PutConfigRequest put;
  put.set_key("flood/key");
  put.set_value("v1");
  v1::PutConfigResponse ignored;
  ASSERT_TRUE(stub->PutConfig(CallContext().get(), put, &ignored).ok());
  for (auto& watch : open) {
    EXPECT_TRUE(watch->WaitForValue("flood/key", "v1"));
  }
  // Closing one makes room for one.
  open.pop_back();
  ASSERT_TRUE(WaitFor(
      [&] {
        WatchReader again(stub.get(), "flood/key", /*prefix=*/false);
        return again.WaitUntil(has_state, absl::Seconds(5));
      },
      absl::Seconds(30)));
}

}  // namespace
}  // namespace warren::testing
