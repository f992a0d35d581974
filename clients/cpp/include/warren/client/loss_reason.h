// Why a leadership, a lock or a held key was lost: one vocabulary for the
// Elector, HeldLock and Registration. The server reports the first three;
// the last two are the client's own conclusions, because the server's
// "lost" message may never arrive.
#pragma once

namespace warren::client {

enum class LossReason {
  kResigned,             // Close()/Release() (or a resign) ended it
  kConnectionSuspended,  // server's ZooKeeper connection suspended
  kSessionExpired,       // server's ZooKeeper session expired
  kStreamBroken,         // the stream ended while holding
  kLeaseExpired,         // no message within 2 heartbeat intervals
};
const char* LossReasonName(LossReason reason);

}  // namespace warren::client
