// warrend's settings. Each one is a command-line flag (--name=value), an
// environment variable (WARREN_NAME) and a key of the optional YAML file
// (--config or WARREN_CONFIG), in that order of precedence.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace warren::daemon {

struct Options {
  std::string listen;
  // Plaintext on a listen address other than loopback (see tls.h).
  bool allow_insecure_listen;
  // gRPC TLS: all empty serves plaintext.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  // none, request or require (the empty flag value is resolved here:
  // require with a client CA, none without).
  std::string tls_client_auth;
  absl::Duration tls_reload_interval;
  std::string zk_connect;
  absl::Duration zk_session_timeout;
  // The largest request the ensemble accepts: its jute.maxbuffer.
  int64_t zk_max_request_bytes;
  std::string zk_auth_file;  // "": unauthenticated, open ACLs
  bool zk_acl_world_read;
  std::string root;
  std::vector<std::string> amqp_urls;
  std::string amqp_ca_file;
  // Client certificate and key for amqps:// brokers that ask for one.
  std::string amqp_cert_file;
  std::string amqp_key_file;
  absl::Duration amqp_heartbeat;
  int64_t amqp_max_connections;
  absl::Duration backend_wait;
  absl::Duration shutdown_grace;
  absl::Duration operation_timeout;
  absl::Duration heartbeat_interval;
  int64_t max_config_value_bytes;
  int64_t max_message_bytes;
  int64_t max_watches;
  int64_t max_watches_per_client;
  int64_t max_candidates;
  int64_t max_candidates_per_client;
  int64_t max_observers;
  int64_t max_observers_per_client;
  int64_t max_concurrent_streams;
  int64_t max_streams;
  int64_t max_streams_per_client;
  int64_t worker_threads;
  int64_t max_payload_bytes;
  int64_t max_header_bytes;
  int64_t publish_window;
  int64_t default_max_in_flight;
  int64_t max_in_flight_cap;
  bool publish_config_changes;
  std::string config_change_exchange;
  std::string log_level;
  bool log_json;
  std::string metrics_listen;
  bool metrics_allow_remote;
  // Authentication and authorization: on when either file is set.
  std::string auth_tokens_file;
  std::string auth_policy_file;
  absl::Duration auth_reload_interval;
  // Connections (listener.h) and health streams: 0 is no limit for the
  // connection counts.
  int64_t max_connections;
  int64_t max_connections_per_peer;
  absl::Duration handshake_timeout;
  absl::Duration keepalive_time;
  absl::Duration keepalive_timeout;
  int64_t max_health_watches;
  int64_t max_health_watches_per_client;
};

bool TlsEnabled(const Options& options);

// Parses argv, the environment and the YAML file. Exits the process (status
// 1, one line on stderr) on an unknown or malformed flag, as absl does;
// answers INVALID_ARGUMENT for a bad file or environment value.
absl::StatusOr<Options> LoadOptions(int argc, char** argv);

}  // namespace warren::daemon
