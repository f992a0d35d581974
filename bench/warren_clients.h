// The Warren side of the benchmark: gRPC callback-API clients of the
// generated stubs, so that thousands of streams cost the load generator no
// thread each. Every reactor lives until OnDone; owners call WaitDone before
// destroying one.
//
// Threading: reactions run on gRPC's callback threads; the counters and
// flags read by the scenario threads are atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::bench {

namespace v1 = ::warren::v1;

// Waits for a notification until `timeout`; answers whether it came.
bool WaitFor(absl::Notification& n, absl::Duration timeout);

// One PublishStream. Saturating mode (window > 0): keeps `window` messages
// unconfirmed until Stop. Paced mode (window == 0): publishes what Send
// hands it, one write at a time.
class PublishStreamClient final
    : public grpc::ClientBidiReactor<v1::PublishStreamRequest,
                                     v1::PublishStreamResponse> {
 public:
  PublishStreamClient(v1::MessagingService::Stub* stub, std::string queue,
                      std::string payload, int window);
  void Start();
  void Send(std::string payload);  // paced mode
  // No more publishes; the stream half-closes once every answer is in.
  void Stop();
  grpc::Status WaitDone(absl::Duration timeout);

  std::atomic<int64_t> confirmed{0};
  std::atomic<int64_t> failed{0};

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnWritesDoneDone(bool /*ok*/) override {}
  void OnDone(const grpc::Status& status) override;

 private:
  void MaybeWriteLocked();

  grpc::ClientContext context_;
  const std::string queue_;
  const std::string payload_;
  const int window_;
  std::mutex mu_;
  v1::PublishStreamRequest request_;
  v1::PublishStreamResponse response_;
  std::deque<std::string> pending_;
  bool writing_ = false;
  bool stopping_ = false;
  bool half_closed_ = false;
  bool finished_ = false;  // OnDone ran: no operation may start any more
  int outstanding_ = 0;
  uint64_t sequence_ = 0;
  grpc::Status status_;
  absl::Notification done_;
};

// `callers` unary Publish calls always in flight.
class UnaryPublisher {
 public:
  UnaryPublisher(v1::MessagingService::Stub* stub, std::string queue,
                 std::string payload, int callers);
  // Publishes `request` as it is (any exchange, delay, ...).
  UnaryPublisher(v1::MessagingService::Stub* stub, v1::PublishRequest request,
                 int callers);
  void Start();
  void Stop();
  bool WaitDone(absl::Duration timeout);

  std::atomic<int64_t> confirmed{0};
  std::atomic<int64_t> failed{0};

 private:
  void Issue();

  v1::MessagingService::Stub* stub_;
  v1::PublishRequest request_;
  const int callers_;
  std::atomic<bool> stop_{false};
  std::atomic<int> active_{0};
  absl::Notification done_;
};

// One Subscribe stream on a queue, acking every delivery (in batches of
// `ack_batch` ids per Ack request).
class SubscribeClient final
    : public grpc::ClientBidiReactor<v1::SubscribeRequest,
                                     v1::SubscribeResponse> {
 public:
  using OnDelivery = std::function<void(const v1::Delivery&, int64_t now_ns)>;
  // `settled` (optional) is incremented once, when the stream is subscribed
  // or has ended.
  SubscribeClient(v1::MessagingService::Stub* stub, std::string queue,
                  int prefetch, int ack_batch, OnDelivery on_delivery,
                  std::atomic<int>* settled = nullptr);
  void Start();
  // Before Start: subscribe with these queue options and offset (e.g. a
  // stream from its first message) instead of the queue as it is.
  void set_queue_options(v1::QueueOptions options, v1::StreamOffset offset) {
    queue_options_ = std::move(options);
    offset_ = std::move(offset);
  }
  // Half-closes: the server ends the stream (unacked deliveries requeued).
  void Stop();
  void Cancel() { context_.TryCancel(); }
  bool WaitSubscribed(absl::Duration timeout);
  grpc::Status WaitDone(absl::Duration timeout);
  bool subscribed() const { return subscribed_.load(); }
  bool done() const { return done_.HasBeenNotified(); }
  grpc::Status status() const { return status_; }

  std::atomic<int64_t> received{0};

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnWritesDoneDone(bool /*ok*/) override {}
  void OnDone(const grpc::Status& status) override;

 private:
  void MaybeWriteLocked();
  void Settle();

  grpc::ClientContext context_;
  const std::string queue_;
  const int prefetch_;
  const int ack_batch_;
  std::optional<v1::QueueOptions> queue_options_;
  v1::StreamOffset offset_;
  OnDelivery on_delivery_;
  std::atomic<int>* settled_counter_;
  std::atomic<bool> settled_{false};
  std::atomic<bool> subscribed_{false};
  std::mutex mu_;
  v1::SubscribeResponse response_;
  v1::SubscribeRequest writing_request_;
  std::deque<v1::SubscribeRequest> queue_writes_;
  v1::Ack pending_ack_;
  bool writing_ = false;
  bool half_close_ = false;
  bool half_closed_ = false;
  bool finished_ = false;
  grpc::Status status_;
  absl::Notification subscribed_n_;
  absl::Notification done_;
};

// Shared by the watchers of one fan-out: who has seen `target_version`.
struct FanoutTracker {
  std::atomic<int64_t> target_version{-1};
  std::atomic<int> reached{0};
  std::atomic<int64_t> last_ns{0};
  void Reach(int64_t now_ns);
};

// One WatchConfig stream on a key.
class WatchClient final
    : public grpc::ClientReadReactor<v1::WatchConfigResponse> {
 public:
  WatchClient(v1::ConfigService::Stub* stub, std::string key,
              FanoutTracker* tracker, std::atomic<int>* initial_counter);
  void Start();
  void Cancel() { context_.TryCancel(); }
  grpc::Status WaitDone(absl::Duration timeout);
  bool done() const { return done_.HasBeenNotified(); }
  grpc::Status status() const { return status_; }

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  grpc::ClientContext context_;
  v1::WatchConfigRequest request_;
  v1::WatchConfigResponse response_;
  FanoutTracker* tracker_;
  std::atomic<int>* initial_counter_;
  int64_t seen_version_ = -1;  // on the reaction thread only
  grpc::Status status_;
  absl::Notification done_;
};

// One candidate (Elect stream).
class ElectClient final
    : public grpc::ClientBidiReactor<v1::ElectRequest, v1::ElectResponse> {
 public:
  ElectClient(v1::ElectionService::Stub* stub, std::string election,
              std::string candidate_id, std::atomic<int>* settled = nullptr);
  void Start();
  void Resign();
  void Cancel() { context_.TryCancel(); }
  bool WaitElected(absl::Duration timeout);
  bool WaitFollowing(absl::Duration timeout);
  grpc::Status WaitDone(absl::Duration timeout);
  bool done() const { return done_.HasBeenNotified(); }
  grpc::Status status() const { return status_; }
  int64_t elected_ns() const { return elected_ns_.load(); }
  bool elected() const { return elected_n_.HasBeenNotified(); }
  bool following() const { return following_n_.HasBeenNotified(); }

  void OnWriteDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void Settle();

  grpc::ClientContext context_;
  std::mutex mu_;
  v1::ElectRequest campaign_;
  v1::ElectRequest resign_;
  v1::ElectResponse response_;
  bool writing_ = false;
  bool resign_wanted_ = false;
  bool finished_ = false;
  std::atomic<int>* settled_counter_;
  std::atomic<bool> settled_{false};
  std::atomic<int64_t> elected_ns_{0};
  grpc::Status status_;
  absl::Notification elected_n_;
  absl::Notification following_n_;
  absl::Notification done_;
};

}  // namespace warren::bench
