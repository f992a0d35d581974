// warren.v1.ConfigService over ZooKeeper: validation and status codes at the
// edge, ConfigStore for the multi-step work (on the worker pool, so no gRPC
// thread waits on ZooKeeper), the WatchCache for WatchConfig and for cached
// reads of watched keys.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/auth/authorizer.h"
#include "server/common/client_quota.h"
#include "server/common/stream_registry.h"
#include "server/common/timer_queue.h"
#include "server/common/worker_pool.h"
#include "server/config/config_limits.h"
#include "server/config/config_store.h"
#include "server/config/held_keys.h"
#include "server/config/watch_cache.h"
#include "server/fence/fence_resolver.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::config {

struct ConfigServiceOptions {
  size_t max_value_bytes = kDefaultMaxValueBytes;
  // The most checks and ops one Txn may hold.
  size_t max_txn_ops = 100;
  // The most one ListConfig page or WatchConfig response holds
  // (config_limits.h, ResponseBudget of max_message_bytes).
  size_t max_response_bytes = ResponseBudget(4 << 20);
  // The longest a backend operation may take when the call has no earlier
  // deadline.
  absl::Duration operation_timeout = absl::Seconds(10);
  absl::Duration default_heartbeat = absl::Seconds(30);
  // The ZooKeeper session timeout asked for: HoldKey's lease cap until the
  // ensemble's negotiated one is known.
  absl::Duration session_timeout = absl::Seconds(10);
  absl::Duration min_heartbeat = absl::Milliseconds(100);
  // WatchConfig streams open at once over all clients, and per client
  // (client_quota.h: the principal, or the peer's address); 0: no limit.
  size_t max_watches = 10000;
  size_t max_watches_per_client = 10000;
  // Called after every successful write or delete through this service
  // (e.g. to announce it on RabbitMQ); must not block.
  std::function<void(Change::Type, const CachedEntry&)> on_change;
  // Checks every call (config_read, config_write); null: auth off.
  const auth::Authorizer* authorizer = nullptr;
};

// The checks at the edge of each RPC, before any backend work:
// INVALID_ARGUMENT naming the field. (GetConfig's is ValidateName of its key;
// WatchConfig's limit, max_watches, is the service's.)
// `field_prefix` names the request inside a larger one (e.g. "ops[2].put.").
absl::Status ValidatePut(const warren::v1::PutConfigRequest& request,
                         const ConfigServiceOptions& options,
                         absl::string_view field_prefix = "");
absl::Status ValidateDelete(const warren::v1::DeleteConfigRequest& request,
                            absl::string_view field_prefix = "");
// The value size limit (PutConfig's, HoldKey's).
absl::Status ValidateValueSize(absl::string_view value,
                               const ConfigServiceOptions& options,
                               absl::string_view field);
// max_txn_ops, at least one op, each check and op, and each key written at
// most once. (The fence is validated by the handler, fence_resolver.h.)
absl::Status ValidateTxn(const warren::v1::TxnRequest& request,
                         const ConfigServiceOptions& options);
// Answers the key the page starts after: the one in page_token, empty for
// the first page.
absl::StatusOr<std::string> ValidateList(
    const warren::v1::ListConfigRequest& request);
absl::Status ValidateWatch(const warren::v1::WatchConfigRequest& request);
// The page_token of a listing page whose last key is `last_key`.
std::string MakePageToken(const std::string& last_key);

class ConfigServiceImpl final
    : public warren::v1::ConfigService::CallbackService {
 public:
  ConfigServiceImpl(ConfigStore& store, WatchCache& cache,
                    fence::FenceResolver& fences, WorkerPool& workers,
                    TimerQueue& timers, StreamRegistry& streams,
                    ConfigServiceOptions options);

  grpc::ServerUnaryReactor* GetConfig(
      grpc::CallbackServerContext* context,
      const warren::v1::GetConfigRequest* request,
      warren::v1::GetConfigResponse* response) override;
  grpc::ServerUnaryReactor* PutConfig(
      grpc::CallbackServerContext* context,
      const warren::v1::PutConfigRequest* request,
      warren::v1::PutConfigResponse* response) override;
  grpc::ServerUnaryReactor* DeleteConfig(
      grpc::CallbackServerContext* context,
      const warren::v1::DeleteConfigRequest* request,
      warren::v1::DeleteConfigResponse* response) override;
  grpc::ServerUnaryReactor* ListConfig(
      grpc::CallbackServerContext* context,
      const warren::v1::ListConfigRequest* request,
      warren::v1::ListConfigResponse* response) override;
  grpc::ServerWriteReactor<warren::v1::WatchConfigResponse>* WatchConfig(
      grpc::CallbackServerContext* context,
      const warren::v1::WatchConfigRequest* request) override;
  grpc::ServerUnaryReactor* Txn(grpc::CallbackServerContext* context,
                                const warren::v1::TxnRequest* request,
                                warren::v1::TxnResponse* response) override;
  grpc::ServerBidiReactor<warren::v1::HoldKeyRequest,
                          warren::v1::HoldKeyResponse>*
  HoldKey(grpc::CallbackServerContext* context) override;

  // HoldKey streams open on this server (warren_held_keys).
  size_t held_keys() const { return held_keys_.load(); }
  // Draining: waits until every HoldKey stream's key is deleted (or given
  // up), at most until `deadline`; false if some are left.
  bool AwaitHeldKeysReleased(absl::Time deadline) {
    return held_key_streams_->AwaitNone(deadline);
  }

  // Counters of cached reads, for metrics and tests.
  uint64_t cache_hits() const { return cache_hits_.load(); }
  uint64_t cache_misses() const { return cache_misses_.load(); }

 private:
  // Runs `work` on the worker pool and finishes the call with its status.
  template <typename Work>
  void Offload(grpc::CallbackServerContext* context,
               grpc::ServerUnaryReactor* reactor, Work work);

  // A fence needs `observe` on its election or `lock` on its lock, besides
  // the write's own grant.
  absl::Status AuthorizeFence(const grpc::CallbackServerContext& context,
                              absl::string_view method,
                              const warren::v1::Fence& fence) const;
  // Every write: with a fence, its check is the multi's first step. Then
  // announces what changed (on_change).
  // Blocks a worker until the fence is resolved (fence_resolver.h).
  absl::StatusOr<fence::HeldFence> ResolveFence(const warren::v1::Fence& fence,
                                                absl::Time deadline);
  absl::StatusOr<WriteOutcome> Write(const warren::v1::Fence* fence,
                                     WriteBatch batch, absl::Time deadline);

  ConfigStore& store_;
  WatchCache& cache_;
  fence::FenceResolver& fences_;
  WorkerPool& workers_;
  TimerQueue& timers_;
  StreamRegistry& streams_;
  const ConfigServiceOptions options_;
  ClientQuota watch_quota_;
  std::atomic<size_t> held_keys_{0};
  // Shared by the HoldKey streams (held_keys.h), which co-own it: a
  // stream's release can outlive this service.
  const std::shared_ptr<HeldKeys> held_key_streams_ =
      std::make_shared<HeldKeys>();
  std::atomic<uint64_t> cache_hits_{0};
  std::atomic<uint64_t> cache_misses_{0};
};

}  // namespace warren::config
