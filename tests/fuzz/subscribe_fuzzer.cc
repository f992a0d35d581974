// Fuzzes the Subscribe stream: the real MessagingServiceImpl reactor on an
// in-process gRPC server over a fake RabbitMQ (FakeAmqp). An input is a
// sequence of steps (fuzz_support.h): the client's requests, the broker's
// deliveries and channel errors, waits, a half-close or a cancel.
//
// After every input: the call ended with a status DESIGN.md allows, and
// nothing is left behind: no open subscription, no delivery neither settled
// nor requeued, no stream in the registry, the unacked gauge at zero, and
// never a settle the broker would refuse (an id not outstanding).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/messaging/messaging_service.h"
#include "tests/fakes/fake_amqp.h"
#include "tests/fuzz/fuzz_support.h"

namespace warren::fuzz {
namespace {

namespace v1 = ::warren::v1;
using Stream = ClientStream<v1::SubscribeRequest, v1::SubscribeResponse>;

// The steps' operations (the op byte modulo kOps); seeds.cc writes them.
enum SubscribeOp : uint8_t {
  kWrite = 0,      // arg: a serialized SubscribeRequest
  kDeliver = 1,    // arg: the payload; flags bit 0 headers, bit 1 redelivered
  kBrokerEnd = 2,  // flags pick the channel error
  kAwait = 3,      // wait briefly for the next response
  kWritesDone = 4,
  kCancel = 5,
  kSettleAll = 6,  // ack (or nack: flags bit 0; requeue: bit 1) every delivery
  kOps = 7,
};

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
    switch (step.op % kOps) {
      case kWrite: {
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
      case kAwait:
        stream.AwaitResponses(stream.response_count(), absl::Milliseconds(20));
        break;
      case kWritesDone:
        stream.WritesDone();
        break;
      case kCancel:
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
  Check(stream.AwaitDone(absl::Seconds(30)),
        "Subscribe did not end after the client half-closed");
  const grpc::Status status = stream.status();
  const grpc::StatusCode code = status.error_code();
  const std::string where = absl::StrCat("Subscribe ended with ", code, " '",
                                         status.error_message(), "'");
  switch (code) {
    case grpc::StatusCode::OK:
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::UNAVAILABLE:
      break;
    case grpc::StatusCode::CANCELLED:
      Check(cancelled, where + " though the client did not cancel");
      break;
    default:
      Check(false, where + ": not a status of DESIGN.md's table");
  }
  Check(code == grpc::StatusCode::OK || !status.error_message().empty(),
        where + ": an error without a message");
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
}  // namespace warren::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& world = warren::fuzz::TheWorld();
  warren::fuzz::RunInput(world, data, size);
  return 0;
}
