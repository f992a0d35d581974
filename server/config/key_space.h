// Where config keys live in ZooKeeper: key `a/b` is node `<root>/config/a/b`.
// Nothing outside `<root>/config` is ever addressed through a key.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace warren::config {

class KeySpace {
 public:
  // `root` is the server's root path, e.g. `/warren`.
  explicit KeySpace(std::string root);

  // The node under which every key lives, e.g. `/warren/config`.
  const std::string& base() const { return base_; }
  // The node of a validated key; the empty key is the base itself.
  std::string PathOf(absl::string_view key) const;
  // The key of a node under the base; nullopt for a path outside it, and the
  // empty key for the base itself.
  std::optional<std::string> KeyOf(absl::string_view path) const;

 private:
  std::string base_;
};

// Orders paths (or keys) segment by segment, so that a node's descendants come
// right after it and before its next sibling: "a" < "a/b" < "a-c".
bool PathLess(absl::string_view a, absl::string_view b);

struct PathLessFn {
  bool operator()(absl::string_view a, absl::string_view b) const {
    return PathLess(a, b);
  }
  using is_transparent = void;
};

// True when `path` is `ancestor` or lies below it.
bool IsSelfOrDescendant(absl::string_view path, absl::string_view ancestor);

}  // namespace warren::config
