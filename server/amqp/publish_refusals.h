// PublishRefusals: what to do when a confirm channel keeps being refused.
//
// After a RabbitMQ node dies, each quorum queue it led elects a new leader.
// A channel opened in between (a replica that reconnected to a survivor
// just before the election ended) can keep addressing the old leader:
// RabbitMQ 3.10's quorum-queue client on that channel answers every publish
// with basic.nack until the dead node returns, 20-40 s later, while a fresh
// channel on the same connection finds the new leader. So a run of
// refusals with no confirmation among them means: replace the channel; and
// if the fresh channels are refused too while the connection is new (a
// failover), move the connection to another node.
//
// Later in a connection's life a run of refusals is more likely the queues'
// own answer (a full queue with overflow reject-publish), which no other
// channel or node changes: then the channel is still replaced now and then,
// with growing pauses, and the connection stays.
//
// Pure state: the caller passes the time. Used by one thread (the AMQP I/O
// thread); not thread-safe.
#pragma once

#include <cstddef>

#include "absl/time/time.h"

namespace warren::amqp {

class PublishRefusals {
 public:
  enum class Action { kNone, kReplaceChannel, kMoveConnection };

  struct Options {
    // A run of at least `min_refusals` refusals lasting `streak`, with no
    // confirmation in it, replaces the channel.
    absl::Duration streak = absl::Seconds(1);
    size_t min_refusals = 3;
    // A replacement that is refused again is replaced after `streak`;
    // after `replacements_before_move` of them within `failover_window` of
    // the connection's start the connection moves instead. Outside that
    // window the pause doubles with each replacement, up to `max_pause`.
    size_t replacements_before_move = 2;
    absl::Duration failover_window = absl::Seconds(60);
    absl::Duration max_pause = absl::Seconds(30);
  };

  PublishRefusals() : PublishRefusals(Options()) {}
  explicit PublishRefusals(Options options) : options_(options) {}

  // A new connection (and its first confirm channel) is up: forgets
  // everything.
  void OnConnected(absl::Time now);
  // The broker confirmed a publish (basic.ack): the run ends.
  void OnConfirmed();
  // The broker refused a publish (basic.nack).
  void OnRefused(absl::Time now);
  // What the channel's owner should do now.
  Action Next(absl::Time now) const;
  // The owner replaced the channel as Next() asked.
  void OnChannelReplaced(absl::Time now);

 private:
  absl::Duration PauseAfter(size_t replacements) const;

  const Options options_;
  absl::Time connected_ = absl::InfinitePast();
  // The current run: since the first refusal after the last confirmation.
  absl::Time run_start_ = absl::InfinitePast();
  size_t run_refusals_ = 0;
  size_t replacements_ = 0;
  absl::Time last_replacement_ = absl::InfinitePast();
  size_t refusals_since_replacement_ = 0;
};

}  // namespace warren::amqp
