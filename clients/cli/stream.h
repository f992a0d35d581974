// How the streaming commands (subscribe, elect, leader --watch, config watch)
// wait for several things at once with the synchronous gRPC API: a thread
// reads the stream into an inbox, and the command's own thread waits on the
// inbox for the next response, the end of the stream, a stop request
// (SIGINT/SIGTERM, see StopSignals) or a deadline of its own (--timeout, an
// election lease). Only the command's thread writes to the stream and calls
// Finish, so one thread reads and one writes, as gRPC allows.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "clients/cli/exit_codes.h"
#include "grpcpp/client_context.h"

namespace warren::cli {

// Turns SIGINT and SIGTERM into stop requests. Install() must run first in
// main, before any thread exists, so that every thread inherits the blocked
// signals and only the signal thread receives them. Without a handler (a
// unary command), or on a second signal, the process exits at once with
// 128 + the signal number, as if the signal had not been caught.
class StopSignals {
 public:
  static void Install();

  // While it lives, the first SIGINT/SIGTERM calls `handler` (on the signal
  // thread).
  class Scope {
   public:
    explicit Scope(std::function<void()> handler);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
  };
};

template <typename Response>
class StreamSession {
 public:
  enum class Kind { kMessage, kEnded, kStop, kTimeout };
  struct Event {
    Kind kind;
    Response message;
  };

  // Starts reading `stream`, which belongs to `context`. Both stay the
  // caller's and must outlive this session (declare the session last).
  template <typename Stream>
  StreamSession(grpc::ClientContext* context, Stream* stream)
      : context_(context), finish_([stream] { return stream->Finish(); }) {
    reader_ = std::thread([this, stream] {
      Response response;
      while (stream->Read(&response)) {
        absl::MutexLock lock(&mu_);
        queue_.push_back(std::move(response));
        response.Clear();
      }
      absl::MutexLock lock(&mu_);
      ended_ = true;
    });
    // Last: a signal may call RequestStop from now on.
    stop_scope_ =
        std::make_unique<StopSignals::Scope>([this] { RequestStop(); });
  }

  ~StreamSession() {
    stop_scope_.reset();
    if (!finished_) (void)CancelAndFinish();
    reader_.join();
  }

  StreamSession(const StreamSession&) = delete;
  StreamSession& operator=(const StreamSession&) = delete;

  // The next thing that happened, in this order: a stop request (once), a
  // response, the end of the stream, or kTimeout when `deadline` passed.
  Event Next(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(this, &StreamSession::ReadyLocked),
                          deadline);
    if (stop_requested_ && !stop_reported_) {
      stop_reported_ = true;
      return {Kind::kStop, Response()};
    }
    if (!queue_.empty()) {
      Event event{Kind::kMessage, std::move(queue_.front())};
      queue_.pop_front();
      return event;
    }
    if (ended_) return {Kind::kEnded, Response()};
    return {Kind::kTimeout, Response()};
  }

  void RequestStop() {
    absl::MutexLock lock(&mu_);
    stop_requested_ = true;
  }

  // Waits until the server ends the stream, dropping what still arrives;
  // answers false if `deadline` passed first.
  bool DrainUntilEnded(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    while (true) {
      queue_.clear();
      if (ended_) return true;
      if (!mu_.AwaitWithDeadline(
              absl::Condition(this, &StreamSession::HasNewsLocked), deadline)) {
        return false;
      }
    }
  }

  // The stream's status; call after Next answered kEnded (or DrainUntilEnded
  // answered true).
  absl::Status Finish() {
    finished_ = true;
    return FromGrpc(finish_());
  }

  // The status a command ends with when the server ended the stream (Next
  // answered kEnded): the stream's own, or UNAVAILABLE when it ended with
  // OK, as a streaming command never expects the server to end it.
  absl::Status FinishEnded(absl::string_view what) {
    absl::Status status = Finish();
    if (!status.ok()) return status;
    return absl::UnavailableError(absl::StrCat("the server ended the ", what));
  }

  // Cancels the call, waits for the reader and answers the final status.
  absl::Status CancelAndFinish() {
    context_->TryCancel();
    DrainUntilEnded(absl::InfiniteFuture());
    return Finish();
  }

 private:
  bool ReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return (stop_requested_ && !stop_reported_) || !queue_.empty() || ended_;
  }
  bool HasNewsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() || ended_;
  }

  grpc::ClientContext* context_;
  std::function<grpc::Status()> finish_;
  bool finished_ = false;
  std::unique_ptr<StopSignals::Scope> stop_scope_;

  absl::Mutex mu_;
  std::deque<Response> queue_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_reported_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
};

}  // namespace warren::cli
