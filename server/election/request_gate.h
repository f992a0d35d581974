// Bounds how many of one kind of ZooKeeper read chain are in flight at once
// on the process's one session, queueing the rest in order.
//
// Why: the session answers its requests strictly in order, so a burst of N
// requests (20,000 ObserveLeader streams on fresh names: a getChildren and
// an exists each) sits in front of every other client's call until all N
// are answered. Through a gate, another call waits behind at most the
// gate's few requests, and the burst drains at ZooKeeper's pace.
//
// Thread-safe. A waiter runs on the thread of the Release that frees its
// slot, with no lock of the gate held, never inside AcquireOrWait. Owned by
// shared_ptr (make it with std::make_shared): a slot keeps its gate alive,
// since ZooKeeper answers outstanding requests, and so releases their
// slots, when the client closes, after the gate's owner may be gone.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "server/common/mutex.h"

namespace warren::election {

class RequestGate : public std::enable_shared_from_this<RequestGate> {
 public:
  // One request chain's place. Move-only; gives the place back when
  // released or destroyed, once.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        Release();
        gate_ = std::exchange(other.gate_, nullptr);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { Release(); }
    void Release() {
      if (std::shared_ptr<RequestGate> gate = std::exchange(gate_, nullptr)) {
        gate->Release();
      }
    }

   private:
    friend class RequestGate;
    explicit Slot(std::shared_ptr<RequestGate> gate) : gate_(std::move(gate)) {}
    std::shared_ptr<RequestGate> gate_;
  };
  using Waiter = absl::AnyInvocable<void(Slot)>;

  // 0: no bound.
  explicit RequestGate(size_t max_in_flight) : max_(max_in_flight) {}
  RequestGate(const RequestGate&) = delete;
  RequestGate& operator=(const RequestGate&) = delete;

  // A slot now, or nullopt, and then `waiter` gets one later (first come,
  // first served). The caller may hold its own locks: the waiter is never
  // called from here.
  std::optional<Slot> AcquireOrWait(Waiter waiter);

  size_t in_flight() const;
  size_t waiting() const;

 private:
  void Release();

  const size_t max_;
  mutable warren::Mutex mu_;
  size_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  // A Release is handing slots to waiters: others leave it to that loop, so
  // that a waiter that drops its slot does not recurse (20,000 deep).
  bool handing_out_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren::election
