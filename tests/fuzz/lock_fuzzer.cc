// Fuzzes the Lock stream: the real LockServiceImpl reactor on an in-process
// gRPC server over an in-memory ZooKeeper (FakeZk). An input is a sequence of
// steps (fuzz_support.h): the client's requests (with any limit, wait timeout
// and heartbeat interval), waits, the session's suspension, reconnection and
// expiry, another session's request joining ahead of or behind this one (or
// a node no session holds) and leaving, a half-close or a cancel.
//
// After every input: the call ended with a status docs/semantics.md allows,
// and nothing is left behind: no node of this server in ZooKeeper, no lock
// counted as held or waited for, no stream in the registry.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/election/candidate_node.h"
#include "server/lock/lock_manager.h"
#include "server/lock/lock_service.h"
#include "tests/fakes/fake_zk.h"
#include "tests/fuzz/fuzz_ops.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/recipe_world.h"

namespace warren::fuzz {
namespace {

namespace v1 = ::warren::v1;
using Stream = ClientStream<v1::LockRequest, v1::LockResponse>;

constexpr char kBase[] = "/w/locks";

using World = RecipeWorld<lock::LockManager, lock::LockServiceImpl,
                          lock::LockServiceOptions, v1::LockService>;

World& TheWorld() {
  // Never destroyed: libFuzzer exits without unwinding.
  static World* world = new World(kBase);
  return *world;
}

void RunInput(World& w, const uint8_t* data, size_t size) {
  Stream stream(
      [&](grpc::ClientContext* context, Stream* reactor) {
        w.stub->async()->Lock(context, reactor);
      },
      absl::Seconds(20));
  bool cancelled = false;
  std::string name;  // of the last valid acquire sent
  std::vector<std::string> others;
  StepReader reader(data, size);
  Step step;
  while (reader.Next(&step) && !stream.done()) {
    switch (step.op % kLockOps) {
      case kLockWrite: {
        v1::LockRequest request;
        if (!request.ParseFromArray(step.arg.data(),
                                    static_cast<int>(step.arg.size()))) {
          break;
        }
        if (request.has_acquire() &&
            election::ValidateRecipeName(request.acquire().name(), "name")
                .ok()) {
          name = request.acquire().name();
        }
        stream.Write(request);
        break;
      }
      case kLockAwait:
        stream.AwaitResponses(stream.response_count(), absl::Milliseconds(20));
        break;
      case kLockDisconnect:
        w.zk.Disconnect();
        break;
      case kLockReconnect:
        if (w.zk.state() != zk::SessionState::kConnected) w.zk.Reconnect();
        break;
      case kLockExpire:
        w.zk.Expire();
        break;
      case kHolderJoins: {
        if (name.empty()) break;
        // Sequence 0 sorts before every node this server makes, the largest
        // after them.
        const bool phantom = (step.flags() & 2) != 0;
        const std::string path =
            absl::StrCat(w.manager.PathOf(name), "/",
                         election::CandidateNodePrefix(absl::StrFormat(
                             "00000000-0000-4000-8000-%012d", others.size())),
                         (step.flags() & 1) ? "0000000000" : "2147483647");
        lock::LockRequestParams other;
        other.name = name;
        other.holder_id = phantom ? "phantom" : "other";
        other.limit =
            step.arg.size() > 1 ? static_cast<uint8_t>(step.arg[1]) : 1;
        const std::string value = step.arg.size() > 2
                                      ? std::string(step.arg.substr(2))
                                      : lock::EncodeAcquire(other);
        if (phantom) {
          w.zk.ExternalPut(path, value);
        } else {
          w.zk.ExternalPutEphemeral(path, value);
        }
        others.push_back(path);
        break;
      }
      case kHolderLeaves:
        if (others.empty()) break;
        w.zk.ExternalDelete(others.back());
        others.pop_back();
        break;
      case kLockEnd:
        if (step.flags() & 1) {
          cancelled = true;
          stream.Cancel();
        } else {
          stream.WritesDone();
        }
        break;
    }
  }
  // A connected session, so that releasing can finish.
  if (w.zk.state() != zk::SessionState::kConnected) w.zk.Reconnect();
  stream.WritesDone();
  const std::string where =
      CheckEnded(stream, "Lock",
                 {grpc::StatusCode::INVALID_ARGUMENT,
                  grpc::StatusCode::FAILED_PRECONDITION,
                  grpc::StatusCode::DEADLINE_EXCEEDED,
                  grpc::StatusCode::ABORTED, grpc::StatusCode::UNAVAILABLE},
                 cancelled);
  for (const auto& r : stream.responses()) {
    if (r.has_acquired()) {
      Check(r.acquired().holder().fencing_token() != 0,
            "acquired without a fencing token");
    }
    if (r.has_queued()) {
      for (const auto& holder : r.queued().holders()) {
        Check(holder.holder_id() != "phantom",
              "a node no session holds was shown as a holder");
      }
    }
  }
  for (const auto& other : others) w.zk.ExternalDelete(other);
  const bool clean = WaitFor(
      [&] {
        return w.streams.size() == 0 && w.manager.held() == 0 &&
               w.manager.waiting() == 0 && w.zk.EphemeralNodes().empty();
      },
      absl::Seconds(10));
  const auto left = w.zk.EphemeralNodes();
  Check(clean, absl::StrCat(where, "; left behind: ", w.streams.size(),
                            " streams, ", w.manager.held(), " held, ",
                            w.manager.waiting(), " waiting, ", left.size(),
                            " lock nodes (", left.empty() ? "" : left[0], ")"));
  DeleteEverythingBelow(w.zk, kBase);
}

}  // namespace

void FuzzOne(const uint8_t* data, size_t size) {
  RunInput(TheWorld(), data, size);
}

}  // namespace warren::fuzz

WARREN_FUZZ_ENTRY_POINTS
