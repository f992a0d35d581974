// A reactor that ends a bidi-streaming call at once with a given status,
// without reading: for calls refused before they start (e.g. a caller that
// is not authenticated).
#pragma once

#include <utility>

#include "grpcpp/support/server_callback.h"

namespace warren::auth {

template <typename Request, typename Response>
class RejectingBidiReactor final
    : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit RejectingBidiReactor(grpc::Status status) {
    this->Finish(std::move(status));
  }
  void OnDone() override { delete this; }
};

}  // namespace warren::auth
