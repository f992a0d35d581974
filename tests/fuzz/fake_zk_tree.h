// The recipe fuzzers' clean-up of the in-memory ZooKeeper between inputs.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/fakes/fake_zk.h"

namespace warren::fuzz {

// Deletes every node below `base` (children before parents): the recipes'
// containers, which ZooKeeper would remove once empty, so that the tree
// stays small over millions of inputs.
inline void DeleteEverythingBelow(testing::FakeZk& zk,
                                  const std::string& base) {
  std::vector<std::string> nodes;  // parents before children
  std::vector<std::string> pending = {base};
  while (!pending.empty()) {
    const std::string path = pending.back();
    pending.pop_back();
    for (const auto& child : zk.Children(path)) {
      nodes.push_back(absl::StrCat(path, "/", child));
      pending.push_back(nodes.back());
    }
  }
  for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
    zk.ExternalDelete(*it);
  }
}

}  // namespace warren::fuzz
