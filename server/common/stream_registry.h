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

  // Answers 0 when the server is draining: the caller ends its stream.
  Id Add(std::weak_ptr<Drainable> stream);
  void Remove(Id id);
  // Refuses new streams from now on and drains every open one.
  void DrainAll();
  size_t size() const;

 private:
  mutable warren::Mutex mu_;
  std::map<Id, std::weak_ptr<Drainable>> streams_ ABSL_GUARDED_BY(mu_);
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren
