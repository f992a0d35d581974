#include "server/amqp/amqp_pool.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace warren::amqp {
namespace {

// A pool's subscription id: the connection's index in the top 16 bits, the
// connection's own id below (AmqpClient counts from 1, so the primary's ids
// are the connection's).
constexpr int kIndexShift = 48;
constexpr SubscriptionId kInnerMask = (SubscriptionId{1} << kIndexShift) - 1;
constexpr size_t kMaxConnections = 1 << (64 - kIndexShift);

}  // namespace

// Forwards to the subscriber's sink and counts the channel until the
// connection lets go of it.
class AmqpPool::CountingSink final : public SubscriptionSink {
 public:
  CountingSink(std::shared_ptr<SubscriptionSink> sink,
               std::atomic<size_t>& open)
      : sink_(std::move(sink)), open_(open) {}
  ~CountingSink() override { open_.fetch_sub(1); }

  void OnSubscribed(const std::string& queue) override {
    sink_->OnSubscribed(queue);
  }
  void OnDelivery(Delivery delivery) override {
    sink_->OnDelivery(std::move(delivery));
  }
  void OnEnded(absl::Status status) override {
    sink_->OnEnded(std::move(status));
  }

 private:
  const std::shared_ptr<SubscriptionSink> sink_;
  std::atomic<size_t>& open_;
};

absl::StatusOr<std::unique_ptr<AmqpPool>> AmqpPool::Create(
    AmqpPoolOptions options, AmqpConnectionFactory factory) {
  if (options.max_connections == 0 ||
      options.max_connections > kMaxConnections) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amqp_max_connections must be between 1 and ", kMaxConnections));
  }
  absl::StatusOr<std::unique_ptr<AmqpBroker>> primary = factory(0);
  if (!primary.ok()) return primary.status();
  return std::unique_ptr<AmqpPool>(
      new AmqpPool(options, std::move(factory), *std::move(primary)));
}

absl::StatusOr<std::unique_ptr<AmqpPool>> AmqpPool::Create(
    AmqpPoolOptions options, AmqpOptions amqp) {
  return Create(options,
                [amqp = std::move(amqp)](size_t index)
                    -> absl::StatusOr<std::unique_ptr<AmqpBroker>> {
                  AmqpOptions o = amqp;
                  if (index > 0) {
                    o.connection_name =
                        absl::StrCat(amqp.connection_name, " #", index + 1);
                  }
                  // A replica's connections spread over a cluster's nodes.
                  o.first_url = amqp.first_url + index;
                  auto client = AmqpClient::Create(std::move(o));
                  if (!client.ok()) return client.status();
                  return std::unique_ptr<AmqpBroker>(*std::move(client));
                });
}

AmqpPool::AmqpPool(AmqpPoolOptions options, AmqpConnectionFactory factory,
                   std::unique_ptr<AmqpBroker> primary)
    : options_(options), primary_(primary.get()), factory_(std::move(factory)) {
  auto slot = std::make_unique<Slot>();
  slot->broker = std::move(primary);
  warren::MutexLock lock(&mu_);
  slots_.push_back(std::move(slot));
}

AmqpPool::~AmqpPool() {
  std::vector<std::unique_ptr<Slot>> slots;
  {
    warren::MutexLock lock(&mu_);
    slots.swap(slots_);
  }
  // Outside the lock: closing a connection ends its subscriptions, and
  // their owners may call back into the pool. Secondaries first.
  while (!slots.empty()) slots.pop_back();
}

size_t AmqpPool::Capacity(const Slot& slot) const {
  const size_t known = slot.broker->subscription_capacity();
  if (known > 0) return known;
  // Still in its handshake: it will get what the brokers gave the others
  // (the same URLs), not the default. Assuming more would route a burst of
  // subscriptions to it that its channel_max then refuses, while another
  // connection could have taken them.
  for (const auto& other : slots_) {
    const size_t learned = other->broker->subscription_capacity();
    if (learned > 0) return learned;
  }
  return options_.default_capacity;
}

size_t AmqpPool::subscription_capacity() const {
  warren::ReaderMutexLock lock(&mu_);
  if (slots_.empty()) return 0;
  return Capacity(*slots_[0]) * options_.max_connections;
}

size_t AmqpPool::connections() const {
  warren::ReaderMutexLock lock(&mu_);
  return slots_.size();
}

size_t AmqpPool::subscriptions(size_t index) const {
  warren::ReaderMutexLock lock(&mu_);
  return index < slots_.size() ? slots_[index]->open.load() : 0;
}

BrokerState AmqpPool::connection_state(size_t index) const {
  warren::ReaderMutexLock lock(&mu_);
  return index < slots_.size() ? slots_[index]->broker->state()
                               : BrokerState::kClosed;
}

uint64_t AmqpPool::connection_reconnects(size_t index) const {
  warren::ReaderMutexLock lock(&mu_);
  return index < slots_.size() ? slots_[index]->broker->reconnects() : 0;
}

size_t AmqpPool::PickLocked() {
  // A reachable connection with a free channel; else any with one (it
  // answers UNAVAILABLE while it reconnects: opening more connections
  // during an outage would not help).
  std::optional<size_t> unreachable;
  for (size_t i = 0; i < slots_.size(); ++i) {
    const Slot& slot = *slots_[i];
    if (slot.open.load() >= Capacity(slot)) continue;
    if (slot.broker->reachable()) return i;
    if (!unreachable.has_value()) unreachable = i;
  }
  if (unreachable.has_value()) return *unreachable;
  if (slots_.size() < options_.max_connections) {
    const size_t index = slots_.size();
    absl::StatusOr<std::unique_ptr<AmqpBroker>> opened = factory_(index);
    if (opened.ok()) {
      WARREN_LOG_INFO(
          "rabbitmq: every channel of {} connection(s) is taken; opening "
          "connection {} of at most {} for subscriptions",
          index, index + 1, options_.max_connections);
      auto slot = std::make_unique<Slot>();
      slot->broker = *std::move(opened);
      slots_.push_back(std::move(slot));
      warned_full_ = false;
      return index;
    }
    WARREN_LOG_WARN("rabbitmq: cannot open connection {}: {}", index + 1,
                    opened.status().message());
  } else if (!warned_full_) {
    warned_full_ = true;
    WARREN_LOG_WARN(
        "rabbitmq: every channel of all {} connections is taken; new "
        "subscriptions fail with RESOURCE_EXHAUSTED (see "
        "amqp_max_connections)",
        slots_.size());
  }
  // The primary's own I/O thread answers (RESOURCE_EXHAUSTED, unless a
  // channel was freed meanwhile).
  return 0;
}

SubscriptionId AmqpPool::Subscribe(SubscribeSpec spec,
                                   std::shared_ptr<SubscriptionSink> sink) {
  size_t index;
  Slot* slot;
  {
    warren::MutexLock lock(&mu_);
    if (slots_.empty()) {
      // Shutting down: the primary is gone with the rest.
      return 0;
    }
    index = PickLocked();
    slot = slots_[index].get();
    // Counted under the lock, so that concurrent calls do not overfill a
    // connection.
    slot->open.fetch_add(1);
  }
  auto counted = std::make_shared<CountingSink>(std::move(sink), slot->open);
  const SubscriptionId inner =
      slot->broker->Subscribe(std::move(spec), std::move(counted));
  return (static_cast<SubscriptionId>(index) << kIndexShift) | inner;
}

AmqpPool::Slot* AmqpPool::Find(SubscriptionId id, SubscriptionId* inner) const {
  const size_t index = static_cast<size_t>(id >> kIndexShift);
  *inner = id & kInnerMask;
  warren::ReaderMutexLock lock(&mu_);
  // Slots are only added (until the destructor): the pointer stays valid.
  return index < slots_.size() ? slots_[index].get() : nullptr;
}

void AmqpPool::Settle(SubscriptionId id, uint64_t delivery_tag,
                      amqp::Settle how) {
  SubscriptionId inner;
  if (Slot* slot = Find(id, &inner); slot != nullptr) {
    slot->broker->Settle(inner, delivery_tag, how);
  }
}

void AmqpPool::Unsubscribe(SubscriptionId id) {
  SubscriptionId inner;
  if (Slot* slot = Find(id, &inner); slot != nullptr) {
    slot->broker->Unsubscribe(inner);
  }
}

}  // namespace warren::amqp
