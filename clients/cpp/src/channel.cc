#include "warren/client/channel.h"

#include <cstdlib>

namespace warren::client {

std::string AddressFromEnv() {
  const char* address = std::getenv("WARREN_ADDRESS");
  if (address == nullptr || *address == '\0') return "127.0.0.1:50051";
  return address;
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // Reconnect quickly after a server restart: the wrappers retry on their
  // own schedule (with jitter), and a channel stuck in a long reconnect
  // backoff would fail every one of those retries.
  // (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC also uses it as the
  // connect timeout, and a busy server may need more than a second for the
  // handshake.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Detect a dead connection under quiet streams; the application-level
  // heartbeats cover what a proxy in between might hide.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   args);
}

absl::Status ToStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace warren::client
