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

absl::StatusOr<std::string> Publisher::Publish(v1::PublishRequest request) {
  if (options_.mandatory) request.set_mandatory(true);
  if (request.message_id().empty()) {
    request.set_message_id(internal::NewMessageId());
  }
  const absl::Time give_up = absl::Now() + options_.total_timeout;
  Backoff backoff(options_.backoff);
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + options_.attempt_timeout));
    v1::PublishResponse response;
    const absl::Status status =
        ToStatus(stub_->Publish(&context, request, &response));
    if (status.ok()) return response.message_id();
    if (UnaryDecisionFor(status.code()) != UnaryDecision::kRetry) {
      return status;
    }
    const absl::Duration delay = backoff.Next();
    if (absl::Now() + delay >= give_up) {
      // Name the id: the caller may still retry later with the same one.
      return absl::Status(
          status.code(),
          absl::StrCat(status.message(), " (gave up after ", attempt,
                       " attempts; message id ", request.message_id(), ")"));
    }
    if (options_.on_retry)
      options_.on_retry(attempt, status, request.message_id());
    absl::SleepFor(delay);
  }
}

absl::StatusOr<std::string> Publisher::PublishToQueue(const std::string& queue,
                                                      std::string payload) {
  v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_payload(std::move(payload));
  return Publish(std::move(request));
}

}  // namespace warren::client
