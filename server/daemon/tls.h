// Transport security of warrend: which listen addresses may serve plaintext,
// the start-up check of certificate files (so that a typo in a path is one
// clear line at start-up, not a handshake failure on every call later), and
// the gRPC server credentials that re-read the files while warrend runs.
//
// Threading: the functions are stateless and may be called from any thread.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"

namespace warren::daemon {

// Whether client certificates are asked for (tls_client_auth).
enum class ClientAuth {
  kNone,     // not asked for
  kRequest,  // asked for and verified when given; clients without one pass
  kRequire,  // mutual TLS: no verified client certificate, no connection
};

struct ServerTlsFiles {
  std::string cert_file;       // PEM certificate chain, leaf first
  std::string key_file;        // PEM private key of the leaf
  std::string client_ca_file;  // PEM CA bundle for client certificates
  ClientAuth client_auth = ClientAuth::kNone;
  // How often the files are checked for changes.
  absl::Duration reload_interval = absl::Seconds(60);
};

// Whether clients can reach a gRPC listen address only from this host:
// 127.0.0.0/8, ::1, localhost, or a unix socket. 0.0.0.0, [::], an empty
// host and any other name are not.
bool IsLoopbackListen(absl::string_view listen);

// Reads and parses a certificate chain and its private key; INVALID_ARGUMENT
// naming the setting when a file is unreadable, holds no PEM certificate or
// key (an encrypted key counts as none), or the key does not match the
// certificate.
absl::Status CheckKeyPair(const std::string& cert_file,
                          const std::string& key_file,
                          absl::string_view cert_setting,
                          absl::string_view key_setting);

// Reads a PEM CA bundle; INVALID_ARGUMENT naming the setting when it is
// unreadable or holds no certificate.
absl::Status CheckCaBundle(const std::string& file, absl::string_view setting);

// When the first (leaf) certificate of a PEM chain expires: its notAfter.
// INVALID_ARGUMENT naming the setting when the file cannot be read or holds
// no certificate.
absl::StatusOr<absl::Time> LeafCertificateNotAfter(const std::string& cert_file,
                                                   absl::string_view setting);

// All the files of `files`, checked as above.
absl::Status CheckServerTlsFiles(const ServerTlsFiles& files);

// TLS server credentials that serve the files and re-read them every
// reload_interval (gRPC's file watcher); connections already open keep the
// certificate they were made with. Replace the files atomically (rename, or
// a Kubernetes Secret volume's symlink swap): a check that reads a
// half-replaced pair may fail new handshakes until the next check.
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const ServerTlsFiles& files);

}  // namespace warren::daemon
