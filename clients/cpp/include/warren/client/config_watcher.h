// ConfigWatcher: keeps the latest value of a config key, or of every key
// under a prefix, through ConfigService.WatchConfig.
//
// Start() returns once the current state is loaded; Get()/Value()/Snapshot()
// then answer from memory. on_change is called for every later change. When
// the stream ends with a code that clients/retry-policy.json says to
// resubscribe on (UNAVAILABLE from a server restart, RESOURCE_EXHAUSTED from
// a watch limit, ...) or is silent for 3 heartbeat intervals, the watcher
// watches again after a jittered backoff (waiting for the channel while it
// reconnects) and reconciles: the new initial state replaces the old one,
// and every difference between them is reported through on_change (with
// `reconciled` set), so a change made while the stream was down is not
// missed. ZooKeeper may coalesce rapid writes: the latest state always
// arrives, not necessarily every intermediate version.
//
// Threading: one reader thread (gRPC's synchronous API; see subscriber.h for
// why). on_change and on_stream_error run on it, one at a time; the getters
// may be called from any thread. Never call Stop() or destroy the watcher
// from its callbacks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "warren/client/backoff.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::client {

struct ConfigChange {
  enum class Type { kPut, kDelete };
  Type type;
  std::string key;
  // The new value (kPut), or the last known one (kDelete).
  std::string value;
  // ZooKeeper's data version (0 after creation, +1 per write).
  int64_t version = 0;
  // Found by comparing the state after a re-watch with the one before.
  bool reconciled = false;
};

struct ConfigWatcherOptions {
  // The key to watch (with `prefix`: the subtree; empty = every key).
  std::string key;
  bool prefix = false;
  // Asked of the server; a stream silent for 3 of these is re-opened.
  absl::Duration heartbeat_interval = absl::Seconds(10);
  BackoffPolicy backoff;
  // How long Start() waits for the initial state.
  absl::Duration start_timeout = absl::Seconds(30);
  std::function<void(const ConfigChange& change)> on_change;
  // Each stream end other than by Stop(): one to resubscribe on before
  // watching again, a fatal one before giving up.
  std::function<void(const absl::Status& status)> on_stream_error;
};

class ConfigWatcher {
 public:
  // Watches and answers once the current state is loaded; an error that
  // retrying cannot fix (INVALID_ARGUMENT for a bad key, ...) or no state
  // within start_timeout (DEADLINE_EXCEEDED) is answered instead.
  static absl::StatusOr<std::unique_ptr<ConfigWatcher>> Start(
      std::shared_ptr<grpc::Channel> channel, ConfigWatcherOptions options);
  ~ConfigWatcher();  // Stop()
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  void Stop();  // idempotent; blocks until the reader thread is gone

  // The value of the watched key (nullopt while it does not exist).
  std::optional<std::string> Value() const;
  // The value of `key` (one of the watched keys).
  std::optional<std::string> Get(const std::string& key) const;
  // Every watched key that exists, by key.
  std::map<std::string, warren::v1::ConfigEntry> Snapshot() const;
  // How often the state was loaded (1 + re-watches).
  int loads() const;
  // OK while watching and after Stop(); the error that ended it otherwise.
  absl::Status status() const;

 private:
  class Impl;
  explicit ConfigWatcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warren::client
