#include "server/daemon/options.h"

#include <amqp.h>
#include <zookeeper/zookeeper_version.h>

#include <cstdio>
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
#include "google/protobuf/stubs/common.h"
#include "grpcpp/version_info.h"
#include "server/config/config_limits.h"
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
          "default, three kept for publishing), and more connections are "
          "opened as they fill up: 8 carry 16,344 subscriptions.");
ABSL_FLAG(absl::Duration, backend_wait, absl::Seconds(30),
          "How long start-up waits for ZooKeeper and RabbitMQ.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM/SIGINT, how long calls in progress may take to finish.");
ABSL_FLAG(absl::Duration, operation_timeout, absl::Seconds(10),
          "Longest backend operation of a call without an earlier deadline.");
ABSL_FLAG(absl::Duration, call_timeout, absl::Seconds(30),
          "How long a Call without a deadline waits for its reply.");
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
ABSL_FLAG(int64_t, max_txn_ops, 100,
          "Most checks and ops one config Txn may hold (all in one ZooKeeper "
          "multi-operation).");
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
          "ObserveLeader, Lock, WatchConfig) open at once over all clients; "
          "more "
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
ABSL_FLAG(absl::Duration, max_retry_delay, absl::Hours(1),
          "Longest Nack.retry_after a subscriber may ask for.");
ABSL_FLAG(absl::Duration, max_publish_delay, absl::Hours(24),
          "Longest PublishRequest.delay a publisher may ask for.");
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
ABSL_FLAG(
    std::string, auth_tokens_file, "",
    "YAML file of bearer tokens and their principals (docs/operations.md). "
    "Setting it or auth_policy_file turns authentication on.");
ABSL_FLAG(std::string, auth_policy_file, "",
          "YAML policy: which principal may do which action on which "
          "resources (docs/policy.md). Without it, every authenticated caller "
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

size_t Size(int64_t checked) { return static_cast<size_t>(checked); }

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

constexpr char kUsage[] =
    "warrend: Warren's gRPC server (messaging on RabbitMQ, election and "
    "configuration on ZooKeeper).";

struct SettingGroup {
  absl::string_view title;
  std::vector<absl::string_view> settings;
};

// --help's groups. Every setting is in exactly one (daemon_test checks).
const std::vector<SettingGroup> kSettingGroups = {
    {"Listen and TLS",
     {"listen", "allow_insecure_listen", "tls_cert_file", "tls_key_file",
      "tls_client_ca_file", "tls_client_auth", "tls_reload_interval",
      "handshake_timeout", "keepalive_time", "keepalive_timeout"}},
    {"Backends",
     {"zk_connect", "zk_session_timeout", "zk_max_request_bytes",
      "zk_auth_file", "zk_acl_world_read", "root", "amqp_urls", "amqp_ca_file",
      "amqp_cert_file", "amqp_key_file", "amqp_heartbeat",
      "amqp_max_connections", "backend_wait", "operation_timeout"}},
    {"Auth", {"auth_tokens_file", "auth_policy_file", "auth_reload_interval"}},
    {"Limits", {"max_connections",        "max_connections_per_peer",
                "max_concurrent_streams", "max_message_bytes",
                "max_config_value_bytes", "max_payload_bytes",
                "max_header_bytes",       "max_streams",
                "max_streams_per_client", "max_watches",
                "max_watches_per_client", "max_txn_ops",
                "max_candidates",         "max_candidates_per_client",
                "max_observers",          "max_observers_per_client",
                "max_health_watches",     "max_health_watches_per_client",
                "max_in_flight_cap",      "worker_threads",
                "max_retry_delay",        "max_publish_delay"}},
    {"Streams",
     {"heartbeat_interval", "publish_window", "default_max_in_flight",
      "publish_config_changes", "config_change_exchange", "shutdown_grace",
      "call_timeout"}},
    {"Logging and metrics",
     {"log_level", "log_json", "metrics_listen", "metrics_allow_remote"}},
};

// Appends `prose` wrapped at 78 columns, each line indented by `indent`.
void AppendWrapped(absl::string_view prose, size_t indent, std::string* text) {
  constexpr size_t kWidth = 78;
  const std::string margin(indent, ' ');
  std::string line = margin;
  for (absl::string_view word : absl::StrSplit(prose, ' ', absl::SkipEmpty())) {
    if (line.size() > indent && line.size() + 1 + word.size() > kWidth) {
      absl::StrAppend(text, line, "\n");
      line = margin;
    }
    absl::StrAppend(&line, line.size() > indent ? " " : "", word);
  }
  absl::StrAppend(text, line, "\n");
}

// Appends "  --name=default  [WARREN_NAME]" and the flag's help.
void AppendSetting(absl::string_view name, std::string* text) {
  const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  if (flag == nullptr) return;
  const std::string value = flag->DefaultValue();
  absl::StrAppend(text, "  --", name, "=", value.empty() ? "\"\"" : value,
                  "  [WARREN_", absl::AsciiStrToUpper(name), "]\n");
  AppendWrapped(flag->Help(), 6, text);
}

absl::Status Check(bool ok, absl::string_view message) {
  return ok ? absl::OkStatus() : absl::InvalidArgumentError(message);
}

}  // namespace

bool TlsEnabled(const Options& options) {
  return !options.serving.tls.cert_file.empty() &&
         !options.serving.tls.key_file.empty();
}

bool AuthEnabled(const Options& options) {
  return !options.auth.tokens_file.empty() || !options.auth.policy_file.empty();
}

absl::string_view ClientAuthName(ClientAuth client_auth) {
  switch (client_auth) {
    case ClientAuth::kRequire:
      return "require";
    case ClientAuth::kRequest:
      return "request";
    case ClientAuth::kNone:
      break;
  }
  return "none";
}

std::string HelpText() {
  std::string text;
  AppendWrapped(kUsage, 0, &text);
  absl::StrAppend(&text, "\nUsage: warrend [--name=value ...]\n\n");
  AppendWrapped(
      "Every setting is also an environment variable WARREN_<NAME> and a key "
      "of the YAML file named by --config (or WARREN_CONFIG); a flag beats "
      "the variable, which beats the file. --helpfull lists every flag of "
      "the binary, gRPC's and Abseil's too; --version prints the versions.",
      0, &text);
  absl::StrAppend(&text, "\n");
  AppendSetting("config", &text);
  for (const SettingGroup& group : kSettingGroups) {
    absl::StrAppend(&text, "\n", group.title, ":\n");
    for (absl::string_view name : group.settings) AppendSetting(name, &text);
  }
  return text;
}

std::string VersionText() {
  return absl::StrCat(
      "warrend ", WARREN_VERSION, "\nbuilt with gRPC ", GRPC_CPP_VERSION_STRING,
      ", protobuf ",
      google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION),
      ", ZooKeeper C client ", ZOO_VERSION, ", rabbitmq-c ", AMQ_VERSION_STRING,
      "\n");
}

absl::StatusOr<Options> LoadOptions(int argc, char** argv) {
  static std::once_flag usage_once;
  std::call_once(usage_once, [] { absl::SetProgramUsageMessage(kUsage); });
  // Before anything else, so that they work whatever else is set: absl's own
  // --help would show only flags of a file named like the binary (none).
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-help") {
      std::fputs(HelpText().c_str(), stdout);
      std::exit(0);
    }
    if (arg == "--version" || arg == "-version") {
      std::fputs(VersionText().c_str(), stdout);
      std::exit(0);
    }
  }
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

  // Every check reads the flags as given (a negative count is caught before
  // it becomes a size).
  std::string client_auth = absl::GetFlag(FLAGS_tls_client_auth);
  if (client_auth.empty()) {
    client_auth =
        absl::GetFlag(FLAGS_tls_client_ca_file).empty() ? "none" : "require";
  }
  const bool tls = !absl::GetFlag(FLAGS_tls_cert_file).empty() &&
                   !absl::GetFlag(FLAGS_tls_key_file).empty();
  // Root: an absolute ZooKeeper path of valid segments.
  absl::Status checks[] = {
      Check(!absl::GetFlag(FLAGS_listen).empty(), "listen is empty"),
      Check(absl::GetFlag(FLAGS_tls_cert_file).empty() ==
                absl::GetFlag(FLAGS_tls_key_file).empty(),
            "tls_cert_file and tls_key_file go together: set both (TLS) or "
            "neither (plaintext)"),
      Check(absl::GetFlag(FLAGS_tls_client_ca_file).empty() || tls,
            "tls_client_ca_file needs tls_cert_file and tls_key_file: client "
            "certificates are checked only over TLS"),
      Check(client_auth == "none" || client_auth == "request" ||
                client_auth == "require",
            "tls_client_auth must be none, request or require"),
      Check(client_auth == "none" ||
                !absl::GetFlag(FLAGS_tls_client_ca_file).empty(),
            "tls_client_auth=request or require needs tls_client_ca_file "
            "(the CA that signs client certificates)"),
      Check(client_auth != "none" ||
                absl::GetFlag(FLAGS_tls_client_ca_file).empty(),
            "tls_client_auth=none contradicts tls_client_ca_file: drop one"),
      Check(absl::GetFlag(FLAGS_tls_reload_interval) >= absl::Seconds(1) &&
                absl::GetFlag(FLAGS_tls_reload_interval) <= absl::Hours(24),
            "tls_reload_interval must be between 1s and 24h"),
      Check(tls || absl::GetFlag(FLAGS_allow_insecure_listen) ||
                IsLoopbackListen(absl::GetFlag(FLAGS_listen)),
            absl::StrCat("listen ", absl::GetFlag(FLAGS_listen),
                         " is not a loopback address and TLS is off: set "
                         "tls_cert_file and tls_key_file, or "
                         "allow_insecure_listen=true to serve plaintext gRPC "
                         "on it (only on a trusted or mesh-encrypted "
                         "network)")),
      Check(absl::GetFlag(FLAGS_amqp_cert_file).empty() ==
                absl::GetFlag(FLAGS_amqp_key_file).empty(),
            "amqp_cert_file and amqp_key_file go together: set both or "
            "neither"),
      Check(!absl::GetFlag(FLAGS_zk_connect).empty(), "zk_connect is empty"),
      Check(absl::GetFlag(FLAGS_zk_session_timeout) >= absl::Seconds(1),
            "zk_session_timeout must be at least 1s"),
      Check(!absl::GetFlag(FLAGS_zk_acl_world_read) ||
                !absl::GetFlag(FLAGS_zk_auth_file).empty(),
            "zk_acl_world_read needs zk_auth_file (without credentials every "
            "node is open to everyone anyway)"),
      Check(absl::StartsWith(absl::GetFlag(FLAGS_root), "/") &&
                (absl::GetFlag(FLAGS_root) == "/" ||
                 !absl::EndsWith(absl::GetFlag(FLAGS_root), "/")) &&
                !absl::StrContains(absl::GetFlag(FLAGS_root), "//") &&
                !absl::StrContains(absl::GetFlag(FLAGS_root), "/./") &&
                !absl::StrContains(absl::GetFlag(FLAGS_root), "/../") &&
                !absl::EndsWith(absl::GetFlag(FLAGS_root), "/..") &&
                !absl::EndsWith(absl::GetFlag(FLAGS_root), "/."),
            "root must be an absolute path like /warren"),
      Check(!absl::GetFlag(FLAGS_amqp_urls).empty(), "amqp_urls is empty"),
      Check(absl::GetFlag(FLAGS_amqp_heartbeat) >= absl::Seconds(1),
            "amqp_heartbeat must be at least 1s"),
      Check(absl::GetFlag(FLAGS_amqp_max_connections) >= 1 &&
                absl::GetFlag(FLAGS_amqp_max_connections) <= 1000,
            "amqp_max_connections must be between 1 and 1000"),
      Check(absl::GetFlag(FLAGS_backend_wait) > absl::ZeroDuration(),
            "backend_wait must be positive"),
      Check(absl::GetFlag(FLAGS_shutdown_grace) >= absl::ZeroDuration(),
            "shutdown_grace must not be negative"),
      Check(absl::GetFlag(FLAGS_operation_timeout) > absl::ZeroDuration(),
            "operation_timeout must be positive"),
      Check(absl::GetFlag(FLAGS_call_timeout) > absl::ZeroDuration(),
            "call_timeout must be positive"),
      Check(absl::GetFlag(FLAGS_heartbeat_interval) >= absl::Milliseconds(100),
            "heartbeat_interval must be at least 100ms"),
      // Election writes (a 64 KiB value, names, the ACL) must always fit.
      Check(absl::GetFlag(FLAGS_zk_max_request_bytes) >= (128 << 10) &&
                absl::GetFlag(FLAGS_zk_max_request_bytes) <= (1 << 30),
            "zk_max_request_bytes must be between 131072 and 1073741824 "
            "(and match the ensemble's jute.maxbuffer)"),
      // Whether it fits with its request is checked once the ACL is known.
      Check(absl::GetFlag(FLAGS_max_config_value_bytes) > 0 &&
                absl::GetFlag(FLAGS_max_config_value_bytes) <
                    absl::GetFlag(FLAGS_zk_max_request_bytes),
            "max_config_value_bytes must be positive and below "
            "zk_max_request_bytes"),
      Check(absl::GetFlag(FLAGS_max_message_bytes) >=
                    absl::GetFlag(FLAGS_max_config_value_bytes) + 4096 &&
                absl::GetFlag(FLAGS_max_message_bytes) <= (64 << 20),
            "max_message_bytes must hold a config value plus its request "
            "(max_config_value_bytes + 4096) and be at most 64 MiB"),
      Check(absl::GetFlag(FLAGS_max_watches) > 0,
            "max_watches must be positive"),
      Check(absl::GetFlag(FLAGS_max_txn_ops) > 0,
            "max_txn_ops must be positive"),
      Check(absl::GetFlag(FLAGS_max_watches_per_client) > 0,
            "max_watches_per_client must be positive"),
      Check(absl::GetFlag(FLAGS_max_candidates) > 0,
            "max_candidates must be positive"),
      Check(absl::GetFlag(FLAGS_max_candidates_per_client) > 0,
            "max_candidates_per_client must be positive"),
      Check(absl::GetFlag(FLAGS_max_observers) > 0,
            "max_observers must be positive"),
      Check(absl::GetFlag(FLAGS_max_observers_per_client) > 0,
            "max_observers_per_client must be positive"),
      Check(absl::GetFlag(FLAGS_max_concurrent_streams) > 0,
            "max_concurrent_streams must be positive"),
      Check(absl::GetFlag(FLAGS_max_streams) > 0,
            "max_streams must be positive"),
      Check(absl::GetFlag(FLAGS_max_streams_per_client) > 0,
            "max_streams_per_client must be positive"),
      Check(absl::GetFlag(FLAGS_worker_threads) > 0 &&
                absl::GetFlag(FLAGS_worker_threads) <= 256,
            "worker_threads must be between 1 and 256"),
      Check(absl::GetFlag(FLAGS_max_payload_bytes) > 0 &&
                absl::GetFlag(FLAGS_max_payload_bytes) +
                        absl::GetFlag(FLAGS_max_header_bytes) + 4096 <=
                    absl::GetFlag(FLAGS_max_message_bytes),
            "max_payload_bytes must be positive, and payload plus headers "
            "plus 4096 must fit in max_message_bytes"),
      // A delay queue's x-message-ttl (up to 1.1 x the delay) and x-expires
      // (2 x that + 10 min) must fit RabbitMQ's 2^32 - 1 ms (49.7 days).
      Check(absl::GetFlag(FLAGS_max_retry_delay) > absl::ZeroDuration() &&
                absl::GetFlag(FLAGS_max_retry_delay) <= absl::Hours(24 * 20),
            "max_retry_delay must be positive and at most 20 days (a delay "
            "queue's "
            "expiry, about 2.2 x the delay, must fit RabbitMQ's 49 days)"),
      // A delay queue's x-message-ttl (up to 1.1 x the delay) and x-expires
      // (2 x that + 10 min) must fit RabbitMQ's 2^32 - 1 ms (49.7 days).
      Check(absl::GetFlag(FLAGS_max_publish_delay) > absl::ZeroDuration() &&
                absl::GetFlag(FLAGS_max_publish_delay) <= absl::Hours(24 * 20),
            "max_publish_delay must be positive and at most 20 days (a delay "
            "queue's "
            "expiry, about 2.2 x the delay, must fit RabbitMQ's 49 days)"),
      Check(absl::GetFlag(FLAGS_max_header_bytes) >= 0,
            "max_header_bytes must not be negative"),
      Check(absl::GetFlag(FLAGS_publish_window) > 0 &&
                absl::GetFlag(FLAGS_publish_window) <= 100000,
            "publish_window must be between 1 and 100000"),
      Check(absl::GetFlag(FLAGS_max_in_flight_cap) > 0 &&
                absl::GetFlag(FLAGS_max_in_flight_cap) <= 65535,
            "max_in_flight_cap must be between 1 and 65535 (the AMQP "
            "prefetch limit)"),
      Check(absl::GetFlag(FLAGS_default_max_in_flight) > 0 &&
                absl::GetFlag(FLAGS_default_max_in_flight) <=
                    absl::GetFlag(FLAGS_max_in_flight_cap),
            "default_max_in_flight must be between 1 and max_in_flight_cap"),
      Check(!absl::GetFlag(FLAGS_config_change_exchange).empty() &&
                absl::GetFlag(FLAGS_config_change_exchange).size() <= 255,
            "config_change_exchange must be 1 to 255 bytes"),
      Check(absl::GetFlag(FLAGS_metrics_listen).empty() ||
                absl::StrContains(absl::GetFlag(FLAGS_metrics_listen), ':'),
            "metrics_listen must be host:port, like 127.0.0.1:9090"),
      // Like a plaintext gRPC port, /metrics has no authentication or TLS:
      // it leaves loopback only when the operator says so.
      Check(absl::GetFlag(FLAGS_metrics_listen).empty() ||
                absl::GetFlag(FLAGS_metrics_allow_remote) ||
                metrics::IsLoopbackAddress(absl::GetFlag(FLAGS_metrics_listen)),
            absl::StrCat("metrics_listen ", absl::GetFlag(FLAGS_metrics_listen),
                         " is not a loopback address, and /metrics has no "
                         "authentication or TLS: set metrics_allow_remote="
                         "true to serve it there (on a network where only "
                         "your scrapers reach it)")),
      Check(absl::GetFlag(FLAGS_auth_reload_interval) >= absl::ZeroDuration(),
            "auth_reload_interval must not be negative"),
      Check(absl::GetFlag(FLAGS_max_connections) >= 0,
            "max_connections must not be negative"),
      Check(absl::GetFlag(FLAGS_max_connections_per_peer) >= 0,
            "max_connections_per_peer must not be negative"),
      Check(absl::GetFlag(FLAGS_handshake_timeout) >= absl::Milliseconds(100) &&
                absl::GetFlag(FLAGS_handshake_timeout) <= absl::Minutes(10),
            "handshake_timeout must be between 100ms and 10m"),
      Check(absl::GetFlag(FLAGS_keepalive_time) >= absl::Seconds(1),
            "keepalive_time must be at least 1s"),
      Check(absl::GetFlag(FLAGS_keepalive_timeout) >= absl::Seconds(1),
            "keepalive_timeout must be at least 1s"),
      Check(absl::GetFlag(FLAGS_max_health_watches) > 0,
            "max_health_watches must be positive"),
      Check(absl::GetFlag(FLAGS_max_health_watches_per_client) > 0,
            "max_health_watches_per_client must be positive"),
  };
  for (const absl::Status& s : checks) {
    if (!s.ok()) return s;
  }

  // Checked: now each component's struct, once.
  Options o;
  ServingOptions& serving = o.serving;
  serving.listener.address = absl::GetFlag(FLAGS_listen);
  serving.listener.max_connections = Size(absl::GetFlag(FLAGS_max_connections));
  serving.listener.max_connections_per_peer =
      Size(absl::GetFlag(FLAGS_max_connections_per_peer));
  serving.allow_insecure_listen = absl::GetFlag(FLAGS_allow_insecure_listen);
  serving.tls.cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  serving.tls.key_file = absl::GetFlag(FLAGS_tls_key_file);
  serving.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca_file);
  serving.tls.client_auth = client_auth == "require"   ? ClientAuth::kRequire
                            : client_auth == "request" ? ClientAuth::kRequest
                                                       : ClientAuth::kNone;
  serving.tls.reload_interval = absl::GetFlag(FLAGS_tls_reload_interval);
  serving.handshake_timeout = absl::GetFlag(FLAGS_handshake_timeout);
  serving.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  serving.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  serving.max_concurrent_streams =
      Size(absl::GetFlag(FLAGS_max_concurrent_streams));
  serving.max_message_bytes = Size(absl::GetFlag(FLAGS_max_message_bytes));

  o.zk.connect = absl::GetFlag(FLAGS_zk_connect);
  o.zk.session_timeout = absl::GetFlag(FLAGS_zk_session_timeout);
  o.zk.max_request_bytes = Size(absl::GetFlag(FLAGS_zk_max_request_bytes));
  o.zk_auth_file = absl::GetFlag(FLAGS_zk_auth_file);
  o.zk_acl_world_read = absl::GetFlag(FLAGS_zk_acl_world_read);
  o.root = absl::GetFlag(FLAGS_root);
  o.amqp.urls = absl::GetFlag(FLAGS_amqp_urls);
  o.amqp.ca_file = absl::GetFlag(FLAGS_amqp_ca_file);
  o.amqp.cert_file = absl::GetFlag(FLAGS_amqp_cert_file);
  o.amqp.key_file = absl::GetFlag(FLAGS_amqp_key_file);
  o.amqp.heartbeat = absl::GetFlag(FLAGS_amqp_heartbeat);
  o.amqp_pool.max_connections = Size(absl::GetFlag(FLAGS_amqp_max_connections));
  o.backend_wait = absl::GetFlag(FLAGS_backend_wait);

  o.auth.tokens_file = absl::GetFlag(FLAGS_auth_tokens_file);
  o.auth.policy_file = absl::GetFlag(FLAGS_auth_policy_file);
  o.auth.reload_interval = absl::GetFlag(FLAGS_auth_reload_interval);

  o.config.max_value_bytes = Size(absl::GetFlag(FLAGS_max_config_value_bytes));
  o.config.max_response_bytes =
      config::ResponseBudget(Size(absl::GetFlag(FLAGS_max_message_bytes)));
  o.config.operation_timeout = absl::GetFlag(FLAGS_operation_timeout);
  o.config.default_heartbeat = absl::GetFlag(FLAGS_heartbeat_interval);
  o.config.max_watches = Size(absl::GetFlag(FLAGS_max_watches));
  o.config.max_txn_ops = Size(absl::GetFlag(FLAGS_max_txn_ops));
  o.config.session_timeout = absl::GetFlag(FLAGS_zk_session_timeout);
  o.config.max_watches_per_client =
      Size(absl::GetFlag(FLAGS_max_watches_per_client));

  o.messaging.max_payload_bytes = Size(absl::GetFlag(FLAGS_max_payload_bytes));
  o.messaging.max_header_bytes = Size(absl::GetFlag(FLAGS_max_header_bytes));
  o.messaging.operation_timeout = absl::GetFlag(FLAGS_operation_timeout);
  o.messaging.call_timeout = absl::GetFlag(FLAGS_call_timeout);
  o.messaging.publish_window =
      static_cast<uint32_t>(absl::GetFlag(FLAGS_publish_window));
  o.messaging.default_max_in_flight =
      static_cast<uint32_t>(absl::GetFlag(FLAGS_default_max_in_flight));
  o.messaging.max_in_flight_cap =
      static_cast<uint32_t>(absl::GetFlag(FLAGS_max_in_flight_cap));
  o.messaging.default_heartbeat = absl::GetFlag(FLAGS_heartbeat_interval);
  o.messaging.max_retry_delay = absl::GetFlag(FLAGS_max_retry_delay);
  o.messaging.max_publish_delay = absl::GetFlag(FLAGS_max_publish_delay);

  o.election.session_timeout = absl::GetFlag(FLAGS_zk_session_timeout);
  o.election.operation_timeout = absl::GetFlag(FLAGS_operation_timeout);
  o.election.max_candidates = Size(absl::GetFlag(FLAGS_max_candidates));
  o.election.max_candidates_per_client =
      Size(absl::GetFlag(FLAGS_max_candidates_per_client));
  o.election.max_observers = Size(absl::GetFlag(FLAGS_max_observers));
  o.election.max_observers_per_client =
      Size(absl::GetFlag(FLAGS_max_observers_per_client));

  o.lock.session_timeout = absl::GetFlag(FLAGS_zk_session_timeout);
  o.lock.operation_timeout = absl::GetFlag(FLAGS_operation_timeout);

  o.health.max_watches = Size(absl::GetFlag(FLAGS_max_health_watches));
  o.health.max_watches_per_client =
      Size(absl::GetFlag(FLAGS_max_health_watches_per_client));
  o.max_streams = Size(absl::GetFlag(FLAGS_max_streams));
  o.max_streams_per_client = Size(absl::GetFlag(FLAGS_max_streams_per_client));
  o.worker_threads = Size(absl::GetFlag(FLAGS_worker_threads));
  o.publish_config_changes = absl::GetFlag(FLAGS_publish_config_changes);
  o.config_change_exchange = absl::GetFlag(FLAGS_config_change_exchange);

  o.log_level = absl::GetFlag(FLAGS_log_level);
  o.log_json = absl::GetFlag(FLAGS_log_json);
  o.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  o.metrics_allow_remote = absl::GetFlag(FLAGS_metrics_allow_remote);
  o.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  return o;
}

}  // namespace warren::daemon
