#include "server/messaging/call_handler.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/grpc_status.h"
#include "server/messaging/authorization.h"
#include "server/messaging/delivery_view.h"

namespace warren::messaging {
namespace {

namespace v1 = ::warren::v1;

// The reply as the API shows it: a Delivery that needs no ack.
v1::Delivery ToReply(amqp::Delivery d) {
  v1::Delivery out;
  ToV1Delivery(std::move(d), out);
  out.set_delivery_id(0);
  return out;
}

}  // namespace

absl::Status ValidateCall(const v1::CallRequest& request,
                          const MessagingServiceOptions& options) {
  if (!request.has_message()) {
    return absl::InvalidArgumentError("message is required");
  }
  const v1::PublishRequest& message = request.message();
  if (!message.reply_to().empty()) {
    return absl::InvalidArgumentError(
        "message.reply_to must be empty in a Call: the server sets its own");
  }
  if (!message.correlation_id().empty()) {
    return absl::InvalidArgumentError(
        "message.correlation_id must be empty in a Call: the server chooses "
        "a fresh one per call");
  }
  if (message.has_delay()) {
    return absl::InvalidArgumentError(
        "message.delay must be unset in a Call: a delayed request could not "
        "be answered within the call");
  }
  return ValidatePublish(message, options, "message.");
}

grpc::ServerUnaryReactor* CallHandler::Call(
    grpc::CallbackServerContext* context, const v1::CallRequest* request,
    v1::CallResponse* response) {
  auto* reactor = context->DefaultReactor();
  // Validated before authorized: a refusal never echoes an oversized name.
  absl::Status valid = ValidateCall(*request, options_);
  if (valid.ok() && request->message().has_fence()) {
    valid = absl::InvalidArgumentError(
        "message.fence: a Call cannot be fenced (publish the request with "
        "Publish and read the reply from a queue of your own)");
  }
  if (valid.ok()) {
    auto caller = auth::Authenticate(options_.authorizer, *context, "Call");
    valid = caller.ok()
                ? CheckAll(*caller, PublishRequirements(request->message()))
                : caller.status();
  }
  if (!valid.ok()) {
    counters_->Count(valid.code());
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  const auto theirs = context->deadline();
  const absl::Time now = absl::Now();
  // At most call_timeout, whatever the caller's deadline: a waiting Call
  // holds its reactor, and a draining server waits for every reactor.
  const absl::Time deadline =
      theirs == std::chrono::system_clock::time_point::max()
          ? now + options_.call_timeout
          : std::min(absl::FromChrono(theirs), now + options_.call_timeout);
  // As the caller sees it: the timeout it set (or the server's), not what
  // was left of it when the I/O thread got the call.
  const absl::Duration timeout =
      absl::Ceil(deadline - now, absl::Milliseconds(1));
  counters_->in_flight.fetch_add(1);
  amqp_.Call(ToOutgoing(request->message()), deadline,
             [counters = counters_, reactor, response,
              timeout](absl::StatusOr<amqp::Delivery> reply) {
               counters->in_flight.fetch_sub(1);
               counters->Count(reply.status().code());
               if (reply.ok()) {
                 *response->mutable_reply() = ToReply(*std::move(reply));
                 reactor->Finish(grpc::Status::OK);
                 return;
               }
               absl::Status status = reply.status();
               if (status.code() == absl::StatusCode::kDeadlineExceeded) {
                 status = absl::DeadlineExceededError(absl::StrCat(
                     "no reply within ", absl::FormatDuration(timeout)));
               }
               reactor->Finish(ToGrpcStatus(status));
             });
  return reactor;
}

void CallHandler::Counters::Count(absl::StatusCode code) {
  const auto index = static_cast<size_t>(code);
  if (index < answered.size()) answered[index].fetch_add(1);
}

uint64_t CallHandler::calls(absl::StatusCode code) const {
  const auto index = static_cast<size_t>(code);
  return index < counters_->answered.size() ? counters_->answered[index].load()
                                            : 0;
}

}  // namespace warren::messaging
