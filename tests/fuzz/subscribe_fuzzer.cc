// Fuzzes the Subscribe stream: the real MessagingServiceImpl reactor on an
// in-process gRPC server over a fake RabbitMQ (FakeAmqp). An input is a
// sequence of steps (fuzz_support.h): the client's requests, the broker's
// deliveries and channel errors, waits, a half-close or a cancel.
//
// After every input: the call ended with a status docs/semantics.md allows,
// and nothing is left behind: no open subscription, no delivery neither settled
// nor requeued, no stream in the registry, the unacked gauge at zero, and
// never a settle the broker would refuse (an id not outstanding).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/messaging/messaging_service.h"
#include "tests/fakes/fake_amqp.h"
#include "tests/fuzz/fuzz_ops.h"
#include "tests/fuzz/fuzz_support.h"

namespace warren::fuzz {
namespace {

namespace v1 = ::warren::v1;
using Stream = ClientStream<v1::SubscribeRequest, v1::SubscribeResponse>;

struct World {
  World() {
    messaging::MessagingServiceOptions options;
    options.max_in_flight_cap = 1000;
    service = std::make_unique<messaging::MessagingServiceImpl>(
        broker, timers, streams, options);
    server = StartInProcessServer({service.get()});
    stub = v1::MessagingService::NewStub(
        server->InProcessChannel(grpc::ChannelArguments()));
  }
  testing::FakeAmqp broker;
  TimerQueue timers;
  StreamRegistry streams;
  std::unique_ptr<messaging::MessagingServiceImpl> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<v1::MessagingService::Stub> stub;
  Pump pump{[this] { return broker.RunUntilIdle(); }};
};

World& TheWorld() {
  // Never destroyed: libFuzzer exits without unwinding.
  static World* world = new World();
  return *world;
}

bool IsDelivery(const v1::SubscribeResponse& r, uint64_t id) {
  return r.has_delivery() && r.delivery().delivery_id() == id;
}

void RunInput(World& w, const uint8_t* data, size_t size) {
  Stream stream(
      [&](grpc::ClientContext* context, Stream* reactor) {
        w.stub->async()->Subscribe(context, reactor);
      },
      absl::Seconds(20));
  bool cancelled = false;
  StepReader reader(data, size);
  Step step;
  while (reader.Next(&step) && !stream.done()) {
    switch (step.op % kSubscribeOps) {
      case kSubscribeWrite: {
        v1::SubscribeRequest request;
        if (!request.ParseFromArray(step.arg.data(),
                                    static_cast<int>(step.arg.size()))) {
          break;
        }
        stream.Write(request);
        break;
      }
      case kDeliver: {
        // Only this input's stream can hold a subscription (none is left
        // from the one before).
        const auto open = w.broker.open_ids();
        if (open.empty()) break;
        amqp::Delivery d;
        d.exchange = "ex";
        d.routing_key = "rk";
        d.payload = std::string(step.arg);
        if (step.flags() & 1) d.headers = {{"h", std::string(step.arg)}};
        d.redelivered = (step.flags() & 2) != 0;
        d.message_id = "m";
        // Any publisher may set the timestamp property to any 64 bits.
        if ((step.flags() & 4) && step.arg.size() >= 9) {
          uint64_t seconds = 0;
          std::memcpy(&seconds, step.arg.data() + 1, sizeof(seconds));
          d.timestamp = absl::FromUnixSeconds(static_cast<int64_t>(seconds));
        }
        // A stream's offset header (a subscription that starts at a higher
        // offset must drop it, and settle it all the same).
        if ((step.flags() & 8) && step.arg.size() >= 2) {
          d.stream_offset = static_cast<uint8_t>(step.arg[1]);
        }
        const uint64_t tag = w.broker.Deliver(open.back(), std::move(d));
        if (tag == 0) break;
        // The next steps may ack it: wait until the client has it.
        stream.AwaitResponse(
            [tag](const v1::SubscribeResponse& r) {
              return IsDelivery(r, tag);
            },
            absl::Seconds(2));
        break;
      }
      case kBrokerEnd: {
        static const absl::Status kErrors[] = {
            absl::UnavailableError("fake: connection lost"),
            absl::NotFoundError("fake: no queue 'q'"),
            absl::FailedPreconditionError("fake: queue 'q' has other args"),
            absl::ResourceExhaustedError("fake: no free channel"),
        };
        for (auto id : w.broker.open_ids()) {
          w.broker.End(id, kErrors[step.flags() % 4]);
        }
        break;
      }
      case kSubscribeAwait:
        stream.AwaitResponses(stream.response_count(), absl::Milliseconds(20));
        break;
      case kSubscribeWritesDone:
        stream.WritesDone();
        break;
      case kSubscribeCancel:
        cancelled = true;
        stream.Cancel();
        break;
      case kSettleAll: {
        v1::SubscribeRequest request;
        google::protobuf::RepeatedField<uint64_t>* ids;
        if (step.flags() & 1) {
          request.mutable_nack()->set_requeue((step.flags() & 2) != 0);
          ids = request.mutable_nack()->mutable_delivery_ids();
        } else {
          ids = request.mutable_ack()->mutable_delivery_ids();
        }
        for (const auto& r : stream.responses()) {
          if (r.has_delivery()) ids->Add(r.delivery().delivery_id());
        }
        stream.Write(request);
        break;
      }
    }
  }
  stream.WritesDone();
  const std::string where = CheckEnded(
      stream, "Subscribe",
      {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::RESOURCE_EXHAUSTED,
       grpc::StatusCode::NOT_FOUND, grpc::StatusCode::FAILED_PRECONDITION,
       grpc::StatusCode::UNAVAILABLE},
      cancelled);
  // The protocol: subscribed first, then deliveries with fresh ids.
  bool subscribed = false;
  std::set<uint64_t> ids;
  for (const auto& r : stream.responses()) {
    if (r.has_subscribed()) {
      Check(!subscribed, "subscribed came twice");
      subscribed = true;
    } else if (r.has_delivery()) {
      Check(subscribed, "a delivery came before subscribed");
      Check(ids.insert(r.delivery().delivery_id()).second,
            "a delivery id came twice");
    }
  }
  // No leftover state once the server has let go of the stream.
  const bool clean = WaitFor(
      [&] {
        return w.streams.size() == 0 && w.broker.open() == 0 &&
               w.service->unacked_deliveries() == 0;
      },
      absl::Seconds(10));
  Check(clean,
        absl::StrCat(where, "; left behind: ", w.streams.size(), " streams, ",
                     w.broker.open(), " subscriptions, ",
                     w.service->unacked_deliveries(), " unacked deliveries"));
  Check(w.broker.bad_settles() == 0,
        "a settle reached the broker for an id that was not outstanding");
}

}  // namespace

void FuzzOne(const uint8_t* data, size_t size) {
  RunInput(TheWorld(), data, size);
}

}  // namespace warren::fuzz

WARREN_FUZZ_ENTRY_POINTS
