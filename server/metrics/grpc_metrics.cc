#include "server/metrics/grpc_metrics.h"

#include <atomic>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/interceptor.h"

namespace warren::metrics {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr const char* kCodeNames[17] = {"OK",
                                        "Canceled",
                                        "Unknown",
                                        "InvalidArgument",
                                        "DeadlineExceeded",
                                        "NotFound",
                                        "AlreadyExists",
                                        "PermissionDenied",
                                        "ResourceExhausted",
                                        "FailedPrecondition",
                                        "Aborted",
                                        "OutOfRange",
                                        "Unimplemented",
                                        "Internal",
                                        "Unavailable",
                                        "DataLoss",
                                        "Unauthenticated"};

size_t CodeIndex(grpc::StatusCode code) {
  const int value = static_cast<int>(code);
  return value >= 0 && value < 17 ? static_cast<size_t>(value)
                                  : static_cast<size_t>(grpc::UNKNOWN);
}

// One call's view: created by gRPC when the call starts, destroyed when it
// is over. Hooks of one call may run on several threads at once (a bidi
// stream reads and writes concurrently); the counters are atomic.
class MetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  MetricsInterceptor(const GrpcServerMetrics::Method& method,
                     grpc::experimental::ServerRpcInfo* info)
      : method_(method), info_(info), start_(std::chrono::steady_clock::now()) {
    method_.started->Increment();
  }

  ~MetricsInterceptor() override {
    // A call that ends without a status from the server (the client went
    // away and nothing finished it) still counts as handled, as it would in
    // Go where every handler returns.
    if (!handled_.load()) Handle(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* batch) override {
    if (batch->QueryInterceptionHookPoint(
            InterceptionHookPoints::POST_RECV_MESSAGE) &&
        batch->GetRecvMessage() != nullptr) {
      // nullptr: the client half-closed, no message arrived.
      method_.received->Increment();
    }
    if (batch->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      method_.sent->Increment();
    }
    if (batch->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::StatusCode code = batch->GetSendStatus().error_code();
      // The client cancelled: that is what it saw, whatever the handler
      // sends (a stream whose read failed with the cancellation may well
      // finish with OK).
      grpc::ServerContextBase* context = info_->server_context();
      if (context != nullptr && context->IsCancelled()) {
        code = grpc::StatusCode::CANCELLED;
      }
      Handle(code);
    }
    batch->Proceed();
  }

 private:
  void Handle(grpc::StatusCode code) {
    if (handled_.exchange(true)) return;
    method_.handled[CodeIndex(code)]->Increment();
    method_.seconds->Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
            .count());
  }

  const GrpcServerMetrics::Method& method_;
  grpc::experimental::ServerRpcInfo* const info_;  // owns this interceptor
  const std::chrono::steady_clock::time_point start_;
  std::atomic<bool> handled_{false};
};

class MetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit MetricsInterceptorFactory(const GrpcServerMetrics& metrics)
      : metrics_(metrics) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (info->method() == nullptr) return nullptr;
    const GrpcServerMetrics::Method* method = metrics_.Find(info->method());
    // Not registered: not counted (see the header).
    return method == nullptr ? nullptr : new MetricsInterceptor(*method, info);
  }

 private:
  const GrpcServerMetrics& metrics_;
};

}  // namespace

const char* GrpcTypeName(RpcType type) {
  switch (type) {
    case RpcType::UNARY:
      return "unary";
    case RpcType::CLIENT_STREAMING:
      return "client_stream";
    case RpcType::SERVER_STREAMING:
      return "server_stream";
    case RpcType::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unary";
}

const char* GrpcCodeName(grpc::StatusCode code) {
  return kCodeNames[CodeIndex(code)];
}

const prometheus::Histogram::BucketBoundaries& HandlingSecondsBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
  return *buckets;
}

GrpcServerMetrics::GrpcServerMetrics(prometheus::Registry& registry)
    : started_(prometheus::BuildCounter()
                   .Name("grpc_server_started_total")
                   .Help("Total number of RPCs started on the server.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("Total number of RPCs completed on the server, "
                         "regardless of success or failure.")
                   .Register(registry)),
      received_(prometheus::BuildCounter()
                    .Name("grpc_server_msg_received_total")
                    .Help("Total number of RPC stream messages received on "
                          "the server.")
                    .Register(registry)),
      sent_(prometheus::BuildCounter()
                .Name("grpc_server_msg_sent_total")
                .Help("Total number of gRPC stream messages sent by the "
                      "server.")
                .Register(registry)),
      seconds_(prometheus::BuildHistogram()
                   .Name("grpc_server_handling_seconds")
                   .Help("Histogram of response latency (seconds) of gRPC "
                         "that had been application-level handled by the "
                         "server.")
                   .Register(registry)) {}

void GrpcServerMetrics::InitializeMethod(absl::string_view full_method,
                                         RpcType type) {
  // "/package.Service/Method"
  const absl::string_view path = absl::StripPrefix(full_method, "/");
  const size_t slash = path.rfind('/');
  const std::string service(slash == absl::string_view::npos
                                ? absl::string_view("unknown")
                                : path.substr(0, slash));
  const std::string name(
      slash == absl::string_view::npos ? path : path.substr(slash + 1));
  const prometheus::Labels labels = {{"grpc_type", GrpcTypeName(type)},
                                     {"grpc_service", service},
                                     {"grpc_method", name}};
  auto method = std::make_unique<Method>();
  method->started = &started_.Add(labels);
  method->received = &received_.Add(labels);
  method->sent = &sent_.Add(labels);
  method->seconds = &seconds_.Add(labels, HandlingSecondsBuckets());
  for (size_t code = 0; code < method->handled.size(); ++code) {
    prometheus::Labels with_code = labels;
    with_code["grpc_code"] = kCodeNames[code];
    method->handled[code] = &handled_.Add(with_code);
  }
  warren::MutexLock lock(&mu_);
  // A second registration keeps the first: interceptors may hold it.
  methods_.try_emplace(std::string(full_method), std::move(method));
}

void GrpcServerMetrics::InitializeService(
    const google::protobuf::ServiceDescriptor& service) {
  for (int i = 0; i < service.method_count(); ++i) {
    const google::protobuf::MethodDescriptor& m = *service.method(i);
    RpcType type = RpcType::UNARY;
    if (m.client_streaming() && m.server_streaming()) {
      type = RpcType::BIDI_STREAMING;
    } else if (m.client_streaming()) {
      type = RpcType::CLIENT_STREAMING;
    } else if (m.server_streaming()) {
      type = RpcType::SERVER_STREAMING;
    }
    InitializeMethod(absl::StrCat("/", service.full_name(), "/", m.name()),
                     type);
  }
}

bool GrpcServerMetrics::InitializeService(absl::string_view full_name) {
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          std::string(full_name));
  if (service == nullptr) return false;
  InitializeService(*service);
  return true;
}

const GrpcServerMetrics::Method* GrpcServerMetrics::Find(
    absl::string_view full_method) const {
  warren::ReaderMutexLock lock(&mu_);
  auto it = methods_.find(full_method);
  return it == methods_.end() ? nullptr : it->second.get();
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
GrpcServerMetrics::InterceptorFactory() {
  return std::make_unique<MetricsInterceptorFactory>(*this);
}

}  // namespace warren::metrics
