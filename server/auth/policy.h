// The authorization policy: which principal may do which action on which
// resources. Loaded from YAML:
//
//   principals:
//     billing:                       # a bearer-token principal
//       publish: [orders, "(default)/billing-*"]
//       subscribe: ["orders.**"]
//       config_read: ["billing/**"]
//     "CN=ops,O=Acme":               # a client certificate's subject
//       config_write: ["**"]
//     "*":                           # every authenticated principal
//       observe: ["**"]
//
// Grants only (nothing is allowed unless granted); a principal's own grants
// and those of "*" add up. Patterns: see pattern.h. Immutable once parsed.
//
// The default exchange routes by queue name, so a publish grant on it is a
// grant to write into queues: `(default)/<pattern>` grants it for the
// routing keys (queue names) the pattern matches ('.'-separated, like queue
// patterns). A publish pattern that matches the name "(default)" itself
// (`(default)`, `*`, `**`) grants every routing key, i.e. every queue: kept
// for existing policies, and reported by warnings().
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/pattern.h"

namespace warren::auth {

// What a call does, each on its own kind of resource.
enum class Action {
  kPublish,      // exchange name; the default exchange is "(default)"
  kSubscribe,    // queue name, or the exchange (and group) of a topic
  kCampaign,     // election name (Elect)
  kObserve,      // election name (GetLeader, ObserveLeader, a fence naming
                 // the election)
  kConfigRead,   // config key (GetConfig, ListConfig, WatchConfig)
  kConfigWrite,  // config key (PutConfig, DeleteConfig, Txn, HoldKey)
  kLock,         // lock name (Lock, GetLock, a fence naming the lock)
};

// The name used in policy files and messages, e.g. "config_read".
absl::string_view ActionName(Action action);

// The separator of the action's resource names: '.' or '/'.
char SeparatorOf(Action action);

// How the default exchange ("") is written in policies and messages.
inline constexpr absl::string_view kDefaultExchange = "(default)";

// The resource name of an exchange: `name`, or kDefaultExchange for "".
inline std::string ExchangeResource(absl::string_view name) {
  return std::string(name.empty() ? kDefaultExchange : name);
}

// The principal whose grants apply to every authenticated principal.
inline constexpr absl::string_view kAnyPrincipal = "*";

// A resource a call touches: one name, or a name and everything below it.
struct Resource {
  // Not an aggregate, so that `{name}` and `{name, subtree}` stay complete
  // initializations with the fields below.
  Resource() = default;
  Resource(std::string name, bool subtree = false)  // NOLINT: implicit
      : name(std::move(name)), subtree(subtree) {}

  std::string name;
  bool subtree = false;
  // Publishing on the default exchange (name kDefaultExchange): grants on
  // it are scoped by routing key, i.e. by the queue written to. Grants on a
  // named exchange cover all of its routing keys.
  bool default_exchange = false;
  // With default_exchange: the routing key; nullopt: any routing key (when
  // the broker chooses it, e.g. the original keys of dead-lettered
  // messages).
  std::optional<std::string> routing_key;

  // As messages and logs show it, e.g. 'orders' or 'app/**'.
  std::string ToString(char separator) const;
};

// What publishing to `exchange` ("" is the default exchange) with
// `routing_key` (nullopt: any) needs a grant on.
Resource PublishResource(absl::string_view exchange,
                         std::optional<absl::string_view> routing_key);

class Policy {
 public:
  // INVALID_ARGUMENT naming the place of an error (an unknown action, a bad
  // pattern, a malformed document).
  static absl::StatusOr<Policy> Parse(const std::string& yaml);

  // A policy that allows everything: used when tokens are configured but
  // no policy file is.
  static Policy AllowAll();

  bool Allows(absl::string_view principal, Action action,
              const Resource& resource) const;

  size_t principal_count() const { return grants_.size(); }

  // Grants that allow more than their author may think, one sentence each,
  // for the log at load time (e.g. a plain `(default)` publish grant, which
  // allows writing into every queue).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Grants {
    std::map<Action, std::vector<ResourcePattern>> patterns;
    // Publish grants `(default)/<pattern>`: routing keys (queue names) of
    // the default exchange.
    std::vector<ResourcePattern> default_exchange_keys;
  };
  bool AllowsBy(absl::string_view principal, Action action,
                const Resource& resource) const;

  bool allow_all_ = false;
  std::map<std::string, Grants, std::less<>> grants_;
  std::vector<std::string> warnings_;
};

}  // namespace warren::auth
