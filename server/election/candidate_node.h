// The one rule for the nodes of ZooKeeper's lock and leader recipes, shared
// by elections and (later) locks: how a candidate's node is named, which
// children of a recipe's node count as candidates, and which names a client
// may give a recipe so that no node Warren creates for a name can pass for a
// candidate of another name.
//
// Why: names nest (`team` and `team/x` are both elections), so the node of
// `team/<segment>` is a child of `team`'s node, next to its candidates. A
// segment in the candidates' form would make a phantom candidate of `team`
// (security issue 15, item 2). Both halves close it: names may not have a
// segment starting with the candidates' prefix, and selection counts only
// ephemeral children of the exact form. Old releases counted any `c_` child,
// which is why the name rule refuses the whole prefix, not the exact form:
// replicas of both releases then agree on one leader during an upgrade.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace warren::election {

// Every candidate node's name starts with it, and no segment of a recipe's
// name may.
inline constexpr absl::string_view kCandidatePrefix = "c_";

// What a candidate asks ZooKeeper to create (ephemeral-sequential) under
// the recipe's node: "c_<guid>-"; ZooKeeper appends ten digits.
std::string CandidateNodePrefix(absl::string_view guid);

struct CandidateNode {
  std::string guid;
  int64_t sequence = 0;
};

// The parts of "c_<guid>-<10 decimal digits>", where guid is a UUID as
// NewUuid writes it (36 characters of lower-case hex and dashes); nullopt
// for any other name.
std::optional<CandidateNode> ParseCandidateNode(absl::string_view name);

// Whether a node with this stat.ephemeral_owner is held by a live session:
// not a persistent node (0) and not a container (ZooKeeper marks those with
// the lowest int64).
bool IsSessionOwned(int64_t ephemeral_owner);

// The children that have the candidates' exact form, lowest sequence (the
// leader) first. Whether each is ephemeral needs its stat: the caller
// checks IsSessionOwned on the node it reads, and skips it if not.
std::vector<std::string> SortCandidates(std::vector<std::string> names);

// ValidateName's rule, and no segment may start with kCandidatePrefix.
// INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateRecipeName(absl::string_view name,
                                absl::string_view field);

// A candidate's (or lock holder's) id: one segment of ValidateName's rule,
// at most 255 bytes, may be empty. INVALID_ARGUMENT naming `field`
// otherwise.
absl::Status ValidateCandidateId(absl::string_view id, absl::string_view field);

}  // namespace warren::election
