// The HoldKey stream: a config key that exists while its stream lives (the
// service registration of etcd's leases or Curator's PersistentNode), as an
// ephemeral node of warrend's ZooKeeper session.
//
// The stream's ZooKeeper work runs on the worker pool, one step at a time
// and in order: "reconcile" (make the node match what the client asked:
// create it, or write the latest value, or confirm it after a reconnect)
// and "release" (delete it, at the stream's end). Session events arrive on
// ZooKeeper's callback thread and only queue steps or send `lost`. A release
// that cannot get through (no connection) outlives the stream: it is tried
// again on the next connection, and given up only when the session expires
// (the node went with it). Lease
// heartbeats follow the Elect stream's honesty rule (stream_heartbeat.h):
// each one follows fresh word from the ensemble that the node is still this
// session's.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "server/auth/authorizer.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/config/config_service.h"
#include "server/config/config_store.h"
#include "server/config/held_keys.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::config {

// The first request: `key`, `value` (max_value_bytes) and
// `heartbeat_interval` (not negative); INVALID_ARGUMENT naming the field.
absl::Status ValidateHoldKey(const warren::v1::HoldKeyRequest& first,
                             const ConfigServiceOptions& options);
// A later request of the stream holding `key`: its key empty or the same,
// its value within max_value_bytes.
absl::Status ValidateHoldKeyUpdate(const warren::v1::HoldKeyRequest& request,
                                   const std::string& key,
                                   const ConfigServiceOptions& options);

struct HoldKeyDeps {
  ConfigStore& store;
  WorkerPool& workers;
  TimerQueue& timers;
  StreamRegistry& streams;
  const ConfigServiceOptions& options;
  // Streams holding (or trying to hold) a key now: warren_held_keys.
  std::atomic<size_t>& open_streams;
  std::shared_ptr<HeldKeys> held_keys;
};

grpc::ServerBidiReactor<warren::v1::HoldKeyRequest,
                        warren::v1::HoldKeyResponse>*
StartHoldKey(const HoldKeyDeps& deps, auth::Caller caller,
             const std::string& client);

}  // namespace warren::config
