#include "tests/integration/election_clients.h"

namespace warren::testing {

warren::v1::Campaign MakeCampaign(const std::string& election,
                                  const std::string& id,
                                  const std::string& value) {
  warren::v1::Campaign campaign;
  campaign.set_election(election);
  campaign.set_candidate_id(id);
  campaign.set_value(value.empty() ? id + ":8080" : value);
  return campaign;
}

namespace v1 = ::warren::v1;

TestCandidate::TestCandidate(v1::ElectionService::Stub& stub,
                             const v1::Campaign& campaign) {
  stream_ = stub.Elect(&context_);
  v1::ElectRequest request;
  *request.mutable_campaign() = campaign;
  Send(request);
  reader_ = std::thread([this] {
    v1::ElectResponse response;
    while (stream_->Read(&response)) {
      warren::MutexLock lock(&mu_);
      events_.push_back(ElectEvent{absl::Now(), response});
    }
    grpc::Status status = stream_->Finish();
    warren::MutexLock lock(&mu_);
    status_ = status;
    ended_ = true;
  });
}

TestCandidate::~TestCandidate() {
  context_.TryCancel();
  reader_.join();
}

bool TestCandidate::Send(const v1::ElectRequest& request) {
  warren::MutexLock lock(&write_mu_);
  return stream_->Write(request);
}

bool TestCandidate::Proclaim(const std::string& value) {
  v1::ElectRequest request;
  request.mutable_proclaim()->set_value(value);
  return Send(request);
}

bool TestCandidate::Resign() {
  v1::ElectRequest request;
  request.mutable_resign();
  return Send(request);
}

int TestCandidate::WaitFor(
    const std::function<bool(const v1::ElectResponse&)>& predicate, size_t from,
    absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  int found = -1;
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (size_t i = from; i < events_.size(); ++i) {
      if (predicate(events_[i].response)) {
        found = static_cast<int>(i);
        return true;
      }
    }
    return ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return found;
}

int TestCandidate::WaitElected(size_t from, absl::Duration timeout) {
  return WaitFor([](const v1::ElectResponse& r) { return r.has_elected(); },
                 from, timeout);
}

bool TestCandidate::WaitEnded(grpc::Status* status, absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  auto ended = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; };
  if (!mu_.AwaitWithTimeout(absl::Condition(&ended), timeout)) return false;
  *status = status_;
  return true;
}

std::vector<ElectEvent> TestCandidate::events() {
  warren::MutexLock lock(&mu_);
  return events_;
}

bool TestCandidate::ended() {
  warren::MutexLock lock(&mu_);
  return ended_;
}

TestObserver::TestObserver(v1::ElectionService::Stub& stub,
                           const std::string& election) {
  v1::ObserveLeaderRequest request;
  request.set_election(election);
  reader_ = stub.ObserveLeader(&context_, request);
  thread_ = std::thread([this] {
    v1::ObserveLeaderResponse response;
    while (reader_->Read(&response)) {
      warren::MutexLock lock(&mu_);
      seen_.push_back(response);
    }
    grpc::Status status = reader_->Finish();
    warren::MutexLock lock(&mu_);
    status_ = std::move(status);
    ended_ = true;
  });
}

TestObserver::~TestObserver() {
  context_.TryCancel();
  thread_.join();
}

bool TestObserver::WaitUntil(
    const std::function<bool(const std::vector<v1::ObserveLeaderResponse>&)>&
        pred,
    absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return pred(seen_) || ended_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return pred(seen_);
}

std::vector<v1::ObserveLeaderResponse> TestObserver::seen() {
  warren::MutexLock lock(&mu_);
  return seen_;
}

bool TestObserver::WaitEnded(grpc::Status* status, absl::Duration timeout) {
  warren::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout)) return false;
  *status = status_;
  return true;
}

}  // namespace warren::testing
