// gRPC server metrics with go-grpc-prometheus's names, labels and buckets,
// so that existing dashboards and alerts for Go gRPC servers work on Warren:
//
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//   grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}
//   (histogram)
//
// grpc_type is unary, client_stream, server_stream or bidi_stream; grpc_code
// is the Go name of the status code (OK, NotFound, Unavailable, ...).
//
// They are counted by a server interceptor (InterceptorFactory, for
// ServerBuilder::experimental().SetInterceptorCreators): a call starts when
// gRPC creates its interceptor, it is handled when the server sends its
// status (PRE_SEND_STATUS), a message is received when the handler gets it
// (POST_RECV_MESSAGE with a message) and sent when the handler hands it to
// gRPC (PRE_SEND_MESSAGE). So every count is in place before the client can
// see the effect of the call. A call the client cancelled is handled with
// grpc_code="Canceled" whatever status the handler sends afterwards.
//
// Only methods registered in advance (InitializeService, InitializeMethod)
// are counted: their series start at zero, as go-grpc-prometheus's
// InitializeMetrics does, so that rate() sees the first call; and a client
// that calls made-up method names cannot make up label values.
//
// Threading: thread-safe. Registration happens before the server starts; the
// interceptors only read the method table and bump prometheus-cpp's atomic
// counters.
#pragma once

#include <array>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/server_interceptor.h"
#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/common/mutex.h"

namespace google::protobuf {
class ServiceDescriptor;
}  // namespace google::protobuf

namespace warren::metrics {

using RpcType = grpc::experimental::ServerRpcInfo::Type;

// "unary", "client_stream", "server_stream" or "bidi_stream".
const char* GrpcTypeName(RpcType type);
// The Go name of a status code ("OK", "NotFound", ...); "Unknown" for a
// value outside the 17 canonical codes.
const char* GrpcCodeName(grpc::StatusCode code);
// go-grpc-prometheus's default buckets for grpc_server_handling_seconds.
const prometheus::Histogram::BucketBoundaries& HandlingSecondsBuckets();

class GrpcServerMetrics {
 public:
  // The series of one method.
  struct Method {
    prometheus::Counter* started;
    prometheus::Counter* received;
    prometheus::Counter* sent;
    prometheus::Histogram* seconds;
    std::array<prometheus::Counter*, 17> handled;  // by status code
  };

  // Adds the five families to `registry`, which must outlive this.
  explicit GrpcServerMetrics(prometheus::Registry& registry);
  GrpcServerMetrics(const GrpcServerMetrics&) = delete;
  GrpcServerMetrics& operator=(const GrpcServerMetrics&) = delete;

  // Registers `full_method` ("/package.Service/Method") with zero series.
  void InitializeMethod(absl::string_view full_method, RpcType type);
  // Registers every method of a protobuf service.
  void InitializeService(const google::protobuf::ServiceDescriptor& service);
  // The same by name ("warren.v1.ConfigService"), from the generated
  // descriptor pool; false when the service is not linked in.
  bool InitializeService(absl::string_view full_name);

  // The registered method, or nullptr.
  const Method* Find(absl::string_view full_method) const;

  // A factory of per-call interceptors that count into this; it must not
  // outlive this object (the server that owns it must be destroyed first).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
  InterceptorFactory();

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& sent_;
  prometheus::Family<prometheus::Histogram>& seconds_;

  mutable warren::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace warren::metrics
