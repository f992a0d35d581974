#include "tests/cluster/workload.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "warren/v1/config.grpc.pb.h"
#include "warren/v1/election.grpc.pb.h"
#include "warren/v1/messaging.grpc.pb.h"

namespace warren::cluster {
namespace {

void SetDuration(google::protobuf::Duration* out, absl::Duration d) {
  const int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

// The code is in the event already.
std::string Describe(const grpc::Status& status) {
  return status.error_message();
}

// Cancels a call whose answer is overdue: a frozen replica keeps its TCP
// connections open and answers nothing, which a synchronous Read would wait
// for forever.
class Watchdog {
 public:
  Watchdog(grpc::ClientContext* context, absl::Duration timeout)
      : context_(context), timeout_(timeout), thread_([this] { Run(); }) {}
  ~Watchdog() {
    {
      warren::MutexLock lock(&mu_);
      done_ = true;
    }
    thread_.join();
  }
  void Waiting() {
    warren::MutexLock lock(&mu_);
    since_ = absl::Now();
  }
  void Answered() {
    warren::MutexLock lock(&mu_);
    since_ = absl::InfiniteFuture();
  }

 private:
  void Run() {
    warren::MutexLock lock(&mu_);
    while (!done_) {
      if (absl::Now() - since_ > timeout_) {
        context_->TryCancel();
        since_ = absl::InfiniteFuture();
      }
      mu_.AwaitWithTimeout(absl::Condition(&done_), absl::Milliseconds(100));
    }
  }

  grpc::ClientContext* const context_;
  const absl::Duration timeout_;
  warren::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread thread_;
};

std::string ReplicaName(size_t r) { return absl::StrCat("w", r + 1); }

}  // namespace

Workload::Workload(WorkloadOptions options, Recorder* recorder)
    : options_(std::move(options)), recorder_(recorder) {}

Workload::~Workload() { Stop(); }

bool Workload::Track(grpc::ClientContext* context) {
  warren::MutexLock lock(&mu_);
  if (stopping_) return false;
  contexts_.push_back(context);
  return true;
}

void Workload::Untrack(grpc::ClientContext* context) {
  warren::MutexLock lock(&mu_);
  contexts_.erase(std::remove(contexts_.begin(), contexts_.end(), context),
                  contexts_.end());
}

bool Workload::Pause(absl::Duration d) {
  // Pacing and retry backoff, not synchronisation.
  const absl::Time until = absl::Now() + d;
  while (!stopping_ && absl::Now() < until) {
    absl::SleepFor(std::min(absl::Milliseconds(20), until - absl::Now()));
  }
  return !stopping_;
}

bool Workload::Start(absl::Duration timeout) {
  const size_t n = options_.replicas.size();
  for (size_t r = 0; r < n; ++r) {
    subscribers_.push_back(absl::StrCat("sub", r + 1));
  }
  // Each thread has its own copy of its name: the lists grow meanwhile.
  for (size_t r = 0; r < n; ++r) {
    threads_.emplace_back([this, r, a = subscribers_[r]] { Subscriber(a, r); });
  }
  const absl::Time deadline = absl::Now() + timeout;
  for (const auto& s : subscribers_) {
    while (recorder_->LastSuccess(s) == -absl::InfiniteDuration()) {
      // A subscriber counts as subscribed at its `subscribed` answer.
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  for (size_t r = 0; r < n; ++r) {
    publishers_.push_back(absl::StrCat("spub", r + 1));
    publishers_.push_back(absl::StrCat("upub", r + 1));
    watchers_.push_back(absl::StrCat("watch", r + 1));
    candidates_.push_back(absl::StrCat("cand", r + 1));
    threads_.emplace_back(
        [this, r, a = publishers_[2 * r]] { StreamPublisher(a, r); });
    threads_.emplace_back(
        [this, r, a = publishers_[2 * r + 1]] { UnaryPublisher(a, r); });
    threads_.emplace_back([this, r, a = watchers_[r]] { Watcher(a, r); });
    threads_.emplace_back([this, r, a = candidates_[r]] { Candidate(a, r); });
  }
  writer_ = std::thread([this] { Writer("writer"); });
  return true;
}

void Workload::StopWriter() {
  writer_stopping_ = true;
  if (writer_.joinable()) writer_.join();
}

void Workload::Stop() {
  {
    warren::MutexLock lock(&mu_);
    stopping_ = true;
    for (grpc::ClientContext* c : contexts_) c->TryCancel();
  }
  StopWriter();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Workload::StreamPublisher(const std::string& actor, size_t replica) {
  const size_t n = options_.replicas.size();
  size_t r = replica;
  uint64_t next = 0;
  while (!stopping_) {
    grpc::ClientContext context;
    if (!Track(&context)) break;
    auto stub = v1::MessagingService::NewStub(options_.replicas[r]);
    auto stream = stub->PublishStream(&context);
    recorder_->Add(Ev::kStreamOpen, actor, "", 0, 0, ReplicaName(r));
    std::string unanswered;
    {
      Watchdog watchdog(&context, options_.call_timeout);
      for (uint64_t seq = 0; !stopping_; ++seq) {
        const std::string id = absl::StrCat(actor, "-", next++);
        v1::PublishStreamRequest request;
        request.set_sequence(seq);
        v1::PublishRequest* m = request.mutable_message();
        m->set_routing_key(options_.queue);
        m->set_payload(id);
        m->set_message_id(id);
        m->set_mandatory(true);
        unanswered = id;
        watchdog.Waiting();
        if (!stream->Write(request)) break;
        v1::PublishStreamResponse response;
        if (!stream->Read(&response)) break;
        watchdog.Answered();
        unanswered.clear();
        if (response.code() == 0) {
          recorder_->Add(Ev::kPublishOk, actor, id);
        } else {
          recorder_->Add(Ev::kPublishFail, actor, id, response.code(), 0,
                         response.error_message());
        }
        if (!Pause(options_.publish_every)) break;
      }
      watchdog.Waiting();  // Finish too is bounded
      const grpc::Status status = stream->Finish();
      if (!unanswered.empty()) {
        recorder_->Add(Ev::kPublishFail, actor, unanswered, 0, 0,
                       "stream ended before its answer");
      }
      recorder_->Add(Ev::kStreamEnd, actor, "", status.error_code(), 0,
                     Describe(status));
    }
    Untrack(&context);
    r = (r + 1) % n;  // a replica that ended the stream: try the next
    Pause(absl::Milliseconds(200));
  }
}

void Workload::UnaryPublisher(const std::string& actor, size_t replica) {
  const size_t n = options_.replicas.size();
  size_t r = replica;
  uint64_t next = 0;
  std::string id = absl::StrCat(actor, "-", next++);
  while (!stopping_) {
    auto stub = v1::MessagingService::NewStub(options_.replicas[r]);
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + options_.call_timeout));
    if (!Track(&context)) break;
    v1::PublishRequest request;
    request.set_routing_key(options_.queue);
    request.set_payload(id);
    request.set_message_id(id);
    request.set_mandatory(true);
    v1::PublishResponse response;
    const grpc::Status status = stub->Publish(&context, request, &response);
    Untrack(&context);
    if (status.ok()) {
      recorder_->Add(Ev::kPublishOk, actor, id);
      id = absl::StrCat(actor, "-", next++);
      Pause(options_.publish_every);
      continue;
    }
    recorder_->Add(Ev::kPublishFail, actor, id, status.error_code(), 0,
                   Describe(status));
    // Move on only when the replica itself is out of reach; a replica that
    // answers (even with an error) is retried, the same id again.
    const bool unreachable =
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
        (status.error_code() == grpc::StatusCode::UNAVAILABLE &&
         options_.replicas[r]->GetState(false) != GRPC_CHANNEL_READY);
    if (unreachable) r = (r + 1) % n;
    Pause(absl::Milliseconds(100));
  }
}

void Workload::Subscriber(const std::string& actor, size_t replica) {
  const size_t n = options_.replicas.size();
  size_t r = replica;
  while (!stopping_) {
    grpc::ClientContext context;
    if (!Track(&context)) break;
    auto stub = v1::MessagingService::NewStub(options_.replicas[r]);
    auto stream = stub->Subscribe(&context);
    recorder_->Add(Ev::kStreamOpen, actor, "", 0, 0, ReplicaName(r));
    v1::SubscribeRequest start;
    v1::SubscribeStart* s = start.mutable_start();
    s->set_queue(options_.queue);
    s->mutable_queue_options()->set_queue_type(v1::QUEUE_TYPE_QUORUM);
    s->set_max_in_flight(50);
    SetDuration(s->mutable_heartbeat_interval(), options_.stream_heartbeat);
    if (stream->Write(start)) {
      v1::SubscribeResponse response;
      while (stream->Read(&response)) {
        switch (response.response_case()) {
          case v1::SubscribeResponse::kSubscribed:
            recorder_->Add(Ev::kHeartbeat, actor, "", 0, 0, "subscribed");
            break;
          case v1::SubscribeResponse::kDelivery: {
            const auto& d = response.delivery();
            recorder_->Add(Ev::kDelivery, actor, d.message_id(),
                           d.redelivered() ? 1 : 0, d.delivery_count());
            v1::SubscribeRequest ack;
            ack.mutable_ack()->add_delivery_ids(d.delivery_id());
            stream->Write(ack);
            break;
          }
          case v1::SubscribeResponse::kHeartbeat:
            recorder_->Add(Ev::kHeartbeat, actor);
            break;
          default:
            break;
        }
      }
    }
    const grpc::Status status = stream->Finish();
    Untrack(&context);
    recorder_->Add(Ev::kStreamEnd, actor, "", status.error_code(), 0,
                   Describe(status));
    r = (r + 1) % n;
    Pause(absl::Milliseconds(200));
  }
}

void Workload::Watcher(const std::string& actor, size_t replica) {
  auto stub = v1::ConfigService::NewStub(options_.replicas[replica]);
  while (!stopping_) {
    grpc::ClientContext context;
    if (!Track(&context)) break;
    v1::WatchConfigRequest request;
    request.set_key(options_.key);
    SetDuration(request.mutable_heartbeat_interval(),
                options_.stream_heartbeat);
    auto reader = stub->WatchConfig(&context, request);
    recorder_->Add(Ev::kStreamOpen, actor, "", 0, 0, ReplicaName(replica));
    v1::WatchConfigResponse response;
    while (reader->Read(&response)) {
      bool valued = false;
      for (const auto& e : response.events()) {
        if (e.type() == v1::CONFIG_EVENT_TYPE_PUT &&
            e.entry().key() == options_.key) {
          recorder_->Add(Ev::kWatchValue, actor, e.entry().value(),
                         e.entry().version());
          valued = true;
        }
      }
      if (!valued) recorder_->Add(Ev::kHeartbeat, actor);
    }
    const grpc::Status status = reader->Finish();
    Untrack(&context);
    recorder_->Add(Ev::kStreamEnd, actor, "", status.error_code(), 0,
                   Describe(status));
    Pause(absl::Milliseconds(200));
  }
}

void Workload::Candidate(const std::string& actor, size_t replica) {
  auto stub = v1::ElectionService::NewStub(options_.replicas[replica]);
  while (!stopping_) {
    grpc::ClientContext context;
    if (!Track(&context)) break;
    auto stream = stub->Elect(&context);
    recorder_->Add(Ev::kStreamOpen, actor, "", 0, 0, ReplicaName(replica));
    v1::ElectRequest campaign;
    v1::Campaign* c = campaign.mutable_campaign();
    c->set_election(options_.election);
    c->set_candidate_id(actor);
    c->set_value(actor);
    c->set_rejoin_after_expiry(true);
    SetDuration(c->mutable_heartbeat_interval(), options_.lease_heartbeat);
    if (stream->Write(campaign)) {
      v1::ElectResponse response;
      while (stream->Read(&response)) {
        switch (response.event_case()) {
          case v1::ElectResponse::kElected: {
            const auto& e = response.elected();
            absl::Duration interval = options_.lease_heartbeat;
            if (e.has_heartbeat_interval()) {
              const absl::Duration told = FromProto(e.heartbeat_interval());
              if (told > absl::ZeroDuration()) {
                interval = std::min(interval, told);
              }
            }
            recorder_->Add(Ev::kElected, actor, e.leader().candidate_id(),
                           static_cast<int64_t>(e.leader().fencing_token()),
                           absl::ToInt64Milliseconds(interval));
            break;
          }
          case v1::ElectResponse::kFollowing:
            recorder_->Add(Ev::kFollowing, actor,
                           response.following().leader().candidate_id());
            break;
          case v1::ElectResponse::kLost:
            recorder_->Add(Ev::kLost, actor, "", response.lost().reason());
            break;
          case v1::ElectResponse::kHeartbeat:
            recorder_->Add(Ev::kHeartbeat, actor);
            break;
          default:
            break;
        }
      }
    }
    const grpc::Status status = stream->Finish();
    Untrack(&context);
    recorder_->Add(Ev::kStreamEnd, actor, "", status.error_code(), 0,
                   Describe(status));
    Pause(absl::Milliseconds(200));
  }
}

void Workload::Writer(const std::string& actor) {
  const size_t n = options_.replicas.size();
  size_t r = 0;
  uint64_t next = 1;
  while (!stopping_ && !writer_stopping_) {
    const std::string value = absl::StrCat("v", next);
    auto stub = v1::ConfigService::NewStub(options_.replicas[r]);
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + options_.call_timeout));
    if (!Track(&context)) break;
    v1::PutConfigRequest request;
    request.set_key(options_.key);
    request.set_value(value);
    v1::PutConfigResponse response;
    const grpc::Status status = stub->PutConfig(&context, request, &response);
    Untrack(&context);
    r = (r + 1) % n;
    if (status.ok()) {
      recorder_->Add(Ev::kConfigAck, actor, value, response.entry().version());
      ++next;
      Pause(options_.write_every);
    } else {
      // The same value again: a write whose answer was lost may have gone
      // in, and writing it twice is harmless.
      recorder_->Add(Ev::kConfigFail, actor, value, status.error_code(), 0,
                     Describe(status));
      Pause(absl::Milliseconds(100));
    }
  }
}

}  // namespace warren::cluster
