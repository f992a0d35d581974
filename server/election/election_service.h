// warren.v1.ElectionService. This server version does not run elections
// yet: every RPC answers UNIMPLEMENTED with a message saying so, so that
// clients built against the whole v1 API get a clear answer.
#pragma once

#include "warren/v1/election.grpc.pb.h"

namespace warren::election {

class ElectionServiceImpl final
    : public warren::v1::ElectionService::CallbackService {
 public:
  grpc::ServerBidiReactor<warren::v1::ElectRequest, warren::v1::ElectResponse>*
  Elect(grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetLeader(
      grpc::CallbackServerContext* context,
      const warren::v1::GetLeaderRequest* request,
      warren::v1::GetLeaderResponse* response) override;
  grpc::ServerWriteReactor<warren::v1::ObserveLeaderResponse>* ObserveLeader(
      grpc::CallbackServerContext* context,
      const warren::v1::ObserveLeaderRequest* request) override;
};

}  // namespace warren::election
