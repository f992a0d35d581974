// Connecting to warrend.
//
// Every wrapper takes a std::shared_ptr<grpc::Channel>, so one channel (one
// HTTP/2 connection) can carry a process's publishers, subscribers, electors
// and watchers together. MakeChannel sets what long-lived streams need:
// keepalive pings, and a short reconnect backoff so that a restarted server
// is found again within about a second instead of gRPC's default of up to
// two minutes.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
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

// An insecure (plaintext) channel to `address` ("host:port").
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const ChannelOptions& options = {});

// grpc::Status to absl::Status (the codes are the same numbers).
absl::Status ToStatus(const grpc::Status& status);

}  // namespace warren::client
