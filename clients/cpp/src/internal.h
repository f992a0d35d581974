// Pieces shared by the wrappers' implementations; not part of the API.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "grpcpp/grpcpp.h"
#include "server/common/mutex.h"
#include "warren/client/backoff.h"
#include "warren/client/loss_reason.h"
#include "warren/v1/election.pb.h"

namespace warren::client::internal {

// A random (version 4) UUID, as the server itself would generate.
std::string NewMessageId();

google::protobuf::Duration ToProto(absl::Duration d);
absl::Duration FromProto(const google::protobuf::Duration& d);

// A loss the server reported, in the wrappers' vocabulary.
LossReason FromProto(warren::v1::LossReason reason);

// How a wrapper's unary calls are retried (clients/retry-policy.json).
struct UnaryRetry {
  BackoffPolicy backoff;
  // The deadline of one attempt.
  absl::Duration attempt_timeout = absl::Seconds(10);
  // No new attempt starts after this much time since the first one.
  absl::Duration total_timeout = absl::Seconds(60);
  // Called before each retry with the failed attempt's number (1 = the
  // first) and its status.
  std::function<void(int attempt, const absl::Status& status)> on_retry;
};

// Runs `attempt` (on a fresh context with the attempt's deadline) until it
// answers a code the policy does not retry, or the next backoff would pass
// total_timeout; answers the last status and, in `*attempts`, how many
// attempts were made. The request must be the same on every attempt, so a
// retried write whose first attempt did apply fails its own condition (a
// create-only or compare-and-set) or is applied again (unconditional).
absl::Status CallWithRetry(
    const UnaryRetry& retry,
    const std::function<grpc::Status(grpc::ClientContext* context)>& attempt,
    int* attempts = nullptr);

// Start() of a stream wrapper: waits (taking `mu`) until `loaded` or
// `gave_up` holds, both read under `mu`, for at most `timeout`. Answers OK
// once loaded, `*failure` (read under `mu`) when the wrapper gave up first,
// or DEADLINE_EXCEEDED saying "<what> within <timeout>".
absl::Status AwaitFirstLoad(warren::Mutex& mu,
                            const std::function<bool()>& loaded,
                            const std::function<bool()>& gave_up,
                            const absl::Status* failure, absl::Duration timeout,
                            const std::string& what);

// Calls `on_expired` on its own thread when the armed deadline passes
// without Arm() or Disarm() being called again; then it is disarmed. Used
// for the elector's lease and for the streams' silence detection: a
// blocking Read() cannot time out by itself.
//
// `on_expired` runs without the watchdog's lock held, so it may call Arm()
// or Disarm(); it may race with a concurrent Arm(), so it must re-check its
// own state (the generation passed to it says which arming expired).
class Watchdog {
 public:
  explicit Watchdog(std::function<void(uint64_t generation)> on_expired);
  ~Watchdog();  // joins the thread; no callback runs after it returns
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Expire `timeout` from now; answers the new generation.
  uint64_t Arm(absl::Duration timeout);
  void Disarm();

 private:
  void Run();

  const std::function<void(uint64_t)> on_expired_;
  warren::Mutex mu_;
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace warren::client::internal

namespace warren::client::internal {

// A long-lived stream's context as clients/retry-policy.json asks for it:
// the stream waits for the channel to (re)connect instead of failing at once.
void ConfigureStreamContext(grpc::ClientContext& context);

// Called before a stream is opened again: the channel tries to connect now
// instead of after what is left of its reconnect backoff.
void ResetReconnectBackoff(grpc::Channel& channel);

// Sleeps `delay` on `mu` (held by the caller) unless `*stop` becomes true
// first; answers whether it is still not stopping.
bool SleepUnlessStopped(warren::Mutex& mu, const bool* stop,
                        absl::Duration delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

// The start of each attempt of a stream wrapper's reader loop: a session
// whose context waits for ready, published in `*current` (under `mu`)
// before its call starts, so that the wrapper's Stop()/Close() can always
// cancel it (a call waiting for the channel blocks when it starts). Null
// when `*stop` is set. A retry (`again`) first resets the channel's
// reconnect backoff.
template <typename Session>
std::shared_ptr<Session> NewStreamSession(warren::Mutex& mu, const bool* stop,
                                          std::shared_ptr<Session>* current,
                                          grpc::Channel& channel, bool again) {
  auto session = std::make_shared<Session>();
  ConfigureStreamContext(session->context);
  {
    warren::MutexLock lock(&mu);
    if (*stop) return nullptr;
    *current = session;
  }
  if (again) ResetReconnectBackoff(channel);
  return session;
}

// The end of an attempt that the wrapper did not stop itself (`mu` held):
// decides by clients/retry-policy.json (and `may_resubscribe`, false when
// the wrapper was told not to), leaves a final end in `*final_status`,
// reports `ended` through `on_stream_error` (called without `mu`) and, to
// resubscribe, waits the backoff. Answers whether to open the stream again.
// `retry_anyway` turns a fatal end into a retry: a wrapper's documented
// exception to the table.
bool ResubscribeAfter(
    warren::Mutex& mu, const bool* stop, const absl::Status& ended,
    bool may_resubscribe, Backoff& backoff,
    const std::function<void(const absl::Status&)>& on_stream_error,
    absl::Status* final_status, bool retry_anyway = false)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

}  // namespace warren::client::internal

namespace warren::client::internal {

// One bidirectional stream with a single writer at a time. Writes stop once
// the stream is half-closed, so a late ack or resign never reaches a stream
// that is being finished (gRPC forbids writes after WritesDone/Finish).
template <typename Request, typename Response>
struct BidiSession {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<Request, Response>> stream;
  warren::Mutex write_mu;
  bool writes_closed ABSL_GUARDED_BY(write_mu) = false;

  // False when the stream is closed or broken.
  bool Write(const Request& request) {
    warren::MutexLock lock(&write_mu);
    return !writes_closed && stream->Write(request);
  }
  void CloseWrites() {
    warren::MutexLock lock(&write_mu);
    if (writes_closed) return;
    writes_closed = true;
    stream->WritesDone();
  }
};

}  // namespace warren::client::internal
