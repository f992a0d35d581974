#include "server/auth/policy.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/auth/yaml_document.h"
#include "server/common/logging.h"
#include "yaml-cpp/yaml.h"

namespace warren::auth {
namespace {

constexpr Action kActions[] = {Action::kPublish,    Action::kSubscribe,
                               Action::kCampaign,   Action::kObserve,
                               Action::kConfigRead, Action::kConfigWrite,
                               Action::kLock};

std::string Where(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return "";
  return absl::StrCat(" (line ", mark.line + 1, ")");
}

}  // namespace

absl::string_view ActionName(Action action) {
  switch (action) {
    case Action::kPublish:
      return "publish";
    case Action::kSubscribe:
      return "subscribe";
    case Action::kCampaign:
      return "campaign";
    case Action::kObserve:
      return "observe";
    case Action::kConfigRead:
      return "config_read";
    case Action::kConfigWrite:
      return "config_write";
    case Action::kLock:
      return "lock";
  }
  return "unknown";
}

char SeparatorOf(Action action) {
  return action == Action::kPublish || action == Action::kSubscribe ? '.' : '/';
}

std::string Resource::ToString(char separator) const {
  // Names come from the client: a refusal echoes at most kMaxEchoBytes.
  // The default exchange as a grant would spell it: '(default)/<queue>', or
  // '(default)/**' for every queue.
  if (default_exchange) {
    return absl::StrCat(
        "'", kDefaultExchange, "/",
        routing_key.has_value() ? Abbreviated(*routing_key) : "**", "'");
  }
  if (!subtree) return absl::StrCat("'", Abbreviated(name), "'");
  if (name.empty()) return "'**'";
  return absl::StrCat("'", Abbreviated(name), std::string(1, separator), "**'");
}

Resource PublishResource(absl::string_view exchange,
                         std::optional<absl::string_view> routing_key) {
  Resource resource;
  resource.name = ExchangeResource(exchange);
  if (exchange.empty()) {
    resource.default_exchange = true;
    if (routing_key.has_value())
      resource.routing_key = std::string(*routing_key);
  }
  return resource;
}

Policy Policy::AllowAll() {
  Policy policy;
  policy.allow_all_ = true;
  return policy;
}

absl::StatusOr<Policy> Policy::Parse(const std::string& yaml) {
  absl::StatusOr<YAML::Node> loaded = ParseYamlDocument(yaml);
  if (!loaded.ok()) return loaded.status();
  // Const: a non-const operator[] would add the keys it looks up.
  const YAML::Node& root = *loaded;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        "expected a map with the key 'principals'");
  }
  Policy policy;
  for (const auto& item : root) {
    const std::string key = item.first.Scalar();
    if (key != "principals") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown key '", key, "'", Where(item.first),
                       "; the policy has one key, 'principals'"));
    }
  }
  const YAML::Node principals = root["principals"];
  if (principals.IsNull()) return policy;  // no grants: nothing allowed
  if (!principals.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'principals' must map principal names to grants", Where(principals)));
  }
  for (const auto& principal : principals) {
    if (!principal.first.IsScalar() || principal.first.Scalar().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a principal name must be a non-empty string",
                       Where(principal.first)));
    }
    const std::string name = principal.first.Scalar();
    if (policy.grants_.count(name) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "principal '", name, "' is listed twice", Where(principal.first)));
    }
    Grants& grants = policy.grants_[name];
    if (principal.second.IsNull()) continue;
    if (!principal.second.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat("principal '", name,
                       "' must map actions to lists of resource patterns",
                       Where(principal.second)));
    }
    for (const auto& grant : principal.second) {
      const std::string action_name = grant.first.Scalar();
      const Action* action = nullptr;
      for (const Action& a : kActions) {
        if (ActionName(a) == action_name) action = &a;
      }
      if (action == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("principal '", name, "': unknown action '",
                         action_name, "'", Where(grant.first),
                         "; actions are publish, subscribe, campaign, observe, "
                         "config_read, config_write"));
      }
      std::vector<std::string> texts;
      if (grant.second.IsScalar()) {
        texts.push_back(grant.second.Scalar());
      } else if (grant.second.IsSequence()) {
        for (const auto& element : grant.second) {
          if (!element.IsScalar()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "principal '", name, "', ", action_name,
                ": resource patterns must be strings", Where(element)));
          }
          texts.push_back(element.Scalar());
        }
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "principal '", name, "', ", action_name,
            ": expected a list of resource patterns", Where(grant.second)));
      }
      for (const std::string& text : texts) {
        // `(default)/<pattern>`: the default exchange, for the routing keys
        // (queue names) the pattern matches.
        const bool default_keys =
            *action == Action::kPublish &&
            absl::StartsWith(text, absl::StrCat(kDefaultExchange, "/"));
        auto pattern = ResourcePattern::Parse(
            default_keys
                ? absl::string_view(text).substr(kDefaultExchange.size() + 1)
                : absl::string_view(text),
            SeparatorOf(*action));
        if (!pattern.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "principal '", name, "', ", action_name, ": ",
              default_keys ? absl::StrCat("'", text, "': the queue pattern: ")
                           : "",
              pattern.status().message(), Where(grant.second)));
        }
        if (default_keys) {
          grants.default_exchange_keys.push_back(*std::move(pattern));
          continue;
        }
        if (*action == Action::kPublish && pattern->Matches(kDefaultExchange)) {
          policy.warnings_.push_back(absl::StrCat(
              "principal '", name, "', publish '", text,
              "' grants the default exchange with every routing key, i.e. "
              "publishing into every queue; grant '",
              kDefaultExchange, "/<queue pattern>' to narrow it"));
        }
        grants.patterns[*action].push_back(*std::move(pattern));
      }
    }
  }
  return policy;
}

bool Policy::Allows(absl::string_view principal, Action action,
                    const Resource& resource) const {
  if (allow_all_) return true;
  return AllowsBy(principal, action, resource) ||
         AllowsBy(kAnyPrincipal, action, resource);
}

bool Policy::AllowsBy(absl::string_view principal, Action action,
                      const Resource& resource) const {
  auto grants = grants_.find(principal);
  if (grants == grants_.end()) return false;
  // A pattern that matches the resource's name: for the default exchange,
  // a grant of every routing key.
  auto patterns = grants->second.patterns.find(action);
  if (patterns != grants->second.patterns.end()) {
    for (const ResourcePattern& pattern : patterns->second) {
      if (resource.subtree ? pattern.CoversSubtree(resource.name)
                           : pattern.Matches(resource.name)) {
        return true;
      }
    }
  }
  if (action != Action::kPublish || !resource.default_exchange) return false;
  for (const ResourcePattern& keys : grants->second.default_exchange_keys) {
    // Any routing key needs a pattern that accepts every queue name.
    if (resource.routing_key.has_value() ? keys.Matches(*resource.routing_key)
                                         : keys.CoversSubtree("")) {
      return true;
    }
  }
  return false;
}

}  // namespace warren::auth
