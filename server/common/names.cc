#include "server/common/names.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace warren {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

}  // namespace

absl::Status ValidateName(absl::string_view name, absl::string_view field,
                          bool allow_empty) {
  if (name.empty()) {
    if (allow_empty) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  }
  if (name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is ", name.size(), " bytes long; at most ",
                     kMaxNameBytes, " are allowed"));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (c != '/' && !IsNameChar(c)) {
      const auto byte = static_cast<unsigned char>(c);
      return absl::InvalidArgumentError(
          absl::StrCat(field, " has a character that is not allowed at byte ",
                       i, " (0x", absl::Hex(byte, absl::kZeroPad2),
                       "); use segments of A-Z a-z 0-9 . _ - separated by /"));
    }
  }
  for (absl::string_view segment : absl::StrSplit(name, '/')) {
    if (segment.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " '", name,
          "' has an empty segment (a leading, trailing or double /)"));
    }
    if (segment == "." || segment == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " '", name, "' has a '", segment,
                       "' segment; relative segments are not allowed"));
    }
  }
  return absl::OkStatus();
}

}  // namespace warren
