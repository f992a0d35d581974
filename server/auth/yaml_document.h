// Parsing of the auth files' YAML text, shared by the token table and the
// policy so that both report syntax errors the same way.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "yaml-cpp/yaml.h"

namespace warren::auth {

// The document of `text`; INVALID_ARGUMENT "line N: <parser message>" for
// text that is not YAML. yaml-cpp's parser messages are fixed texts, never
// the document's, so a secret cannot leak through them.
absl::StatusOr<YAML::Node> ParseYamlDocument(const std::string& text);

}  // namespace warren::auth
