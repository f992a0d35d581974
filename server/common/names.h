// Validation of the names clients choose: config keys and election names.
// Both are `/`-separated segments of [A-Za-z0-9._-], with no empty, `.` or `..`
// segment, so that they can never address a node outside the server's root.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace warren {

inline constexpr size_t kMaxNameBytes = 1024;

// Answers OK for a valid name, or INVALID_ARGUMENT with a message that names
// `field` and says what is wrong. An empty name is refused unless
// `allow_empty` (e.g. a prefix that means "everything").
absl::Status ValidateName(absl::string_view name, absl::string_view field,
                          bool allow_empty = false);

}  // namespace warren
