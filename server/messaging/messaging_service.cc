#include "server/messaging/messaging_service.h"

#include <string>

#include "server/common/rejecting_reactors.h"

namespace warren::messaging {
namespace {

namespace v1 = ::warren::v1;

grpc::Status NotYet(const std::string& method) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "warren.v1.MessagingService/" + method +
                          " is not implemented by this server version yet");
}

}  // namespace

grpc::ServerUnaryReactor* MessagingServiceImpl::Publish(
    grpc::CallbackServerContext* context, const v1::PublishRequest*,
    v1::PublishResponse*) {
  auto* reactor = context->DefaultReactor();
  reactor->Finish(NotYet("Publish"));
  return reactor;
}

grpc::ServerBidiReactor<v1::PublishStreamRequest, v1::PublishStreamResponse>*
MessagingServiceImpl::PublishStream(grpc::CallbackServerContext*) {
  return new RejectingBidiReactor<v1::PublishStreamRequest,
                                  v1::PublishStreamResponse>(
      NotYet("PublishStream"));
}

grpc::ServerBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>*
MessagingServiceImpl::Subscribe(grpc::CallbackServerContext*) {
  return new RejectingBidiReactor<v1::SubscribeRequest, v1::SubscribeResponse>(
      NotYet("Subscribe"));
}

}  // namespace warren::messaging
