#include "server/election/candidate_node.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/common/names.h"

namespace warren::election {
namespace {

constexpr size_t kGuidChars = 36;
constexpr size_t kSequenceDigits = 10;

bool IsGuid(absl::string_view s) {
  if (s.size() != kGuidChars) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string CandidateNodePrefix(absl::string_view guid) {
  return absl::StrCat(kCandidatePrefix, guid, "-");
}

std::optional<CandidateNode> ParseCandidateNode(absl::string_view name) {
  if (name.size() != kCandidatePrefix.size() + kGuidChars + 1 + kSequenceDigits)
    return std::nullopt;
  if (!absl::ConsumePrefix(&name, kCandidatePrefix)) return std::nullopt;
  const absl::string_view guid = name.substr(0, kGuidChars);
  if (!IsGuid(guid) || name[kGuidChars] != '-') return std::nullopt;
  const absl::string_view digits = name.substr(kGuidChars + 1);
  int64_t sequence = 0;
  for (char c : digits) {
    // Digits only: SimpleAtoi would also take a sign or spaces.
    if (c < '0' || c > '9') return std::nullopt;
    sequence = sequence * 10 + (c - '0');
  }
  return CandidateNode{std::string(guid), sequence};
}

bool IsSessionOwned(int64_t ephemeral_owner) {
  return ephemeral_owner != 0 &&
         ephemeral_owner != std::numeric_limits<int64_t>::min();
}

std::vector<std::string> SortCandidates(std::vector<std::string> names) {
  std::vector<std::pair<int64_t, std::string>> candidates;
  for (auto& name : names) {
    if (auto parsed = ParseCandidateNode(name)) {
      candidates.emplace_back(parsed->sequence, std::move(name));
    }
  }
  std::sort(candidates.begin(), candidates.end());
  std::vector<std::string> sorted;
  sorted.reserve(candidates.size());
  for (auto& [sequence, name] : candidates) sorted.push_back(std::move(name));
  return sorted;
}

absl::Status ValidateRecipeName(absl::string_view name,
                                absl::string_view field) {
  if (absl::Status s = ValidateName(name, field); !s.ok()) return s;
  for (absl::string_view segment : absl::StrSplit(name, '/')) {
    if (absl::StartsWith(segment, kCandidatePrefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " '", name, "' has a segment '", segment,
          "' that starts with '", kCandidatePrefix,
          "', which is reserved for candidate nodes; rename the segment"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCandidateId(absl::string_view id,
                                 absl::string_view field) {
  if (id.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", id.size(), " bytes; at most 255"));
  }
  if (id.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be one segment: no '/'"));
  }
  return ValidateName(id, field, /*allow_empty=*/true);
}

}  // namespace warren::election
