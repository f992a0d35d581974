#include "server/auth/pattern.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren::auth {
namespace {

constexpr absl::string_view kAnySegments = "**";

std::vector<absl::string_view> Split(absl::string_view text, char separator) {
  // The empty resource (the whole tree) has no segments at all.
  if (text.empty()) return {};
  return absl::StrSplit(text, separator);
}

// A glob within one segment: `*` is any run of characters. The classic
// linear two-pointer match with backtracking to the last star.
bool GlobMatch(absl::string_view glob, absl::string_view text) {
  size_t g = 0, t = 0;
  size_t star = absl::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (g < glob.size() && glob[g] == '*') {
      star = g++;
      star_t = t;
    } else if (g < glob.size() && glob[g] == text[t]) {
      ++g;
      ++t;
    } else if (star != absl::string_view::npos) {
      g = star + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

}  // namespace

absl::StatusOr<ResourcePattern> ResourcePattern::Parse(absl::string_view text,
                                                       char separator) {
  if (text.empty()) {
    return absl::InvalidArgumentError("a resource pattern must not be empty");
  }
  std::vector<std::string> segments;
  for (absl::string_view segment : Split(text, separator)) {
    if (segment != kAnySegments && absl::StrContains(segment, kAnySegments)) {
      return absl::InvalidArgumentError(
          absl::StrCat("resource pattern '", text,
                       "': '**' must be a whole segment (between '",
                       std::string(1, separator), "')"));
    }
    // Consecutive `**` mean the same as one, and would only cost time.
    if (segment == kAnySegments && !segments.empty() &&
        segments.back() == kAnySegments) {
      continue;
    }
    segments.emplace_back(segment);
  }
  return ResourcePattern(std::string(text), separator, std::move(segments));
}

bool ResourcePattern::Matches(absl::string_view resource) const {
  return MatchSegments(Split(resource, separator_), /*any_tail=*/false);
}

bool ResourcePattern::CoversSubtree(absl::string_view prefix) const {
  return MatchSegments(Split(prefix, separator_), /*any_tail=*/true);
}

// Dynamic programming over (pattern segment, resource segment). With
// `any_tail`, the resource ends in a stand-in for "any further segments",
// which only `**` can absorb: the pattern must accept every possible tail.
bool ResourcePattern::MatchSegments(
    const std::vector<absl::string_view>& resource, bool any_tail) const {
  const size_t n = resource.size() + (any_tail ? 1 : 0);
  const size_t m = segments_.size();
  // can[i][j]: pattern segments [i, m) match resource segments [j, n).
  std::vector<std::vector<char>> can(m + 1, std::vector<char>(n + 1, 0));
  can[m][n] = 1;
  for (size_t i = m; i-- > 0;) {
    const bool any = segments_[i] == kAnySegments;
    for (size_t j = n + 1; j-- > 0;) {
      if (any) {
        // Zero segments, or one more.
        can[i][j] = can[i + 1][j] || (j < n && can[i][j + 1]);
      } else if (j < resource.size()) {
        can[i][j] = GlobMatch(segments_[i], resource[j]) && can[i + 1][j + 1];
      }
    }
  }
  return can[0][0] != 0;
}

}  // namespace warren::auth
