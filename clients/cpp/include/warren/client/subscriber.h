// Subscriber: consumes a queue through MessagingService.Subscribe and runs a
// handler per delivery.
//
// What it does for you:
//   - acks a delivery when the handler returns OK, nacks it (requeue or not,
//     SubscriberOptions::requeue_on_error) when the handler returns an error
//     or throws;
//   - runs at most `max_in_flight` handlers at once (and asks the server for
//     the same prefetch, so no delivery waits in this process for long);
//   - opens the subscription again, after a capped, jittered backoff, when
//     the stream ends with a code that clients/retry-policy.json says to
//     resubscribe on (UNAVAILABLE from a server restart or broker reconnect,
//     RESOURCE_EXHAUSTED from a limit, an unexpected end, ...) or is silent
//     for 3 heartbeat intervals; a fatal code (INVALID_ARGUMENT,
//     PERMISSION_DENIED, ...) ends it. The stream waits for the channel
//     while it reconnects (wait-for-ready). Deliveries
//     that were running when their stream broke are not acked on the new
//     stream (delivery ids belong to one stream): the server has already put
//     them back in the queue and they come again, so handlers must be
//     idempotent (at-least-once; Delivery::message_id() helps de-duplicate);
//   - a handler that returns RetryAfter(delay, error) (or any error with
//     SubscriberOptions::retry_after set) has its delivery nacked with
//     Nack.retry_after: the server brings it back after the delay through a
//     delay queue, so a failing message does not loop hot while others flow,
//     and Delivery::delivery_count() says how often it came before;
//   - stream queues (start.queue_options().queue_type() STREAM, start.offset
//     from stream_offset.h): after a broken stream it subscribes again at
//     the offset after the last delivery it handed to a handler, so the
//     handler sees no gap and no repeat; last_stream_offset() tells it. A
//     nack on a stream only settles the delivery (a stream cannot requeue);
//   - Stop(): no new handlers start, running ones finish and are acked or
//     nacked, queued ones are nacked with requeue, then the stream is closed
//     (half-close, so the server has applied every ack before it ends).
//
// Threading: a reader thread per subscription plus `max_in_flight` handler
// threads. We use gRPC's synchronous API with a reader thread instead of the
// callback API: handlers are user code that may block, so they need threads
// of their own anyway (a callback reaction must never block), a client
// process has few streams, and a blocking read/retry loop reads like the
// protocol. Handlers run concurrently with each other; on_subscribed and
// on_stream_error run on the reader thread. Never call Stop() or destroy the
// Subscriber from a handler or callback (it waits for them).
#pragma once

#include <cstdint>
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

// Handles one delivery: OK acks it, an error nacks it.
using DeliveryHandler =
    std::function<absl::Status(const warren::v1::Delivery& delivery)>;

// An error for a handler to return when its delivery should come back after
// `delay` (Nack.retry_after; rounded up by the server to two significant
// digits, at most its max_retry_delay, 1 h by default): `error` (an
// UNAVAILABLE "retry later" when OK) with the delay attached. On a stream
// queue the delay does not apply: the delivery is settled like any failure.
absl::Status RetryAfter(absl::Duration delay,
                        absl::Status error = absl::OkStatus());
// The delay RetryAfter attached to `status`; nullopt for any other status.
std::optional<absl::Duration> RetryDelayOf(const absl::Status& status);

struct SubscriberOptions {
  // What to consume: a queue (`start.set_queue(...)`, declared durable when
  // missing) or a topic binding with an optional group, plus queue options.
  // Its max_in_flight and heartbeat_interval are set from the fields below.
  warren::v1::SubscribeStart start;
  // The most handlers running at once (and the stream's prefetch);
  // clients/defaults.json.
  uint32_t max_in_flight = 16;
  // Whether a failed delivery goes back to the queue (true) or to the
  // dead-letter exchange, if the queue has one, or is dropped (false).
  bool requeue_on_error = true;
  // When positive, every failed delivery comes back after this delay
  // instead (see RetryAfter, whose delay wins). Not for stream queues:
  // Start() answers INVALID_ARGUMENT.
  absl::Duration retry_after = absl::ZeroDuration();
  // Asked of the server; a stream silent for 3 of these is re-opened.
  absl::Duration heartbeat_interval = absl::Seconds(10);
  // Delays between attempts to subscribe again.
  BackoffPolicy backoff;
  // How long Start() waits for the first subscription.
  absl::Duration start_timeout = absl::Seconds(30);
  // How long Stop() waits for the server to end the stream after the last
  // ack before it cancels the stream.
  absl::Duration stop_timeout = absl::Seconds(10);
  // Called each time a subscription is (re-)established, with the queue
  // actually consumed.
  std::function<void(const std::string& queue)> on_subscribed;
  // Called each time a stream ends with `status` other than by Stop(): one to
  // resubscribe on before subscribing again, a fatal one before giving up.
  std::function<void(const absl::Status& status)> on_stream_error;
};

class Subscriber {
 public:
  // Subscribes and answers once the server confirmed the subscription; an
  // error that retrying cannot fix (INVALID_ARGUMENT, FAILED_PRECONDITION,
  // ...) or no subscription within start_timeout (DEADLINE_EXCEEDED) is
  // answered instead.
  static absl::StatusOr<std::unique_ptr<Subscriber>> Start(
      std::shared_ptr<grpc::Channel> channel, SubscriberOptions options,
      DeliveryHandler handler);
  ~Subscriber();  // Stop()
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Stops as described above; idempotent, blocks until done.
  void Stop();

  // The queue actually consumed (the server names exclusive queues).
  std::string queue() const;
  // How often a subscription was established (1 + resubscriptions).
  int subscriptions() const;
  // Stream queues: the offset of the last delivery handed to the handler
  // (where a resubscription resumes: this + 1); nullopt before the first.
  std::optional<uint64_t> last_stream_offset() const;
  // OK while running and after Stop(); the error that ended the
  // subscription when it gave up.
  absl::Status status() const;

 private:
  class Impl;
  explicit Subscriber(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warren::client
