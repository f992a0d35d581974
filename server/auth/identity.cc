#include "server/auth/identity.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "grpc/grpc_security_constants.h"

namespace warren::auth {

absl::StatusOr<std::optional<std::string>> BearerToken(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto [first, last] = metadata.equal_range(kAuthorizationKey);
  if (first == last) return std::nullopt;
  if (std::next(first) != last) {
    return absl::UnauthenticatedError(
        "more than one 'authorization' metadata entry");
  }
  absl::string_view value(first->second.data(), first->second.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (!absl::StartsWithIgnoreCase(value, kScheme)) {
    return absl::UnauthenticatedError(
        "'authorization' metadata must be 'Bearer <token>'");
  }
  value = absl::StripAsciiWhitespace(value.substr(kScheme.size()));
  if (value.empty()) {
    return absl::UnauthenticatedError("empty bearer token");
  }
  return std::string(value);
}

std::optional<std::string> CertificateSubject(const grpc::AuthContext& auth) {
  if (!auth.IsPeerAuthenticated()) return std::nullopt;
  for (const char* property :
       {GRPC_X509_SUBJECT_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
    const std::vector<grpc::string_ref> values =
        auth.FindPropertyValues(property);
    if (!values.empty() && !values.front().empty()) {
      return std::string(values.front().data(), values.front().size());
    }
  }
  return std::nullopt;
}

}  // namespace warren::auth
