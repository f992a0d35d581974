// Ack soak: acks must never leak between subscriptions (issue 14, item 7).
//
// Publishers (PublishStream) keep a steady load on durable queues while
// subscribers ack every delivery once and, every 2 to 6 s, cancel their
// stream and subscribe again; a few consumers take deliveries and drop them
// unprocessed, never acking, so the broker requeues them at every churn.
// What must hold at the end:
//   - every confirmed message was consumed by a consumer that processed
//     (acked) it, at least once;
//   - no Subscribe stream ended other than by its own cancellation (an ack
//     the broker does not know closes the channel: FAILED_PRECONDITION), and
//     no stream saw the same delivery id twice;
//   - warrend's resident memory and thread count stay flat (after warm-up
//     against the end, within a tolerance).
// It runs against the single-node test stack; the cluster fault suite runs
// it as it is. Bounded: about a minute in the plain build, less under the
// sanitizers. Randomised churn with a fixed seed.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "server/common/mutex.h"
#include "tests/integration/amqp_admin.h"
#include "tests/integration/harness.h"
#include "tests/integration/messaging_clients.h"
#include "warren/v1/messaging.grpc.pb.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WARREN_SOAK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WARREN_SOAK_SANITIZED 1
#endif
#endif

namespace warren::testing {
namespace {

namespace v1 = ::warren::v1;

// The load of the report (about 900 confirmed messages/s, 8 queues, 3
// subscribers each, max_in_flight 50) for 50 s; a sanitized warrend is
// several times slower, so it gets a quarter of the rate for 20 s.
#ifdef WARREN_SOAK_SANITIZED
constexpr int kRatePerPublisher = 50;
constexpr absl::Duration kLoad = absl::Seconds(20);
#else
constexpr int kRatePerPublisher = 220;
constexpr absl::Duration kLoad = absl::Seconds(50);
#endif
constexpr int kPublishers = 4;
constexpr int kQueues = 8;
constexpr int kAckersPerQueue = 3;
constexpr int kDroppers = 4;  // one on each of the first queues
constexpr uint32_t kMaxInFlight = 50;
constexpr uint32_t kDropperMaxInFlight = 20;
constexpr uint32_t kSeed = 14007;
// After the load: how long the ackers have to consume what is left.
constexpr absl::Duration kDrainTimeout = absl::Seconds(90);

std::string Name(const std::string& base) {
  static const std::string* const suffix = new std::string(
      absl::StrCat(getpid(), "-", absl::ToUnixMicros(absl::Now())));
  return absl::StrCat(base, "-", *suffix);
}

// VmRSS (KiB) and Threads of a process, from /proc/<pid>/status.
struct ProcessSample {
  int64_t rss_kib = -1;
  int64_t threads = -1;
};

ProcessSample SampleProcess(pid_t pid) {
  ProcessSample sample;
  std::istringstream status(ReadFile(absl::StrCat("/proc/", pid, "/status")));
  std::string line;
  while (std::getline(status, line)) {
    std::istringstream fields(line);
    std::string key;
    int64_t value = -1;
    fields >> key >> value;
    if (key == "VmRSS:") sample.rss_kib = value;
    if (key == "Threads:") sample.threads = value;
  }
  return sample;
}

// What every consumer reports, across their lives.
class Ledger {
 public:
  void Confirmed(const std::string& id) {
    warren::MutexLock lock(&mu_);
    confirmed_.insert(id);
    // A message may be consumed before its confirm reaches the publisher.
    if (processed_.count(id) == 0) unprocessed_.insert(id);
  }
  void PublishFailed(const std::string& error) {
    warren::MutexLock lock(&mu_);
    ++publish_failures_;
    last_publish_error_ = error;
  }
  void Processed(const std::string& id) {
    warren::MutexLock lock(&mu_);
    ++processed_deliveries_;
    processed_.insert(id);
    unprocessed_.erase(id);
  }
  void Dropped() {
    warren::MutexLock lock(&mu_);
    ++dropped_;
  }
  // One life of a Subscribe stream ended: by the test's cancel
  // (`cancelled`, and then CANCELLED) or else by the server, an error.
  void StreamEnded(const grpc::Status& status, bool cancelled,
                   size_t duplicate_ids) {
    warren::MutexLock lock(&mu_);
    ++lives_;
    duplicate_ids_ += duplicate_ids;
    if (cancelled && status.error_code() == grpc::StatusCode::CANCELLED) {
      return;
    }
    stream_errors_.push_back(
        absl::StrCat(status.error_code(), ": ", status.error_message()));
  }
  // Waits until every confirmed message was processed.
  bool AwaitAllProcessed(absl::Duration timeout) {
    warren::MutexLock lock(&mu_);
    auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return unprocessed_.empty();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }

  warren::Mutex mu_;
  std::set<std::string> confirmed_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> processed_ ABSL_GUARDED_BY(mu_);
  // Confirmed and not processed (yet).
  std::set<std::string> unprocessed_ ABSL_GUARDED_BY(mu_);
  size_t processed_deliveries_ ABSL_GUARDED_BY(mu_) = 0;
  size_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  size_t publish_failures_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_publish_error_ ABSL_GUARDED_BY(mu_);
  size_t lives_ ABSL_GUARDED_BY(mu_) = 0;
  size_t duplicate_ids_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> stream_errors_ ABSL_GUARDED_BY(mu_);
};

// One consumer slot: subscribes to its queue, consumes until its life's
// random end (2 to 6 s), cancels, subscribes again; until Stop(). An acker
// processes (records) then acks every delivery once; a dropper ignores
// them.
class Consumer {
 public:
  Consumer(v1::MessagingService::Stub& stub, std::string queue, bool acks,
           uint32_t seed, Ledger& ledger)
      : stub_(stub),
        queue_(std::move(queue)),
        acks_(acks),
        rng_(seed),
        ledger_(ledger) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Consumer() {
    Stop();
    thread_.join();
  }
  void Stop() {
    warren::MutexLock lock(&mu_);
    stopping_ = true;  // the life's canceller cancels its stream
  }
  size_t lives() {
    warren::MutexLock lock(&mu_);
    return lives_;
  }

 private:
  void Run() {
    std::uniform_int_distribution<int> life_ms(2000, 6000);
    while (true) {
      grpc::ClientContext context;
      {
        warren::MutexLock lock(&mu_);
        if (stopping_) return;
        ++lives_;
      }
      const absl::Time end = absl::Now() + absl::Milliseconds(life_ms(rng_));
      auto stream = stub_.Subscribe(&context);
      v1::SubscribeRequest start;
      start.mutable_start()->set_queue(queue_);
      start.mutable_start()->set_max_in_flight(acks_ ? kMaxInFlight
                                                     : kDropperMaxInFlight);
      stream->Write(start);
      // The life's end cancels the stream from another thread, as a
      // client that gives up on it does, whether or not a delivery comes;
      // not once the server ended it: a cancel before Finish() would hide
      // the server's status behind CANCELLED.
      bool read_done = false;
      bool cancelled = false;
      std::thread canceller([&] {
        warren::MutexLock lock(&mu_);
        auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || read_done;
        };
        mu_.AwaitWithDeadline(absl::Condition(&wake), end);
        if (read_done) return;
        cancelled = true;
        context.TryCancel();
      });
      std::set<uint64_t> seen;
      size_t duplicates = 0;
      v1::SubscribeResponse response;
      while (stream->Read(&response)) {
        if (!response.has_delivery()) continue;
        const v1::Delivery& d = response.delivery();
        if (!seen.insert(d.delivery_id()).second) ++duplicates;
        if (!acks_) {
          ledger_.Dropped();
          continue;
        }
        ledger_.Processed(d.message_id());
        v1::SubscribeRequest ack;
        ack.mutable_ack()->add_delivery_ids(d.delivery_id());
        // A failed write (the server ended the stream) is seen by Read:
        // reading on until it fails drains what came before, which
        // Finish() needs.
        stream->Write(ack);
      }
      {
        warren::MutexLock lock(&mu_);
        read_done = true;
      }
      canceller.join();
      const grpc::Status status = stream->Finish();
      ledger_.StreamEnded(status, cancelled, duplicates);
    }
  }

  v1::MessagingService::Stub& stub_;
  const std::string queue_;
  const bool acks_;
  std::mt19937 rng_;
  Ledger& ledger_;
  std::thread thread_;
  warren::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  size_t lives_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(AckSoakTest, ChurningSubscribersNeverLeakAcksAndLoseNothing) {
#ifdef WARREN_SOAK_SANITIZED
  // AddressSanitizer holds freed memory back (256 MiB by default) before it
  // reuses it: warrend's RSS would grow by that much whatever it leaks.
  // A small quarantine keeps the comparison meaningful; warrend inherits
  // the environment (this process's own sanitizer has read it already).
  const char* asan = std::getenv("ASAN_OPTIONS");
  setenv("ASAN_OPTIONS",
         absl::StrCat(asan != nullptr ? asan : "",
                      asan != nullptr && *asan != '\0' ? ":" : "",
                      "quarantine_size_mb=8")
             .c_str(),
         1);
#endif
  auto warrend = WarrendProcess::Start({"--log_level=info"});
  ASSERT_TRUE(warrend.ok()) << warrend.status();
  auto admin = AmqpAdmin::Connect(TestEnv("WARREN_TEST_AMQP_URL"));
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto stub = v1::MessagingService::NewStub((*warrend)->channel());
  const pid_t pid = (*warrend)->pid();

  std::vector<std::string> queues;
  for (int q = 0; q < kQueues; ++q) {
    queues.push_back(Name(absl::StrCat("warren-ack-soak-", q)));
    ASSERT_TRUE((*admin)->DeclareQueue(queues.back()).ok());
  }

  Ledger ledger;
  const absl::Time started = absl::Now();
  std::vector<std::unique_ptr<Consumer>> ackers, droppers;
  uint32_t seed = kSeed;
  for (int q = 0; q < kQueues; ++q) {
    for (int i = 0; i < kAckersPerQueue; ++i) {
      ackers.push_back(
          std::make_unique<Consumer>(*stub, queues[q], true, seed++, ledger));
    }
  }
  for (int i = 0; i < kDroppers; ++i) {
    droppers.push_back(std::make_unique<Consumer>(*stub, queues[i % kQueues],
                                                  false, seed++, ledger));
  }

  // Publishers: paced to kRatePerPublisher each for kLoad, round robin over
  // the queues, each on one PublishStream.
  const int per_publisher =
      static_cast<int>(kRatePerPublisher * absl::ToDoubleSeconds(kLoad));
  std::vector<grpc::Status> publish_status(kPublishers);
  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      const absl::Time begin = absl::Now();
      PublishAll(
          *stub, per_publisher,
          [&](size_t i) {
            // Pacing, not synchronisation: the load has a rate.
            const absl::Time due =
                begin +
                absl::Seconds(static_cast<double>(i) / kRatePerPublisher);
            const absl::Duration ahead = due - absl::Now();
            if (ahead > absl::ZeroDuration()) absl::SleepFor(ahead);
            v1::PublishRequest m;
            m.set_routing_key(queues[(i + p) % kQueues]);
            m.set_message_id(absl::StrCat("p", p, "-", i));
            m.set_payload(std::string(256, 'a' + p));
            return m;
          },
          &publish_status[p],
          [&](const PublishOutcome& outcome) {
            if (outcome.code == 0) {
              ledger.Confirmed(outcome.message_id);
            } else {
              ledger.PublishFailed(
                  absl::StrCat(outcome.code, ": ", outcome.error));
            }
          });
    });
  }

  // Memory and threads: once after warm-up (a fifth of the load), once at
  // its end, both under the same load. Measurements at points in time, not
  // a synchronisation.
  absl::SleepFor(kLoad / 5);
  const ProcessSample warm = SampleProcess(pid);
  for (auto& t : publishers) t.join();
  const ProcessSample end = SampleProcess(pid);
  const absl::Duration load_time = absl::Now() - started;

  // The droppers stop (what they hold goes back to the queues); the ackers
  // go on churning until everything confirmed was processed.
  for (auto& d : droppers) d->Stop();
  droppers.clear();
  const bool all_processed = ledger.AwaitAllProcessed(kDrainTimeout);
  size_t churns = 0;
  for (auto& a : ackers) a->Stop();
  for (auto& a : ackers) churns += a->lives();
  ackers.clear();
  const absl::Duration total = absl::Now() - started;

  warren::MutexLock lock(&ledger.mu_);
  std::cout << "ack soak: " << ledger.confirmed_.size() << " confirmed ("
            << ledger.publish_failures_ << " refused), "
            << ledger.processed_deliveries_ << " deliveries processed ("
            << ledger.processed_.size() << " distinct), " << ledger.dropped_
            << " dropped unprocessed, " << ledger.lives_
            << " subscription lives (" << churns << " by ackers), load "
            << absl::FormatDuration(load_time) << ", total "
            << absl::FormatDuration(total) << "; warrend RSS " << warm.rss_kib
            << " -> " << end.rss_kib << " KiB, threads " << warm.threads
            << " -> " << end.threads << std::endl;

  for (int p = 0; p < kPublishers; ++p) {
    EXPECT_TRUE(publish_status[p].ok())
        << "publisher " << p << ": " << publish_status[p].error_message();
  }
  EXPECT_EQ(ledger.publish_failures_, 0u) << ledger.last_publish_error_;
  EXPECT_GT(ledger.confirmed_.size(),
            static_cast<size_t>(kPublishers * per_publisher * 9 / 10));
  EXPECT_TRUE(all_processed) << "confirmed messages never processed";
  if (!all_processed) {
    std::vector<std::string> missing(ledger.unprocessed_.begin(),
                                     ledger.unprocessed_.end());
    missing.resize(std::min<size_t>(missing.size(), 10));
    ADD_FAILURE() << ledger.unprocessed_.size() << " unprocessed, e.g. "
                  << absl::StrJoin(missing, ", ");
  }
  EXPECT_TRUE(ledger.stream_errors_.empty())
      << ledger.stream_errors_.size() << " Subscribe streams failed: "
      << absl::StrJoin(ledger.stream_errors_, "; ");
  EXPECT_EQ(ledger.duplicate_ids_, 0u)
      << "a stream got the same delivery id twice";
  // Enough churn for the race to show: every acker lived several times.
  EXPECT_GE(churns, static_cast<size_t>(kQueues * kAckersPerQueue * 3));

  // Flat: the end within a tolerance of the warm-up. Under load, allocator
  // caches and gRPC's buffers vary by some megabytes; a leak per churn or
  // per message (hundreds of subscriptions, tens of thousands of messages)
  // exceeds this.
  ASSERT_GT(warm.rss_kib, 0);
  ASSERT_GT(warm.threads, 0);
  EXPECT_LE(end.rss_kib,
            warm.rss_kib + std::max<int64_t>(warm.rss_kib / 2, 48 * 1024))
      << "warrend's RSS grew from " << warm.rss_kib << " to " << end.rss_kib
      << " KiB";
  EXPECT_LE(end.threads, warm.threads + 8)
      << "warrend's threads grew from " << warm.threads << " to "
      << end.threads;

  for (const std::string& q : queues) {
    EXPECT_TRUE((*admin)->DeleteQueue(q).ok());
  }
}

}  // namespace
}  // namespace warren::testing
