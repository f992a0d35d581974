// MessagingService.Call: request/reply over RabbitMQ direct reply-to. The
// request is validated like a Publish (fields under `message.`) and needs
// the same grant (publish on its exchange); the broker side (reply channel,
// correlation ids, the first reply wins) is AmqpBroker::Call's.
//
// A Call is not idempotent (the responder may have acted on a request whose
// reply was lost), so every failure after the publish says so, and clients
// must not retry it blindly.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "server/amqp/amqp_client.h"
#include "server/messaging/messaging_service.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::messaging {

// INVALID_ARGUMENT naming the field: `message` as ValidatePublish (prefix
// "message."), and no reply_to, correlation_id or delay (the server sets
// the first two; a delayed request could not be answered in time).
absl::Status ValidateCall(const warren::v1::CallRequest& request,
                          const MessagingServiceOptions& options);

class CallHandler {
 public:
  CallHandler(amqp::AmqpBroker& amqp, const MessagingServiceOptions& options)
      : amqp_(amqp),
        options_(options),
        counters_(std::make_shared<Counters>()) {}

  grpc::ServerUnaryReactor* Call(grpc::CallbackServerContext* context,
                                 const warren::v1::CallRequest* request,
                                 warren::v1::CallResponse* response);

  // For metrics: calls answered with `code`, and calls waiting now.
  uint64_t calls(absl::StatusCode code) const;
  int64_t in_flight() const { return counters_->in_flight.load(); }

 private:
  // Shared with the calls' callbacks, which the AMQP client may run after
  // the service is gone (it fails what waits when it shuts down).
  struct Counters {
    std::atomic<int64_t> in_flight{0};
    // By canonical code (0 to 16).
    std::array<std::atomic<uint64_t>, 17> answered{};
    void Count(absl::StatusCode code);
  };

  amqp::AmqpBroker& amqp_;
  const MessagingServiceOptions& options_;
  const std::shared_ptr<Counters> counters_;
};

}  // namespace warren::messaging
