// warren.v1.MessagingService. This server version does not carry messages
// yet: every RPC answers UNIMPLEMENTED with a message saying so, so that
// clients built against the whole v1 API get a clear answer.
#pragma once

#include "warren/v1/messaging.grpc.pb.h"

namespace warren::messaging {

class MessagingServiceImpl final
    : public warren::v1::MessagingService::CallbackService {
 public:
  grpc::ServerUnaryReactor* Publish(
      grpc::CallbackServerContext* context,
      const warren::v1::PublishRequest* request,
      warren::v1::PublishResponse* response) override;
  grpc::ServerBidiReactor<warren::v1::PublishStreamRequest,
                          warren::v1::PublishStreamResponse>*
  PublishStream(grpc::CallbackServerContext* context) override;
  grpc::ServerBidiReactor<warren::v1::SubscribeRequest,
                          warren::v1::SubscribeResponse>*
  Subscribe(grpc::CallbackServerContext* context) override;
};

}  // namespace warren::messaging
