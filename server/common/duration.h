// The API's google.protobuf.Duration as the server computes with it
// (absl::Duration), and the heartbeat interval a stream gets for the one it
// asked for.
#pragma once

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

namespace warren {

absl::Duration FromProtoDuration(const google::protobuf::Duration& duration);
google::protobuf::Duration ToProtoDuration(absl::Duration duration);

// The interval of an idle-mode heartbeat (stream_heartbeat.h): the one asked
// for, `default_interval` when none was (zero), never shorter than
// `min_interval` (so that a client cannot make the server write
// heartbeats in a tight loop).
absl::Duration HeartbeatInterval(absl::Duration requested,
                                 absl::Duration default_interval,
                                 absl::Duration min_interval);

// The heartbeat interval of a lease (an Elect leader, a Lock holder): the
// one asked for (0: the longest), capped at a third of the session timeout
// so that two missed heartbeats come before the session could expire, at
// least 100 ms.
absl::Duration LeaseInterval(absl::Duration requested,
                             absl::Duration session_timeout);

}  // namespace warren
