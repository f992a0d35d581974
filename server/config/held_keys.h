// The keys that this warrend's HoldKey streams hold (or are creating, or are
// releasing). A client whose stream ended and who at once opens another for
// the same key through the same warrend must not find its own old node in
// the way: the new stream waits for the old one's delete instead of racing
// it to ZooKeeper. A key held by a live stream here stays refused.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace warren::config {

class HeldKeys {
 public:
  enum class Claim {
    kClaimed,         // the stream may create the key
    kWaitForRelease,  // its previous stream here ended and is releasing it
    // Another stream here holds it. It may have been cancelled a moment
    // ago with the cancel not yet heard of, so a short wait is worth it;
    // then ZooKeeper answers (ALREADY_EXISTS while it holds).
    kWaitForLiveStream,
  };

  // Claims `key` for stream `stream` (again: kClaimed). On a wait,
  // `on_released` runs once the other stream's release is over (on its
  // thread, with no lock of this registry held); the stream then claims
  // again. `take_over` claims even from a stream still releasing (the wait
  // for it timed out).
  Claim TryClaim(const std::string& key, uint64_t stream, bool take_over,
                 absl::AnyInvocable<void()> on_released);
  // The stream ended; its node is being deleted.
  void Releasing(const std::string& key, uint64_t stream);
  // Its node is gone (deleted, or gone with its session), or it never made
  // one: the streams waiting for the key are told.
  void Released(const std::string& key, uint64_t stream);

  uint64_t NewStreamId();

  // Waits until no stream of this warrend holds, creates or releases a key
  // (every node deleted or given up), at most until `deadline`; false if
  // some are still there. A draining warrend calls it before it tears down
  // what the releases use.
  bool AwaitNone(absl::Time deadline);

 private:
  struct Holder {
    uint64_t stream = 0;
    bool releasing = false;
    std::vector<absl::AnyInvocable<void()>> waiters;
  };

  warren::Mutex mu_;
  std::map<std::string, Holder> holders_ ABSL_GUARDED_BY(mu_);
  uint64_t next_stream_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace warren::config
