#include "warren/client/channel.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/support/client_interceptor.h"
#include "warren/client/retry_policy.h"

namespace warren::client {

std::string AddressFromEnv() {
  const char* address = std::getenv("WARREN_ADDRESS");
  if (address == nullptr || *address == '\0') return "127.0.0.1:50051";
  return address;
}

namespace {

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the TLS ", what, " file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

grpc::ChannelArguments ChannelArgs() {
  grpc::ChannelArguments args;
  // Reconnect soon after a server restart (clients/retry-policy.json,
  // "channel"): gRPC's default backoff grows to 120 s, and streams that wait
  // for the channel would wait that long. The wrappers also reset it when
  // they open a stream again.
  // (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC uses it as the timeout of
  // one connection attempt, handshake included, not as a backoff; its
  // default of 20 s suits a server across a slow network.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              absl::ToInt64Milliseconds(kInitialReconnectBackoff));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              absl::ToInt64Milliseconds(kMaxReconnectBackoff));
  // Detect a dead connection under quiet streams; the application-level
  // heartbeats cover what a proxy in between might hide.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  return args;
}

class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string& token) : token_(token) {}
  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::
                PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert(
          {"authorization", "Bearer " + token_});
    }
    methods->Proceed();
  }

 private:
  const std::string token_;
};

class BearerInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::string token)
      : token_(std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerInterceptor(token_);
  }

 private:
  const std::string token_;
};

}  // namespace

std::string TokenFromEnv() { return Env("WARREN_TOKEN"); }

std::shared_ptr<grpc::Channel> CreateChannelWithToken(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
    const grpc::ChannelArguments& args, const std::string& token) {
  if (token.empty()) {
    return grpc::CreateCustomChannel(address, credentials, args);
  }
  std::vector<
      std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<BearerInterceptorFactory>(token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, credentials, args, std::move(interceptors));
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address,
                                           const ChannelOptions& options) {
  return CreateChannelWithToken(address, grpc::InsecureChannelCredentials(),
                                ChannelArgs(), options.token);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(
    const std::string& address, const TlsOptions& tls,
    const ChannelOptions& options) {
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS client certificate and key go together: give both or neither");
  }
  grpc::SslCredentialsOptions ssl;
  if (!tls.ca_file.empty()) {
    auto ca = ReadPem(tls.ca_file, "CA");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
  }
  if (!tls.cert_file.empty()) {
    auto cert = ReadPem(tls.cert_file, "certificate");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(tls.key_file, "key");
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  grpc::ChannelArguments args = ChannelArgs();
  if (!tls.server_name.empty()) {
    args.SetSslTargetNameOverride(tls.server_name);
  }
  return CreateChannelWithToken(address, grpc::SslCredentials(ssl), args,
                                options.token);
}

std::optional<TlsOptions> TlsOptionsFromEnv() {
  TlsOptions tls;
  tls.ca_file = Env("WARREN_TLS_CA");
  tls.cert_file = Env("WARREN_TLS_CERT");
  tls.key_file = Env("WARREN_TLS_KEY");
  tls.server_name = Env("WARREN_TLS_SERVER_NAME");
  const std::string on = Env("WARREN_TLS");
  if (tls.ca_file.empty() && tls.cert_file.empty() && tls.key_file.empty() &&
      tls.server_name.empty() && (on.empty() || on == "0" || on == "false")) {
    return std::nullopt;
  }
  return tls;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannelFromEnv() {
  const std::optional<TlsOptions> tls = TlsOptionsFromEnv();
  const ChannelOptions options{TokenFromEnv()};
  if (!tls.has_value()) return MakeChannel(AddressFromEnv(), options);
  return MakeChannel(AddressFromEnv(), *tls, options);
}

absl::Status ToStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace warren::client
