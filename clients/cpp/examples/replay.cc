// replay: reads a stream queue from where the last run stopped (or from its
// first message), after publishing a few events to it.
//
//   WARREN_ADDRESS=127.0.0.1:50051 replay [--stream=example_events]
//       [--from=first|OFFSET] [--publish=3]
//
// A stream keeps its messages after they are acked, and every reader reads
// it on its own from an offset. The program prints each message with its
// offset and, at the end, the --from that continues after the last one
// handled: store that offset (here: in your shell) and nothing is skipped
// or read twice. Within one run, the Subscriber itself resumes after the
// last handled offset when its stream breaks.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "example_util.h"
#include "warren/client/channel.h"
#include "warren/client/publisher.h"
#include "warren/client/stream_offset.h"
#include "warren/client/subscriber.h"

ABSL_FLAG(std::string, stream, "example_events", "The stream queue.");
ABSL_FLAG(std::string, from, "first",
          "Where to start: first, or an offset (the last run's next one).");
ABSL_FLAG(int, publish, 3, "How many events to publish first.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30),
          "How long to wait for the published events.");

namespace client = warren::client;

int main(int argc, char** argv) {
  warren::examples::Setup();
  absl::ParseCommandLine(argc, argv);
  const std::string stream = absl::GetFlag(FLAGS_stream);
  const std::string from = absl::GetFlag(FLAGS_from);
  const int publish = absl::GetFlag(FLAGS_publish);
  auto channel = client::MakeChannel(
      client::AddressFromEnv(), client::ChannelOptions{client::TokenFromEnv()});

  client::SubscriberOptions options;
  options.start.set_queue(stream);
  options.start.mutable_queue_options()->set_queue_type(
      warren::v1::QUEUE_TYPE_STREAM);
  uint64_t offset = 0;
  if (from == "first") {
    *options.start.mutable_offset() = client::StreamFirst();
  } else if (absl::SimpleAtoi(from, &offset)) {
    *options.start.mutable_offset() = client::StreamAt(offset);
  } else {
    std::fprintf(stderr, "--from takes first or an offset, not %s\n",
                 from.c_str());
    return 2;
  }
  // This run's events carry its tag: it stops once all of them were read.
  const std::string tag = absl::StrCat("run-", getpid());
  std::atomic<int> own{0};
  options.max_in_flight = 1;  // printed in stream order
  auto subscriber = client::Subscriber::Start(
      channel, options, [&](const warren::v1::Delivery& delivery) {
        std::printf("offset %llu: %s\n",
                    static_cast<unsigned long long>(delivery.stream_offset()),
                    delivery.payload().c_str());
        if (delivery.payload().rfind(tag, 0) == 0) ++own;
        return absl::OkStatus();
      });
  if (!subscriber.ok()) {
    std::fprintf(stderr, "subscribe failed: %s\n",
                 subscriber.status().ToString().c_str());
    return 1;
  }
  client::Publisher publisher(channel);
  for (int i = 0; i < publish; ++i) {
    auto published =
        publisher.PublishToQueue(stream, absl::StrCat(tag, " event ", i));
    if (!published.ok()) {
      std::fprintf(stderr, "publish failed: %s\n",
                   published.status().ToString().c_str());
      return 1;
    }
  }
  warren::examples::WaitForStop(absl::GetFlag(FLAGS_timeout),
                                [&] { return own.load() >= publish; });
  (*subscriber)->Stop();
  if (own.load() < publish) {
    std::fprintf(stderr, "read %d of the %d events published\n", own.load(),
                 publish);
    return 1;
  }
  if (auto last = (*subscriber)->last_stream_offset()) {
    std::printf("next: --from=%llu\n",
                static_cast<unsigned long long>(*last + 1));
  }
  return 0;
}
