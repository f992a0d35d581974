#include "server/config/key_space.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace warren::config {

KeySpace::KeySpace(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  base_ = root == "/" ? "/config" : absl::StrCat(root, "/config");
}

std::string KeySpace::PathOf(absl::string_view key) const {
  if (key.empty()) return base_;
  return absl::StrCat(base_, "/", key);
}

std::optional<std::string> KeySpace::KeyOf(absl::string_view path) const {
  if (path == base_) return std::string();
  if (path.size() > base_.size() + 1 && absl::StartsWith(path, base_) &&
      path[base_.size()] == '/') {
    return std::string(path.substr(base_.size() + 1));
  }
  return std::nullopt;
}

bool PathLess(absl::string_view a, absl::string_view b) {
  // '/' ranks below every character a segment may hold ('-' and '.' are
  // below '/' in ASCII, which would interleave siblings with descendants).
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] == b[i]) continue;
    if (a[i] == '/') return true;
    if (b[i] == '/') return false;
    return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[i]);
  }
  return a.size() < b.size();
}

bool IsSelfOrDescendant(absl::string_view path, absl::string_view ancestor) {
  if (path == ancestor) return true;
  if (ancestor.empty()) return true;  // the empty key contains every key
  if (ancestor == "/") return absl::StartsWith(path, "/");
  return path.size() > ancestor.size() && absl::StartsWith(path, ancestor) &&
         path[ancestor.size()] == '/';
}

}  // namespace warren::config
