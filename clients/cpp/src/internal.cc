#include "src/internal.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "warren/client/channel.h"
#include "warren/client/retry_policy.h"

namespace warren::client::internal {

std::string NewMessageId() {
  static warren::Mutex mu;
  static absl::BitGen* random = new absl::BitGen;
  uint64_t hi, lo;
  {
    warren::MutexLock lock(&mu);
    hi = absl::Uniform<uint64_t>(*random);
    lo = absl::Uniform<uint64_t>(*random);
  }
  hi = (hi & ~0xF000ULL) | 0x4000ULL;                  // version 4
  lo = (lo & ~(0xC000ULL << 48)) | (0x8000ULL << 48);  // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32,
                         (hi >> 16) & 0xFFFF, hi & 0xFFFF, lo >> 48,
                         lo & 0xFFFFFFFFFFFFULL);
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Status CallWithRetry(
    const UnaryRetry& retry,
    const std::function<grpc::Status(grpc::ClientContext* context)>& attempt,
    int* attempts) {
  const absl::Time give_up = absl::Now() + retry.total_timeout;
  Backoff backoff(retry.backoff);
  for (int n = 1;; ++n) {
    if (attempts != nullptr) *attempts = n;
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + retry.attempt_timeout));
    const absl::Status status = ToStatus(attempt(&context));
    if (UnaryDecisionFor(status.code()) != UnaryDecision::kRetry) {
      return status;
    }
    const absl::Duration delay = backoff.Next();
    if (absl::Now() + delay >= give_up) return status;
    if (retry.on_retry) retry.on_retry(n, status);
    absl::SleepFor(delay);
  }
}

absl::Status AwaitFirstLoad(warren::Mutex& mu,
                            const std::function<bool()>& loaded,
                            const std::function<bool()>& gave_up,
                            const absl::Status* failure, absl::Duration timeout,
                            const std::string& what) {
  warren::MutexLock lock(&mu);
  auto settled = [&] { return loaded() || gave_up(); };
  if (!mu.AwaitWithTimeout(absl::Condition(&settled), timeout)) {
    return absl::DeadlineExceededError(
        absl::StrCat(what, " within ", absl::FormatDuration(timeout)));
  }
  return loaded() ? absl::OkStatus() : *failure;
}

Watchdog::Watchdog(std::function<void(uint64_t)> on_expired)
    : on_expired_(std::move(on_expired)), thread_([this] { Run(); }) {}

Watchdog::~Watchdog() {
  {
    warren::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

uint64_t Watchdog::Arm(absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  deadline_ = absl::Now() + timeout;
  return ++generation_;
}

void Watchdog::Disarm() {
  warren::MutexLock lock(&mu_);
  deadline_ = absl::InfiniteFuture();
  ++generation_;
}

void Watchdog::Run() {
  warren::MutexLock lock(&mu_);
  while (!stop_) {
    // Wake up when stopped, re-armed (the generation changes) or expired.
    const uint64_t seen = generation_;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return stop_ || generation_ != seen;
    };
    if (mu_.AwaitWithDeadline(absl::Condition(&changed), deadline_)) continue;
    // Expired: disarm, then report outside the lock.
    deadline_ = absl::InfiniteFuture();
    mu_.Unlock();
    on_expired_(seen);
    mu_.Lock();
  }
}

}  // namespace warren::client::internal

namespace warren::client::internal {

void ConfigureStreamContext(grpc::ClientContext& context) {
  context.set_wait_for_ready(kStreamsWaitForReady);
}

void ResetReconnectBackoff(grpc::Channel& channel) {
  grpc::experimental::ChannelResetConnectionBackoff(&channel);
}

bool SleepUnlessStopped(warren::Mutex& mu, const bool* stop,
                        absl::Duration delay) {
  mu.AwaitWithTimeout(absl::Condition(stop), delay);
  return !*stop;
}

bool ResubscribeAfter(
    warren::Mutex& mu, const bool* stop, const absl::Status& ended,
    bool may_resubscribe, Backoff& backoff,
    const std::function<void(const absl::Status&)>& on_stream_error,
    absl::Status* final_status, bool retry_anyway) {
  const bool resubscribe =
      may_resubscribe && (retry_anyway || StreamDecisionFor(ended.code()) ==
                                              StreamDecision::kResubscribe);
  if (!resubscribe) {
    *final_status = ended.ok()
                        ? absl::UnavailableError("the server ended the stream")
                        : ended;
  }
  if (on_stream_error) {
    mu.Unlock();
    on_stream_error(ended);
    mu.Lock();
  }
  return resubscribe && SleepUnlessStopped(mu, stop, backoff.Next());
}

}  // namespace warren::client::internal
