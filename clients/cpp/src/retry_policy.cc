#include "warren/client/retry_policy.h"

namespace warren::client {

UnaryDecision UnaryDecisionFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return UnaryDecision::kDone;
    // "Unknown outcome, try again": the server, its backends or the
    // connection went away, an attempt ran out of time, or a limit that a
    // freed slot may lift. The retry carries the same request, so a publish
    // that did arrive the first time is a duplicate the consumer drops.
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnavailable:
      return UnaryDecision::kRetry;
    // The request itself is wrong or not allowed: the world has to change
    // before a retry could succeed.
    default:
      return UnaryDecision::kFatal;
  }
}

StreamDecision StreamDecisionFor(absl::StatusCode code) {
  // A stream that ended without an error was ended by the server (it should
  // not): watching again is the only way to keep watching.
  if (code == absl::StatusCode::kOk) return StreamDecision::kResubscribe;
  return UnaryDecisionFor(code) == UnaryDecision::kRetry
             ? StreamDecision::kResubscribe
             : StreamDecision::kFatal;
}

}  // namespace warren::client
