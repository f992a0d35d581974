// The one retry rule of every Warren client wrapper, as
// clients/retry-policy.json states it for all five languages (and
// docs/semantics.md explains): what a unary call or a long-lived stream does
// when it ends with a status code, and how gRPC's own reconnect backoff is
// capped. The tests read that file and compare it with these answers, so a
// change there that this code does not follow fails them.
#pragma once

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace warren::client {

// A unary call (Publish, GetConfig, PutConfig, ...) that ended with a code.
enum class UnaryDecision {
  kDone,   // succeeded
  kRetry,  // same request (same message id) after the backoff
  kFatal,  // returned to the caller at once
};

// A stream (Subscribe, WatchConfig, Elect, ...) that ended with a code
// without the caller having closed it. One the caller closed or cancelled is
// never opened again, whatever its code.
enum class StreamDecision {
  kResubscribe,  // opened again after the backoff
  kFatal,        // reported and not opened again
};

UnaryDecision UnaryDecisionFor(absl::StatusCode code);
StreamDecision StreamDecisionFor(absl::StatusCode code);

// The channel every wrapper is meant to run on (MakeChannel sets these):
// gRPC's reconnect backoff would otherwise grow to 120 s, and a client could
// come back minutes after warrend did.
inline constexpr absl::Duration kInitialReconnectBackoff =
    absl::Milliseconds(100);
inline constexpr absl::Duration kMaxReconnectBackoff = absl::Seconds(2);
// Streams wait for the channel to connect instead of failing while it
// reconnects.
inline constexpr bool kStreamsWaitForReady = true;

}  // namespace warren::client
