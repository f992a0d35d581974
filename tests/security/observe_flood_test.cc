// Security issue 15, item 5 (ObserveLeader): one client opened 20,000
// ObserveLeader streams on different names, and every ZooKeeper-backed call
// of every other client stalled (GetConfig(consistent) DEADLINE_EXCEEDED for
// about 27 s): each fresh name's first read (a getChildren, then an exists)
// went into the one ZooKeeper session's queue at once, in front of every
// other request. Now the streams are capped per client and in total
// (max_observers_per_client, max_observers: RESOURCE_EXHAUSTED naming the
// limit), and the reads go through a gate of a few at a time, so that
// another client's call waits behind a handful of requests, not thousands.
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "tests/integration/harness.h"
#include "tests/security/security_support.h"
#include "warren/client/channel.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"

namespace warren::testing::security {
namespace {

namespace v1 = ::warren::v1;
using ::testing::HasSubstr;

const Principal kMallory{"mallory", "mallory-token-6d2b9e4f1a7c3e8d0b5f"};
const Principal kBob{"bob", "bob-token-1c9e7a5b3d2f4e6a8c0d"};

// Ten more observers for the measurement: m0 ... m9.
Principal Many(int i) {
  return {absl::StrCat("m", i),
          absl::StrCat("m", i, "-token-4f1a7c3e8d0b5f6d")};
}

constexpr char kPolicy[] = R"yaml(principals:
  mallory:
    observe: ["**"]
  m0: {observe: ["**"]}
  m1: {observe: ["**"]}
  m2: {observe: ["**"]}
  m3: {observe: ["**"]}
  m4: {observe: ["**"]}
  m5: {observe: ["**"]}
  m6: {observe: ["**"]}
  m7: {observe: ["**"]}
  m8: {observe: ["**"]}
  m9: {observe: ["**"]}
  bob:
    config_read: ["app/**"]
    config_write: ["app/**"]
)yaml";

// A channel of its own connection (gRPC shares one between channels of
// equal arguments): the server serves at most max_concurrent_streams (1000)
// streams on one connection, and a flood past that would wait in the
// client instead of reaching the server.
std::shared_ptr<grpc::Channel> ConnectionAs(const std::string& address,
                                            const std::string& token, int n) {
  grpc::ChannelArguments args;
  args.SetInt("warren.test.connection", n);
  return ::warren::client::CreateChannelWithToken(
      address, grpc::InsecureChannelCredentials(), args, token);
}

// ObserveLeader streams kept open on a completion queue: how many got their
// first answer (the leader, or that nobody leads), and how the refused ones
// ended.
class ObserverFlood {
 public:
  ~ObserverFlood() {
    for (auto& s : streams_) s->context.TryCancel();
    // Every stream ends (cancelled or refused) and says so.
    WaitUntil([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return ended_ == streams_.size();
    });
    cq_.Shutdown();
    pump_.join();
  }

  void Open(v1::ElectionService::Stub& stub, const std::string& election) {
    auto stream = std::make_unique<Stream>();
    Stream* s = stream.get();
    v1::ObserveLeaderRequest request;
    request.set_election(election);
    // Under the lock: the pump may see the start before `reader` is set.
    warren::MutexLock lock(&mu_);
    streams_.push_back(std::move(stream));
    s->reader =
        stub.AsyncObserveLeader(&s->context, request, &cq_, Tag(s, kStarted));
  }

  // Waits until every stream opened has answered or ended.
  bool WaitSettled(absl::Duration timeout) {
    return WaitUntil([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                         mu_) { return answered_ + ended_ == streams_.size(); },
                     timeout);
  }
  size_t answered() {
    warren::MutexLock lock(&mu_);
    return answered_;
  }
  std::vector<grpc::Status> ended() {
    warren::MutexLock lock(&mu_);
    return statuses_;
  }

 private:
  enum Phase : uintptr_t { kStarted = 1, kRead = 2, kFinished = 3 };
  struct Stream {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReader<v1::ObserveLeaderResponse>> reader;
    v1::ObserveLeaderResponse response;
    grpc::Status status;
    bool answered = false;
  };
  static void* Tag(Stream* s, Phase phase) {
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(s) | phase);
  }

  bool WaitUntil(std::function<bool()> done,
                 absl::Duration timeout = absl::Seconds(120)) {
    warren::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
    return done();
  }

  void Pump() {
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
      auto* s = reinterpret_cast<Stream*>(reinterpret_cast<uintptr_t>(tag) &
                                          ~uintptr_t{3});
      const auto phase =
          static_cast<Phase>(reinterpret_cast<uintptr_t>(tag) & 3);
      warren::MutexLock lock(&mu_);
      if (phase == kFinished) {
        ++ended_;
        if (!s->answered) statuses_.push_back(s->status);
        continue;
      }
      if (!ok) {
        s->reader->Finish(&s->status, Tag(s, kFinished));
        continue;
      }
      if (phase == kRead && !s->answered) {
        s->answered = true;
        ++answered_;
      }
      s->reader->Read(&s->response, Tag(s, kRead));
    }
  }

  grpc::CompletionQueue cq_;
  warren::Mutex mu_;
  std::vector<std::unique_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  size_t answered_ ABSL_GUARDED_BY(mu_) = 0;
  size_t ended_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<grpc::Status> statuses_ ABSL_GUARDED_BY(mu_);
  std::thread pump_{[this] { Pump(); }};
};

// Another client's linearizable reads, one after another, timed.
class ConsistentReader {
 public:
  ConsistentReader(std::shared_ptr<grpc::Channel> channel, std::string key)
      : stub_(v1::ConfigService::NewStub(std::move(channel))),
        key_(std::move(key)) {}
  ~ConsistentReader() { Stop(); }

  void Start() {
    thread_ = std::thread([this] {
      while (!stop_.load()) {
        v1::GetConfigRequest request;
        request.set_key(key_);
        request.set_consistent(true);
        v1::GetConfigResponse response;
        auto context = CallContext(absl::Seconds(2));
        const absl::Time start = absl::Now();
        grpc::Status status =
            stub_->GetConfig(context.get(), request, &response);
        const absl::Duration took = absl::Now() - start;
        warren::MutexLock lock(&mu_);
        ++calls_;
        if (took > slowest_) slowest_ = took;
        if (!status.ok()) {
          failures_.push_back(
              absl::StrCat(status.error_code(), ": ", status.error_message()));
        }
      }
    });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int calls() {
    warren::MutexLock lock(&mu_);
    return calls_;
  }
  absl::Duration slowest() {
    warren::MutexLock lock(&mu_);
    return slowest_;
  }
  std::vector<std::string> failures() {
    warren::MutexLock lock(&mu_);
    return failures_;
  }

 private:
  std::unique_ptr<v1::ConfigService::Stub> stub_;
  const std::string key_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  warren::Mutex mu_;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration slowest_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> failures_ ABSL_GUARDED_BY(mu_);
};

struct FloodFlags {
  static std::vector<std::string> Args() {
    std::vector<Principal> principals = {kMallory, kBob};
    for (int i = 0; i < 10; ++i) principals.push_back(Many(i));
    static AuthFiles* files = new AuthFiles(principals, kPolicy);
    std::vector<std::string> args = files->Flags();
    // A fair share with auth on (the default equals max_observers, 10,000,
    // as the other per-client limits equal their totals).
    args.push_back("--max_observers_per_client=1000");
    return args;
  }
};

class ObserveFloodTest : public SharedWarrendTest<FloodFlags> {
 protected:
  void PutKey(const std::string& key) {
    auto stub =
        v1::ConfigService::NewStub(ChannelAs(warrend_->address(), kBob.token));
    PutConfigEventually(*stub, key, "v");
  }
};

// A flood of one client up to max_observers_per_client (1000)
// is served (every stream gets its first answer), the streams past it are
// refused with RESOURCE_EXHAUSTED naming the limit, and all the while
// another client's GetConfig(consistent) answers within 2 s.
TEST_F(ObserveFloodTest, PastTheCapRefusedAndOthersKeepTheirLatency) {
  constexpr int kCap = 1000;
  constexpr int kPast = 20;
  PutKey("app/flood-probe");
  ConsistentReader bob(ChannelAs(warrend_->address(), kBob.token),
                       "app/flood-probe");
  bob.Start();

  std::vector<std::unique_ptr<v1::ElectionService::Stub>> stubs;
  for (int c = 0; c < 3; ++c) {
    stubs.push_back(v1::ElectionService::NewStub(
        ConnectionAs(warrend_->address(), kMallory.token, c)));
  }
  ObserverFlood flood;
  const std::string prefix =
      absl::StrCat("flood-", absl::ToUnixNanos(absl::Now()));
  for (int i = 0; i < kCap; ++i) {
    flood.Open(*stubs[i % 2], absl::StrCat(prefix, "/", i));
  }
  ASSERT_TRUE(flood.WaitSettled(absl::Seconds(60)));
  EXPECT_EQ(flood.answered(), static_cast<size_t>(kCap));
  EXPECT_THAT(flood.ended(), ::testing::IsEmpty());

  for (int i = 0; i < kPast; ++i) {
    flood.Open(*stubs[2], absl::StrCat(prefix, "/past/", i));
  }
  ASSERT_TRUE(flood.WaitSettled(absl::Seconds(60)));
  EXPECT_EQ(flood.answered(), static_cast<size_t>(kCap));
  const std::vector<grpc::Status> refused = flood.ended();
  ASSERT_EQ(refused.size(), static_cast<size_t>(kPast));
  for (const grpc::Status& status : refused) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(),
                HasSubstr("max_observers_per_client (1000)"));
  }

  bob.Stop();
  EXPECT_GT(bob.calls(), 0);
  EXPECT_THAT(bob.failures(), ::testing::IsEmpty());
  EXPECT_LT(bob.slowest(), absl::Seconds(2));
  std::cout << "bob's GetConfig(consistent) during the flood: " << bob.calls()
            << " calls, slowest " << absl::FormatDuration(bob.slowest())
            << "\n";
}

struct TotalFlags {
  static std::vector<std::string> Args() {
    static AuthFiles* files = new AuthFiles({kMallory, Many(0)}, kPolicy);
    std::vector<std::string> args = files->Flags();
    args.push_back("--max_observers=3");
    return args;
  }
};
using ObserveTotalTest = SharedWarrendTest<TotalFlags>;

// The total bounds all clients together: once mallory holds all of it,
// another client's stream is refused too, naming max_observers; a slot
// mallory gives back is the other client's.
TEST_F(ObserveTotalTest, TheTotalCapRefusesEveryoneAndFreesOnEnd) {
  auto mallory = v1::ElectionService::NewStub(
      ConnectionAs(warrend_->address(), kMallory.token, 1));
  auto other = v1::ElectionService::NewStub(
      ConnectionAs(warrend_->address(), Many(0).token, 2));
  const std::string prefix =
      absl::StrCat("total-", absl::ToUnixNanos(absl::Now()));
  auto held = std::make_unique<ObserverFlood>();
  for (int i = 0; i < 3; ++i) {
    held->Open(*mallory, absl::StrCat(prefix, "/", i));
  }
  ASSERT_TRUE(held->WaitSettled(absl::Seconds(30)));
  ASSERT_EQ(held->answered(), 3u);
  {
    ObserverFlood refused;
    refused.Open(*other, prefix + "/other");
    ASSERT_TRUE(refused.WaitSettled(absl::Seconds(30)));
    ASSERT_EQ(refused.ended().size(), 1u);
    EXPECT_EQ(refused.ended()[0].error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(refused.ended()[0].error_message(),
                HasSubstr("max_observers (3)"));
  }
  held.reset();  // mallory's streams end; their slots are free
  // The server hears of the cancellations on its own time: the first
  // stream it admits shows the slots came back.
  EXPECT_TRUE(WaitFor(
      [&] {
        ObserverFlood again;
        again.Open(*other, prefix + "/other");
        return again.WaitSettled(absl::Seconds(30)) && again.answered() == 1;
      },
      absl::Seconds(30)));
}

}  // namespace
}  // namespace warren::testing::security
