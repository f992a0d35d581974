// warren.v1.MessagingService over RabbitMQ: validation and status codes at
// the edge, AmqpBroker for everything that touches the broker.
//
// Publish answers after the broker's confirm. PublishStream pipelines up to
// `publish_window` unconfirmed messages per stream: it stops reading requests
// while the window is full, so a fast producer is paced by the broker's
// confirms and the server's memory stays bounded. Subscribe maps
// max_in_flight to the AMQP prefetch: the broker never hands a stream more
// unacknowledged deliveries than that, so a slow reader slows the broker,
// not the server's memory; whatever a stream did not ack goes back to the
// queue when it ends.
//
// A fenced publish is checked by reading who holds the fence's election or
// lock just before the message goes to the broker (a publish cannot be
// atomic with ZooKeeper), and the message carries the fence in its headers
// so that consumers can drop a deposed holder's late messages. On a
// PublishStream, messages still go to the broker in the order they came:
// an unfenced message waits behind an earlier fenced one being checked.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "server/amqp/amqp_client.h"
#include "server/auth/authorizer.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/fence/fence_resolver.h"
#include "server/messaging/delay_queues.h"
#include "server/messaging/subscribe_spec.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::messaging {

class CallHandler;

struct MessagingServiceOptions {
  size_t max_payload_bytes = 1 << 20;
  size_t max_header_bytes = 64 << 10;
  // Longest wait for a confirm when the call has no earlier deadline.
  absl::Duration operation_timeout = absl::Seconds(10);
  // How long a Call waits for its reply when the call has no deadline.
  absl::Duration call_timeout = absl::Seconds(30);
  uint32_t publish_window = 512;
  uint32_t default_max_in_flight = 100;
  uint32_t max_in_flight_cap = 10000;
  absl::Duration default_heartbeat = absl::Seconds(30);
  absl::Duration min_heartbeat = absl::Milliseconds(100);
  // The longest Nack.retry_after and PublishRequest.delay accepted.
  absl::Duration max_retry_delay = absl::Hours(1);
  absl::Duration max_publish_delay = absl::Hours(24);
  // Delay queues' x-expires slack and redeclare interval; shorter only in
  // tests (delay_queues.h).
  DelayQueuesOptions delay_queues;
  // Checks every call (publish per message, subscribe at start); null: auth
  // off.
  const auth::Authorizer* authorizer = nullptr;
  // Checks fences (and counts their refusals); null: a fenced publish is
  // refused with UNIMPLEMENTED.
  fence::FenceResolver* fences = nullptr;
};

// Checks a publish request against the API's rules and the limits; answers
// INVALID_ARGUMENT naming the field. `field` prefixes field names (e.g.
// "message." inside a PublishStreamRequest).
absl::Status ValidatePublish(const warren::v1::PublishRequest& request,
                             const MessagingServiceOptions& options,
                             absl::string_view field = "");

// The request as the AMQP layer's message; generates a message id (a UUID)
// when the request has none, and stamps a fenced request's fence headers.
amqp::OutgoingMessage ToOutgoing(const warren::v1::PublishRequest& request);

class MessagingServiceImpl final
    : public warren::v1::MessagingService::CallbackService {
 public:
  MessagingServiceImpl(amqp::AmqpBroker& amqp, TimerQueue& timers,
                       StreamRegistry& streams,
                       MessagingServiceOptions options);
  ~MessagingServiceImpl() override;

  grpc::ServerUnaryReactor* Publish(
      grpc::CallbackServerContext* context,
      const warren::v1::PublishRequest* request,
      warren::v1::PublishResponse* response) override;
  grpc::ServerBidiReactor<warren::v1::PublishStreamRequest,
                          warren::v1::PublishStreamResponse>*
  PublishStream(grpc::CallbackServerContext* context) override;
  grpc::ServerBidiReactor<warren::v1::SubscribeRequest,
                          warren::v1::SubscribeResponse>*
  Subscribe(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context,
                                 const warren::v1::CallRequest* request,
                                 warren::v1::CallResponse* response) override;

  // For metrics: deliveries handed to Subscribe streams and not yet acked
  // or nacked (they go back to the queue when their stream ends).
  int64_t unacked_deliveries() const { return unacked_deliveries_.load(); }
  const CallHandler& calls() const { return *calls_; }

 private:
  amqp::AmqpBroker& amqp_;
  TimerQueue& timers_;
  StreamRegistry& streams_;
  const MessagingServiceOptions options_;
  DelayQueues delays_;
  std::atomic<int64_t> unacked_deliveries_{0};
  std::unique_ptr<CallHandler> calls_;
};

}  // namespace warren::messaging
