// hello: publishes "Hello, Zookeeper & RabbitMQ!" to a queue and receives it.
//
//   WARREN_ADDRESS=127.0.0.1:50051 hello [--queue=test_queue]
//
// It subscribes first and waits until the subscription is established, which
// declares the queue (durable) when it is missing, so the message has
// somewhere to go (the publish is mandatory: a message no queue takes is an
// error, not a silent drop); then it publishes with its own message id and
// waits until that very message comes back (a message left over from an
// earlier run is printed and acked on the way).
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "example_util.h"
#include "warren/client/channel.h"
#include "warren/client/publisher.h"
#include "warren/client/subscriber.h"

ABSL_FLAG(std::string, queue, "test_queue", "The queue to use.");
ABSL_FLAG(std::string, message, "Hello, Zookeeper & RabbitMQ!",
          "The message to send.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "How long to wait for the message.");

namespace client = warren::client;

int main(int argc, char** argv) {
  warren::examples::Setup();
  absl::ParseCommandLine(argc, argv);
  const std::string queue = absl::GetFlag(FLAGS_queue);
  const std::string address = client::AddressFromEnv();
  auto channel = client::MakeChannel(
      address, client::ChannelOptions{client::TokenFromEnv()});
  std::printf("connecting to %s\n", address.c_str());

  // Our own id, known before the publish: the message may come back before
  // Publish() returns.
  const std::string id =
      absl::StrCat("hello-", getpid(), "-", absl::ToUnixNanos(absl::Now()));
  std::atomic<bool> received{false};

  client::SubscriberOptions options;
  options.start.set_queue(queue);
  options.max_in_flight = 1;
  auto subscriber = client::Subscriber::Start(
      channel, options, [&](const warren::v1::Delivery& delivery) {
        std::printf("received \"%s\" (message %s)\n",
                    delivery.payload().c_str(), delivery.message_id().c_str());
        if (delivery.message_id() == id) received = true;
        return absl::OkStatus();  // ack
      });
  if (!subscriber.ok()) {
    std::fprintf(stderr, "subscribe failed: %s\n",
                 subscriber.status().ToString().c_str());
    return 1;
  }
  std::printf("subscribed to queue %s\n", (*subscriber)->queue().c_str());

  client::Publisher publisher(channel);
  warren::v1::PublishRequest request;
  request.set_routing_key(queue);  // the default exchange routes by queue
  request.set_payload(absl::GetFlag(FLAGS_message));
  request.set_message_id(id);
  auto published = publisher.Publish(request);
  if (!published.ok()) {
    std::fprintf(stderr, "publish failed: %s\n",
                 published.status().ToString().c_str());
    return 1;
  }
  std::printf("published \"%s\" (message %s)\n", request.payload().c_str(),
              published->c_str());

  warren::examples::WaitForStop(absl::GetFlag(FLAGS_timeout),
                                [&] { return received.load(); });
  (*subscriber)->Stop();
  if (!received) {
    std::fprintf(stderr, "the message did not come back\n");
    return 1;
  }
  std::printf("done\n");
  return 0;
}
