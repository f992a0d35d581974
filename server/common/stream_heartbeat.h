// The heartbeats of a long-lived stream, ticking on the server's TimerQueue,
// in one of two modes:
//
// - Idle (WatchConfig, Subscribe): a heartbeat ends each interval in which
//   the stream wrote nothing else, so that a client tells a quiet stream
//   from a dead one and idle-cutting proxies keep it open.
// - Lease (an Elect leader): each heartbeat renews the client's lease on
//   leadership, so none is ever sent on a timer's word alone: a process
//   that was frozen past its session timeout fires overdue timers while it
//   still believes its session connected, and a successor may already lead.
//   A tick, while the stream leads and no proof is on its way, asks for
//   fresh proof that the ZooKeeper session lives; the heartbeat follows a
//   successful proof only if the stream still leads and the proof is fresh
//   (LeaseProofIsFresh).
//
// A member of its stream's reactor, called with the reactor's lock held
// (`owner_mu`), like StreamWriter. Its ticks take that lock themselves and
// run only while the reactor lives (`owner`); the callbacks run under it,
// except `prove`. Stop() (from OnDone) ends the ticks.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/common/timer_queue.h"

namespace warren {

// Whether a proof that the session lived at `asked` may still renew a lease
// of two `interval`s that the client starts on the heartbeat's arrival:
// the session lives on the ensemble until at least `asked` +
// `session_timeout`, so the margin between the two is split in half, one
// half for the proof's way back (`asked` to `now`), the other for the
// heartbeat's way to the client.
bool LeaseProofIsFresh(absl::Time asked, absl::Time now,
                       absl::Duration session_timeout, absl::Duration interval);

class StreamHeartbeat {
 public:
  // Under the owner's lock: writes one heartbeat (the reactor still decides
  // whether it can, e.g. not while finishing).
  using Send = absl::AnyInvocable<void()>;

  struct Lease {
    // Under the owner's lock: whether the stream leads now (and goes on).
    absl::AnyInvocable<bool()> leading;
    // Without the owner's lock (it may answer inline, and takes locks that
    // come before the owner's): asks the ensemble for proof that the
    // session lives; `done` gets OK only with fresh word from it.
    absl::AnyInvocable<void(absl::AnyInvocable<void(absl::Status)> done)> prove;
    // Under the owner's lock: the session timeout in force now.
    absl::AnyInvocable<absl::Duration()> session_timeout;
    Send send;
  };

  StreamHeartbeat(TimerQueue& timers, warren::Mutex& owner_mu)
      : timers_(timers), owner_mu_(owner_mu) {}
  ~StreamHeartbeat() { Stop(); }
  StreamHeartbeat(const StreamHeartbeat&) = delete;
  StreamHeartbeat& operator=(const StreamHeartbeat&) = delete;

  // Idle mode: every `interval` from now, `send` unless NoteWrite() was
  // called since the previous tick. Once per heartbeat.
  void StartIdle(std::weak_ptr<void> owner, absl::Duration interval, Send send);
  // Lease mode (see above), ticking every `interval` from now.
  void StartLease(std::weak_ptr<void> owner, absl::Duration interval,
                  Lease lease);

  // Ticks every `interval` from now on, when it differs from the one in
  // force (the ticks of the old one stop).
  void SetInterval(absl::Duration interval);
  absl::Duration interval() const { return interval_; }

  // Idle mode: the stream wrote something (a heartbeat included).
  void NoteWrite() { wrote_since_tick_ = true; }

  // No more ticks, sends or proofs from now on.
  void Stop();

 private:
  friend class StreamHeartbeatPeer;  // the tests tick by hand

  void ScheduleLocked();
  void Tick(uint64_t chain);
  void OnProof(absl::Time asked, const absl::Status& proof);

  TimerQueue& timers_;
  warren::Mutex& owner_mu_;
  // All below under owner_mu_ (which the analysis cannot name here).
  std::weak_ptr<void> owner_;
  absl::Duration interval_ = absl::ZeroDuration();
  bool lease_mode_ = false;
  Send send_;
  Lease lease_;
  bool started_ = false;
  bool stopped_ = false;
  // A newer schedule replaces an older one: ticks of an older chain stop.
  uint64_t chain_ = 0;
  TimerQueue::TimerId timer_ = 0;
  bool wrote_since_tick_ = false;
  // Lease mode: a proof is on its way.
  bool proving_ = false;
};

}  // namespace warren
