#include "server/amqp/consumer_book.h"

#include <algorithm>
#include <utility>

namespace warren::amqp {

uint16_t ConsumerBook::AllocateChannel(int channel_max) {
  if (next_channel_ <= (channel_max == 0 ? 65535 : channel_max)) {
    return static_cast<uint16_t>(next_channel_++);
  }
  if (free_channels_.empty()) return 0;
  const uint16_t channel = free_channels_.front();
  free_channels_.pop_front();
  return channel;
}

std::vector<uint16_t> ConsumerBook::ReleaseClosedChannels() {
  std::vector<uint16_t> released(closed_channels_.begin(),
                                 closed_channels_.end());
  free_channels_.insert(free_channels_.end(), released.begin(), released.end());
  closed_channels_.clear();
  return released;
}

void ConsumerBook::Add(SubscriptionId id, uint16_t channel,
                       std::shared_ptr<SubscriptionSink> sink) {
  subscriptions_[id] = Subscription{channel, std::move(sink)};
  by_channel_[channel] = id;
}

std::optional<uint16_t> ConsumerBook::ChannelOf(SubscriptionId id) const {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return std::nullopt;
  return it->second.channel;
}

std::shared_ptr<SubscriptionSink> ConsumerBook::RemoveByChannel(
    uint16_t channel) {
  auto it = by_channel_.find(channel);
  if (it == by_channel_.end()) return nullptr;
  auto sub = subscriptions_.find(it->second);
  std::shared_ptr<SubscriptionSink> sink = std::move(sub->second.sink);
  subscriptions_.erase(sub);
  by_channel_.erase(it);
  return sink;
}

void ConsumerBook::Remove(SubscriptionId id) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  by_channel_.erase(it->second.channel);
  subscriptions_.erase(it);
}

SubscriptionSink* ConsumerBook::OnDelivery(uint16_t channel,
                                           uint64_t delivery_tag) {
  auto it = by_channel_.find(channel);
  if (it == by_channel_.end()) return nullptr;
  Subscription& subscription = subscriptions_.at(it->second);
  subscription.unacked.insert(delivery_tag);
  return subscription.sink.get();
}

void ConsumerBook::QueueAck(SubscriptionId id, uint64_t delivery_tag) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return;
  Subscription& sub = it->second;
  if (sub.queued_acks.empty()) with_queued_acks_.push_back(id);
  sub.queued_acks.push_back(delivery_tag);
}

std::optional<uint16_t> ConsumerBook::TakeForNack(SubscriptionId id,
                                                  uint64_t delivery_tag) {
  auto it = subscriptions_.find(id);
  if (it == subscriptions_.end()) return std::nullopt;
  it->second.unacked.erase(delivery_tag);
  return it->second.channel;
}

void ConsumerBook::AppendAcks(Subscription& sub, std::vector<Ack>& out) {
  std::vector<uint64_t> tags = std::move(sub.queued_acks);
  sub.queued_acks.clear();
  if (tags.empty()) return;
  std::sort(tags.begin(), tags.end());
  // The longest run of acked tags that are also the oldest unacked
  // deliveries: `multiple` acks exactly those.
  size_t covered = 0;
  auto oldest = sub.unacked.begin();
  while (covered < tags.size() && oldest != sub.unacked.end() &&
         *oldest == tags[covered]) {
    ++covered;
    ++oldest;
  }
  sub.unacked.erase(sub.unacked.begin(), oldest);
  if (covered > 0) {
    out.push_back(Ack{sub.channel, tags[covered - 1], covered > 1});
  }
  for (size_t i = covered; i < tags.size(); ++i) {
    sub.unacked.erase(tags[i]);
    out.push_back(Ack{sub.channel, tags[i], false});
  }
}

std::vector<ConsumerBook::Ack> ConsumerBook::TakeAcks() {
  std::vector<SubscriptionId> ids = std::move(with_queued_acks_);
  with_queued_acks_.clear();
  std::vector<Ack> acks;
  for (SubscriptionId id : ids) {
    auto it = subscriptions_.find(id);
    if (it == subscriptions_.end()) continue;  // ended: the broker requeued
    AppendAcks(it->second, acks);
  }
  return acks;
}

std::vector<ConsumerBook::Ack> ConsumerBook::TakeAcks(SubscriptionId id) {
  std::vector<Ack> acks;
  auto it = subscriptions_.find(id);
  if (it != subscriptions_.end()) AppendAcks(it->second, acks);
  return acks;
}

size_t ConsumerBook::unsettled(SubscriptionId id) const {
  auto it = subscriptions_.find(id);
  return it == subscriptions_.end() ? 0 : it->second.unacked.size();
}

std::vector<std::shared_ptr<SubscriptionSink>> ConsumerBook::Clear() {
  std::vector<std::shared_ptr<SubscriptionSink>> sinks;
  for (auto& [id, sub] : subscriptions_) sinks.push_back(std::move(sub.sink));
  subscriptions_.clear();
  by_channel_.clear();
  with_queued_acks_.clear();
  free_channels_.clear();
  closed_channels_.clear();
  next_channel_ = first_channel_;
  return sinks;
}

}  // namespace warren::amqp
