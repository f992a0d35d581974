// Who is calling: the credentials a call carries, read from its metadata
// and its transport. Pure functions over gRPC's views of a call.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/support/string_ref.h"

namespace warren::auth {

// The metadata key of bearer tokens ("authorization: Bearer <token>").
inline constexpr char kAuthorizationKey[] = "authorization";

// The token of an "authorization: Bearer <token>" entry (the scheme is
// case-insensitive), or nullopt when there is none. UNAUTHENTICATED when
// the entry is there but is not a bearer token, or is given twice.
absl::StatusOr<std::optional<std::string>> BearerToken(
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata);

// The verified client certificate's subject (RFC 2253, e.g.
// "CN=billing,O=Acme"), or, where gRPC does not report the subject, its
// common name alone; nullopt without a verified client certificate.
std::optional<std::string> CertificateSubject(const grpc::AuthContext& auth);

}  // namespace warren::auth
