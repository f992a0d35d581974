#include "warren/client/config_watcher.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "src/internal.h"
#include "warren/client/channel.h"

namespace warren::client {

namespace v1 = ::warren::v1;

struct ConfigWatcher::Session {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::WatchConfigResponse>> stream;
  bool silent = false;  // guarded by ConfigWatcher::mu_
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
  std::unique_ptr<ConfigWatcher> watcher(
      new ConfigWatcher(std::move(channel), std::move(options)));
  ConfigWatcher& w = *watcher;
  const absl::Status failed = internal::AwaitFirstLoad(
      w.mu_, [&w]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return w.loads_ > 0; },
      [&w]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return w.done_; }, &w.status_,
      w.options_.start_timeout, "no config state");
  if (!failed.ok()) {
    watcher->Stop();
    return failed;
  }
  return watcher;
}

ConfigWatcher::ConfigWatcher(std::shared_ptr<grpc::Channel> channel,
                             ConfigWatcherOptions options)
    : stub_(v1::ConfigService::NewStub(std::move(channel))),
      options_(std::move(options)) {
  watchdog_ = std::make_unique<internal::Watchdog>(
      [this](uint64_t generation) { OnSilence(generation); });
  reader_ = std::thread([this] { ReadLoop(); });
}

ConfigWatcher::~ConfigWatcher() { Stop(); }

void ConfigWatcher::Stop() {
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

std::optional<std::string> ConfigWatcher::Value() const {
  return Get(options_.key);
}

std::optional<std::string> ConfigWatcher::Get(const std::string& key) const {
  warren::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.value();
}

std::map<std::string, v1::ConfigEntry> ConfigWatcher::Snapshot() const {
  warren::MutexLock lock(&mu_);
  return entries_;
}

int ConfigWatcher::loads() const {
  warren::MutexLock lock(&mu_);
  return loads_;
}

absl::Status ConfigWatcher::status() const {
  warren::MutexLock lock(&mu_);
  return status_;
}

void ConfigWatcher::ReadLoop() {
  Backoff backoff(options_.backoff);
  while (true) {
    auto session = std::make_shared<Session>();
    {
      warren::MutexLock lock(&mu_);
      if (stopping_) break;
      // Published before the call starts, so Stop() can always cancel it
      // (a cancel before the call starts cancels it when it does).
      current_ = session;
    }
    const int before = loads();
    const absl::Status ended = RunSession(session);
    if (loads() > before) backoff.Reset();
    warren::MutexLock lock(&mu_);
    current_ = nullptr;
    if (stopping_) break;
    const bool retry = internal::IsRetryableStreamEnd(ended);
    if (!retry) status_ = ended;
    if (options_.on_stream_error) {
      mu_.Unlock();
      options_.on_stream_error(ended);
      mu_.Lock();
    }
    if (!retry) break;
    if (!internal::SleepUnlessStopped(mu_, &stopping_, backoff.Next())) break;
  }
  warren::MutexLock lock(&mu_);
  done_ = true;
}

absl::Status ConfigWatcher::RunSession(
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
  // (docs/config-limits.md). They are gathered and applied as one state.
  v1::WatchConfigResponse initial;
  bool synced = false;
  while (session->stream->Read(&response)) {
    arm();
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

void ConfigWatcher::Apply(const v1::WatchConfigResponse& response) {
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

void ConfigWatcher::OnSilence(uint64_t generation) {
  warren::MutexLock lock(&mu_);
  if (current_ == nullptr || generation != silence_generation_) return;
  current_->silent = true;
  current_->context.TryCancel();
}

}  // namespace warren::client
