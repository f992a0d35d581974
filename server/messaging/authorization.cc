#include "server/messaging/authorization.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/fence/fence_resolver.h"

namespace warren::messaging {

namespace v1 = ::warren::v1;

auth::Resource PublishTarget(const v1::PublishRequest& request) {
  return auth::PublishResource(request.exchange(), request.routing_key());
}

std::vector<Requirement> PublishRequirements(
    const v1::PublishRequest& request) {
  std::vector<Requirement> needs = {
      {auth::Action::kPublish, PublishTarget(request), ""}};
  if (request.has_fence()) {
    fence::FenceGrant grant = fence::RequiredGrant(request.fence());
    needs.push_back({grant.action,
                     {std::move(grant.name)},
                     "fence: a fenced publish reads whether the fence's "
                     "owner still holds"});
  }
  return needs;
}

std::vector<Requirement> SubscribeRequirements(
    const v1::SubscribeStart& start) {
  std::vector<Requirement> needs;
  if (start.has_topic()) {
    // A topic subscription receives what is published on the exchange; with
    // a group it declares (and binds) the shared queue of that name.
    needs.push_back({auth::Action::kSubscribe, {start.topic().exchange()}, ""});
    if (!start.group().empty()) {
      needs.push_back({auth::Action::kSubscribe, {start.group()}, ""});
    }
  } else {
    needs.push_back({auth::Action::kSubscribe, {start.queue()}, ""});
  }
  const v1::QueueOptions& options = start.queue_options();
  if (!options.dead_letter_exchange().empty()) {
    // Nacked (requeue false), expired and overflowing messages of the queue
    // are published there by the broker: with the dead-letter routing key,
    // or else with the keys each message was first published with, which
    // can be any key.
    const bool keyed = !options.dead_letter_routing_key().empty();
    std::optional<absl::string_view> key;
    if (keyed) key = options.dead_letter_routing_key();
    needs.push_back(
        {auth::Action::kPublish,
         auth::PublishResource(options.dead_letter_exchange(), key),
         keyed ? "start.queue_options.dead_letter_exchange and "
                 "dead_letter_routing_key: the broker publishes the queue's "
                 "dead-lettered messages there"
               : "start.queue_options.dead_letter_exchange: the broker "
                 "publishes the queue's dead-lettered messages there with "
                 "their original routing keys"});
  }
  return needs;
}

absl::Status CheckAll(const auth::Caller& caller,
                      const std::vector<Requirement>& requirements) {
  for (const Requirement& need : requirements) {
    if (absl::Status s = caller.Check(need.action, need.resource, need.why);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status CheckExchangeName(const std::string& name,
                               absl::string_view field) {
  if (name == auth::kDefaultExchange ||
      absl::StartsWith(name, absl::StrCat(auth::kDefaultExchange, "/"))) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " '", name,
                     "' is reserved: policies spell the default "
                     "exchange '",
                     auth::kDefaultExchange,
                     "'; publish to it with an "
                     "empty exchange"));
  }
  return absl::OkStatus();
}

}  // namespace warren::messaging
