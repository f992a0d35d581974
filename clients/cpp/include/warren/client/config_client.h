// ConfigClient: ConfigService's reads and writes with the shared retry rule
// (clients/retry-policy.json): UNAVAILABLE, an attempt's
// DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ... are tried again with the same
// request after the backoff until total_timeout; everything else
// (NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, INVALID_ARGUMENT, ...) is
// answered at once.
//
// A retried write whose first attempt did apply (its answer was lost) is
// applied again when unconditional; a create-only or compare-and-set one
// then fails its own condition (ALREADY_EXISTS, FAILED_PRECONDITION), so
// check the key before treating such a failure after retries as a conflict.
//
// Fences (fence.h) make a write conditional on still leading an election or
// holding a lock, checked atomically with the write: a fence that no longer
// holds is FAILED_PRECONDITION naming it, and nothing is written.
//
// Thread-safe: one ConfigClient may be shared by any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "warren/client/backoff.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::client {

struct ConfigClientOptions {
  BackoffPolicy backoff;
  // The deadline of one attempt.
  absl::Duration attempt_timeout = absl::Seconds(10);
  // No new attempt starts after this much time since the first one.
  absl::Duration total_timeout = absl::Seconds(60);
};

struct PutOptions {
  // Compare-and-set: write only if the key is at this version.
  std::optional<int64_t> expected_version;
  // Write only if the key does not exist (ALREADY_EXISTS otherwise).
  bool create_only = false;
  // Write only while the fence holds.
  std::optional<warren::v1::Fence> fence;
};

struct DeleteOptions {
  // Delete only if the key is at this version.
  std::optional<int64_t> expected_version;
  // The whole subtree; without it, a key with children becomes a namespace
  // node (no longer a key) and its children stay.
  bool recursive = false;
  // Delete only while the fence holds.
  std::optional<warren::v1::Fence> fence;
};

// The pieces of a transaction (ConfigClient::Txn).
warren::v1::TxnCheck CheckVersion(const std::string& key, int64_t version);
warren::v1::TxnCheck CheckExists(const std::string& key, bool exists = true);
warren::v1::TxnOp PutOp(const std::string& key, std::string value,
                        std::optional<int64_t> expected_version = std::nullopt,
                        bool create_only = false);
warren::v1::TxnOp DeleteOp(
    const std::string& key,
    std::optional<int64_t> expected_version = std::nullopt,
    bool recursive = false);

class ConfigClient {
 public:
  explicit ConfigClient(std::shared_ptr<grpc::Channel> channel,
                        ConfigClientOptions options = {});

  // The key (NOT_FOUND when it does not exist, or is only a namespace of
  // other keys). `consistent`: a linearizable read.
  absl::StatusOr<warren::v1::ConfigEntry> Get(const std::string& key,
                                              bool consistent = false) const;
  // Writes the key; answers it as written.
  absl::StatusOr<warren::v1::ConfigEntry> Put(
      const std::string& key, std::string value,
      const PutOptions& options = {}) const;
  absl::Status Delete(const std::string& key,
                      const DeleteOptions& options = {}) const;
  // All or nothing: every check passes and every op applies, or nothing
  // changes and the answer is FAILED_PRECONDITION naming the first failing
  // `checks[i]` or `ops[i]` (also for a failed create-only or version of an
  // op). Answers the new entry of each put, in op order.
  absl::StatusOr<std::vector<warren::v1::ConfigEntry>> Txn(
      std::vector<warren::v1::TxnCheck> checks,
      std::vector<warren::v1::TxnOp> ops,
      const std::optional<warren::v1::Fence>& fence = std::nullopt) const;

 private:
  std::unique_ptr<warren::v1::ConfigService::Stub> stub_;
  const ConfigClientOptions options_;
};

}  // namespace warren::client
