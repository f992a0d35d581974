#include "warren/client/responder.h"

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace warren::client {

namespace v1 = ::warren::v1;

namespace {

// The reply to `request`: to its reply_to through the default exchange,
// tied to it by its correlation id.
v1::PublishRequest ReplyMessage(const v1::Delivery& request, Reply reply) {
  v1::PublishRequest message;
  message.set_routing_key(request.reply_to());
  message.set_correlation_id(request.correlation_id());
  message.set_payload(std::move(reply.payload));
  message.set_content_type(std::move(reply.content_type));
  for (auto& [name, value] : reply.headers) {
    (*message.mutable_headers())[name] = std::move(value);
  }
  return message;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Responder>> Responder::Start(
    std::shared_ptr<grpc::Channel> channel, ResponderOptions options,
    RequestHandler handler) {
  if (!handler) return absl::InvalidArgumentError("handler is empty");
  std::unique_ptr<Responder> responder(new Responder);
  responder->publisher_ =
      std::make_unique<Publisher>(channel, std::move(options.publisher));
  auto on_dropped = std::move(options.on_dropped);
  if (!on_dropped) {
    on_dropped = [](const v1::Delivery& request, const absl::Status& why) {
      std::clog << "warren responder: request " << request.message_id()
                << " acked without a reply: " << why << "\n";
    };
  }
  Publisher* publisher = responder->publisher_.get();
  auto subscriber = Subscriber::Start(
      std::move(channel), std::move(options.subscriber),
      [publisher, on_dropped = std::move(on_dropped),
       handler =
           std::move(handler)](const v1::Delivery& request) -> absl::Status {
        if (request.reply_to().empty()) {
          on_dropped(request, absl::FailedPreconditionError(
                                  "the request has no reply_to"));
          return absl::OkStatus();
        }
        absl::StatusOr<Reply> reply = handler(request);
        if (!reply.ok()) return reply.status();
        const absl::StatusOr<std::string> published =
            publisher->Publish(ReplyMessage(request, *std::move(reply)));
        if (published.status().code() ==
            absl::StatusCode::kFailedPrecondition) {
          // No queue takes the reply: the caller is gone (timed out, or its
          // reply channel closed). Handling the request again cannot help.
          on_dropped(request, published.status());
          return absl::OkStatus();
        }
        // Any other failure: the request goes back (or is retried later)
        // and is answered again.
        return published.status();
      });
  if (!subscriber.ok()) return subscriber.status();
  responder->subscriber_ = *std::move(subscriber);
  return responder;
}

Responder::~Responder() { Stop(); }

void Responder::Stop() {
  if (subscriber_ != nullptr) subscriber_->Stop();
}

std::string Responder::queue() const { return subscriber_->queue(); }

absl::Status Responder::status() const { return subscriber_->status(); }

}  // namespace warren::client
