#include <string>

#include "absl/strings/cord.h"
#include "server/zk/zk_client.h"

namespace warren::zk {
namespace {

constexpr char kPayloadUrl[] = "type.warren.dev/zk_error";

absl::StatusCode CodeFor(ZkError error) {
  switch (error) {
    case ZkError::kNone:
      return absl::StatusCode::kOk;
    case ZkError::kNoNode:
      return absl::StatusCode::kNotFound;
    case ZkError::kNodeExists:
      return absl::StatusCode::kAlreadyExists;
    case ZkError::kBadVersion:
    case ZkError::kNotEmpty:
      return absl::StatusCode::kFailedPrecondition;
    case ZkError::kConnectionLoss:
      return absl::StatusCode::kUnavailable;
    case ZkError::kNoAuth:
      return absl::StatusCode::kPermissionDenied;
    case ZkError::kOther:
      return absl::StatusCode::kInternal;
  }
  return absl::StatusCode::kInternal;
}

}  // namespace

absl::Status MakeZkError(ZkError error, absl::string_view message) {
  if (error == ZkError::kNone) return absl::OkStatus();
  absl::Status status(CodeFor(error), message);
  status.SetPayload(kPayloadUrl,
                    absl::Cord(std::to_string(static_cast<int>(error))));
  return status;
}

ZkError ZkErrorOf(const absl::Status& status) {
  if (status.ok()) return ZkError::kNone;
  auto payload = status.GetPayload(kPayloadUrl);
  if (!payload.has_value()) return ZkError::kNone;
  const int value = std::stoi(std::string(*payload));
  return static_cast<ZkError>(value);
}

}  // namespace warren::zk
