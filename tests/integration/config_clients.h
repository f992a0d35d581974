// Test-side clients of ConfigService: a WatchConfig stream read on its own
// thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "server/common/mutex.h"
#include "warren/v1/config.grpc.pb.h"

namespace warren::testing {

// Reads responses from a WatchConfig stream on a thread of its own, so that
// the test can wait for a condition on them with a deadline.
class WatchReader {
 public:
  WatchReader(warren::v1::ConfigService::Stub* stub, const std::string& key,
              bool prefix, absl::Duration heartbeat = absl::ZeroDuration()) {
    warren::v1::WatchConfigRequest request;
    request.set_key(key);
    request.set_prefix(prefix);
    if (heartbeat > absl::ZeroDuration()) {
      request.mutable_heartbeat_interval()->set_nanos(
          static_cast<int32_t>(absl::ToInt64Nanoseconds(heartbeat)));
    }
    reader_ = stub->WatchConfig(&context_, request);
    thread_ = std::thread([this] {
      warren::v1::WatchConfigResponse response;
      while (reader_->Read(&response)) {
        warren::MutexLock lock(&mu_);
        responses_.push_back(response);
      }
      grpc::Status status = reader_->Finish();
      warren::MutexLock lock(&mu_);
      status_ = status;
      ended_ = true;
    });
  }
  ~WatchReader() {
    context_.TryCancel();
    thread_.join();
  }
  // Waits until `predicate` holds over the responses so far.
  bool WaitUntil(
      const std::function<
          bool(const std::vector<warren::v1::WatchConfigResponse>&)>& predicate,
      absl::Duration timeout = absl::Seconds(30)) {
    warren::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return predicate(responses_) || ended_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return predicate(responses_);
  }
  // Waits for an event putting `value` on `key`.
  bool WaitForValue(const std::string& key, const std::string& value,
                    absl::Duration timeout = absl::Seconds(30)) {
    return WaitUntil(
        [&](const std::vector<warren::v1::WatchConfigResponse>& responses) {
          for (const auto& r : responses) {
            for (const auto& e : r.events()) {
              if (e.type() == warren::v1::CONFIG_EVENT_TYPE_PUT &&
                  e.entry().key() == key && e.entry().value() == value) {
                return true;
              }
            }
          }
          return false;
        },
        timeout);
  }
  bool WaitEnded(absl::Duration timeout, grpc::Status* status) {
    warren::MutexLock lock(&mu_);
    auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ended), timeout)) return false;
    *status = status_;
    return true;
  }
  std::vector<warren::v1::WatchConfigResponse> responses() {
    warren::MutexLock lock(&mu_);
    return responses_;
  }
  // "PUT key=value@version" / "DELETE key@version" for every event so far.
  std::vector<std::string> Events() { return EventsOf(responses()); }
  static std::vector<std::string> EventsOf(
      const std::vector<warren::v1::WatchConfigResponse>& responses) {
    std::vector<std::string> out;
    for (const auto& r : responses) {
      for (const auto& e : r.events()) {
        out.push_back(e.type() == warren::v1::CONFIG_EVENT_TYPE_PUT
                          ? absl::StrCat("PUT ", e.entry().key(), "=",
                                         e.entry().value(), "@",
                                         e.entry().version())
                          : absl::StrCat("DELETE ", e.entry().key(), "@",
                                         e.entry().version()));
      }
    }
    return out;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<warren::v1::WatchConfigResponse>> reader_;
  std::thread thread_;
  warren::Mutex mu_;
  std::vector<warren::v1::WatchConfigResponse> responses_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace warren::testing
