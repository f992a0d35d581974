#include "server/daemon/rejection_log.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/server_context.h"
#include "server/common/log_rate_limit.h"
#include "server/common/logging.h"

namespace warren::daemon {
namespace {

bool IsRejection(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    default:
      return "OTHER";
  }
}

class RejectionLogInterceptor final : public grpc::experimental::Interceptor {
 public:
  RejectionLogInterceptor(grpc::experimental::ServerRpcInfo* info,
                          LogRateLimit& limit)
      : info_(info), limit_(limit) {}

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      int64_t suppressed = 0;
      const grpc::ServerContextBase* context = info_->server_context();
      // Only refusals by Warren's own API are worth a line. gRPC's built-in
      // health and reflection services refuse only requests they cannot
      // parse, and in practice those are calls their clients gave up on
      // (e.g. health checks that timed out while this process was frozen
      // arrive without their request when it resumes); nobody sees the
      // answer. Neither the cancellation nor the deadline is known yet at
      // this point (the deadline travels relative and restarts when the
      // process reads it), so it is the service that decides.
      const bool ours = absl::StartsWith(info_->method(), "/warren.");
      const bool abandoned = context != nullptr && context->IsCancelled();
      if (IsRejection(status.error_code()) && ours && !abandoned) {
        // The message may echo what the client sent: capped (the text log
        // escapes it), and the budget counts bytes as well as lines.
        std::string line = absl::StrCat(
            "rejected ", info_->method(), " from ",
            context != nullptr ? Abbreviated(context->peer(), 100) : "?", ": ",
            CodeName(status.error_code()), ": ",
            Abbreviated(status.error_message(), 2 * kMaxEchoBytes));
        if (limit_.Admit(line.size(), &suppressed)) {
          WARREN_LOG_INFO("{}{}", line, SuppressedNote(suppressed));
        }
      }
    }
    methods->Proceed();
  }

 private:
  grpc::experimental::ServerRpcInfo* const info_;
  LogRateLimit& limit_;
};

class Factory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RejectionLogInterceptor(info, limit_);
  }

 private:
  // One budget for every call: a flood of bad requests costs at most this
  // many lines a second.
  LogRateLimit limit_{kRejectionLinesPerSecond, kRejectionBytesPerSecond,
                      absl::Seconds(1)};
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RejectionLogInterceptorFactory() {
  return std::make_unique<Factory>();
}

}  // namespace warren::daemon
