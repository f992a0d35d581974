// The retry table (clients/retry-policy.json, "stream") as the Locker and
// the Registration apply it, against an in-process fake server that ends
// each first stream with one code: a code to resubscribe on is followed by
// a second stream (and the lock acquired, the key held again), a fatal one
// is answered (Acquire) or ends the registration (status()). No warrend
// needed: these are unit tests.
#include <algorithm>
#include <cstddef>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "warren/client/channel.h"
#include "warren/client/locker.h"
#include "warren/client/registration.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/lock.grpc.pb.h"

namespace warren::client {
namespace {

namespace v1 = ::warren::v1;

// Each code of the table with its stream decision.
std::vector<std::pair<absl::StatusCode, std::string>> StreamRows() {
  const std::string path =
      std::string(WARREN_CLIENTS_DIR) + "/retry-policy.json";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct policy;
  EXPECT_TRUE(
      google::protobuf::util::JsonStringToMessage(text.str(), &policy).ok())
      << path;
  std::vector<std::pair<absl::StatusCode, std::string>> rows;
  for (const auto& [name, row] :
       policy.fields().at("codes").struct_value().fields()) {
    const auto& fields = row.struct_value().fields();
    rows.emplace_back(
        static_cast<absl::StatusCode>(fields.at("number").number_value()),
        fields.at("stream").string_value());
  }
  EXPECT_EQ(rows.size(), 17u);
  return rows;
}

// The first stream of each test ends with `first_end` (a Lock stream
// before it acquires, or just after with `acquire_first`); later ones
// behave.
class FakeServer final : public v1::LockService::Service,
                         public v1::ConfigService::Service {
 public:
  explicit FakeServer(absl::StatusCode first_end, bool acquire_first = false)
      : first_end_(first_end), acquire_first_(acquire_first) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(static_cast<v1::LockService::Service*>(this));
    builder.RegisterService(static_cast<v1::ConfigService::Service*>(this));
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() override { server_->Shutdown(absl::ToChronoTime(absl::Now())); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int streams() const {
    warren::MutexLock lock(&mu_);
    return streams_;
  }

  // HoldKey streams from the `first`th on are refused with ALREADY_EXISTS
  // (a key someone holds), `count` of them.
  void RefuseHolds(int first, int count) {
    warren::MutexLock lock(&mu_);
    refuse_first_ = first;
    refuse_count_ = count;
  }

  // `held` says this heartbeat interval, and the stream stays open with no
  // heartbeat (the first one too: it does not end with `first_end`).
  void TellInterval(absl::Duration interval) {
    warren::MutexLock lock(&mu_);
    told_interval_ = interval;
  }

  // A server that takes the request and never answers (frozen).
  void NeverAnswer() {
    warren::MutexLock lock(&mu_);
    never_answer_ = true;
  }
  // Whether the silent stream was cancelled by the client, within 10 s.
  bool AwaitCancelled() const {
    warren::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&cancelled_),
                                absl::Seconds(10));
  }

  grpc::Status Lock(grpc::ServerContext* context,
                    grpc::ServerReaderWriter<v1::LockResponse, v1::LockRequest>*
                        stream) override {
    v1::LockRequest request;
    if (!stream->Read(&request)) return grpc::Status::CANCELLED;
    const int n = NextStream();
    bool silent;
    {
      warren::MutexLock lock(&mu_);
      silent = never_answer_;
    }
    if (silent) {
      while (stream->Read(&request)) {
      }
      warren::MutexLock lock(&mu_);
      cancelled_ = context->IsCancelled();
      return grpc::Status::CANCELLED;
    }
    if (n == 1 && !acquire_first_) return First();
    v1::LockResponse acquired;
    acquired.mutable_acquired()->mutable_holder()->set_fencing_token(40 + n);
    acquired.mutable_acquired()->mutable_heartbeat_interval()->set_seconds(5);
    stream->Write(acquired);
    if (n == 1) return First();
    while (stream->Read(&request)) {
    }
    return grpc::Status::OK;
  }

  grpc::Status HoldKey(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::HoldKeyResponse, v1::HoldKeyRequest>* stream)
      override {
    v1::HoldKeyRequest request;
    if (!stream->Read(&request)) return grpc::Status::CANCELLED;
    const int n = NextStream();
    {
      warren::MutexLock lock(&mu_);
      if (n >= refuse_first_ && n < refuse_first_ + refuse_count_) {
        return grpc::Status(grpc::StatusCode::ALREADY_EXISTS, "key: taken");
      }
    }
    v1::HoldKeyResponse held;
    held.mutable_held()->set_key(request.key());
    held.mutable_held()->set_held(true);
    bool tells_interval;
    {
      warren::MutexLock lock(&mu_);
      tells_interval = told_interval_ > absl::ZeroDuration();
      if (tells_interval) {
        held.mutable_heartbeat_interval()->set_nanos(
            static_cast<int32_t>(absl::ToInt64Nanoseconds(told_interval_)));
      }
    }
    stream->Write(held);
    if (n == 1 && !tells_interval) return First();
    while (stream->Read(&request)) {
    }
    return grpc::Status::OK;
  }

 private:
  int NextStream() {
    warren::MutexLock lock(&mu_);
    return ++streams_;
  }
  grpc::Status First() const {
    return grpc::Status(static_cast<grpc::StatusCode>(first_end_),
                        "the fake server's first end");
  }

  const absl::StatusCode first_end_;
  const bool acquire_first_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  mutable warren::Mutex mu_;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
  bool never_answer_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int refuse_first_ ABSL_GUARDED_BY(mu_) = 0;
  int refuse_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration told_interval_ ABSL_GUARDED_BY(mu_);
};

BackoffPolicy Fast() {
  BackoffPolicy backoff;
  backoff.initial = absl::Milliseconds(10);
  backoff.max = absl::Milliseconds(50);
  return backoff;
}

TEST(StreamPolicyTest, AWaitingLockerFollowsTheTable) {
  for (const auto& [code, decision] : StreamRows()) {
    SCOPED_TRACE(absl::StatusCodeToString(code));
    FakeServer server(code);
    Locker locker(MakeChannel(server.address()));
    LockOptions options;
    options.backoff = Fast();
    // No timeout: the server's DEADLINE_EXCEEDED is no answer to one.
    auto lock = locker.Acquire("name", options);
    if (decision == "resubscribe") {
      ASSERT_TRUE(lock.ok()) << lock.status();
      EXPECT_EQ((*lock)->fencing_token(), 42u);  // the second stream's
      EXPECT_EQ(server.streams(), 2);
    } else {
      ASSERT_EQ(decision, "fatal");
      EXPECT_EQ(lock.status().code(), code) << lock.status();
      EXPECT_EQ(server.streams(), 1);
    }
  }
}

TEST(StreamPolicyTest, TryingOnceAnswersAFatalCodeAsItIs) {
  for (const auto& [code, decision] : StreamRows()) {
    SCOPED_TRACE(absl::StatusCodeToString(code));
    FakeServer server(code);
    Locker locker(MakeChannel(server.address()));
    LockOptions options;
    options.backoff = Fast();
    options.timeout = absl::ZeroDuration();
    auto lock = locker.Acquire("name", options);
    // No time to try again: a code to resubscribe on ends the wait
    // (DEADLINE_EXCEEDED), a fatal one is the answer.
    EXPECT_EQ(lock.status().code(),
              decision == "fatal" ? code : absl::StatusCode::kDeadlineExceeded)
        << lock.status();
    EXPECT_EQ(server.streams(), 1);
  }
}

TEST(StreamPolicyTest, AHeldLockIsLostWhateverEndsItsStream) {
  for (const auto& [code, decision] : StreamRows()) {
    SCOPED_TRACE(absl::StatusCodeToString(code));
    FakeServer server(code, /*acquire_first=*/true);
    Locker locker(MakeChannel(server.address()));
    warren::Mutex mu;
    std::vector<std::string> losses;
    LockOptions options;
    options.backoff = Fast();
    options.on_lost = [&](LossReason reason, const absl::Status&) {
      warren::MutexLock lock(&mu);
      losses.push_back(LossReasonName(reason));
    };
    auto lock = locker.Acquire("name", options);
    ASSERT_TRUE(lock.ok()) << lock.status();
    EXPECT_EQ((*lock)->fencing_token(), 41u);
    {
      warren::MutexLock hold(&mu);
      auto lost = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
        return !losses.empty();
      };
      ASSERT_TRUE(
          mu.AwaitWithTimeout(absl::Condition(&lost), absl::Seconds(10)));
      EXPECT_EQ(losses, std::vector<std::string>{"stream broken"});
    }
    EXPECT_FALSE((*lock)->held());
    (*lock)->Release();
    // Never acquired again behind the caller's back.
    EXPECT_EQ(server.streams(), 1);
  }
}

TEST(StreamPolicyTest, ATimedWaitOnASilentServerEndsAndCancels) {
  FakeServer server(absl::StatusCode::kOk);
  server.NeverAnswer();
  Locker locker(MakeChannel(server.address()));
  LockOptions options;
  options.timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  auto lock = locker.Acquire("name", options);
  EXPECT_EQ(lock.status().code(), absl::StatusCode::kDeadlineExceeded)
      << lock.status();
  // The timeout plus the time the server is given to answer it itself,
  // not the release timeout on top.
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  // The stream was cancelled: the server drops the place in line.
  EXPECT_TRUE(server.AwaitCancelled());
}

TEST(StreamPolicyTest, TheServersDeadlineExceededEndsATimedWait) {
  FakeServer server(absl::StatusCode::kDeadlineExceeded);
  Locker locker(MakeChannel(server.address()));
  LockOptions options;
  options.backoff = Fast();
  options.timeout = absl::Seconds(30);
  auto lock = locker.Acquire("name", options);
  EXPECT_EQ(lock.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server.streams(), 1);
}

// What a Registration of "k" is told, as lines: "held", "lost <reason>",
// "ended <code>", in order.
class Recorder {
 public:
  RegistrationOptions Options() {
    RegistrationOptions options;
    options.key = "k";
    options.backoff = Fast();
    options.heartbeat_interval = absl::Seconds(5);
    options.on_held = [this](const v1::ConfigEntry&) { Add("held"); };
    options.on_lost = [this](LossReason reason, const absl::Status&) {
      Add(absl::StrCat("lost ", LossReasonName(reason)));
    };
    options.on_stream_error = [this](const absl::Status& status) {
      Add(absl::StrCat("ended ", absl::StatusCodeToString(status.code())));
    };
    return options;
  }
  // The first `count` lines (fewer after `timeout`).
  std::vector<std::string> Await(
      size_t count, absl::Duration timeout = absl::Seconds(10)) const {
    warren::MutexLock lock(&mu_);
    auto reported = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return lines_.size() >= count;
    };
    mu_.AwaitWithTimeout(absl::Condition(&reported), timeout);
    return {lines_.begin(),
            lines_.begin() +
                static_cast<std::ptrdiff_t>(std::min(count, lines_.size()))};
  }

 private:
  void Add(std::string line) {
    warren::MutexLock lock(&mu_);
    lines_.push_back(std::move(line));
  }
  mutable warren::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

TEST(StreamPolicyTest, ARegistrationFollowsTheTable) {
  for (const auto& [code, decision] : StreamRows()) {
    SCOPED_TRACE(absl::StatusCodeToString(code));
    FakeServer server(code);
    Recorder events;
    auto registration =
        Registration::Start(MakeChannel(server.address()), events.Options());
    ASSERT_TRUE(registration.ok()) << registration.status();
    // The Registration's one exception to the table: once it has held its
    // key, ALREADY_EXISTS (most likely its own node of a crashed warrend's
    // session) is retried.
    const bool retried =
        decision == "resubscribe" || code == absl::StatusCode::kAlreadyExists;
    const size_t expected = retried ? 4 : 3;
    std::vector<std::string> want = {
        "held", "lost stream broken",
        absl::StrCat("ended ", absl::StatusCodeToString(code))};
    // Held again on a new stream, or given up.
    if (retried) want.push_back("held");
    EXPECT_EQ(events.Await(expected), want);
    if (retried) {
      EXPECT_TRUE((*registration)->held());
      EXPECT_EQ((*registration)->holds(), 2);
      EXPECT_TRUE((*registration)->status().ok());
      EXPECT_EQ(server.streams(), 2);
    } else {
      EXPECT_FALSE((*registration)->held());
      EXPECT_EQ((*registration)->status().code(), code);
      EXPECT_EQ(server.streams(), 1);
    }
    (*registration)->Close();
  }
}

TEST(StreamPolicyTest, AlreadyExistsIsFatalForTheFirstHoldOnly) {
  // First hold: someone else has the key.
  {
    FakeServer server(absl::StatusCode::kUnavailable);
    server.RefuseHolds(1, 1);
    Recorder events;
    auto registration =
        Registration::Start(MakeChannel(server.address()), events.Options());
    EXPECT_EQ(registration.status().code(), absl::StatusCode::kAlreadyExists)
        << registration.status();
    EXPECT_EQ(server.streams(), 1);
  }
  // A re-hold: held on stream 1 (which breaks), refused on streams 2 to 4
  // (the dead session's node lingering), held again on stream 5.
  FakeServer server(absl::StatusCode::kUnavailable);
  server.RefuseHolds(2, 3);
  Recorder events;
  auto registration =
      Registration::Start(MakeChannel(server.address()), events.Options());
  ASSERT_TRUE(registration.ok()) << registration.status();
  EXPECT_EQ(events.Await(7),
            (std::vector<std::string>{
                "held", "lost stream broken", "ended UNAVAILABLE",
                "ended ALREADY_EXISTS", "ended ALREADY_EXISTS",
                "ended ALREADY_EXISTS", "held"}));
  EXPECT_TRUE((*registration)->held());
  EXPECT_EQ((*registration)->holds(), 2);
  EXPECT_TRUE((*registration)->status().ok()) << (*registration)->status();
  EXPECT_EQ(server.streams(), 5);
  (*registration)->Close();
}

TEST(StreamPolicyTest, TheLeaseFollowsTheIntervalTheServerSays) {
  // Asked for 5 s (a 10 s lease); the server says 200 ms and then falls
  // silent: the lease is 400 ms.
  FakeServer server(absl::StatusCode::kUnavailable);
  server.TellInterval(absl::Milliseconds(200));
  Recorder events;
  auto registration =
      Registration::Start(MakeChannel(server.address()), events.Options());
  ASSERT_TRUE(registration.ok()) << registration.status();
  // Well before the 10 s lease of the requested interval.
  const std::vector<std::string> told = events.Await(2, absl::Seconds(5));
  EXPECT_EQ(told, (std::vector<std::string>{"held", "lost lease expired"}));
  (*registration)->Close();
}

}  // namespace
}  // namespace warren::client
