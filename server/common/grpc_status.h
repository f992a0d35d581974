// The one place where absl::Status becomes grpc::Status (the service edge).
#pragma once

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"

namespace warren {

grpc::Status ToGrpcStatus(const absl::Status& status);

// When a backend operation of this call must be done: the call's deadline,
// or `longest` from now if that comes first (or the call has none).
absl::Time OperationDeadline(const grpc::CallbackServerContext& context,
                             absl::Duration longest);

}  // namespace warren
