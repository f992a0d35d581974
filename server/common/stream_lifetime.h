// A stream reactor's life from its handler to gRPC's OnDone, as every
// streaming RPC of the server needs it: the reference that keeps the reactor
// alive until OnDone (gRPC holds only a raw pointer), its place in the
// StreamRegistry (so that shutdown drains it, max_streams counts it and a
// reload can revoke it), and the quota slot it may hold. End(), from
// OnDone, gives all of them back, exactly once, however the stream ended:
// refused at the start, finished, cancelled, drained or revoked.
//
// A member of the reactor it keeps alive. Thread-safe.
//
// A new stream (WatchConfig's WatchReactor is the model) derives from
// EndableStream, holds a StreamLifetime and, if it heartbeats, a
// StreamHeartbeat (stream_heartbeat.h) under its lock; its Start makes it
// with std::make_shared and calls lifetime_.Begin before any backend work;
// its OnCancel calls EndStream(CANCELLED); its OnDone stops the heartbeat,
// lets go of its backend resources, and calls lifetime_.End() last.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"
#include "server/common/client_quota.h"
#include "server/common/grpc_status.h"
#include "server/common/mutex.h"
#include "server/common/stream_registry.h"

namespace warren {

// A stream ended from outside its own protocol ends one way, whoever ends
// it: the server draining (UNAVAILABLE with `drain_message`, which tells the
// client what to do again), a reload revoking it (the status its check
// failed with), the client cancelling (CANCELLED, from the reactor's
// OnCancel), or StreamLifetime::Begin refusing it. All of them call
// EndStream, which the reactor implements: take its lock, finish once.
class EndableStream : public Drainable {
 public:
  void Drain() final {
    EndStream(grpc::Status(grpc::StatusCode::UNAVAILABLE, drain_message_));
  }
  void Revoke(const absl::Status& status) final {
    EndStream(ToGrpcStatus(status));
  }

 protected:
  explicit EndableStream(absl::string_view drain_message)
      : drain_message_(drain_message) {}
  // Finishes the stream with `status` after the write in flight; later
  // calls do nothing. Must not block.
  virtual void EndStream(grpc::Status status) = 0;

 private:
  friend class StreamLifetime;  // ends a stream it refuses

  const std::string drain_message_;
};

class StreamLifetime {
 public:
  // `lease`: the stream's slot of a per-service limit (e.g. max_watches),
  // given back in End().
  explicit StreamLifetime(ClientQuota::Lease lease = {})
      : lease_(std::move(lease)) {}
  StreamLifetime(const StreamLifetime&) = delete;
  StreamLifetime& operator=(const StreamLifetime&) = delete;

  // Keeps `stream` alive until End() and registers it for `client`
  // (StreamRegistry::Add), with `reauthorize` when given. Answers whether
  // it may open; if not, it has been ended with the reason (and its
  // OnDone still calls End()).
  bool Begin(std::shared_ptr<EndableStream> stream, StreamRegistry& registry,
             const std::string& client,
             StreamRegistry::Reauthorizer reauthorize = nullptr);

  // What the stream must still be allowed for, once known (e.g. after a
  // Subscribe's start); nothing when it was not admitted.
  void SetReauthorizer(StreamRegistry::Reauthorizer reauthorize);

  // From OnDone, as its last call: leaves the registry, gives the lease
  // back and drops the reference, which may destroy the reactor (and this
  // with it). Later calls do nothing.
  void End();

 private:
  warren::Mutex mu_;
  std::shared_ptr<Drainable> self_ ABSL_GUARDED_BY(mu_);
  StreamRegistry* registry_ ABSL_GUARDED_BY(mu_) = nullptr;
  StreamRegistry::Id id_ ABSL_GUARDED_BY(mu_) = 0;
  ClientQuota::Lease lease_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren
