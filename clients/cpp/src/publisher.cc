#include "warren/client/publisher.h"

#include "absl/strings/str_cat.h"
#include "src/internal.h"
#include "warren/client/channel.h"
#include "warren/client/retry_policy.h"

namespace warren::client {

namespace v1 = ::warren::v1;

Publisher::Publisher(std::shared_ptr<grpc::Channel> channel,
                     PublisherOptions options)
    : stub_(v1::MessagingService::NewStub(std::move(channel))),
      options_(std::move(options)) {}

absl::StatusOr<std::string> Publisher::Publish(
    v1::PublishRequest request, const std::optional<v1::Fence>& fence) {
  if (options_.mandatory && !request.has_delay()) request.set_mandatory(true);
  if (fence.has_value()) *request.mutable_fence() = *fence;
  if (request.message_id().empty()) {
    request.set_message_id(internal::NewMessageId());
  }
  internal::UnaryRetry retry;
  retry.backoff = options_.backoff;
  retry.attempt_timeout = options_.attempt_timeout;
  retry.total_timeout = options_.total_timeout;
  if (options_.on_retry) {
    retry.on_retry = [&](int attempt, const absl::Status& status) {
      options_.on_retry(attempt, status, request.message_id());
    };
  }
  v1::PublishResponse response;
  int attempts = 0;
  const absl::Status status = internal::CallWithRetry(
      retry,
      [&](grpc::ClientContext* context) {
        return stub_->Publish(context, request, &response);
      },
      &attempts);
  if (status.ok()) return response.message_id();
  if (UnaryDecisionFor(status.code()) != UnaryDecision::kRetry) return status;
  // Name the id: the caller may still retry later with the same one.
  return absl::Status(
      status.code(),
      absl::StrCat(status.message(), " (gave up after ", attempts,
                   " attempts; message id ", request.message_id(), ")"));
}

absl::StatusOr<std::string> Publisher::PublishDelayed(
    v1::PublishRequest request, absl::Duration delay,
    const std::optional<v1::Fence>& fence) {
  *request.mutable_delay() = internal::ToProto(delay);
  return Publish(std::move(request), fence);
}

absl::StatusOr<v1::Delivery> Publisher::Call(v1::PublishRequest request,
                                             absl::Duration timeout) {
  if (options_.mandatory) request.set_mandatory(true);
  if (request.message_id().empty()) {
    request.set_message_id(internal::NewMessageId());
  }
  v1::CallRequest call;
  *call.mutable_message() = std::move(request);
  grpc::ClientContext context;
  // The whole call, publish and reply, within `timeout`; the channel may be
  // reconnecting meanwhile, which is no reason to fail earlier.
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(true);
  v1::CallResponse response;
  const absl::Status status = ToStatus(stub_->Call(&context, call, &response));
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(
        absl::StrCat("no reply within ", absl::FormatDuration(timeout), " (",
                     status.message(), ")"));
  }
  if (!status.ok()) return status;
  return std::move(*response.mutable_reply());
}

absl::StatusOr<std::string> Publisher::PublishToQueue(
    const std::string& queue, std::string payload,
    const std::optional<v1::Fence>& fence) {
  v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_payload(std::move(payload));
  return Publish(std::move(request), fence);
}

}  // namespace warren::client
