// warrend: wires the backends, the services and the gRPC server together,
// and runs until SIGTERM or SIGINT. SIGHUP runs the reload hooks (TLS and
// auth files).
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "server/amqp/amqp_client.h"
#include "server/amqp/amqp_pool.h"
#include "server/auth/authorizer.h"
#include "server/common/logging.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/config/config_limits.h"
#include "server/config/config_service.h"
#include "server/config/config_store.h"
#include "server/config/watch_cache.h"
#include "server/daemon/backend_health.h"
#include "server/daemon/cert_expiry.h"
#include "server/daemon/health_service.h"
#include "server/daemon/listener.h"
#include "server/daemon/options.h"
#include "server/daemon/rejection_log.h"
#include "server/daemon/tls.h"
#include "server/election/election_manager.h"
#include "server/election/election_service.h"
#include "server/messaging/config_change_publisher.h"
#include "server/messaging/messaging_service.h"
#include "server/metrics/grpc_metrics.h"
#include "server/metrics/metrics_server.h"
#include "server/metrics/warren_metrics.h"
#include "server/zk/request_size.h"
#include "server/zk/zk_acl.h"
#include "server/zk/zookeeper_client.h"

namespace warren::daemon {
namespace {

// What the broker shows for this process's connections (rabbitmqctl
// list_connections), so that replicas can be told apart: the listen
// address, the host and the pid.
std::string ConnectionName(const std::string& listen) {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat("warrend ", listen, " on ", host, " pid ", getpid());
}

int Fail(const absl::Status& status) {
  // One clear line, also when logging is off or JSON.
  std::fprintf(stderr, "warrend: cannot start: %s\n",
               std::string(status.message()).c_str());
  return 1;
}

// What SIGHUP does: each component that reads files while warrend runs
// adds a hook that re-reads (or re-checks) them and logs the outcome. Hooks
// run one after another on the main thread.
class ReloadHooks {
 public:
  void Add(std::string name, std::function<void()> hook) {
    hooks_.emplace_back(std::move(name), std::move(hook));
  }
  void RunAll() {
    if (hooks_.empty()) {
      WARREN_LOG_INFO("received SIGHUP: nothing to reload");
      return;
    }
    for (auto& [name, hook] : hooks_) {
      WARREN_LOG_INFO("received SIGHUP: reloading {}", name);
      hook();
    }
  }

 private:
  std::vector<std::pair<std::string, std::function<void()>>> hooks_;
};

ServerTlsFiles TlsFiles(const Options& options) {
  ServerTlsFiles files;
  files.cert_file = options.tls_cert_file;
  files.key_file = options.tls_key_file;
  files.client_ca_file = options.tls_client_ca_file;
  files.client_auth =
      options.tls_client_auth == "require"   ? ClientAuth::kRequire
      : options.tls_client_auth == "request" ? ClientAuth::kRequest
                                             : ClientAuth::kNone;
  files.reload_interval = options.tls_reload_interval;
  return files;
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
  // Debian's Abseil is built with Mutex deadlock detection on: every lock
  // then updates a global lock graph (about 5 % of warrend's CPU when
  // publishing, in perf). The unit tests keep it; the daemon does not pay.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  absl::StatusOr<Options> loaded = LoadOptions(argc, argv);
  if (!loaded.ok()) return Fail(loaded.status());
  const Options& options = *loaded;
  if (absl::Status s = InitLogging(options.log_level, options.log_json);
      !s.ok()) {
    return Fail(s);
  }
  RouteGrpcLogging();
  // Certificate files first: a wrong path should not wait for the backends.
  const bool tls = TlsEnabled(options);
  const ServerTlsFiles tls_files = TlsFiles(options);
  if (tls) {
    if (absl::Status s = CheckServerTlsFiles(tls_files); !s.ok()) {
      return Fail(s);
    }
  }
  if (!options.amqp_cert_file.empty()) {
    if (absl::Status s =
            CheckKeyPair(options.amqp_cert_file, options.amqp_key_file,
                         "amqp_cert_file", "amqp_key_file");
        !s.ok()) {
      return Fail(s);
    }
  }
  if (!options.amqp_ca_file.empty()) {
    if (absl::Status s = CheckCaBundle(options.amqp_ca_file, "amqp_ca_file");
        !s.ok()) {
      return Fail(s);
    }
  }

  // Metrics (optional) come first: a bad address fails at once, and
  // Prometheus sees the backends' state while start-up waits for them. The
  // declaration order is the teardown order in reverse: each collector is
  // unregistered before what it reads is destroyed.
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::GrpcServerMetrics> grpc_metrics;
  prometheus::Histogram* confirm_seconds = nullptr;
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  metrics::MetricsServer::Registration registry_metrics;
  if (!options.metrics_listen.empty()) {
    registry = std::make_shared<prometheus::Registry>();
    grpc_metrics = std::make_unique<metrics::GrpcServerMetrics>(*registry);
    confirm_seconds = &metrics::AddPublishConfirmHistogram(*registry);
    auto started = metrics::MetricsServer::Start(options.metrics_listen);
    if (!started.ok()) return Fail(started.status());
    metrics_server = *std::move(started);
    registry_metrics = metrics_server->Add(registry);
    WARREN_LOG_INFO(
        "serving metrics on http://{}:{}/metrics",
        options.metrics_listen.substr(0, options.metrics_listen.rfind(':')),
        metrics_server->port());
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

  // ZooKeeper authentication and the ACL of the nodes Warren creates.
  zk::ZooKeeperOptions zk_options;
  zk_options.connect = options.zk_connect;
  zk_options.session_timeout = options.zk_session_timeout;
  if (!options.zk_auth_file.empty()) {
    auto credentials = zk::ReadDigestCredentialsFile(options.zk_auth_file);
    if (!credentials.ok()) return Fail(credentials.status());
    zk_options.acl =
        zk::AclPolicy(*std::move(credentials), options.zk_acl_world_read);
    WARREN_LOG_INFO("zookeeper: authenticating as {}",
                    zk_options.acl.Describe());
  } else {
    WARREN_LOG_WARN(
        "zookeeper: zk_auth_file is not set, so the nodes Warren creates are "
        "unprotected ({}): any ZooKeeper client can change elections and "
        "config",
        zk_options.acl.Describe());
  }
  zk_options.max_request_bytes =
      static_cast<size_t>(options.zk_max_request_bytes);
  {
    // A config value of the maximum size must fit in one ZooKeeper request
    // (config_limits.h); refuse to start rather than fail every such write.
    const config::KeySpace config_keys(options.root);
    const std::string chroot(zk::ChrootOf(options.zk_connect));
    if (absl::Status s = config::CheckValueLimitFits(
            {&config_keys, &zk_options.acl.node_acl(), chroot.size(),
             zk_options.max_request_bytes},
            static_cast<size_t>(options.max_config_value_bytes));
        !s.ok()) {
      return Fail(s);
    }
  }
  auto zk = zk::ZooKeeperClient::Create(std::move(zk_options));
  if (!zk.ok()) return Fail(zk.status());
  amqp::AmqpOptions amqp_options;
  amqp_options.urls = options.amqp_urls;
  amqp_options.ca_file = options.amqp_ca_file;
  amqp_options.cert_file = options.amqp_cert_file;
  amqp_options.key_file = options.amqp_key_file;
  amqp_options.heartbeat = options.amqp_heartbeat;
  // Replicas given the same URL list must not all crowd onto its first
  // node: each process starts at a random one (and its pool's further
  // connections at the ones after it).
  amqp_options.first_url =
      absl::Uniform<size_t>(absl::BitGen(), 0, options.amqp_urls.size());
  amqp_options.connection_name = ConnectionName(options.listen);
  if (confirm_seconds != nullptr) {
    // On the AMQP I/O thread: an atomic bucket update, no blocking.
    amqp_options.on_confirm = [confirm_seconds](absl::Duration latency) {
      confirm_seconds->Observe(absl::ToDoubleSeconds(latency));
    };
  }
  // Publishing, health and the broker state go over the pool's first
  // connection; subscriptions spread over as many as they need.
  amqp::AmqpPoolOptions pool_options;
  pool_options.max_connections =
      static_cast<size_t>(options.amqp_max_connections);
  auto amqp = amqp::AmqpPool::Create(pool_options, amqp_options);
  if (!amqp.ok()) return Fail(amqp.status());
  metrics::MetricsServer::Registration backend_metrics;
  if (metrics_server != nullptr) {
    zk::ZooKeeperClient* z = zk->get();
    amqp::AmqpPool* a = amqp->get();
    metrics::WarrenProbes probes;
    probes.zk_state = [z] { return z->state(); };
    probes.zk_reconnects = [z] { return z->reconnects(); };
    probes.zk_session_expirations = [z] { return z->session_expiries(); };
    probes.amqp_connections = [a] { return a->connections(); };
    probes.amqp_state = [a](size_t i) { return a->connection_state(i); };
    probes.amqp_reconnects = [a](size_t i) {
      return a->connection_reconnects(i);
    };
    probes.amqp_subscriptions = [a](size_t i) { return a->subscriptions(i); };
    probes.amqp_unconfirmed_publishes = [a] {
      return a->unconfirmed_publishes();
    };
    backend_metrics = metrics_server->Add(
        std::make_shared<metrics::WarrenCollector>(std::move(probes)));
  }

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
    return Fail(absl::Status(s.code(),
                             absl::StrCat("cannot create or use ", keys.base(),
                                          " in ZooKeeper: ", s.message())));
  }

  // Declared before the timers, whose thread checks it: destroyed after.
  std::unique_ptr<CertificateExpiry> certificate_expiry;
  if (tls) {
    certificate_expiry =
        std::make_unique<CertificateExpiry>(options.tls_cert_file);
  }
  TimerQueue timers;
  if (certificate_expiry != nullptr) {
    certificate_expiry->CheckEvery(timers, options.tls_reload_interval);
  }
  WorkerPool workers(static_cast<size_t>(options.worker_threads), 10000);
  StreamRegistry streams(static_cast<size_t>(options.max_streams),
                         static_cast<size_t>(options.max_streams_per_client));
  config::WatchCache cache(**zk, keys);
  config::ConfigServiceOptions config_options;
  config_options.max_value_bytes =
      static_cast<size_t>(options.max_config_value_bytes);
  config_options.max_response_bytes =
      config::ResponseBudget(static_cast<size_t>(options.max_message_bytes));
  config_options.operation_timeout = options.operation_timeout;
  config_options.default_heartbeat = options.heartbeat_interval;
  config_options.max_watches = static_cast<size_t>(options.max_watches);
  config_options.max_watches_per_client =
      static_cast<size_t>(options.max_watches_per_client);
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
    return Fail(
        absl::Status(s.code(), absl::StrCat("cannot create or use the "
                                            "elections node in ZooKeeper: ",
                                            s.message())));
  }
  election::ElectionServiceOptions election_options;
  election_options.session_timeout = options.zk_session_timeout;
  election_options.operation_timeout = options.operation_timeout;
  election_options.max_candidates = static_cast<size_t>(options.max_candidates);
  election_options.max_candidates_per_client =
      static_cast<size_t>(options.max_candidates_per_client);
  election_options.max_observers = static_cast<size_t>(options.max_observers);
  election_options.max_observers_per_client =
      static_cast<size_t>(options.max_observers_per_client);
  election_options.authorizer = authorizer.get();
  election::ElectionServiceImpl election_service(elections, workers, timers,
                                                 streams, election_options);
  HealthServiceOptions health_options;
  health_options.max_watches = static_cast<size_t>(options.max_health_watches);
  health_options.max_watches_per_client =
      static_cast<size_t>(options.max_health_watches_per_client);
  health_options.authorizer = authorizer.get();
  HealthService health_service(streams, health_options);
  BackendHealth health(**zk, **amqp);
  metrics::MetricsServer::Registration service_metrics;
  if (metrics_server != nullptr) {
    metrics::WarrenProbes probes;
    probes.unacked_deliveries = [&messaging_service] {
      return messaging_service.unacked_deliveries();
    };
    probes.election_leaders = [&elections] { return elections.leaders(); };
    probes.config_watches = [&cache] { return cache.subscription_count(); };
    probes.config_cache_hits = [&config_service] {
      return config_service.cache_hits();
    };
    probes.config_cache_misses = [&config_service] {
      return config_service.cache_misses();
    };
    if (certificate_expiry != nullptr) {
      probes.tls_certificate_expiry = [c = certificate_expiry.get()] {
        return c->not_after();
      };
    }
    probes.health_watches = [&health_service] {
      return health_service.watches();
    };
    service_metrics = metrics_server->Add(
        std::make_shared<metrics::WarrenCollector>(std::move(probes)));
  }

  // Every connection costs a descriptor: use all the process may have (the
  // soft limit is often 1024 while the hard one is far higher). Here, not
  // first: a start-up that fails on a setting says so in one line.
  if (auto limits = RaiseFdLimit(); limits.ok()) {
    WARREN_LOG_INFO(
        "file descriptors: soft limit {} (was {}), hard limit {}; "
        "max_connections {}, max_connections_per_peer {}",
        limits->soft, limits->soft_before, limits->hard,
        options.max_connections, options.max_connections_per_peer);
    if (options.max_connections == 0 ||
        static_cast<uint64_t>(options.max_connections) + 256 > limits->soft) {
      WARREN_LOG_WARN(
          "max_connections ({}) plus what the backends need may exceed the "
          "file descriptor limit ({}): connections past it are closed at "
          "once and health says NOT_SERVING until descriptors are free",
          options.max_connections, limits->soft);
    }
  } else {
    WARREN_LOG_WARN("file descriptors: cannot raise the soft limit: {}",
                    limits.status().message());
  }
  // warrend owns the listening socket and its accept loop (listener.h):
  // gRPC gets each admitted connection through an external acceptor.
  ListenerOptions listener_options;
  listener_options.address = options.listen;
  listener_options.max_connections =
      static_cast<size_t>(options.max_connections);
  listener_options.max_connections_per_peer =
      static_cast<size_t>(options.max_connections_per_peer);
  auto bound = Listener::Bind(listener_options);
  if (!bound.ok()) return Fail(bound.status());
  std::unique_ptr<Listener> listener = *std::move(bound);
  const int port = listener->port();

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor =
      builder.experimental().AddExternalConnectionAcceptor(
          grpc::ServerBuilder::experimental_type::ExternalConnectionType::
              FROM_FD,
          tls ? MakeServerCredentials(tls_files)
              : grpc::InsecureServerCredentials());
  builder.RegisterService(&health_service);
  builder.RegisterService(&config_service);
  builder.RegisterService(&messaging_service);
  builder.RegisterService(&election_service);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(RejectionLogInterceptorFactory());
  if (grpc_metrics != nullptr) {
    // Every method this server serves, so that each series starts at zero
    // and calls to made-up methods are not counted.
    for (const char* service :
         {"warren.v1.ConfigService", "warren.v1.MessagingService",
          "warren.v1.ElectionService",
          "grpc.reflection.v1alpha.ServerReflection"}) {
      if (!grpc_metrics->InitializeService(service)) {
        WARREN_LOG_WARN("metrics: service {} not found", service);
      }
    }
    grpc_metrics->InitializeMethod("/grpc.health.v1.Health/Check",
                                   metrics::RpcType::UNARY);
    grpc_metrics->InitializeMethod("/grpc.health.v1.Health/Watch",
                                   metrics::RpcType::SERVER_STREAMING);
    interceptors.push_back(grpc_metrics->InterceptorFactory());
  }
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  // A connection must finish its TLS handshake and HTTP/2 preface (the
  // client's SETTINGS) within handshake_timeout, or it is closed: a client
  // that sends a few bytes and waits holds a descriptor no longer.
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.handshake_timeout)));
  // Keepalive: ping idle clients every keepalive_time, drop them after
  // keepalive_timeout without an answer; accept client pings every 10s,
  // also without calls in flight (more often: GOAWAY after 2 strikes).
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_timeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(options.max_concurrent_streams));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    return Fail(absl::UnavailableError("cannot start the gRPC server"));
  }
  health.Attach(&health_service);
  listener->Start(
      [&acceptor](int fd) {
        // gRPC owns the descriptor from here on and closes it.
        grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters
            params;
        params.fd = fd;
        acceptor->HandleNewConnection(&params);
      },
      [&health](bool accepting) { health.SetAccepting(accepting); });
  if (authorizer != nullptr) {
    // Revocation reaches streams already open: after every reload that
    // changed the tokens or the policy, each stream's caller is checked
    // again and those that lost what they needed end (UNAUTHENTICATED or
    // PERMISSION_DENIED).
    authorizer->OnChange([&streams] {
      if (const size_t ended = streams.ReauthorizeAll(); ended > 0) {
        WARREN_LOG_INFO(
            "auth: ended {} open streams whose caller lost the "
            "grant or the token they were opened with",
            ended);
      }
    });
    authorizer->StartPolling();
  }
  metrics::MetricsServer::Registration listener_metrics;
  if (metrics_server != nullptr) {
    metrics::WarrenProbes probes;
    Listener* l = listener.get();
    probes.listener_accepting = [l] { return l->stats().accepting; };
    probes.connections = [l] { return l->stats().open; };
    probes.connections_refused = [l](const std::string& reason) {
      const Listener::Stats stats = l->stats();
      return reason == "max_connections" ? stats.refused_total_limit
             : reason == "max_connections_per_peer"
                 ? stats.refused_peer_limit
                 : stats.dropped_no_descriptors;
    };
    listener_metrics = metrics_server->Add(
        std::make_shared<metrics::WarrenCollector>(std::move(probes)));
  }

  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  const std::string security =
      !tls ? "plaintext"
           : absl::StrCat("TLS, client certificates ", options.tls_client_auth);
  WARREN_LOG_INFO("warrend serving on {}:{} ({}; zookeeper {}{}, rabbitmq {})",
                  host, port, security, options.zk_connect, keys.base(),
                  options.amqp_urls.size() == 1
                      ? amqp::ParseBrokerUrl(options.amqp_urls[0])->redacted
                      : absl::StrCat(options.amqp_urls.size(), " brokers"));
  // The first line is what scripts and the tests wait for: keep its shape.
  std::fprintf(stdout, "warrend is serving on %s:%d\n", host.c_str(), port);
  if (tls) {
    std::fprintf(stdout,
                 "  TLS (client certificates: %s)\n"
                 "  try: grpcurl -cacert <CA of %s>%s %s:%d list\n",
                 options.tls_client_auth.c_str(), options.tls_cert_file.c_str(),
                 options.tls_client_auth == "none"
                     ? ""
                     : " -cert <client.crt> -key <client.key>",
                 host.c_str(), port);
  } else {
    std::fprintf(stdout, "  try: grpcurl -plaintext %s:%d list\n", host.c_str(),
                 port);
  }
  std::fflush(stdout);

  ReloadHooks reload_hooks;
  if (tls) {
    // gRPC's file watcher re-reads the files every tls_reload_interval and
    // has no way to be told sooner; SIGHUP checks the files at once, so
    // that whoever replaced them learns now whether they will work.
    reload_hooks.Add("TLS files", [&tls_files, &certificate_expiry] {
      certificate_expiry->Check();
      if (absl::Status s = CheckServerTlsFiles(tls_files); !s.ok()) {
        WARREN_LOG_ERROR(
            "TLS files are not usable ({}); new connections may fail from "
            "the next reload within {} until they are fixed",
            std::string(s.message()),
            absl::FormatDuration(tls_files.reload_interval));
      } else {
        WARREN_LOG_INFO(
            "TLS files are valid; new connections get them within {}",
            absl::FormatDuration(tls_files.reload_interval));
      }
    });
  }

  if (authorizer != nullptr) {
    reload_hooks.Add("auth files", [&authorizer] {
      if (authorizer->Reload().ok()) {
        WARREN_LOG_INFO("auth files are current");
      }
    });
  }

  // glibc keeps the memory of freed streams in its arenas: after a flood of
  // streams (say 90,000 health watches) has closed, warrend would stay at
  // its peak size. The main thread hands it back, between signals, once
  // the open streams fell by many.
  size_t peak_streams = 0;
  auto maybe_trim = [&streams, &peak_streams] {
    const size_t open = streams.size();
    peak_streams = std::max(peak_streams, open);
    if (peak_streams >= open + 1000 && open <= peak_streams / 2) {
      malloc_trim(0);
      WARREN_LOG_DEBUG("memory: trimmed after open streams fell from {} to {}",
                       peak_streams, open);
      peak_streams = open;
    }
  };
  int received = 0;
  while (true) {
    const timespec tick{2, 0};
    received = sigtimedwait(&signals, nullptr, &tick);
    if (received < 0) {
      maybe_trim();
      continue;
    }
    if (received != SIGHUP) break;
    reload_hooks.RunAll();
  }
  WARREN_LOG_INFO("received {}; draining (grace {})",
                  received == SIGTERM ? "SIGTERM" : "SIGINT",
                  absl::FormatDuration(options.shutdown_grace));
  // New connections first: gRPC would not close one handed over after its
  // shutdown.
  listener->Stop();
  health.StartDraining();
  streams.DrainAll();
  server->Shutdown(absl::ToChronoTime(absl::Now() + options.shutdown_grace));
  server->Wait();
  // Before the streams registry it rechecks goes away.
  if (authorizer != nullptr) authorizer->StopPolling();
  WARREN_LOG_INFO("warrend stopped");
  return 0;
}

}  // namespace
}  // namespace warren::daemon

int main(int argc, char** argv) { return warren::daemon::Run(argc, argv); }
