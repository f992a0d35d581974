// warrend's settings. Each one is a command-line flag (--name=value), an
// environment variable (WARREN_NAME) and a key of the optional YAML file
// (--config or WARREN_CONFIG), in that order of precedence.
//
// Options is made of the option structs of the components it configures,
// filled once by LoadOptions: Run() hands each component its own struct
// and adds only what exists at run time (the authorizer, callbacks).
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/amqp_client.h"
#include "server/amqp/amqp_pool.h"
#include "server/auth/authorizer.h"
#include "server/config/config_service.h"
#include "server/daemon/health_service.h"
#include "server/daemon/listener.h"
#include "server/daemon/tls.h"
#include "server/election/election_service.h"
#include "server/lock/lock_service.h"
#include "server/messaging/messaging_service.h"
#include "server/zk/zookeeper_client.h"

namespace warren::daemon {

// The gRPC port: its socket, TLS and HTTP/2 limits.
struct ServingOptions {
  // address (`listen`), max_connections, max_connections_per_peer.
  ListenerOptions listener;
  // Plaintext on a listen address other than loopback (see tls.h).
  bool allow_insecure_listen = false;
  // TLS: empty cert_file and key_file serve plaintext.
  ServerTlsFiles tls;
  absl::Duration handshake_timeout;
  absl::Duration keepalive_time;
  absl::Duration keepalive_timeout;
  size_t max_concurrent_streams = 0;
  size_t max_message_bytes = 0;
};

struct Options {
  ServingOptions serving;

  // Backends. zk.acl is made from zk_auth_file at start-up (it reads a
  // secret file); everything else of zk and amqp is final here.
  zk::ZooKeeperOptions zk;
  std::string zk_auth_file;  // "": unauthenticated, open ACLs
  bool zk_acl_world_read = false;
  std::string root;
  amqp::AmqpOptions amqp;
  amqp::AmqpPoolOptions amqp_pool;
  absl::Duration backend_wait;

  // Authentication and authorization: on when either file is set.
  auth::AuthOptions auth;

  // The services, their limits and their streams.
  config::ConfigServiceOptions config;
  messaging::MessagingServiceOptions messaging;
  election::ElectionServiceOptions election;
  lock::LockServiceOptions lock;
  HealthServiceOptions health;
  size_t max_streams = 0;
  size_t max_streams_per_client = 0;
  size_t worker_threads = 0;
  bool publish_config_changes = false;
  std::string config_change_exchange;

  // Logging, metrics and shutdown.
  std::string log_level;
  bool log_json = false;
  std::string metrics_listen;
  bool metrics_allow_remote = false;
  absl::Duration shutdown_grace;
};

bool TlsEnabled(const Options& options);
bool AuthEnabled(const Options& options);
// none, request or require: how logs and messages name client_auth.
absl::string_view ClientAuthName(ClientAuth client_auth);

// Parses argv, the environment and the YAML file. Exits the process (status
// 1, one line on stderr) on an unknown or malformed flag, as absl does;
// answers INVALID_ARGUMENT for a bad file or environment value.
//
// `--help` prints HelpText() and `--version` VersionText(), and exit 0;
// `--helpfull` is absl's list of every flag of the binary (gRPC's and
// Abseil's too).
absl::StatusOr<Options> LoadOptions(int argc, char** argv);

// warrend's own settings grouped by concern (listen and TLS, backends,
// auth, limits, streams, logging and metrics), each with its default, its
// WARREN_* variable and what it does. Every setting is in exactly one group.
std::string HelpText();

// warrend's version and the versions of gRPC, protobuf, the ZooKeeper C
// client and rabbitmq-c it was built with.
std::string VersionText();

}  // namespace warren::daemon
