// request_reply: a responder that answers each request with its payload in
// upper case, and a caller that asks it.
//
//   WARREN_ADDRESS=127.0.0.1:50051 request_reply [--queue=example_requests]
//       [--question="hello there"]
//
// The responder subscribes to the queue (declared durable when missing), so
// the request has somewhere to go; Publisher::Call publishes the request
// with the server's reply address and a fresh correlation id, and answers
// the first reply with it. The responder publishes the reply before it acks
// the request: a responder that dies in between leaves the request for
// another one.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/ascii.h"
#include "example_util.h"
#include "warren/client/channel.h"
#include "warren/client/publisher.h"
#include "warren/client/responder.h"

ABSL_FLAG(std::string, queue, "example_requests", "The queue of requests.");
ABSL_FLAG(std::string, question, "hello there", "The request to send.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10),
          "How long to wait for the reply.");

namespace client = warren::client;

int main(int argc, char** argv) {
  warren::examples::Setup();
  absl::ParseCommandLine(argc, argv);
  const std::string queue = absl::GetFlag(FLAGS_queue);
  auto channel = client::MakeChannel(
      client::AddressFromEnv(), client::ChannelOptions{client::TokenFromEnv()});

  client::ResponderOptions options;
  options.subscriber.start.set_queue(queue);
  auto responder = client::Responder::Start(
      channel, options,
      [](const warren::v1::Delivery& request) -> absl::StatusOr<client::Reply> {
        std::printf("responder: request \"%s\" (correlation id %s)\n",
                    request.payload().c_str(),
                    request.correlation_id().c_str());
        return client::Reply{absl::AsciiStrToUpper(request.payload())};
      });
  if (!responder.ok()) {
    std::fprintf(stderr, "responder failed: %s\n",
                 responder.status().ToString().c_str());
    return 1;
  }
  std::printf("responding on queue %s\n", (*responder)->queue().c_str());

  client::Publisher publisher(channel);
  warren::v1::PublishRequest request;
  request.set_routing_key(queue);
  request.set_payload(absl::GetFlag(FLAGS_question));
  // Not retried: only the caller knows whether asking twice is safe.
  auto reply = publisher.Call(request, absl::GetFlag(FLAGS_timeout));
  (*responder)->Stop();
  if (!reply.ok()) {
    std::fprintf(stderr, "call failed: %s\n",
                 reply.status().ToString().c_str());
    return 1;
  }
  std::printf("reply: \"%s\"\n", reply->payload().c_str());
  return 0;
}
