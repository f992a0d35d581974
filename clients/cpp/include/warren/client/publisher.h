// Publisher: Warren's unary Publish with the retries that are easy to get
// wrong by hand.
//
// Every message gets a message id on the client before the first attempt,
// and every retry sends the SAME id: a publish whose confirm was lost (the
// server or the connection died after the broker took it) may reach the
// queue twice, and consumers de-duplicate on the id. Which outcomes are
// retried is the one rule of every Warren client (retry_policy.h,
// clients/retry-policy.json): "unknown, try again" (UNAVAILABLE, an
// attempt's DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, INTERNAL, ...)
// is retried with the shared backoff until total_timeout; everything else
// (NOT_FOUND exchange, FAILED_PRECONDITION unroutable, INVALID_ARGUMENT,
// PERMISSION_DENIED, ...) is answered at once: the world has to change
// before a retry could succeed.
//
// Messages are published `mandatory` by default (clients/defaults.json): a
// message no queue is bound for is an error (FAILED_PRECONDITION), not a
// silent drop. PublisherOptions::mandatory = false opts out. A delayed
// message (PublishRequest.delay, PublishDelayed) is not made mandatory: the
// server cannot check a route that is taken later, and refuses the two
// together.
//
// Request/reply: Call() publishes a request and answers the first reply
// (the server's direct reply-to and a fresh correlation id); a Responder
// (responder.h) answers such requests. A responder's reply is an ordinary
// Publish to the default exchange with routing key = the request's
// Delivery::reply_to() and correlation_id copied from it.
//
// Thread-safe: one Publisher may be shared by any number of threads. Publish
// blocks the calling thread until the broker confirmed (or it gave up).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "warren/client/backoff.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::client {

struct PublisherOptions {
  // Delays between attempts.
  BackoffPolicy backoff;
  // The deadline of one attempt.
  absl::Duration attempt_timeout = absl::Seconds(10);
  // No new attempt starts after this much time since the first one.
  absl::Duration total_timeout = absl::Seconds(60);
  // Whether every message is published mandatory (see above); a request
  // that sets mandatory itself is mandatory either way.
  bool mandatory = true;
  // Called before each retry with the failed attempt's number (1 = the
  // first), its status and the message id the retry will carry again; for
  // logging and metrics.
  std::function<void(int attempt, const absl::Status& status,
                     const std::string& message_id)>
      on_retry;
};

class Publisher {
 public:
  explicit Publisher(std::shared_ptr<grpc::Channel> channel,
                     PublisherOptions options = {});

  // Publishes `request` and answers its message id once the broker confirmed
  // it. An empty `request.message_id()` is filled with a new UUID first.
  // With a `fence` (fence.h: from a leadership or a held lock), the server
  // publishes only while the fence holds, checked just before the publish:
  // otherwise FAILED_PRECONDITION naming it (not retried), nothing
  // published. The message then carries the headers `warren-fence` and
  // `warren-fencing-token`, so consumers can drop a deposed holder's.
  absl::StatusOr<std::string> Publish(
      warren::v1::PublishRequest request,
      const std::optional<warren::v1::Fence>& fence = std::nullopt);

  // Publish with PublishRequest.delay = `delay`: the message reaches its
  // exchange only after the delay (rounded up by the server to two
  // significant digits, so up to 10 % late, never early; at most its
  // max_publish_delay, 24 h by default), and the answer comes once the
  // broker has it in a delay queue. No `ttl` or `mandatory` with a delay.
  absl::StatusOr<std::string> PublishDelayed(
      warren::v1::PublishRequest request, absl::Duration delay,
      const std::optional<warren::v1::Fence>& fence = std::nullopt);

  // Request/reply (MessagingService.Call): publishes `request` (mandatory
  // as any publish of this Publisher) with the server's reply address and a
  // fresh correlation id, and answers the first reply with that id (its
  // delivery_id is 0: a reply needs no ack). No reply within `timeout` is
  // DEADLINE_EXCEEDED; a mandatory request that no queue takes is
  // FAILED_PRECONDITION; a lost reply channel is UNAVAILABLE. Never
  // retried: the request may have been handled when the reply was lost, and
  // only the caller knows whether asking again is safe. `reply_to` and
  // `correlation_id` must be empty and `delay` unset (INVALID_ARGUMENT).
  absl::StatusOr<warren::v1::Delivery> Call(warren::v1::PublishRequest request,
                                            absl::Duration timeout);

  // To the default exchange: `queue` receives `payload`.
  absl::StatusOr<std::string> PublishToQueue(
      const std::string& queue, std::string payload,
      const std::optional<warren::v1::Fence>& fence = std::nullopt);

 private:
  std::unique_ptr<warren::v1::MessagingService::Stub> stub_;
  const PublisherOptions options_;
};

}  // namespace warren::client
