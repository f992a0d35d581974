#include "server/messaging/unsettled_deliveries.h"

#include <utility>

namespace warren::messaging {

void UnsettledDeliveries::Add(amqp::Delivery delivery) {
  const uint64_t tag = delivery.delivery_tag;
  kept_.insert_or_assign(tag, std::move(delivery));
}

bool UnsettledDeliveries::Contains(uint64_t delivery_tag) const {
  return kept_.count(delivery_tag) > 0;
}

std::optional<amqp::Delivery> UnsettledDeliveries::Take(uint64_t delivery_tag) {
  auto it = kept_.find(delivery_tag);
  if (it == kept_.end()) return std::nullopt;
  amqp::Delivery delivery = std::move(it->second);
  kept_.erase(it);
  return delivery;
}

}  // namespace warren::messaging
