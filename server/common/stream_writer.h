// The write side of a gRPC callback stream, as every streaming reactor of
// the server needs it: responses queue in order, one write is in flight at
// a time (the callback API allows no more), and finishing waits for that
// write. Not thread-safe by itself: the reactor calls it under its own lock.
#pragma once

#include <deque>
#include <utility>

#include "grpcpp/support/status.h"

namespace warren {

template <typename Response>
class StreamWriter {
 public:
  void Push(Response response) { queue_.push_back(std::move(response)); }
  // Nothing queued and nothing being written.
  bool idle() const { return queue_.empty() && !writing_; }
  size_t queued() const { return queue_.size(); }
  bool writing() const { return writing_; }
  bool finishing() const { return finishing_; }

  // Starts the next write unless one is in flight or the stream finishes.
  template <typename Reactor>
  void MaybeWrite(Reactor* reactor) {
    if (writing_ || finishing_ || queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    reactor->StartWrite(&current_);
  }

  // For OnWriteDone: answers whether the stream goes on (then the reactor
  // may write more); a failed write finishes it.
  template <typename Reactor>
  bool WriteDone(Reactor* reactor, bool ok) {
    writing_ = false;
    if (finish_after_write_) {
      reactor->Finish(std::move(final_status_));
      return false;
    }
    if (!ok) {
      Finish(reactor,
             grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
      return false;
    }
    return !finishing_;
  }

  // Finishes once (later calls are ignored), after the write in flight.
  template <typename Reactor>
  void Finish(Reactor* reactor, grpc::Status status) {
    if (finishing_) return;
    finishing_ = true;
    if (writing_) {
      finish_after_write_ = true;
      final_status_ = std::move(status);
    } else {
      reactor->Finish(std::move(status));
    }
  }

 private:
  std::deque<Response> queue_;
  Response current_;
  bool writing_ = false;
  bool finishing_ = false;
  bool finish_after_write_ = false;
  grpc::Status final_status_;
};

}  // namespace warren
