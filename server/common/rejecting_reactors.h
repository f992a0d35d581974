// Reactors that end a streaming call at once with a given status, without
// reading or writing: for calls refused before the stream starts (invalid
// input, a caller that is not authenticated).
#pragma once

#include <utility>

#include "grpcpp/support/server_callback.h"

namespace warren {

template <typename Response>
class RejectingWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RejectingWriteReactor(grpc::Status status) {
    this->Finish(std::move(status));
  }
  void OnDone() override { delete this; }
};

template <typename Request, typename Response>
class RejectingBidiReactor final
    : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit RejectingBidiReactor(grpc::Status status) {
    this->Finish(std::move(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace warren
