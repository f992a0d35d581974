// The open long-lived streams of the server, so that shutdown can end each of
// them with UNAVAILABLE (clients then reconnect elsewhere) before the server
// waits for calls to finish, and so that a change of the tokens or the policy
// reaches streams already open: each stream may leave a check of what
// opening it needed, and ReauthorizeAll ends those whose check now fails.
// Streams register when they start and leave in OnDone.
//
// Thread-safe. Drain() is called without the registry's lock held, so a
// stream may leave the registry from inside its Drain.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/common/mutex.h"

namespace warren {

class Drainable {
 public:
  virtual ~Drainable() = default;
  // Ends the stream with UNAVAILABLE; must not block.
  virtual void Drain() = 0;
  // Ends the stream with `status` (UNAUTHENTICATED or PERMISSION_DENIED: its
  // caller lost what opening it needed); must not block. Streams that leave
  // a reauthorization check override it.
  virtual void Revoke(const absl::Status& status) {
    static_cast<void>(status);
    Drain();
  }
};

class StreamRegistry {
 public:
  using Id = uint64_t;

  // At most `max_streams` streams are open at once, and at most
  // `max_streams_per_client` of one client (0: no limit), so that clients
  // cannot make the server's memory grow without bound, and one client
  // cannot take every slot.
  explicit StreamRegistry(size_t max_streams = 0,
                          size_t max_streams_per_client = 0)
      : max_streams_(max_streams),
        max_streams_per_client_(max_streams_per_client) {}

  // The new stream's id (never 0), or why it may not open: UNAVAILABLE while
  // the server drains, RESOURCE_EXHAUSTED when max_streams are open, or
  // max_streams_per_client of `client` (QuotaClient: the principal, else
  // the peer's address; "" counts toward the total only). The caller then
  // ends its stream with that status.
  absl::StatusOr<Id> Add(std::weak_ptr<Drainable> stream,
                         const std::string& client = "");
  void Remove(Id id);

  // What the stream `id` must still be allowed for to stay open: OK, or the
  // status to end it with. Set once its resources are known (e.g. after a
  // Subscribe's start); runs on the thread that calls ReauthorizeAll.
  using Reauthorizer = std::function<absl::Status()>;
  void SetReauthorizer(Id id, Reauthorizer check);
  // Runs every open stream's check (without the registry's lock) and
  // Revokes those whose check fails; answers how many it ended. Called
  // after the tokens or the policy changed.
  size_t ReauthorizeAll();

  // Refuses new streams from now on and drains every open one.
  void DrainAll();
  size_t size() const;

 private:
  const size_t max_streams_;
  const size_t max_streams_per_client_;
  mutable warren::Mutex mu_;
  struct Entry {
    std::weak_ptr<Drainable> stream;
    Reauthorizer reauthorize;  // empty: nothing to check
    std::string client;
  };
  std::map<Id, Entry> streams_ ABSL_GUARDED_BY(mu_);
  // Open streams per client; clients at zero are erased.
  std::map<std::string, size_t> per_client_ ABSL_GUARDED_BY(mu_);
  Id next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren
