// Registration: a config key that exists while this client lives
// (ConfigService.HoldKey): service registration, discoverable by anyone
// with GetConfig, ListConfig or a ConfigWatcher (the entry's `held` is set).
//
//   warren::client::RegistrationOptions options;
//   options.key = "services/api/" + instance_id;
//   options.value = "10.0.0.7:8080";
//   auto registration = warren::client::Registration::Start(channel, options);
//   // ... serve; ~Registration (or Close()) deletes the key at once.
//
// The key is an ephemeral node of warrend's ZooKeeper session: if this
// client, or its warrend, dies, the key goes (within the session timeout).
// Start() answers once the key is held, or with the error that retrying
// cannot fix: ALREADY_EXISTS when the key exists (a persistent key, or
// someone else's held one), INVALID_ARGUMENT, PERMISSION_DENIED, ...
//
// While it runs: the server sends `held` after each value change and after
// recreating the key on a new ZooKeeper session; `lost` while the key may be
// or is gone (kConnectionSuspended, kSessionExpired); lease heartbeats while
// it is held. held() follows the Elector's lease rule: false from a loss, or
// when no message came within 2 heartbeat intervals (then on_lost
// (kLeaseExpired), and the stream is opened again); the interval is the one
// the server says with each `held` (it may cap the requested one below its
// session timeout), the requested one when it does not say. A stream that
// ends (warrend restarting, ...) is kStreamBroken, and the key is held again
// on a new stream after a backoff, per clients/retry-policy.json's stream
// rule; a fatal code ends the registration (status() says why).
//
// One exception to that rule: ALREADY_EXISTS is fatal only for the first
// hold. Once this Registration has held its key, a re-hold refused with
// ALREADY_EXISTS is retried with the same backoff until the key is held
// again or the Registration is closed (held() false meanwhile, status()
// OK; on_stream_error hears each refusal): after a warrend was killed, the
// key is most likely its own node of that warrend's ZooKeeper session,
// which lives until the session times out. Giving up there would leave the
// service unregistered for good.
//
// Threading: a reader thread and a lease timer. Callbacks run on them, one
// at a time; never call Close() or destroy the Registration from them.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "warren/client/backoff.h"
#include "warren/client/loss_reason.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::client {

struct RegistrationOptions {
  // The key held, e.g. "services/api/instance-7".
  std::string key;
  // Its value; SetValue() changes it.
  std::string value;
  // The lease heartbeat asked of the server; the Elector's default.
  absl::Duration heartbeat_interval = absl::Seconds(1);
  // Delays between attempts to hold the key again.
  BackoffPolicy backoff;
  // How long Start() waits for the key to be held.
  absl::Duration start_timeout = absl::Seconds(30);
  // How long Close() waits for the server to delete the key.
  absl::Duration close_timeout = absl::Seconds(10);

  // The key is held, as it is now (after each value change, and again after
  // a loss).
  std::function<void(const warren::v1::ConfigEntry& entry)> on_held;
  // The key may be, or is, gone.
  std::function<void(LossReason reason, const absl::Status& why)> on_lost;
  // Each stream end other than by Close(), before holding it again (or
  // giving up on a fatal code).
  std::function<void(const absl::Status& status)> on_stream_error;
};

class Registration {
 public:
  static absl::StatusOr<std::unique_ptr<Registration>> Start(
      std::shared_ptr<grpc::Channel> channel, RegistrationOptions options);
  ~Registration();  // Close()
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  // Ends the stream: the server deletes the key at once. Idempotent,
  // blocks until done.
  void Close();

  // A new value: sent now (the server answers `held` with it) and used when
  // the key is held again later.
  absl::Status SetValue(const std::string& value);

  bool held() const;
  // The key as last held (nullopt before the first `held`).
  std::optional<warren::v1::ConfigEntry> entry() const;
  // How often the key was held on a new stream (1 + re-holds).
  int holds() const;
  // OK while registered and after Close(); the error that ended it.
  absl::Status status() const;

 private:
  class Impl;
  explicit Registration(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warren::client
