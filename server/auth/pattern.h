// Resource patterns of the authorization policy.
//
// A resource (an exchange, a queue, an election name, a config key) is a
// sequence of segments split at a separator: '.' for AMQP names (the
// convention of RabbitMQ's topic keys), '/' for election names and config
// keys. A pattern is split the same way, and each of its segments is
//   - `**`: zero or more whole segments (as `#` in RabbitMQ binding keys);
//   - a glob where `*` stands for any run of characters within one segment
//     (`*` alone: exactly one segment; `orders-*`: one segment that starts
//     with "orders-");
//   - anything else: that exact segment.
// So `orders` is exactly "orders", `orders.*` is "orders.eu" but not
// "orders.eu.x", `orders.**` is "orders" and everything below it, and `**`
// is every resource (including the default exchange, spelt "(default)").
//
// Immutable once parsed; safe to share between threads.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace warren::auth {

class ResourcePattern {
 public:
  // INVALID_ARGUMENT for an empty pattern, or a `**` that is only part of a
  // segment (`a**`), which would be ambiguous.
  static absl::StatusOr<ResourcePattern> Parse(absl::string_view text,
                                               char separator);

  // Whether `resource` itself matches.
  bool Matches(absl::string_view resource) const;
  // Whether every resource at or below `prefix` matches: `prefix` and any
  // further segments (a ListConfig of a prefix, a recursive delete, a
  // WatchConfig with prefix). An empty `prefix` is the whole tree.
  bool CoversSubtree(absl::string_view prefix) const;

  const std::string& text() const { return text_; }

 private:
  ResourcePattern(std::string text, char separator,
                  std::vector<std::string> segments)
      : text_(std::move(text)),
        separator_(separator),
        segments_(std::move(segments)) {}
  bool MatchSegments(const std::vector<absl::string_view>& resource,
                     bool any_tail) const;

  std::string text_;
  char separator_;
  std::vector<std::string> segments_;
};

}  // namespace warren::auth
