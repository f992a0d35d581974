// A reactor that ends a server-streaming call at once with a given status:
// for requests refused before the stream starts.
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

}  // namespace warren
