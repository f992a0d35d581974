// Reactors that end a call at once with a given status: for RPCs this server
// version does not implement yet, and for streams refused before they start.
#pragma once

#include <utility>

#include "grpcpp/support/server_callback.h"

namespace warren {

template <typename Request, typename Response>
class RejectingBidiReactor final
    : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit RejectingBidiReactor(grpc::Status status) {
    this->Finish(std::move(status));
  }
  void OnDone() override { delete this; }
};

template <typename Response>
class RejectingWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RejectingWriteReactor(grpc::Status status) {
    this->Finish(std::move(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace warren
