#include "server/daemon/options.h"

#include <cstdlib>
#include <mutex>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "server/daemon/tls.h"
#include "server/metrics/metrics_server.h"
#include "yaml-cpp/yaml.h"

ABSL_FLAG(std::string, config, "",
          "Optional YAML file of settings (keys are these flag names).");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC listen address. Without TLS (tls_cert_file) only a loopback "
          "address is accepted, unless allow_insecure_listen is set.");
ABSL_FLAG(bool, allow_insecure_listen, false,
          "Serve plaintext gRPC on a listen address other than loopback "
          "(0.0.0.0, a pod or host address): only where the network itself "
          "is trusted or encrypted, e.g. a service mesh's sidecar.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM certificate chain (leaf first) served on the gRPC port; with "
          "tls_key_file it turns TLS on. Re-read every tls_reload_interval.");
ABSL_FLAG(std::string, tls_key_file, "",
          "PEM private key of tls_cert_file (unencrypted).");
ABSL_FLAG(std::string, tls_client_ca_file, "",
          "PEM CA bundle that signs client certificates; set, clients must "
          "present one signed by it (mutual TLS) unless tls_client_auth "
          "says request.");
ABSL_FLAG(std::string, tls_client_auth, "",
          "Client certificates: none, request (verified when presented) or "
          "require (mutual TLS). Empty: require when tls_client_ca_file is "
          "set, none otherwise.");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Seconds(60),
          "How often the TLS files are checked for changes; new "
          "connections get the new certificate, open ones keep theirs.");
ABSL_FLAG(std::string, zk_connect, "127.0.0.1:2181",
          "ZooKeeper connect string: host:port[,host:port...].");
ABSL_FLAG(absl::Duration, zk_session_timeout, absl::Seconds(10),
          "ZooKeeper session timeout requested from the ensemble.");
ABSL_FLAG(int64_t, zk_max_request_bytes, 0xfffff,
          "Largest ZooKeeper request warrend sends: the ensemble's "
          "jute.maxbuffer (0xfffff = 1048575 unless raised). A larger request "
          "would make the ensemble drop the connection of every session "
          "user, so such a write fails alone with INVALID_ARGUMENT instead. "
          "Raise both together with the ensemble's jute.maxbuffer "
          "(docs/config-limits.md).");
// ZooKeeper authentication and ACLs.
ABSL_FLAG(std::string, zk_auth_file, "",
          "File holding ZooKeeper digest credentials, one line user:password "
          "(a file, so that the secret is on no command line). When set, "
          "warrend authenticates every ZooKeeper session with them and gives "
          "every node it creates an ACL granting only that identity "
          "(digest:user:base64(sha1(user:password)):cdrwa). Empty: nodes are "
          "open to every ZooKeeper client.");
ABSL_FLAG(bool, zk_acl_world_read, false,
          "With zk_auth_file: also let every ZooKeeper client read (never "
          "change) the nodes warrend creates. Off by default, as config "
          "values may hold secrets.");
ABSL_FLAG(std::string, root, "/warren",
          "ZooKeeper path under which every Warren node lives.");
ABSL_FLAG(std::vector<std::string>, amqp_urls,
          {"amqp://guest:guest@127.0.0.1:5672/"},
          "Comma-separated RabbitMQ URLs (amqp:// or amqps://) of one "
          "broker or the nodes of a cluster: each process starts at a random "
          "one and tries the others in turn after it.");
ABSL_FLAG(std::string, amqp_ca_file, "",
          "CA bundle for amqps:// brokers (empty: the system's).");
ABSL_FLAG(std::string, amqp_cert_file, "",
          "PEM client certificate for amqps:// brokers that verify peers "
          "(ssl_options.verify = verify_peer); needs amqp_key_file.");
ABSL_FLAG(std::string, amqp_key_file, "",
          "PEM private key of amqp_cert_file (unencrypted).");
ABSL_FLAG(absl::Duration, amqp_heartbeat, absl::Seconds(10),
          "AMQP heartbeat interval.");
ABSL_FLAG(int64_t, amqp_max_connections, 8,
          "Most AMQP connections to RabbitMQ. Each Subscribe stream takes a "
          "channel, a connection has at most channel_max of them (2047 by "
          "default, two kept for publishing), and more connections are "
          "opened as they fill up: 8 carry 16,360 subscriptions.");
ABSL_FLAG(absl::Duration, backend_wait, absl::Seconds(30),
          "How long start-up waits for ZooKeeper and RabbitMQ.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT, how long calls in progress may take to finish.");
ABSL_FLAG(absl::Duration, operation_timeout, absl::Seconds(10),
          "Longest backend operation of a call without an earlier deadline.");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(30),
          "Default heartbeat interval of long-lived streams.");
ABSL_FLAG(int64_t, max_config_value_bytes, 960 << 10,
          "Largest config value accepted. With the request around it (path, "
          "ACL, missing parents) it must fit in zk_max_request_bytes; the "
          "default leaves 64 KiB of a stock ensemble's limit for that "
          "(docs/config-limits.md).");
ABSL_FLAG(int64_t, max_message_bytes, 4 << 20,
          "Largest gRPC message received.");
ABSL_FLAG(int64_t, max_watches, 10000,
          "Most WatchConfig streams served at once.");
ABSL_FLAG(int64_t, max_watches_per_client, 10000,
          "Most WatchConfig streams served at once to one client (its "
          "principal with auth on, else its IP address).");
ABSL_FLAG(int64_t, max_candidates, 20000,
          "Most Elect streams that have campaigned, open at once.");
ABSL_FLAG(int64_t, max_candidates_per_client, 20000,
          "Most Elect streams that have campaigned, open at once for one "
          "client (its principal with auth on, else its IP address).");
// ObserveLeader limits (security issue 15, item 5).
ABSL_FLAG(int64_t, max_observers, 10000,
          "Most ObserveLeader streams open at once over all clients.");
ABSL_FLAG(int64_t, max_observers_per_client, 10000,
          "Most ObserveLeader streams open at once for one client (its "
          "principal with auth on, else its IP address).");
ABSL_FLAG(int64_t, max_streams, 30000,
          "Most long-lived streams (PublishStream, Subscribe, Elect, "
          "ObserveLeader, WatchConfig) open at once over all clients; more "
          "get RESOURCE_EXHAUSTED. Each idle one costs about 30 KiB.");
ABSL_FLAG(int64_t, max_streams_per_client, 30000,
          "Most long-lived streams of every kind open at once for one client "
          "(its principal with auth on, else its IP address). Equal to "
          "max_streams by default, as clients behind one NAT share an "
          "address; with auth on, set a fair share.");
ABSL_FLAG(int64_t, max_concurrent_streams, 1000,
          "Most concurrent calls per client connection (HTTP/2 streams).");
ABSL_FLAG(int64_t, worker_threads, 8,
          "Threads for multi-step backend operations of unary calls.");
ABSL_FLAG(int64_t, max_payload_bytes, 1 << 20,
          "Largest message payload accepted by Publish and PublishStream.");
ABSL_FLAG(int64_t, max_header_bytes, 64 << 10,
          "Largest total size of a message's headers (keys and values).");
ABSL_FLAG(int64_t, publish_window, 512,
          "Most unconfirmed messages per PublishStream.");
ABSL_FLAG(int64_t, default_max_in_flight, 100,
          "Subscribe prefetch when the client asks for 0.");
ABSL_FLAG(int64_t, max_in_flight_cap, 10000,
          "Largest max_in_flight a subscriber may ask for.");
ABSL_FLAG(bool, publish_config_changes, false,
          "Announce every ConfigService change on RabbitMQ.");
ABSL_FLAG(std::string, config_change_exchange, "warren.config",
          "Topic exchange for announced config changes.");
ABSL_FLAG(std::string, log_level, "info",
          "trace, debug, info, warn, error or off.");
ABSL_FLAG(bool, log_json, false, "Write logs as JSON lines.");
ABSL_FLAG(std::string, metrics_listen, "",
          "HTTP address (host:port) of the Prometheus metrics at /metrics; "
          "empty: no metrics. Plaintext and unauthenticated: a non-loopback "
          "address also needs --metrics_allow_remote.");
ABSL_FLAG(bool, metrics_allow_remote, false,
          "Let metrics_listen be a non-loopback address (e.g. 0.0.0.0:9090 "
          "in a pod that Prometheus scrapes): anyone who reaches it can read "
          "the metrics.");
ABSL_FLAG(std::string, auth_tokens_file, "",
          "YAML file of bearer tokens and their principals (see README). "
          "Setting it or auth_policy_file turns authentication on.");
ABSL_FLAG(std::string, auth_policy_file, "",
          "YAML policy: which principal may do which action on which "
          "resources (see README). Without it, every authenticated caller "
          "may do everything.");
ABSL_FLAG(absl::Duration, auth_reload_interval, absl::Seconds(2),
          "How often the auth files are checked for changes (0: only on "
          "SIGHUP).");
// Connections and health streams (docs/connections.md): what one client,
// and all of them together, may hold open before authentication.
ABSL_FLAG(int64_t, max_connections, 20000,
          "Most client connections open at once; more are closed as soon as "
          "they are accepted (0: no limit but the file descriptor limit).");
ABSL_FLAG(int64_t, max_connections_per_peer, 2000,
          "Most client connections open at once from one IP address (0: no "
          "limit). Behind NAT or a sidecar proxy every client shares one "
          "address: raise it to max_connections there.");
ABSL_FLAG(absl::Duration, handshake_timeout, absl::Seconds(10),
          "A new connection that has not completed its TLS handshake and "
          "HTTP/2 preface within this time is closed.");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Seconds(60),
          "warrend pings a connection after this long without activity...");
ABSL_FLAG(absl::Duration, keepalive_timeout, absl::Seconds(20),
          "...and closes it when the ping is not answered within this time.");
ABSL_FLAG(int64_t, max_health_watches, 1000,
          "Most grpc.health.v1 Watch streams open at once over all clients; "
          "more get RESOURCE_EXHAUSTED. Check calls are not limited.");
ABSL_FLAG(int64_t, max_health_watches_per_client, 100,
          "Most health Watch streams open at once for one client (its "
          "principal with auth on, else its IP address).");

namespace warren::daemon {
namespace {

// The settings: every flag defined in this file but --config itself. A
// setting may be given as a flag, in the --config file or as WARREN_<NAME>;
// the registry is the one list, so a new flag is all three at once.
std::vector<absl::string_view> Settings() {
  std::vector<absl::string_view> names;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (flag->Filename() == __FILE__ && name != "config") {
      names.push_back(name);
    }
  }
  return names;
}

bool IsSetting(absl::string_view name) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  return flag != nullptr && flag->Filename() == __FILE__ && name != "config";
}

absl::Status Apply(absl::string_view name, const std::string& value,
                   absl::string_view source) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  std::string error;
  if (flag == nullptr || !flag->ParseFrom(value, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": invalid value '", value, "' for ", name,
                     error.empty() ? "" : ": ", error));
  }
  return absl::OkStatus();
}

// The --config value, looked up before the full parse so that the file can
// sit below the command line in precedence.
std::string FindConfigPath(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    for (absl::string_view prefix : {"--config=", "-config="}) {
      if (absl::StartsWith(arg, prefix)) {
        return std::string(arg.substr(prefix.size()));
      }
    }
    if ((arg == "--config" || arg == "-config") && i + 1 < argc) {
      return argv[i + 1];
    }
  }
  const char* env = std::getenv("WARREN_CONFIG");
  return env == nullptr ? "" : env;
}

absl::Status ApplyYaml(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": ", e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat("config file ", path, ": expected a map of settings"));
  }
  for (const auto& item : root) {
    const std::string name = item.first.as<std::string>();
    if (!IsSetting(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("config file ", path, ": unknown setting '", name, "'"));
    }
    std::string value;
    if (item.second.IsSequence()) {
      for (const auto& element : item.second) {
        absl::StrAppend(&value, value.empty() ? "" : ",",
                        element.as<std::string>());
      }
    } else if (item.second.IsScalar()) {
      value = item.second.as<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "config file ", path, ": setting '", name, "' must be a value"));
    }
    absl::Status applied =
        Apply(name, value, absl::StrCat("config file ", path));
    if (!applied.ok()) return applied;
  }
  return absl::OkStatus();
}

absl::Status ApplyEnvironment() {
  for (absl::string_view name : Settings()) {
    const std::string variable =
        absl::StrCat("WARREN_", absl::AsciiStrToUpper(name));
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr) continue;
    absl::Status applied = Apply(name, value, variable);
    if (!applied.ok()) return applied;
  }
  return absl::OkStatus();
}

absl::Status Check(bool ok, absl::string_view message) {
  return ok ? absl::OkStatus() : absl::InvalidArgumentError(message);
}

}  // namespace

bool TlsEnabled(const Options& options) {
  return !options.tls_cert_file.empty() && !options.tls_key_file.empty();
}

absl::StatusOr<Options> LoadOptions(int argc, char** argv) {
  static std::once_flag usage_once;
  std::call_once(usage_once, [] {
    absl::SetProgramUsageMessage(
        "warrend: Warren's gRPC server (messaging on RabbitMQ, election and "
        "configuration on ZooKeeper).");
  });
  const std::string config_path = FindConfigPath(argc, argv);
  if (!config_path.empty()) {
    absl::Status loaded = ApplyYaml(config_path);
    if (!loaded.ok()) return loaded;
  }
  absl::Status env = ApplyEnvironment();
  if (!env.ok()) return env;
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unexpected argument '", rest[1], "' (settings are --name=value)"));
  }

  Options o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.allow_insecure_listen = absl::GetFlag(FLAGS_allow_insecure_listen);
  o.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  o.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  o.tls_client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  o.tls_client_auth = absl::GetFlag(FLAGS_tls_client_auth);
  o.tls_reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  o.zk_connect = absl::GetFlag(FLAGS_zk_connect);
  o.zk_session_timeout = absl::GetFlag(FLAGS_zk_session_timeout);
  o.zk_max_request_bytes = absl::GetFlag(FLAGS_zk_max_request_bytes);
  o.zk_auth_file = absl::GetFlag(FLAGS_zk_auth_file);
  o.zk_acl_world_read = absl::GetFlag(FLAGS_zk_acl_world_read);
  o.root = absl::GetFlag(FLAGS_root);
  o.amqp_urls = absl::GetFlag(FLAGS_amqp_urls);
  o.amqp_ca_file = absl::GetFlag(FLAGS_amqp_ca_file);
  o.amqp_cert_file = absl::GetFlag(FLAGS_amqp_cert_file);
  o.amqp_key_file = absl::GetFlag(FLAGS_amqp_key_file);
  o.amqp_heartbeat = absl::GetFlag(FLAGS_amqp_heartbeat);
  o.amqp_max_connections = absl::GetFlag(FLAGS_amqp_max_connections);
  o.backend_wait = absl::GetFlag(FLAGS_backend_wait);
  o.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  o.operation_timeout = absl::GetFlag(FLAGS_operation_timeout);
  o.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  o.max_config_value_bytes = absl::GetFlag(FLAGS_max_config_value_bytes);
  o.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  o.max_watches = absl::GetFlag(FLAGS_max_watches);
  o.max_watches_per_client = absl::GetFlag(FLAGS_max_watches_per_client);
  o.max_candidates = absl::GetFlag(FLAGS_max_candidates);
  o.max_candidates_per_client = absl::GetFlag(FLAGS_max_candidates_per_client);
  o.max_observers = absl::GetFlag(FLAGS_max_observers);
  o.max_observers_per_client = absl::GetFlag(FLAGS_max_observers_per_client);
  o.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  o.max_streams = absl::GetFlag(FLAGS_max_streams);
  o.max_streams_per_client = absl::GetFlag(FLAGS_max_streams_per_client);
  o.worker_threads = absl::GetFlag(FLAGS_worker_threads);
  o.max_payload_bytes = absl::GetFlag(FLAGS_max_payload_bytes);
  o.max_header_bytes = absl::GetFlag(FLAGS_max_header_bytes);
  o.publish_window = absl::GetFlag(FLAGS_publish_window);
  o.default_max_in_flight = absl::GetFlag(FLAGS_default_max_in_flight);
  o.max_in_flight_cap = absl::GetFlag(FLAGS_max_in_flight_cap);
  o.publish_config_changes = absl::GetFlag(FLAGS_publish_config_changes);
  o.config_change_exchange = absl::GetFlag(FLAGS_config_change_exchange);
  o.log_level = absl::GetFlag(FLAGS_log_level);
  o.log_json = absl::GetFlag(FLAGS_log_json);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.metrics_allow_remote = absl::GetFlag(FLAGS_metrics_allow_remote);
  o.auth_tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  o.auth_policy_file = absl::GetFlag(FLAGS_auth_policy_file);
  o.auth_reload_interval = absl::GetFlag(FLAGS_auth_reload_interval);
  o.max_connections = absl::GetFlag(FLAGS_max_connections);
  o.max_connections_per_peer = absl::GetFlag(FLAGS_max_connections_per_peer);
  o.handshake_timeout = absl::GetFlag(FLAGS_handshake_timeout);
  o.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  o.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  o.max_health_watches = absl::GetFlag(FLAGS_max_health_watches);
  o.max_health_watches_per_client =
      absl::GetFlag(FLAGS_max_health_watches_per_client);

  if (o.tls_client_auth.empty()) {
    o.tls_client_auth = o.tls_client_ca_file.empty() ? "none" : "require";
  }
  const bool tls = TlsEnabled(o);
  // Root: an absolute ZooKeeper path of valid segments.
  absl::Status checks[] = {
      Check(!o.listen.empty(), "listen is empty"),
      Check(o.tls_cert_file.empty() == o.tls_key_file.empty(),
            "tls_cert_file and tls_key_file go together: set both (TLS) or "
            "neither (plaintext)"),
      Check(o.tls_client_ca_file.empty() || tls,
            "tls_client_ca_file needs tls_cert_file and tls_key_file: client "
            "certificates are checked only over TLS"),
      Check(o.tls_client_auth == "none" || o.tls_client_auth == "request" ||
                o.tls_client_auth == "require",
            "tls_client_auth must be none, request or require"),
      Check(o.tls_client_auth == "none" || !o.tls_client_ca_file.empty(),
            "tls_client_auth=request or require needs tls_client_ca_file "
            "(the CA that signs client certificates)"),
      Check(o.tls_client_auth != "none" || o.tls_client_ca_file.empty(),
            "tls_client_auth=none contradicts tls_client_ca_file: drop one"),
      Check(o.tls_reload_interval >= absl::Seconds(1) &&
                o.tls_reload_interval <= absl::Hours(24),
            "tls_reload_interval must be between 1s and 24h"),
      Check(tls || o.allow_insecure_listen || IsLoopbackListen(o.listen),
            absl::StrCat("listen ", o.listen,
                         " is not a loopback address and TLS is off: set "
                         "tls_cert_file and tls_key_file, or "
                         "allow_insecure_listen=true to serve plaintext gRPC "
                         "on it (only on a trusted or mesh-encrypted "
                         "network)")),
      Check(o.amqp_cert_file.empty() == o.amqp_key_file.empty(),
            "amqp_cert_file and amqp_key_file go together: set both or "
            "neither"),
      Check(!o.zk_connect.empty(), "zk_connect is empty"),
      Check(o.zk_session_timeout >= absl::Seconds(1),
            "zk_session_timeout must be at least 1s"),
      Check(!o.zk_acl_world_read || !o.zk_auth_file.empty(),
            "zk_acl_world_read needs zk_auth_file (without credentials every "
            "node is open to everyone anyway)"),
      Check(absl::StartsWith(o.root, "/") &&
                (o.root == "/" || !absl::EndsWith(o.root, "/")) &&
                !absl::StrContains(o.root, "//") &&
                !absl::StrContains(o.root, "/./") &&
                !absl::StrContains(o.root, "/../") &&
                !absl::EndsWith(o.root, "/..") && !absl::EndsWith(o.root, "/."),
            "root must be an absolute path like /warren"),
      Check(!o.amqp_urls.empty(), "amqp_urls is empty"),
      Check(o.amqp_heartbeat >= absl::Seconds(1),
            "amqp_heartbeat must be at least 1s"),
      Check(o.amqp_max_connections >= 1 && o.amqp_max_connections <= 1000,
            "amqp_max_connections must be between 1 and 1000"),
      Check(o.backend_wait > absl::ZeroDuration(),
            "backend_wait must be positive"),
      Check(o.shutdown_grace >= absl::ZeroDuration(),
            "shutdown_grace must not be negative"),
      Check(o.operation_timeout > absl::ZeroDuration(),
            "operation_timeout must be positive"),
      Check(o.heartbeat_interval >= absl::Milliseconds(100),
            "heartbeat_interval must be at least 100ms"),
      // Election writes (a 64 KiB value, names, the ACL) must always fit.
      Check(o.zk_max_request_bytes >= (128 << 10) &&
                o.zk_max_request_bytes <= (1 << 30),
            "zk_max_request_bytes must be between 131072 and 1073741824 "
            "(and match the ensemble's jute.maxbuffer)"),
      // Whether it fits with its request is checked once the ACL is known.
      Check(o.max_config_value_bytes > 0 &&
                o.max_config_value_bytes < o.zk_max_request_bytes,
            "max_config_value_bytes must be positive and below "
            "zk_max_request_bytes"),
      Check(o.max_message_bytes >= o.max_config_value_bytes + 4096 &&
                o.max_message_bytes <= (64 << 20),
            "max_message_bytes must hold a config value plus its request "
            "(max_config_value_bytes + 4096) and be at most 64 MiB"),
      Check(o.max_watches > 0, "max_watches must be positive"),
      Check(o.max_watches_per_client > 0,
            "max_watches_per_client must be positive"),
      Check(o.max_candidates > 0, "max_candidates must be positive"),
      Check(o.max_candidates_per_client > 0,
            "max_candidates_per_client must be positive"),
      Check(o.max_observers > 0, "max_observers must be positive"),
      Check(o.max_observers_per_client > 0,
            "max_observers_per_client must be positive"),
      Check(o.max_concurrent_streams > 0,
            "max_concurrent_streams must be positive"),
      Check(o.max_streams > 0, "max_streams must be positive"),
      Check(o.max_streams_per_client > 0,
            "max_streams_per_client must be positive"),
      Check(o.worker_threads > 0 && o.worker_threads <= 256,
            "worker_threads must be between 1 and 256"),
      Check(o.max_payload_bytes > 0 &&
                o.max_payload_bytes + o.max_header_bytes + 4096 <=
                    o.max_message_bytes,
            "max_payload_bytes must be positive, and payload plus headers "
            "plus 4096 must fit in max_message_bytes"),
      Check(o.max_header_bytes >= 0, "max_header_bytes must not be negative"),
      Check(o.publish_window > 0 && o.publish_window <= 100000,
            "publish_window must be between 1 and 100000"),
      Check(o.max_in_flight_cap > 0 && o.max_in_flight_cap <= 65535,
            "max_in_flight_cap must be between 1 and 65535 (the AMQP "
            "prefetch limit)"),
      Check(o.default_max_in_flight > 0 &&
                o.default_max_in_flight <= o.max_in_flight_cap,
            "default_max_in_flight must be between 1 and max_in_flight_cap"),
      Check(!o.config_change_exchange.empty() &&
                o.config_change_exchange.size() <= 255,
            "config_change_exchange must be 1 to 255 bytes"),
      Check(
          o.metrics_listen.empty() || absl::StrContains(o.metrics_listen, ':'),
          "metrics_listen must be host:port, like 127.0.0.1:9090"),
      // Like a plaintext gRPC port, /metrics has no authentication or TLS:
      // it leaves loopback only when the operator says so.
      Check(o.metrics_listen.empty() || o.metrics_allow_remote ||
                metrics::IsLoopbackAddress(o.metrics_listen),
            absl::StrCat("metrics_listen ", o.metrics_listen,
                         " is not a loopback address, and /metrics has no "
                         "authentication or TLS: set metrics_allow_remote="
                         "true to serve it there (on a network where only "
                         "your scrapers reach it)")),
      Check(o.auth_reload_interval >= absl::ZeroDuration(),
            "auth_reload_interval must not be negative"),
      Check(o.max_connections >= 0, "max_connections must not be negative"),
      Check(o.max_connections_per_peer >= 0,
            "max_connections_per_peer must not be negative"),
      Check(o.handshake_timeout >= absl::Milliseconds(100) &&
                o.handshake_timeout <= absl::Minutes(10),
            "handshake_timeout must be between 100ms and 10m"),
      Check(o.keepalive_time >= absl::Seconds(1),
            "keepalive_time must be at least 1s"),
      Check(o.keepalive_timeout >= absl::Seconds(1),
            "keepalive_timeout must be at least 1s"),
      Check(o.max_health_watches > 0, "max_health_watches must be positive"),
      Check(o.max_health_watches_per_client > 0,
            "max_health_watches_per_client must be positive"),
  };
  for (const absl::Status& s : checks) {
    if (!s.ok()) return s;
  }
  return o;
}

}  // namespace warren::daemon
