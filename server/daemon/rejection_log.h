// One log line per request the server rejects, whichever service rejected
// it: a server interceptor that looks at every call's status as it is sent.
// Rejections are the codes that say "this request will not be served as
// sent" (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE,
// RESOURCE_EXHAUSTED); authentication and permission refusals are logged by
// the authorizer with the principal, so they are not repeated here. The line
// names the method, the peer, the code and the status message (which names
// fields and keys, never payloads or tokens). At most
// kRejectionLinesPerSecond such lines a second are written; the next one
// written says how many were held back.
//
// Threading: the interceptors run on gRPC's threads and only log.
#pragma once

#include <memory>

#include "grpcpp/support/server_interceptor.h"

namespace warren::daemon {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RejectionLogInterceptorFactory();

}  // namespace warren::daemon
