// warrend: wires the backends, the services and the gRPC server together,
// and runs until SIGTERM or SIGINT. SIGHUP runs the reload hooks (TLS and
// auth files).
//
// Run() is four steps, each its own function: start the backends
// (StartBackends: metrics, auth, ZooKeeper, RabbitMQ), build the services
// (Services), serve (Serve: the listener and the gRPC server), and, after
// the signal, drain (Drain). Each step's object owns what it started; they
// are destroyed in the reverse order, and every metrics collector is
// unregistered before what it reads goes away (a Registration is the last
// member of the object whose parts it reads).
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
#include "server/daemon/config_change_publisher.h"
#include "server/daemon/health_service.h"
#include "server/daemon/listener.h"
#include "server/daemon/options.h"
#include "server/daemon/rejection_log.h"
#include "server/daemon/tls.h"
#include "server/election/election_manager.h"
#include "server/election/election_service.h"
#include "server/fence/fence_resolver.h"
#include "server/lock/lock_manager.h"
#include "server/lock/lock_service.h"
#include "server/messaging/call_handler.h"
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

// Metrics (optional): the registry of the gRPC and publish-confirm metrics
// and the HTTP server, started first so that a bad address fails at once
// and Prometheus sees the backends' state while start-up waits for them.
struct Metrics {
  std::shared_ptr<prometheus::Registry> registry;
  std::unique_ptr<metrics::GrpcServerMetrics> grpc;
  prometheus::Histogram* confirm_seconds = nullptr;
  std::unique_ptr<metrics::MetricsServer> server;
  metrics::MetricsServer::Registration registry_registration;

  // Collects `probes` until the registration is destroyed; nothing when
  // metrics are off.
  metrics::MetricsServer::Registration Add(metrics::WarrenProbes probes) {
    if (server == nullptr) return {};
    return server->Add(
        std::make_shared<metrics::WarrenCollector>(std::move(probes)));
  }
};

absl::StatusOr<std::unique_ptr<Metrics>> StartMetrics(const Options& options) {
  auto m = std::make_unique<Metrics>();
  if (options.metrics_listen.empty()) return m;
  m->registry = std::make_shared<prometheus::Registry>();
  m->grpc = std::make_unique<metrics::GrpcServerMetrics>(*m->registry);
  m->confirm_seconds = &metrics::AddPublishConfirmHistogram(*m->registry);
  auto started = metrics::MetricsServer::Start(options.metrics_listen);
  if (!started.ok()) return started.status();
  m->server = *std::move(started);
  m->registry_registration = m->server->Add(m->registry);
  WARREN_LOG_INFO(
      "serving metrics on http://{}:{}/metrics",
      options.metrics_listen.substr(0, options.metrics_listen.rfind(':')),
      m->server->port());
  return m;
}

// Certificate and key files first: a wrong path should not wait for the
// backends.
absl::Status CheckFiles(const Options& options) {
  if (TlsEnabled(options)) {
    if (absl::Status s = CheckServerTlsFiles(options.serving.tls); !s.ok()) {
      return s;
    }
  }
  if (!options.amqp.cert_file.empty()) {
    if (absl::Status s =
            CheckKeyPair(options.amqp.cert_file, options.amqp.key_file,
                         "amqp_cert_file", "amqp_key_file");
        !s.ok()) {
      return s;
    }
  }
  if (!options.amqp.ca_file.empty()) {
    return CheckCaBundle(options.amqp.ca_file, "amqp_ca_file");
  }
  return absl::OkStatus();
}

// Null when auth is off. A bad tokens or policy file stops start-up at once.
absl::StatusOr<std::unique_ptr<auth::Authorizer>> StartAuth(
    const Options& options) {
  if (!AuthEnabled(options)) {
    WARREN_LOG_WARN(
        "auth is off: every caller may do everything (set auth_tokens_file "
        "or auth_policy_file to turn it on)");
    return nullptr;
  }
  auto created = auth::Authorizer::Create(options.auth);
  if (!created.ok()) return created.status();
  WARREN_LOG_INFO("{}", (*created)->Describe());
  return created;
}

// The ZooKeeper options with the credentials and the ACL of the nodes
// Warren creates, once a config value of the maximum size is known to fit
// in one ZooKeeper request (config_limits.h): refuse to start rather than
// fail every such write.
absl::StatusOr<zk::ZooKeeperOptions> ZooKeeperOptionsWithAcl(
    const Options& options) {
  zk::ZooKeeperOptions zk_options = options.zk;
  if (!options.zk_auth_file.empty()) {
    auto credentials = zk::ReadDigestCredentialsFile(options.zk_auth_file);
    if (!credentials.ok()) return credentials.status();
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
  const config::KeySpace config_keys(options.root);
  const std::string chroot(zk::ChrootOf(options.zk.connect));
  if (absl::Status s = config::CheckValueLimitFits(
          {&config_keys, &zk_options.acl.node_acl(), chroot.size(),
           zk_options.max_request_bytes},
          options.config.max_value_bytes);
      !s.ok()) {
    return s;
  }
  return zk_options;
}

// ZooKeeper and RabbitMQ, connected.
struct Backends {
  std::unique_ptr<zk::ZooKeeperClient> zk;
  std::unique_ptr<amqp::AmqpPool> amqp;
  metrics::MetricsServer::Registration registration;
};

absl::StatusOr<std::unique_ptr<Backends>> StartBackends(const Options& options,
                                                        Metrics& metrics) {
  auto zk_options = ZooKeeperOptionsWithAcl(options);
  if (!zk_options.ok()) return zk_options.status();
  auto backends = std::make_unique<Backends>();
  auto zk = zk::ZooKeeperClient::Create(*std::move(zk_options));
  if (!zk.ok()) return zk.status();
  backends->zk = *std::move(zk);

  amqp::AmqpOptions amqp_options = options.amqp;
  // Replicas given the same URL list must not all crowd onto its first
  // node: each process starts at a random one (and its pool's further
  // connections at the ones after it).
  amqp_options.first_url =
      absl::Uniform<size_t>(absl::BitGen(), 0, options.amqp.urls.size());
  amqp_options.connection_name =
      ConnectionName(options.serving.listener.address);
  if (prometheus::Histogram* h = metrics.confirm_seconds; h != nullptr) {
    // On the AMQP I/O thread: an atomic bucket update, no blocking.
    amqp_options.on_confirm = [h](absl::Duration latency) {
      h->Observe(absl::ToDoubleSeconds(latency));
    };
  }
  // Publishing, health and the broker state go over the pool's first
  // connection; subscriptions spread over as many as they need.
  auto amqp = amqp::AmqpPool::Create(options.amqp_pool, amqp_options);
  if (!amqp.ok()) return amqp.status();
  backends->amqp = *std::move(amqp);

  zk::ZooKeeperClient* z = backends->zk.get();
  amqp::AmqpPool* a = backends->amqp.get();
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
  probes.call_replies_dropped = [a] { return a->call_replies_dropped(); };
  probes.amqp_unconfirmed_publishes = [a] {
    return a->unconfirmed_publishes();
  };
  backends->registration = metrics.Add(std::move(probes));

  // Both connect in the background; wait for both within one budget.
  const absl::Time deadline = absl::Now() + options.backend_wait;
  if (absl::Status s = z->WaitConnected(options.backend_wait); !s.ok()) {
    return s;
  }
  if (absl::Status s = a->WaitConnected(deadline - absl::Now()); !s.ok()) {
    return s;
  }
  return backends;
}

// A service's options with the authorizer, which exists only at run time.
template <typename ServiceOptions>
ServiceOptions With(ServiceOptions service_options,
                    const auth::Authorizer* authorizer) {
  service_options.authorizer = authorizer;
  return service_options;
}
messaging::MessagingServiceOptions MessagingOptions(
    const Options& options, const auth::Authorizer* authorizer,
    fence::FenceResolver& fences) {
  messaging::MessagingServiceOptions messaging_options =
      With(options.messaging, authorizer);
  messaging_options.fences = &fences;
  return messaging_options;
}

config::ConfigServiceOptions ConfigOptions(const Options& options,
                                           const auth::Authorizer* authorizer,
                                           ConfigChangePublisher* announcer) {
  config::ConfigServiceOptions config_options =
      With(options.config, authorizer);
  if (announcer != nullptr) {
    config_options.on_change = [announcer](config::Change::Type type,
                                           const config::CachedEntry& entry) {
      announcer->Announce(type, entry);
    };
  }
  return config_options;
}

// The services and what they share (timers, workers, the stream registry,
// the config cache). Members are built in order and destroyed in reverse.
struct Services {
  Services(const Options& options, Backends& backends,
           const auth::Authorizer* authorizer)
      : keys(options.root),
        store(*backends.zk, keys),
        certificate_expiry(TlsEnabled(options)
                               ? std::make_unique<CertificateExpiry>(
                                     options.serving.tls.cert_file)
                               : nullptr),
        workers(options.worker_threads, 10000),
        streams(options.max_streams, options.max_streams_per_client),
        cache(*backends.zk, keys),
        fences(*backends.zk, options.root),
        announcer(options.publish_config_changes
                      ? std::make_unique<ConfigChangePublisher>(
                            *backends.amqp, options.config_change_exchange)
                      : nullptr),
        config(store, cache, fences, workers, timers, streams,
               ConfigOptions(options, authorizer, announcer.get())),
        messaging(*backends.amqp, timers, streams,
                  MessagingOptions(options, authorizer, fences)),
        elections(*backends.zk, options.root),
        election(elections, workers, timers, streams,
                 With(options.election, authorizer)),
        locks(*backends.zk, options.root),
        lock(locks, workers, timers, streams, With(options.lock, authorizer)),
        health_service(streams, With(options.health, authorizer)),
        health(*backends.zk, *backends.amqp) {
    if (certificate_expiry != nullptr) {
      certificate_expiry->CheckEvery(timers,
                                     options.serving.tls.reload_interval);
    }
    if (announcer != nullptr) announcer->DeclareExchange();
  }

  // The base nodes of config, elections and locks, before anything is
  // served.
  absl::Status CreateBaseNodes(absl::Duration timeout) {
    if (absl::Status s = store.EnsureBase(absl::Now() + timeout); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("cannot create or use ", keys.base(),
                                       " in ZooKeeper: ", s.message()));
    }
    if (absl::Status s = elections.EnsureBase(absl::Now() + timeout); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("cannot create or use the elections "
                                       "node in ZooKeeper: ",
                                       s.message()));
    }
    if (absl::Status s = locks.EnsureBase(absl::Now() + timeout); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("cannot create or use the locks node "
                                       "in ZooKeeper: ",
                                       s.message()));
    }
    return absl::OkStatus();
  }

  void RegisterMetrics(Metrics& metrics) {
    metrics::WarrenProbes probes;
    probes.unacked_deliveries = [this] {
      return messaging.unacked_deliveries();
    };
    probes.election_leaders = [this] { return elections.leaders(); };
    probes.locks_held = [this] { return locks.held(); };
    probes.lock_waiters = [this] { return locks.waiting(); };
    probes.config_watches = [this] { return cache.subscription_count(); };
    probes.config_cache_hits = [this] { return config.cache_hits(); };
    probes.held_keys = [this] { return config.held_keys(); };
    probes.config_cache_misses = [this] { return config.cache_misses(); };
    if (certificate_expiry != nullptr) {
      probes.tls_certificate_expiry = [this] {
        return certificate_expiry->not_after();
      };
    }
    probes.health_watches = [this] { return health_service.watches(); };
    probes.calls = [this](int code) {
      return messaging.calls().calls(static_cast<absl::StatusCode>(code));
    };
    probes.calls_in_flight = [this] { return messaging.calls().in_flight(); };
    probes.fence_rejections = [this](const std::string& where) {
      uint64_t count = 0;
      for (fence::RejectionSite site : fence::kRejectionSites) {
        if (fence::RejectionSiteName(site) == where) {
          count = fences.rejections(site);
        }
      }
      return count;
    };
    registration = metrics.Add(std::move(probes));
  }

  const config::KeySpace keys;
  config::ConfigStore store;
  // Before the timers, whose thread checks it: destroyed after them.
  const std::unique_ptr<CertificateExpiry> certificate_expiry;
  TimerQueue timers;
  WorkerPool workers;
  StreamRegistry streams;
  config::WatchCache cache;
  // Shared by fenced config writes and publishes (and their metric).
  fence::FenceResolver fences;
  const std::unique_ptr<ConfigChangePublisher> announcer;
  config::ConfigServiceImpl config;
  messaging::MessagingServiceImpl messaging;
  election::ElectionManager elections;
  election::ElectionServiceImpl election;
  lock::LockManager locks;
  lock::LockServiceImpl lock;
  HealthService health_service;
  BackendHealth health;

  // Last: unregistered before anything the probes read is destroyed.
  metrics::MetricsServer::Registration registration;
};

// The gRPC server behind warrend's own listener.
struct Serving {
  std::unique_ptr<Listener> listener;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  metrics::MetricsServer::Registration registration;
};

// Every connection costs a descriptor: use all the process may have (the
// soft limit is often 1024 while the hard one is far higher).
void RaiseDescriptorLimit(const Options& options) {
  const ListenerOptions& l = options.serving.listener;
  auto limits = RaiseFdLimit();
  if (!limits.ok()) {
    WARREN_LOG_WARN("file descriptors: cannot raise the soft limit: {}",
                    limits.status().message());
    return;
  }
  WARREN_LOG_INFO(
      "file descriptors: soft limit {} (was {}), hard limit {}; "
      "max_connections {}, max_connections_per_peer {}",
      limits->soft, limits->soft_before, limits->hard, l.max_connections,
      l.max_connections_per_peer);
  if (l.max_connections == 0 || l.max_connections + 256 > limits->soft) {
    WARREN_LOG_WARN(
        "max_connections ({}) plus what the backends need may exceed the "
        "file descriptor limit ({}): connections past it are closed at "
        "once and health says NOT_SERVING until descriptors are free",
        l.max_connections, limits->soft);
  }
}

// The gRPC server's settings that keep connections and calls bounded.
void SetConnectionLimits(const ServingOptions& serving,
                         grpc::ServerBuilder& builder) {
  builder.SetMaxReceiveMessageSize(static_cast<int>(serving.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(serving.max_message_bytes));
  // A connection must finish its TLS handshake and HTTP/2 preface (the
  // client's SETTINGS) within handshake_timeout, or it is closed: a client
  // that sends a few bytes and waits holds a descriptor no longer.
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(serving.handshake_timeout)));
  // Keepalive: ping idle clients every keepalive_time, drop them after
  // keepalive_timeout without an answer; accept client pings every 10s,
  // also without calls in flight (more often: GOAWAY after 2 strikes).
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIME_MS,
      static_cast<int>(absl::ToInt64Milliseconds(serving.keepalive_time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(serving.keepalive_timeout)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(serving.max_concurrent_streams));
}

absl::StatusOr<std::unique_ptr<Serving>> Serve(const Options& options,
                                               Services& services,
                                               Metrics& metrics) {
  // Here, not first: a start-up that fails on a setting says so in one line.
  RaiseDescriptorLimit(options);
  auto serving = std::make_unique<Serving>();
  // warrend owns the listening socket and its accept loop (listener.h):
  // gRPC gets each admitted connection through an external acceptor.
  auto bound = Listener::Bind(options.serving.listener);
  if (!bound.ok()) return bound.status();
  serving->listener = *std::move(bound);
  serving->port = serving->listener->port();

  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  serving->acceptor = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
      TlsEnabled(options) ? MakeServerCredentials(options.serving.tls)
                          : grpc::InsecureServerCredentials());
  builder.RegisterService(&services.health_service);
  builder.RegisterService(&services.config);
  builder.RegisterService(&services.messaging);
  builder.RegisterService(&services.election);
  builder.RegisterService(&services.lock);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(RejectionLogInterceptorFactory());
  if (metrics.grpc != nullptr) {
    // Every method this server serves, so that each series starts at zero
    // and calls to made-up methods are not counted.
    for (const char* service :
         {"warren.v1.ConfigService", "warren.v1.MessagingService",
          "warren.v1.ElectionService", "warren.v1.LockService",
          "grpc.reflection.v1alpha.ServerReflection"}) {
      if (!metrics.grpc->InitializeService(service)) {
        WARREN_LOG_WARN("metrics: service {} not found", service);
      }
    }
    metrics.grpc->InitializeMethod("/grpc.health.v1.Health/Check",
                                   metrics::RpcType::UNARY);
    metrics.grpc->InitializeMethod("/grpc.health.v1.Health/Watch",
                                   metrics::RpcType::SERVER_STREAMING);
    interceptors.push_back(metrics.grpc->InterceptorFactory());
  }
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  SetConnectionLimits(options.serving, builder);
  serving->server = builder.BuildAndStart();
  if (serving->server == nullptr) {
    return absl::UnavailableError("cannot start the gRPC server");
  }
  services.health.Attach(&services.health_service);
  grpc::experimental::ExternalConnectionAcceptor* acceptor =
      serving->acceptor.get();
  BackendHealth* health = &services.health;
  serving->listener->Start(
      [acceptor](int fd) {
        // gRPC owns the descriptor from here on and closes it.
        grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters
            params;
        params.fd = fd;
        acceptor->HandleNewConnection(&params);
      },
      [health](bool accepting) { health->SetAccepting(accepting); });

  Listener* l = serving->listener.get();
  metrics::WarrenProbes probes;
  probes.listener_accepting = [l] { return l->stats().accepting; };
  probes.connections = [l] { return l->stats().open; };
  probes.connections_refused = [l](const std::string& reason) {
    const Listener::Stats stats = l->stats();
    return reason == "max_connections" ? stats.refused_total_limit
           : reason == "max_connections_per_peer"
               ? stats.refused_peer_limit
               : stats.dropped_no_descriptors;
  };
  serving->registration = metrics.Add(std::move(probes));
  return serving;
}

// The lines scripts and people read when warrend is up. The first one is
// what scripts and the tests wait for: keep its shape.
void AnnounceServing(const Options& options, const Services& services,
                     int port) {
  const std::string& listen = options.serving.listener.address;
  const std::string host = listen.substr(0, listen.rfind(':'));
  const bool tls = TlsEnabled(options);
  const absl::string_view client_auth =
      ClientAuthName(options.serving.tls.client_auth);
  const std::string security =
      tls ? absl::StrCat("TLS, client certificates ", client_auth)
          : "plaintext";
  WARREN_LOG_INFO("warrend serving on {}:{} ({}; zookeeper {}{}, rabbitmq {})",
                  host, port, security, options.zk.connect,
                  services.keys.base(),
                  options.amqp.urls.size() == 1
                      ? amqp::ParseBrokerUrl(options.amqp.urls[0])->redacted
                      : absl::StrCat(options.amqp.urls.size(), " brokers"));
  std::fprintf(stdout, "warrend is serving on %s:%d\n", host.c_str(), port);
  if (tls) {
    std::fprintf(
        stdout,
        "  TLS (client certificates: %s)\n"
        "  try: grpcurl -cacert <CA of %s>%s %s:%d list\n",
        std::string(client_auth).c_str(), options.serving.tls.cert_file.c_str(),
        client_auth == "none" ? "" : " -cert <client.crt> -key <client.key>",
        host.c_str(), port);
  } else {
    std::fprintf(stdout, "  try: grpcurl -plaintext %s:%d list\n", host.c_str(),
                 port);
  }
  std::fflush(stdout);
}

ReloadHooks MakeReloadHooks(const Options& options, Services& services,
                            auth::Authorizer* authorizer) {
  ReloadHooks hooks;
  if (TlsEnabled(options)) {
    // gRPC's file watcher re-reads the files every tls_reload_interval and
    // has no way to be told sooner; SIGHUP checks the files at once, so
    // that whoever replaced them learns now whether they will work.
    hooks.Add("TLS files", [&tls_files = options.serving.tls,
                            c = services.certificate_expiry.get()] {
      c->Check();
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
    hooks.Add("auth files", [authorizer] {
      if (authorizer->Reload().ok()) {
        WARREN_LOG_INFO("auth files are current");
      }
    });
  }
  return hooks;
}

// Runs SIGHUP's reload hooks until SIGTERM or SIGINT, which it returns.
int WaitForStopSignal(const sigset_t& signals, ReloadHooks& reload_hooks,
                      const StreamRegistry& streams) {
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
  while (true) {
    const timespec tick{2, 0};
    const int received = sigtimedwait(&signals, nullptr, &tick);
    if (received < 0) {
      maybe_trim();
      continue;
    }
    if (received != SIGHUP) return received;
    reload_hooks.RunAll();
  }
}

// Ends the streams, lets calls in progress finish within shutdown_grace,
// and stops the server.
void Drain(const Options& options, Serving& serving, Services& services,
           auth::Authorizer* authorizer) {
  // New connections first: gRPC would not close one handed over after its
  // shutdown.
  serving.listener->Stop();
  services.health.StartDraining();
  services.streams.DrainAll();
  serving.server->Shutdown(
      absl::ToChronoTime(absl::Now() + options.shutdown_grace));
  serving.server->Wait();
  // Ended HoldKey streams delete their keys on workers, with what the
  // services own: let them finish before the services go.
  if (!services.config.AwaitHeldKeysReleased(absl::Now() +
                                             options.shutdown_grace)) {
    WARREN_LOG_WARN(
        "drain: held keys not yet deleted; they go with the "
        "ZooKeeper session");
  }
  // Before the streams registry it rechecks goes away.
  if (authorizer != nullptr) authorizer->StopPolling();
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
  if (absl::Status s = CheckFiles(options); !s.ok()) return Fail(s);

  // 1. Start the backends (metrics and auth first: a bad address or file
  // fails before the wait for ZooKeeper and RabbitMQ).
  auto metrics = StartMetrics(options);
  if (!metrics.ok()) return Fail(metrics.status());
  auto authorizer = StartAuth(options);
  if (!authorizer.ok()) return Fail(authorizer.status());
  auto backends = StartBackends(options, **metrics);
  if (!backends.ok()) return Fail(backends.status());

  // 2. Build the services.
  Services services(options, **backends, authorizer->get());
  if (absl::Status s =
          services.CreateBaseNodes(options.config.operation_timeout);
      !s.ok()) {
    return Fail(s);
  }
  services.RegisterMetrics(**metrics);

  // 3. Serve.
  auto serving = Serve(options, services, **metrics);
  if (!serving.ok()) return Fail(serving.status());
  if (auth::Authorizer* a = authorizer->get(); a != nullptr) {
    // Revocation reaches streams already open: after every reload that
    // changed the tokens or the policy, each stream's caller is checked
    // again and those that lost what they needed end (UNAUTHENTICATED or
    // PERMISSION_DENIED).
    a->OnChange([&streams = services.streams] {
      if (const size_t ended = streams.ReauthorizeAll(); ended > 0) {
        WARREN_LOG_INFO(
            "auth: ended {} open streams whose caller lost the "
            "grant or the token they were opened with",
            ended);
      }
    });
    a->StartPolling();
  }
  AnnounceServing(options, services, (*serving)->port);
  ReloadHooks reload_hooks =
      MakeReloadHooks(options, services, authorizer->get());
  const int received =
      WaitForStopSignal(signals, reload_hooks, services.streams);

  // 4. Drain.
  WARREN_LOG_INFO("received {}; draining (grace {})",
                  received == SIGTERM ? "SIGTERM" : "SIGINT",
                  absl::FormatDuration(options.shutdown_grace));
  Drain(options, **serving, services, authorizer->get());
  WARREN_LOG_INFO("warrend stopped");
  return 0;
}

}  // namespace
}  // namespace warren::daemon

int main(int argc, char** argv) { return warren::daemon::Run(argc, argv); }
