// Connecting to warrend.
//
// Every wrapper takes a std::shared_ptr<grpc::Channel>, so one channel (one
// HTTP/2 connection) can carry a process's publishers, subscribers, electors
// and watchers together. MakeChannel sets what long-lived streams need:
// keepalive pings, and gRPC's reconnect backoff capped at 2 s
// (retry_policy.h) so that a restarted server is found again within about
// two seconds instead of gRPC's default of up to two minutes. The wrappers
// also work on a channel made elsewhere, without that cap.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

namespace warren::client {

// The address the examples use: $WARREN_ADDRESS, or 127.0.0.1:50051.
std::string AddressFromEnv();

// $WARREN_TOKEN, or "" when it is not set.
std::string TokenFromEnv();

struct ChannelOptions {
  // A bearer token for a server with authentication on: every call of the
  // channel carries "authorization: Bearer <token>". Empty: none. (Sent by a
  // client interceptor, not call credentials, which gRPC sends over TLS
  // only; over plaintext anyone on the path can read it.)
  std::string token;
};

// A channel to `address` with `credentials` and `args` whose calls carry
// "authorization: Bearer <token>" when `token` is not empty. MakeChannel is
// built on it; tools that make their own credentials (the CLI) use it too.
std::shared_ptr<grpc::Channel> CreateChannelWithToken(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const grpc::ChannelArguments& args, const std::string& token);

// An insecure (plaintext) channel to `address` ("host:port").
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const ChannelOptions& options = {});

// TLS to a warrend started with --tls_cert_file.
struct TlsOptions {
  // PEM CA bundle that signs the server's certificate; empty: the system's.
  std::string ca_file;
  // PEM client certificate and key, for a server that requires one
  // (--tls_client_ca_file, mutual TLS); both or neither.
  std::string cert_file;
  std::string key_file;
  // The name the server's certificate must carry when it is not the host
  // of the address (e.g. dialing an IP); empty: the host.
  std::string server_name;
};

// A TLS channel to `address` with the same settings as MakeChannel.
// INVALID_ARGUMENT naming the file when one cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const TlsOptions& tls,
    const ChannelOptions& options = {});

// TlsOptions from $WARREN_TLS_CA, $WARREN_TLS_CERT, $WARREN_TLS_KEY and
// $WARREN_TLS_SERVER_NAME, or $WARREN_TLS=1 for TLS with the system's CAs;
// nullopt (plaintext) when none is set.
std::optional<TlsOptions> TlsOptionsFromEnv();

// MakeChannel(AddressFromEnv()) with TokenFromEnv(), over TLS when
// TlsOptionsFromEnv says so.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromEnv();

// grpc::Status to absl::Status (the codes are the same numbers).
absl::Status ToStatus(const grpc::Status& status);

}  // namespace warren::client
