// The open long-lived streams of the server, so that shutdown can end each of
// them with UNAVAILABLE (clients then reconnect elsewhere) before the server
// waits for calls to finish. Streams register when they start and leave in
// OnDone.
//
// Thread-safe. Drain() is called without the registry's lock held, so a
// stream may leave the registry from inside its Drain.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "server/common/mutex.h"

namespace warren {

class Drainable {
 public:
  virtual ~Drainable() = default;
  // Ends the stream with UNAVAILABLE; must not block.
  virtual void Drain() = 0;
};

class StreamRegistry {
 public:
  using Id = uint64_t;

  // At most `max_streams` streams are open at once (0: no limit), so that
  // clients cannot make the server's memory grow without bound.
  explicit StreamRegistry(size_t max_streams = 0) : max_streams_(max_streams) {}

  // The new stream's id (never 0), or why it may not open: UNAVAILABLE while
  // the server drains, RESOURCE_EXHAUSTED when max_streams are open. The
  // caller then ends its stream with that status.
  absl::StatusOr<Id> Add(std::weak_ptr<Drainable> stream);
  void Remove(Id id);
  // Refuses new streams from now on and drains every open one.
  void DrainAll();
  size_t size() const;

 private:
  const size_t max_streams_;
  mutable warren::Mutex mu_;
  std::map<Id, std::weak_ptr<Drainable>> streams_ ABSL_GUARDED_BY(mu_);
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren
