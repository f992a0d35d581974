#include "warren/client/loss_reason.h"

#include "src/internal.h"

namespace warren::client {

const char* LossReasonName(LossReason reason) {
  switch (reason) {
    case LossReason::kResigned:
      return "resigned";
    case LossReason::kConnectionSuspended:
      return "connection suspended";
    case LossReason::kSessionExpired:
      return "session expired";
    case LossReason::kStreamBroken:
      return "stream broken";
    case LossReason::kLeaseExpired:
      return "lease expired";
  }
  return "unknown";
}

}  // namespace warren::client

namespace warren::client::internal {

LossReason FromProto(warren::v1::LossReason reason) {
  switch (reason) {
    case warren::v1::LOSS_REASON_RESIGNED:
      return LossReason::kResigned;
    case warren::v1::LOSS_REASON_CONNECTION_SUSPENDED:
      return LossReason::kConnectionSuspended;
    default:
      return LossReason::kSessionExpired;
  }
}

}  // namespace warren::client::internal
