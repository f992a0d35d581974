// The deliveries a Subscribe stream handed out and that were not settled
// yet, each with its message as the broker delivered it: a retry
// (Nack.retry_after) republishes that message, and the broker cannot hand
// it out again. Bounded by the stream's prefetch (max_in_flight).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>

#include "server/amqp/amqp_types.h"

namespace warren::messaging {

class UnsettledDeliveries {
 public:
  void Add(amqp::Delivery delivery);
  bool Contains(uint64_t delivery_tag) const;
  // Removes the delivery and hands its message back; nullopt when unknown.
  std::optional<amqp::Delivery> Take(uint64_t delivery_tag);
  size_t size() const { return kept_.size(); }
  void Clear() { kept_.clear(); }

 private:
  std::map<uint64_t, amqp::Delivery> kept_;
};

}  // namespace warren::messaging
