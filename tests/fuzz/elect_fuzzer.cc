// Fuzzes the Elect stream: the real ElectionServiceImpl reactor on an
// in-process gRPC server over an in-memory ZooKeeper (FakeZk). An input is a
// sequence of steps (fuzz_support.h): the client's requests, waits, the
// session's suspension, reconnection and expiry, a rival candidate joining
// ahead of or behind this one and leaving, a half-close or a cancel.
//
// After every input: the call ended with a status docs/semantics.md allows,
// and nothing is left behind: no candidate node of this server in ZooKeeper, no
// leader counted, no stream in the registry.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/names.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/election/candidate_node.h"
#include "server/election/election_manager.h"
#include "server/election/election_service.h"
#include "tests/fakes/fake_zk.h"
#include "tests/fuzz/fuzz_ops.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/recipe_world.h"

namespace warren::fuzz {
namespace {

namespace v1 = ::warren::v1;
using Stream = ClientStream<v1::ElectRequest, v1::ElectResponse>;

constexpr char kBase[] = "/w/elections";

using World =
    RecipeWorld<election::ElectionManager, election::ElectionServiceImpl,
                election::ElectionServiceOptions, v1::ElectionService>;

World& TheWorld() {
  // Never destroyed: libFuzzer exits without unwinding.
  static World* world = new World(kBase);
  return *world;
}

void RunInput(World& w, const uint8_t* data, size_t size) {
  Stream stream(
      [&](grpc::ClientContext* context, Stream* reactor) {
        w.stub->async()->Elect(context, reactor);
      },
      absl::Seconds(20));
  bool cancelled = false;
  std::string election;  // of the last valid campaign sent
  std::vector<std::string> rivals;
  StepReader reader(data, size);
  Step step;
  while (reader.Next(&step) && !stream.done()) {
    switch (step.op % kElectOps) {
      case kElectWrite: {
        v1::ElectRequest request;
        if (!request.ParseFromArray(step.arg.data(),
                                    static_cast<int>(step.arg.size()))) {
          break;
        }
        if (request.has_campaign() &&
            election::ValidateRecipeName(request.campaign().election(),
                                         "election")
                .ok()) {
          election = request.campaign().election();
        }
        stream.Write(request);
        break;
      }
      case kElectAwait:
        stream.AwaitResponses(stream.response_count(), absl::Milliseconds(20));
        break;
      case kDisconnect:
        w.zk.Disconnect();
        break;
      case kReconnect:
        if (w.zk.state() != zk::SessionState::kConnected) w.zk.Reconnect();
        break;
      case kExpire:
        w.zk.Expire();
        break;
      case kRivalJoins: {
        if (election.empty()) break;
        // Sequence 0 sorts before every candidate this server makes, the
        // largest after them. A rival is another session's candidate (an
        // ephemeral node); with flag 2 it is a phantom instead: a node of the
        // same exact form that no session holds (persistent), which must
        // never lead nor be shown as leader.
        const bool phantom = (step.flags() & 2) != 0;
        const std::string path =
            absl::StrCat(w.manager.PathOf(election), "/",
                         election::CandidateNodePrefix(absl::StrFormat(
                             "00000000-0000-4000-8000-%012d", rivals.size())),
                         (step.flags() & 1) ? "0000000000" : "2147483647");
        // Another client's node holds what that client wrote: a candidate's
        // encoding, or (with more argument) any bytes.
        const std::string value =
            phantom ? election::EncodeCandidate(election, "phantom", "v",
                                                absl::Now())
            : step.arg.size() > 1 ? std::string(step.arg.substr(1))
                                  : election::EncodeCandidate(election, "rival",
                                                              "v", absl::Now());
        if (phantom) {
          w.zk.ExternalPut(path, value);
        } else {
          w.zk.ExternalPutEphemeral(path, value);
        }
        rivals.push_back(path);
        break;
      }
      case kRivalLeaves:
        if (rivals.empty()) break;
        w.zk.ExternalDelete(rivals.back());
        rivals.pop_back();
        break;
      case kElectEnd:
        if (step.flags() & 1) {
          cancelled = true;
          stream.Cancel();
        } else {
          stream.WritesDone();
        }
        break;
    }
  }
  // A connected session, so that resigning can finish.
  if (w.zk.state() != zk::SessionState::kConnected) w.zk.Reconnect();
  stream.WritesDone();
  const std::string where =
      CheckEnded(stream, "Elect",
                 {grpc::StatusCode::INVALID_ARGUMENT,
                  grpc::StatusCode::FAILED_PRECONDITION,
                  grpc::StatusCode::ABORTED, grpc::StatusCode::UNAVAILABLE},
                 cancelled);
  for (const auto& r : stream.responses()) {
    if (r.has_elected()) {
      Check(r.elected().leader().fencing_token() != 0,
            "elected without a fencing token");
    }
    if (r.has_following()) {
      Check(r.following().leader().candidate_id() != "phantom",
            "a node no session holds was shown as the leader");
    }
  }
  for (const auto& rival : rivals) w.zk.ExternalDelete(rival);
  const bool clean = WaitFor(
      [&] {
        return w.streams.size() == 0 && w.manager.leaders() == 0 &&
               w.zk.EphemeralNodes().empty();
      },
      absl::Seconds(10));
  const auto left = w.zk.EphemeralNodes();
  Check(clean,
        absl::StrCat(where, "; left behind: ", w.streams.size(), " streams, ",
                     w.manager.leaders(), " leaders, ", left.size(),
                     " candidate nodes (", left.empty() ? "" : left[0], ")"));
  DeleteEverythingBelow(w.zk, kBase);
}

}  // namespace

void FuzzOne(const uint8_t* data, size_t size) {
  RunInput(TheWorld(), data, size);
}

}  // namespace warren::fuzz

WARREN_FUZZ_ENTRY_POINTS
