// warrend: wires the backends, the services and the gRPC server together,
// and runs until SIGTERM or SIGINT (SIGHUP reloads the auth files).
#include <signal.h>

#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/amqp/amqp_client.h"
#include "server/amqp/amqp_pool.h"
#include "server/auth/authorizer.h"
#include "server/common/logging.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/config/config_service.h"
#include "server/config/config_store.h"
#include "server/config/watch_cache.h"
#include "server/daemon/backend_health.h"
#include "server/daemon/options.h"
#include "server/election/election_manager.h"
#include "server/election/election_service.h"
#include "server/messaging/config_change_publisher.h"
#include "server/messaging/messaging_service.h"
#include "server/zk/zookeeper_client.h"

namespace warren::daemon {
namespace {

int Fail(const absl::Status& status) {
  // One clear line, also when logging is off or JSON.
  std::fprintf(stderr, "warrend: cannot start: %s\n",
               std::string(status.message()).c_str());
  return 1;
}

int Run(int argc, char** argv) {
  // Every thread created from here on inherits the blocked signals; the main
  // thread alone receives them, through sigwait.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<Options> loaded = LoadOptions(argc, argv);
  if (!loaded.ok()) return Fail(loaded.status());
  const Options& options = *loaded;
  if (absl::Status s = InitLogging(options.log_level, options.log_json);
      !s.ok()) {
    return Fail(s);
  }

  // Auth first: a bad tokens or policy file stops start-up at once.
  std::unique_ptr<auth::Authorizer> authorizer;
  if (!options.auth_tokens_file.empty() || !options.auth_policy_file.empty()) {
    auto created = auth::Authorizer::Create({options.auth_tokens_file,
                                             options.auth_policy_file,
                                             options.auth_reload_interval});
    if (!created.ok()) return Fail(created.status());
    authorizer = *std::move(created);
    WARREN_LOG_INFO("{}", authorizer->Describe());
  } else {
    WARREN_LOG_WARN(
        "auth is off: every caller may do everything (set auth_tokens_file "
        "or auth_policy_file to turn it on)");
  }

  auto zk = zk::ZooKeeperClient::Create(
      {options.zk_connect, options.zk_session_timeout});
  if (!zk.ok()) return Fail(zk.status());
  amqp::AmqpOptions amqp_options;
  amqp_options.urls = options.amqp_urls;
  amqp_options.ca_file = options.amqp_ca_file;
  amqp_options.heartbeat = options.amqp_heartbeat;
  // Publishing, health and the broker state go over the pool's first
  // connection; subscriptions spread over as many as they need.
  amqp::AmqpPoolOptions pool_options;
  pool_options.max_connections =
      static_cast<size_t>(options.amqp_max_connections);
  auto amqp = amqp::AmqpPool::Create(pool_options, amqp_options);
  if (!amqp.ok()) return Fail(amqp.status());

  // Both connect in the background; wait for both within one budget.
  const absl::Time backend_deadline = absl::Now() + options.backend_wait;
  if (absl::Status s = (*zk)->WaitConnected(options.backend_wait); !s.ok()) {
    return Fail(s);
  }
  if (absl::Status s = (*amqp)->WaitConnected(backend_deadline - absl::Now());
      !s.ok()) {
    return Fail(s);
  }

  const config::KeySpace keys(options.root);
  config::ConfigStore store(**zk, keys);
  if (absl::Status s =
          store.EnsureBase(absl::Now() + options.operation_timeout);
      !s.ok()) {
    return Fail(
        absl::Status(s.code(), absl::StrCat("cannot create ", keys.base(),
                                            " in ZooKeeper: ", s.message())));
  }

  TimerQueue timers;
  WorkerPool workers(static_cast<size_t>(options.worker_threads), 10000);
  StreamRegistry streams;
  config::WatchCache cache(**zk, keys);
  config::ConfigServiceOptions config_options;
  config_options.max_value_bytes =
      static_cast<size_t>(options.max_config_value_bytes);
  config_options.operation_timeout = options.operation_timeout;
  config_options.default_heartbeat = options.heartbeat_interval;
  config_options.max_watches = static_cast<size_t>(options.max_watches);
  config_options.authorizer = authorizer.get();
  std::unique_ptr<messaging::ConfigChangePublisher> announcer;
  if (options.publish_config_changes) {
    announcer = std::make_unique<messaging::ConfigChangePublisher>(
        **amqp, options.config_change_exchange);
    announcer->DeclareExchange();
    config_options.on_change = [a = announcer.get()](
                                   config::Change::Type type,
                                   const config::CachedEntry& entry) {
      a->Announce(type, entry);
    };
  }
  config::ConfigServiceImpl config_service(store, cache, workers, timers,
                                           streams, config_options);
  messaging::MessagingServiceOptions messaging_options;
  messaging_options.max_payload_bytes =
      static_cast<size_t>(options.max_payload_bytes);
  messaging_options.max_header_bytes =
      static_cast<size_t>(options.max_header_bytes);
  messaging_options.operation_timeout = options.operation_timeout;
  messaging_options.publish_window =
      static_cast<uint32_t>(options.publish_window);
  messaging_options.default_max_in_flight =
      static_cast<uint32_t>(options.default_max_in_flight);
  messaging_options.max_in_flight_cap =
      static_cast<uint32_t>(options.max_in_flight_cap);
  messaging_options.default_heartbeat = options.heartbeat_interval;
  messaging_options.authorizer = authorizer.get();
  messaging::MessagingServiceImpl messaging_service(**amqp, timers, streams,
                                                    messaging_options);
  election::ElectionManager elections(**zk, options.root);
  if (absl::Status s =
          elections.EnsureBase(absl::Now() + options.operation_timeout);
      !s.ok()) {
    return Fail(absl::Status(s.code(),
                             absl::StrCat("cannot create the elections node in "
                                          "ZooKeeper: ",
                                          s.message())));
  }
  election::ElectionServiceOptions election_options;
  election_options.session_timeout = options.zk_session_timeout;
  election_options.operation_timeout = options.operation_timeout;
  election_options.authorizer = authorizer.get();
  election::ElectionServiceImpl election_service(elections, workers, timers,
                                                 streams, election_options);
  BackendHealth health(**zk, **amqp);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&config_service);
  builder.RegisterService(&messaging_service);
  builder.RegisterService(&election_service);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  // Keepalive: ping idle clients every 60s, drop them after 20s without an
  // answer; accept client pings every 10s, also without calls in flight.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(options.max_concurrent_streams));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen,
                     " (address in use, not local, or malformed)")));
  }
  health.Attach(server->GetHealthCheckService());
  if (authorizer != nullptr) authorizer->StartPolling();

  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  WARREN_LOG_INFO("warrend serving on {}:{} (zookeeper {}{}, rabbitmq {})",
                  host, port, options.zk_connect, keys.base(),
                  options.amqp_urls.size() == 1
                      ? amqp::ParseBrokerUrl(options.amqp_urls[0])->redacted
                      : absl::StrCat(options.amqp_urls.size(), " brokers"));
  std::fprintf(stdout,
               "warrend is serving on %s:%d\n"
               "  try: grpcurl -plaintext %s:%d list\n",
               host.c_str(), port, host.c_str(), port);
  std::fflush(stdout);

  int received = 0;
  while (sigwait(&signals, &received) == 0 && received == SIGHUP) {
    if (authorizer == nullptr) {
      WARREN_LOG_INFO("received SIGHUP; auth is off, nothing to reload");
    } else if (authorizer->Reload().ok()) {
      WARREN_LOG_INFO("received SIGHUP; auth files are current");
    }
  }
  WARREN_LOG_INFO("received {}; draining (grace {})",
                  received == SIGTERM ? "SIGTERM" : "SIGINT",
                  absl::FormatDuration(options.shutdown_grace));
  health.StartDraining();
  streams.DrainAll();
  server->Shutdown(absl::ToChronoTime(absl::Now() + options.shutdown_grace));
  server->Wait();
  WARREN_LOG_INFO("warrend stopped");
  return 0;
}

}  // namespace
}  // namespace warren::daemon

int main(int argc, char** argv) { return warren::daemon::Run(argc, argv); }
