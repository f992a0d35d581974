#include "server/election/election_service.h"

#include <string>

#include "server/common/rejecting_reactors.h"

namespace warren::election {
namespace {

namespace v1 = ::warren::v1;

grpc::Status NotYet(const std::string& method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "warren.v1.ElectionService/" + method +
                          " is not implemented by this server version yet");
}

}  // namespace

grpc::ServerBidiReactor<v1::ElectRequest, v1::ElectResponse>*
ElectionServiceImpl::Elect(grpc::CallbackServerContext*) {
  return new RejectingBidiReactor<v1::ElectRequest, v1::ElectResponse>(
      NotYet("Elect"));
}

grpc::ServerUnaryReactor* ElectionServiceImpl::GetLeader(
    grpc::CallbackServerContext* context, const v1::GetLeaderRequest*,
    v1::GetLeaderResponse*) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(NotYet("GetLeader"));
  return reactor;
}

grpc::ServerWriteReactor<v1::ObserveLeaderResponse>*
ElectionServiceImpl::ObserveLeader(grpc::CallbackServerContext*,
                                   const v1::ObserveLeaderRequest*) {
  return new RejectingWriteReactor<v1::ObserveLeaderResponse>(
      NotYet("ObserveLeader"));
}

}  // namespace warren::election
