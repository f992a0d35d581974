#include "tests/integration/messaging_clients.h"

#include "absl/time/clock.h"

namespace warren::testing {

namespace v1 = ::warren::v1;

TestSubscriber::TestSubscriber(v1::MessagingService::Stub& stub,
                               const v1::SubscribeStart& start) {
  stream_ = stub.Subscribe(&context_);
  v1::SubscribeRequest request;
  *request.mutable_start() = start;
  Send(request);
  reader_ = std::thread([this] {
    v1::SubscribeResponse response;
    while (stream_->Read(&response)) {
      warren::MutexLock lock(&mu_);
      if (response.has_subscribed()) {
        subscribed_ = true;
        queue_ = response.subscribed().queue();
      } else if (response.has_delivery()) {
        deliveries_.push_back(response.delivery());
        arrivals_.push_back(absl::Now());
      }
    }
    grpc::Status status = stream_->Finish();
    warren::MutexLock lock(&mu_);
    status_ = status;
    ended_ = true;
  });
}

TestSubscriber::~TestSubscriber() {
  context_.TryCancel();
  reader_.join();
}

bool TestSubscriber::Send(const v1::SubscribeRequest& request) {
  warren::MutexLock lock(&write_mu_);
  return stream_->Write(request);
}

std::string TestSubscriber::WaitSubscribed(absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return subscribed_ || ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return subscribed_ ? queue_ : "";
}

bool TestSubscriber::WaitDeliveries(size_t n, absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  auto ready = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return deliveries_.size() >= n || ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return deliveries_.size() >= n;
}

bool TestSubscriber::WaitEnded(grpc::Status* status, absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ended), timeout)) return false;
  *status = status_;
  return true;
}

std::vector<v1::Delivery> TestSubscriber::deliveries() {
  warren::MutexLock lock(&mu_);
  return deliveries_;
}

std::vector<absl::Time> TestSubscriber::arrivals() {
  warren::MutexLock lock(&mu_);
  return arrivals_;
}

size_t TestSubscriber::delivery_count() {
  warren::MutexLock lock(&mu_);
  return deliveries_.size();
}

bool TestSubscriber::Ack(const std::vector<uint64_t>& ids) {
  v1::SubscribeRequest request;
  for (uint64_t id : ids) request.mutable_ack()->add_delivery_ids(id);
  return Send(request);
}

bool TestSubscriber::Nack(const std::vector<uint64_t>& ids, bool requeue) {
  v1::SubscribeRequest request;
  for (uint64_t id : ids) request.mutable_nack()->add_delivery_ids(id);
  request.mutable_nack()->set_requeue(requeue);
  return Send(request);
}

class SubscriberSwarm::Stream final
    : public grpc::ClientBidiReactor<v1::SubscribeRequest,
                                     v1::SubscribeResponse> {
 public:
  Stream(v1::MessagingService::Stub& stub, const v1::SubscribeStart& start,
         warren::Mutex& mu)
      : mu_(mu) {
    *request_.mutable_start() = start;
    stub.async()->Subscribe(&context_, this);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }
  void OnWriteDone(bool) override {}
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    {
      warren::MutexLock lock(&mu_);
      if (response_.has_subscribed()) subscribed_ = true;
      if (response_.has_delivery()) ++deliveries_;
    }
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    warren::MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
  }
  void Cancel() { context_.TryCancel(); }

  // Guarded by the swarm's mutex.
  bool subscribed_ = false;
  size_t deliveries_ = 0;
  bool done_ = false;
  grpc::Status status_;

 private:
  warren::Mutex& mu_;
  grpc::ClientContext context_;
  v1::SubscribeRequest request_;
  v1::SubscribeResponse response_;
};

SubscriberSwarm::SubscriberSwarm(v1::MessagingService::Stub& stub,
                                 const v1::SubscribeStart& start,
                                 size_t streams) {
  streams_.reserve(streams);
  for (size_t i = 0; i < streams; ++i) {
    streams_.push_back(std::make_unique<Stream>(stub, start, mu_));
  }
}

SubscriberSwarm::~SubscriberSwarm() {
  CancelAll();
  WaitUntil([](SubscriberSwarm& s) { return s.ended() == s.size(); },
            absl::Seconds(60));
}

size_t SubscriberSwarm::subscribed() {
  warren::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& s : streams_) n += s->subscribed_;
  return n;
}

size_t SubscriberSwarm::with_deliveries(size_t count) {
  warren::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& s : streams_) n += s->deliveries_ >= count;
  return n;
}

size_t SubscriberSwarm::ended() {
  warren::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& s : streams_) n += s->done_;
  return n;
}

std::map<grpc::StatusCode, size_t> SubscriberSwarm::end_codes() {
  warren::MutexLock lock(&mu_);
  std::map<grpc::StatusCode, size_t> codes;
  for (const auto& s : streams_) {
    if (s->done_) ++codes[s->status_.error_code()];
  }
  return codes;
}

std::string SubscriberSwarm::end_message(grpc::StatusCode code) {
  warren::MutexLock lock(&mu_);
  for (const auto& s : streams_) {
    if (s->done_ && s->status_.error_code() == code) {
      return s->status_.error_message();
    }
  }
  return "";
}

bool SubscriberSwarm::WaitUntil(
    const std::function<bool(SubscriberSwarm&)>& condition,
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition(*this)) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

void SubscriberSwarm::CancelAll() {
  for (auto& s : streams_) s->Cancel();
}

std::vector<PublishOutcome> PublishAll(
    v1::MessagingService::Stub& stub, size_t count,
    const std::function<v1::PublishRequest(size_t)>& make, grpc::Status* status,
    const std::function<void(const PublishOutcome&)>& on_response) {
  grpc::ClientContext context;
  auto stream = stub.PublishStream(&context);
  std::vector<PublishOutcome> outcomes;
  std::thread reader([&] {
    v1::PublishStreamResponse response;
    while (stream->Read(&response)) {
      PublishOutcome outcome{response.sequence(), response.message_id(),
                             response.code(), response.error_message()};
      if (on_response) on_response(outcome);
      outcomes.push_back(std::move(outcome));
    }
  });
  for (size_t i = 0; i < count; ++i) {
    v1::PublishStreamRequest request;
    request.set_sequence(i);
    *request.mutable_message() = make(i);
    if (!stream->Write(request)) break;
  }
  stream->WritesDone();
  reader.join();
  *status = stream->Finish();
  return outcomes;
}

}  // namespace warren::testing
