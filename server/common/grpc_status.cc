#include "server/common/grpc_status.h"

#include <algorithm>
#include <string>

#include "absl/time/clock.h"

namespace warren {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share the canonical numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Time OperationDeadline(const grpc::CallbackServerContext& context,
                             absl::Duration longest) {
  const absl::Time ours = absl::Now() + longest;
  const auto theirs = context.deadline();
  if (theirs == std::chrono::system_clock::time_point::max()) return ours;
  return std::min(ours, absl::FromChrono(theirs));
}

}  // namespace warren
