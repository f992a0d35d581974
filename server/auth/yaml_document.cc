#include "server/auth/yaml_document.h"

#include "absl/strings/str_cat.h"

namespace warren::auth {

absl::StatusOr<YAML::Node> ParseYamlDocument(const std::string& text) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", e.mark.line + 1, ": ", e.msg));
  }
}

}  // namespace warren::auth
