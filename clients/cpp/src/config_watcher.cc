#include "warren/client/config_watcher.h"

#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/mutex.h"
#include "src/internal.h"
#include "warren/client/channel.h"

namespace warren::client {

namespace v1 = ::warren::v1;

// Everything of a ConfigWatcher behind its handle: the threads hold `this`,
// so it stays at one address for its whole life.
class ConfigWatcher::Impl {
 public:
  Impl(std::shared_ptr<grpc::Channel> channel, ConfigWatcherOptions options);
  ~Impl() { Stop(); }

  absl::Status AwaitFirstLoad();
  void Stop();
  const std::string& key() const { return options_.key; }
  std::optional<std::string> Get(const std::string& key) const;
  std::map<std::string, v1::ConfigEntry> Snapshot() const;
  int loads() const;
  absl::Status status() const;

 private:
  struct Session {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::WatchConfigResponse>> stream;
    bool silent = false;     // guarded by Impl::mu_
    bool responded = false;  // guarded by Impl::mu_
  };

  void ReadLoop();
  absl::Status RunSession(const std::shared_ptr<Session>& session);
  void Apply(const v1::WatchConfigResponse& response);
  void OnSilence(uint64_t generation);

  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::ConfigService::Stub> stub_;
  const ConfigWatcherOptions options_;

  mutable warren::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_called_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  int loads_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, v1::ConfigEntry> entries_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Session> current_ ABSL_GUARDED_BY(mu_);
  uint64_t silence_generation_ ABSL_GUARDED_BY(mu_) = 0;

  std::thread reader_;
  // Last: destroyed first, so its callback never sees a dead Impl.
  std::unique_ptr<internal::Watchdog> watchdog_;
};

namespace {

ConfigChange MakeChange(ConfigChange::Type type, const v1::ConfigEntry& entry,
                        bool reconciled) {
  ConfigChange change;
  change.type = type;
  change.key = entry.key();
  change.value = entry.value();
  change.version = entry.version();
  change.reconciled = reconciled;
  return change;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConfigWatcher>> ConfigWatcher::Start(
    std::shared_ptr<grpc::Channel> channel, ConfigWatcherOptions options) {
  auto impl = std::make_unique<Impl>(std::move(channel), std::move(options));
  const absl::Status failed = impl->AwaitFirstLoad();
  if (!failed.ok()) return failed;  // ~Impl stops it
  return std::unique_ptr<ConfigWatcher>(new ConfigWatcher(std::move(impl)));
}

ConfigWatcher::ConfigWatcher(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
ConfigWatcher::~ConfigWatcher() = default;
void ConfigWatcher::Stop() { impl_->Stop(); }
std::optional<std::string> ConfigWatcher::Value() const {
  return impl_->Get(impl_->key());
}
std::optional<std::string> ConfigWatcher::Get(const std::string& key) const {
  return impl_->Get(key);
}
std::map<std::string, v1::ConfigEntry> ConfigWatcher::Snapshot() const {
  return impl_->Snapshot();
}
int ConfigWatcher::loads() const { return impl_->loads(); }
absl::Status ConfigWatcher::status() const { return impl_->status(); }

absl::Status ConfigWatcher::Impl::AwaitFirstLoad() {
  return internal::AwaitFirstLoad(
      mu_, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return loads_ > 0; },
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return done_; }, &status_,
      options_.start_timeout, "no config state");
}

ConfigWatcher::Impl::Impl(std::shared_ptr<grpc::Channel> channel,
                          ConfigWatcherOptions options)
    : channel_(std::move(channel)),
      stub_(v1::ConfigService::NewStub(channel_)),
      options_(std::move(options)) {
  watchdog_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnSilence(generation); });
  reader_ = std::thread([this] { ReadLoop(); });
}

void ConfigWatcher::Impl::Stop() {
  {
    warren::MutexLock lock(&mu_);
    if (stop_called_) {
      auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; };
      mu_.Await(absl::Condition(&done));
      return;
    }
    stop_called_ = true;
    stopping_ = true;
    // A watch has nothing to settle: cancelling is the clean end.
    if (current_ != nullptr) current_->context.TryCancel();
  }
  reader_.join();
}

std::optional<std::string> ConfigWatcher::Impl::Get(
    const std::string& key) const {
  warren::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.value();
}

std::map<std::string, v1::ConfigEntry> ConfigWatcher::Impl::Snapshot() const {
  warren::MutexLock lock(&mu_);
  return entries_;
}

int ConfigWatcher::Impl::loads() const {
  warren::MutexLock lock(&mu_);
  return loads_;
}

absl::Status ConfigWatcher::Impl::status() const {
  warren::MutexLock lock(&mu_);
  return status_;
}

void ConfigWatcher::Impl::ReadLoop() {
  Backoff backoff(options_.backoff);
  for (bool again = false;; again = true) {
    auto session = internal::NewStreamSession(mu_, &stopping_, &current_,
                                              *channel_, again);
    if (session == nullptr) break;
    const absl::Status ended = RunSession(session);
    warren::MutexLock lock(&mu_);
    if (session->responded) backoff.Reset();
    current_ = nullptr;
    if (stopping_) break;
    if (!internal::ResubscribeAfter(mu_, &stopping_, ended,
                                    /*may_resubscribe=*/true, backoff,
                                    options_.on_stream_error, &status_)) {
      break;
    }
  }
  warren::MutexLock lock(&mu_);
  done_ = true;
}

absl::Status ConfigWatcher::Impl::RunSession(
    const std::shared_ptr<Session>& session) {
  const absl::Duration silence = 3 * options_.heartbeat_interval;
  auto arm = [&] {
    warren::MutexLock lock(&mu_);
    silence_generation_ = watchdog_->Arm(silence);
  };
  v1::WatchConfigRequest request;
  request.set_key(options_.key);
  request.set_prefix(options_.prefix);
  *request.mutable_heartbeat_interval() =
      internal::ToProto(options_.heartbeat_interval);
  arm();
  session->stream = stub_->WatchConfig(&session->context, request);
  v1::WatchConfigResponse response;
  // A large initial state arrives in several responses: the ones before
  // the one marked initial_state hold PUTs of the same state
  // (a size limit of the server). They are gathered and applied as one state.
  v1::WatchConfigResponse initial;
  bool synced = false;
  while (session->stream->Read(&response)) {
    {
      warren::MutexLock lock(&mu_);
      session->responded = true;
      silence_generation_ = watchdog_->Arm(silence);
    }
    if (synced) {
      Apply(response);
      continue;
    }
    initial.mutable_events()->MergeFrom(response.events());
    if (!response.initial_state()) continue;
    initial.set_initial_state(true);
    Apply(initial);
    initial.Clear();
    synced = true;
  }
  watchdog_->Disarm();
  absl::Status status = ToStatus(session->stream->Finish());
  warren::MutexLock lock(&mu_);
  if (session->silent) {
    status = absl::DeadlineExceededError(
        absl::StrCat("no message (not even a heartbeat) within ",
                     absl::FormatDuration(silence), "; watching again"));
  }
  return status;
}

void ConfigWatcher::Impl::Apply(const v1::WatchConfigResponse& response) {
  std::vector<ConfigChange> changes;
  {
    warren::MutexLock lock(&mu_);
    if (response.initial_state()) {
      std::map<std::string, v1::ConfigEntry> fresh;
      for (const auto& event : response.events()) {
        if (event.type() == v1::CONFIG_EVENT_TYPE_PUT) {
          fresh[event.entry().key()] = event.entry();
        }
      }
      // The first state is what Start() returns with, not a change; a
      // later one replaces ours, and the differences are the changes that
      // happened while we were not watching.
      if (loads_ > 0) {
        for (const auto& [key, entry] : fresh) {
          auto old = entries_.find(key);
          if (old == entries_.end() ||
              old->second.version() != entry.version() ||
              old->second.value() != entry.value()) {
            changes.push_back(
                MakeChange(ConfigChange::Type::kPut, entry, true));
          }
        }
        for (const auto& [key, entry] : entries_) {
          if (fresh.count(key) == 0) {
            changes.push_back(
                MakeChange(ConfigChange::Type::kDelete, entry, true));
          }
        }
      }
      entries_ = std::move(fresh);
      ++loads_;
    } else {
      for (const auto& event : response.events()) {
        if (event.type() == v1::CONFIG_EVENT_TYPE_PUT) {
          entries_[event.entry().key()] = event.entry();
          changes.push_back(
              MakeChange(ConfigChange::Type::kPut, event.entry(), false));
        } else if (event.type() == v1::CONFIG_EVENT_TYPE_DELETE) {
          auto old = entries_.find(event.entry().key());
          ConfigChange change =
              MakeChange(ConfigChange::Type::kDelete, event.entry(), false);
          // The server's DELETE holds the last version; the value we knew
          // is more use to the application.
          if (old != entries_.end()) {
            change.value = old->second.value();
            entries_.erase(old);
          }
          changes.push_back(std::move(change));
        }
      }
    }
  }
  if (options_.on_change) {
    for (const auto& change : changes) options_.on_change(change);
  }
}

void ConfigWatcher::Impl::OnSilence(uint64_t generation) {
  warren::MutexLock lock(&mu_);
  if (current_ == nullptr || generation != silence_generation_) return;
  current_->silent = true;
  current_->context.TryCancel();
}

}  // namespace warren::client
