#include "warren/client/config_client.h"

#include <utility>

#include "src/internal.h"

namespace warren::client {

namespace v1 = ::warren::v1;

v1::TxnCheck CheckVersion(const std::string& key, int64_t version) {
  v1::TxnCheck check;
  check.set_key(key);
  check.set_version(version);
  return check;
}

v1::TxnCheck CheckExists(const std::string& key, bool exists) {
  v1::TxnCheck check;
  check.set_key(key);
  check.set_exists(exists);
  return check;
}

v1::TxnOp PutOp(const std::string& key, std::string value,
                std::optional<int64_t> expected_version, bool create_only) {
  v1::TxnOp op;
  v1::PutConfigRequest* put = op.mutable_put();
  put->set_key(key);
  put->set_value(std::move(value));
  if (expected_version.has_value())
    put->set_expected_version(*expected_version);
  put->set_create_only(create_only);
  return op;
}

v1::TxnOp DeleteOp(const std::string& key,
                   std::optional<int64_t> expected_version, bool recursive) {
  v1::TxnOp op;
  v1::DeleteConfigRequest* del = op.mutable_delete_();
  del->set_key(key);
  if (expected_version.has_value())
    del->set_expected_version(*expected_version);
  del->set_recursive(recursive);
  return op;
}

ConfigClient::ConfigClient(std::shared_ptr<grpc::Channel> channel,
                           ConfigClientOptions options)
    : stub_(v1::ConfigService::NewStub(std::move(channel))),
      options_(std::move(options)) {}

namespace {

internal::UnaryRetry RetryOf(const ConfigClientOptions& options) {
  internal::UnaryRetry retry;
  retry.backoff = options.backoff;
  retry.attempt_timeout = options.attempt_timeout;
  retry.total_timeout = options.total_timeout;
  return retry;
}

}  // namespace

absl::StatusOr<v1::ConfigEntry> ConfigClient::Get(const std::string& key,
                                                  bool consistent) const {
  v1::GetConfigRequest request;
  request.set_key(key);
  request.set_consistent(consistent);
  v1::GetConfigResponse response;
  const absl::Status status = internal::CallWithRetry(
      RetryOf(options_), [&](grpc::ClientContext* context) {
        return stub_->GetConfig(context, request, &response);
      });
  if (!status.ok()) return status;
  return response.entry();
}

absl::StatusOr<v1::ConfigEntry> ConfigClient::Put(
    const std::string& key, std::string value,
    const PutOptions& options) const {
  v1::PutConfigRequest request;
  request.set_key(key);
  request.set_value(std::move(value));
  if (options.expected_version.has_value()) {
    request.set_expected_version(*options.expected_version);
  }
  request.set_create_only(options.create_only);
  if (options.fence.has_value()) *request.mutable_fence() = *options.fence;
  v1::PutConfigResponse response;
  const absl::Status status = internal::CallWithRetry(
      RetryOf(options_), [&](grpc::ClientContext* context) {
        return stub_->PutConfig(context, request, &response);
      });
  if (!status.ok()) return status;
  return response.entry();
}

absl::Status ConfigClient::Delete(const std::string& key,
                                  const DeleteOptions& options) const {
  v1::DeleteConfigRequest request;
  request.set_key(key);
  if (options.expected_version.has_value()) {
    request.set_expected_version(*options.expected_version);
  }
  request.set_recursive(options.recursive);
  if (options.fence.has_value()) *request.mutable_fence() = *options.fence;
  v1::DeleteConfigResponse response;
  return internal::CallWithRetry(
      RetryOf(options_), [&](grpc::ClientContext* context) {
        return stub_->DeleteConfig(context, request, &response);
      });
}

absl::StatusOr<std::vector<v1::ConfigEntry>> ConfigClient::Txn(
    std::vector<v1::TxnCheck> checks, std::vector<v1::TxnOp> ops,
    const std::optional<v1::Fence>& fence) const {
  v1::TxnRequest request;
  for (auto& check : checks) *request.add_checks() = std::move(check);
  for (auto& op : ops) *request.add_ops() = std::move(op);
  if (fence.has_value()) *request.mutable_fence() = *fence;
  v1::TxnResponse response;
  const absl::Status status = internal::CallWithRetry(
      RetryOf(options_), [&](grpc::ClientContext* context) {
        return stub_->Txn(context, request, &response);
      });
  if (!status.ok()) return status;
  return std::vector<v1::ConfigEntry>(response.entries().begin(),
                                      response.entries().end());
}

}  // namespace warren::client
