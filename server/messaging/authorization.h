// What a messaging call needs grants for. Besides the resource a call names
// (the exchange of a publish, the queue or exchange of a subscription),
// some requests make the broker act later on the caller's behalf, and each
// such effect needs the grant it would need done directly: a queue's
// dead-letter exchange receives the queue's rejected, expired and
// overflowing messages, so declaring it is publishing there.
//
// Pure functions of the request, so that the rules are testable without a
// server; the handlers check the answers against the caller's grants.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/auth/authorizer.h"
#include "server/auth/policy.h"
#include "warren/v1/messaging.pb.h"

namespace warren::messaging {

// One grant a request needs.
struct Requirement {
  auth::Action action;
  auth::Resource resource;
  // Empty for the grant the call obviously needs; else the request field
  // that needs it and why, shown with PERMISSION_DENIED.
  std::string why;
};

// Publish on the exchange; on the default exchange, for the routing key
// (the queue the message goes to).
auth::Resource PublishTarget(const warren::v1::PublishRequest& request);

// Every grant a publish needs: publish on its target and, with a fence,
// the fence's own grant (fence::RequiredGrant).
std::vector<Requirement> PublishRequirements(
    const warren::v1::PublishRequest& request);

// Every grant a SubscribeStart needs: subscribe on its queue, or on its
// topic's exchange (and group); publish on its queue's dead-letter exchange
// with its dead-letter routing key, or with any routing key when it has
// none (the broker then keeps each message's original keys).
std::vector<Requirement> SubscribeRequirements(
    const warren::v1::SubscribeStart& start);

// OK, or the first refusal.
absl::Status CheckAll(const auth::Caller& caller,
                      const std::vector<Requirement>& requirements);

// INVALID_ARGUMENT naming `field` for an exchange name that policies use
// for the default exchange: a real exchange so named would be granted by
// the default exchange's grants.
absl::Status CheckExchangeName(const std::string& name,
                               absl::string_view field);

}  // namespace warren::messaging
