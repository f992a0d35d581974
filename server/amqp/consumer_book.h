// ConsumerBook: the subscriptions of one AMQP connection, each consuming on
// a channel of its own: its sink, the deliveries it has not settled, the
// acks queued for the end of a batch, and the channel numbers (which are
// free, which were closed too recently to be reused).
//
// Acks are coalesced: at the end of a batch, a run of queued acks that
// covers every unsettled delivery of a channel up to its last tag becomes
// one basic.ack with `multiple`; the rest go out one by one. A consumer that
// acks in order under load so sends one frame per batch instead of one per
// message. Requeues and rejects are not queued (TakeForNack).
//
// Pure state: the caller sends the frames. Owned and used by one thread
// (the AMQP I/O thread); not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "server/amqp/amqp_types.h"

namespace warren::amqp {

class ConsumerBook {
 public:
  // One basic.ack to send.
  struct Ack {
    uint16_t channel;
    uint64_t delivery_tag;
    bool multiple;
  };

  // Subscription channels are numbered from `first_channel` up (the ones
  // below belong to the caller).
  explicit ConsumerBook(uint16_t first_channel)
      : first_channel_(first_channel), next_channel_(first_channel) {}

  // A channel number for a new subscription, or 0 when all of them up to
  // `channel_max` (0: the protocol's 65535) are in use. Numbers never used
  // on this connection come first, then the one released longest ago: a
  // number comes back as late as possible. Closing a channel is not over
  // for the broker when we see its close-ok if it closed the channel at
  // the same time (a refused ack crossing our channel.close): a
  // channel.open of the same number right after is a connection error
  // ("second 'channel.open' seen") that would end every subscription.
  uint16_t AllocateChannel(int channel_max);
  // A subscription channel is closed (close-ok received, or never opened).
  // Its number is reused only after ReleaseClosedChannels().
  void OnChannelClosed(uint16_t channel) { closed_channels_.insert(channel); }
  // Whether `channel` was closed since the last release: frames still
  // queued for it belong to no subscription and are dropped.
  bool IsClosed(uint16_t channel) const {
    return closed_channels_.count(channel) != 0;
  }
  bool has_closed_channels() const { return !closed_channels_.empty(); }
  // Makes the channels closed so far reusable and returns them. Only while
  // rabbitmq-c holds no queued frame: while it waits for a reply (the
  // channel.close-ok, or anything synchronous on another channel) it queues
  // every other frame that arrives, and the broker sends deliveries until
  // it has our close, so the queue may hold deliveries of a closed
  // channel's consumer after its close-ok. A new subscription on the same
  // number would take them for its own and ack tags its channel does not
  // know (PRECONDITION_FAILED), or settle a message of its own it never saw.
  std::vector<uint16_t> ReleaseClosedChannels();

  // A subscription consumes on `channel`.
  void Add(SubscriptionId id, uint16_t channel,
           std::shared_ptr<SubscriptionSink> sink);
  bool Has(SubscriptionId id) const { return subscriptions_.count(id) != 0; }
  // The subscription's channel, if it exists.
  std::optional<uint16_t> ChannelOf(SubscriptionId id) const;
  // Forgets the subscription on `channel` and hands back its sink (null if
  // there is none), e.g. to tell it why it ended.
  std::shared_ptr<SubscriptionSink> RemoveByChannel(uint16_t channel);
  // Forgets a subscription; its queued acks are dropped (TakeAcks(id) first).
  void Remove(SubscriptionId id);

  // A delivery arrived on `channel`: recorded as unsettled, and the sink to
  // hand it to returned (null if no subscription consumes there). The
  // pointer is valid until the subscription is removed.
  SubscriptionSink* OnDelivery(uint16_t channel, uint64_t delivery_tag);

  // Queues an ack for the end of the batch (ignored for a subscription
  // that ended: the broker requeued its deliveries).
  void QueueAck(SubscriptionId id, uint64_t delivery_tag);
  // A requeue or reject, sent at once: the delivery is settled; returns the
  // channel to send the basic.nack on (none if the subscription ended).
  std::optional<uint16_t> TakeForNack(SubscriptionId id, uint64_t delivery_tag);
  // The coalesced acks of every subscription with acks queued, in the
  // order they were first queued; the deliveries they name are settled.
  std::vector<Ack> TakeAcks();
  // The same for one subscription (before it unsubscribes: closing the
  // channel requeues whatever is still unacked).
  std::vector<Ack> TakeAcks(SubscriptionId id);

  // Unsettled deliveries of a subscription (for tests and checks).
  size_t unsettled(SubscriptionId id) const;
  size_t size() const { return subscriptions_.size(); }

  // The connection is gone: forgets every subscription and channel, and
  // hands back the sinks (in subscription order) to tell.
  std::vector<std::shared_ptr<SubscriptionSink>> Clear();

 private:
  struct Subscription {
    uint16_t channel;
    std::shared_ptr<SubscriptionSink> sink;
    // Delivered and not settled yet (bounded by the prefetch).
    std::set<uint64_t> unacked = {};
    std::vector<uint64_t> queued_acks = {};
  };

  void AppendAcks(Subscription& subscription, std::vector<Ack>& out);

  const uint16_t first_channel_;
  int next_channel_;
  std::map<SubscriptionId, Subscription> subscriptions_;
  std::map<uint16_t, SubscriptionId> by_channel_;
  std::vector<SubscriptionId> with_queued_acks_;
  std::deque<uint16_t> free_channels_;  // oldest first
  std::set<uint16_t> closed_channels_;
};

}  // namespace warren::amqp
