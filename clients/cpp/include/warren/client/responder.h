// Responder: the answering side of request/reply (Publisher::Call). It
// subscribes like a Subscriber (a queue, or a topic binding with a group so
// that several responders share the requests), runs a handler per request
// and publishes what the handler returns as the reply:
//
//   warren::client::ResponderOptions options;
//   options.subscriber.start.set_queue("prices");
//   auto responder = warren::client::Responder::Start(channel, options,
//       [](const warren::v1::Delivery& request)
//           -> absl::StatusOr<warren::client::Reply> {
//         return warren::client::Reply{Price(request.payload())};
//       });
//
// The reply goes to the default exchange with routing key = the request's
// reply_to and the request's correlation_id, through a Publisher (its
// retries, the same message id on each); the request is acked only after
// the broker confirmed the reply, so a responder that dies in between
// leaves the request in its queue for another one (at least once: the
// caller takes the first reply and drops a later duplicate). A handler
// error (or throw) nacks the request as a Subscriber does (requeue, or
// SubscriberOptions::retry_after). A request without reply_to (nobody waits
// for an answer) and one whose reply no queue takes (the caller is gone)
// are acked without a reply and reported through on_dropped.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "warren/client/publisher.h"
#include "warren/client/subscriber.h"
#include "warren/v1/messaging.pb.h"

namespace warren::client {

// What a request handler answers.
struct Reply {
  Reply() = default;
  // Reply{payload}, Reply{payload, headers, content_type}.
  explicit Reply(std::string payload,
                 std::map<std::string, std::string> headers = {},
                 std::string content_type = "")
      : payload(std::move(payload)),
        headers(std::move(headers)),
        content_type(std::move(content_type)) {}

  std::string payload;
  std::map<std::string, std::string> headers;
  std::string content_type;
};

// Handles one request: a Reply is published to the caller, an error nacks
// the request.
using RequestHandler =
    std::function<absl::StatusOr<Reply>(const warren::v1::Delivery& request)>;

struct ResponderOptions {
  // What to consume and how (start, max_in_flight, requeue_on_error,
  // retry_after, callbacks, ...).
  SubscriberOptions subscriber;
  // How replies are published (retries; mandatory, so that a reply to a
  // caller that is gone is noticed rather than dropped silently).
  PublisherOptions publisher;
  // Called (on a handler thread) for a request acked without a reply, with
  // why: no reply_to, or the reply was unroutable. Unset: a line on stderr.
  std::function<void(const warren::v1::Delivery& request,
                     const absl::Status& why)>
      on_dropped;
};

class Responder {
 public:
  // Subscribes as Subscriber::Start does and answers once subscribed.
  static absl::StatusOr<std::unique_ptr<Responder>> Start(
      std::shared_ptr<grpc::Channel> channel, ResponderOptions options,
      RequestHandler handler);
  ~Responder();  // Stop()
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;

  // As Subscriber::Stop(): running handlers finish and their replies are
  // published before the stream closes.
  void Stop();
  // The queue actually consumed.
  std::string queue() const;
  // As Subscriber::status().
  absl::Status status() const;

 private:
  Responder() = default;
  // Declared before the subscriber: its handlers publish through it, so it
  // must outlive them.
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<Subscriber> subscriber_;
};

}  // namespace warren::client
