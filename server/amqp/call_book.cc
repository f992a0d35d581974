#include "server/amqp/call_book.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace warren::amqp {

void CallBook::Add(std::string correlation_id, absl::Time deadline,
                   absl::Time now, Done done) {
  // Shown to the caller: whole milliseconds read better than nanoseconds.
  const absl::Duration timeout =
      absl::Trunc(deadline - now, absl::Milliseconds(1));
  waiting_[std::move(correlation_id)] =
      Waiting{deadline, timeout, std::move(done)};
}

bool CallBook::OnReply(Delivery reply) {
  auto it = waiting_.find(reply.correlation_id);
  if (it == waiting_.end()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  Done done = std::move(it->second.done);
  waiting_.erase(it);
  done(std::move(reply));
  return true;
}

void CallBook::Fail(absl::string_view correlation_id, absl::Status status) {
  auto it = waiting_.find(correlation_id);
  if (it == waiting_.end()) return;
  Done done = std::move(it->second.done);
  waiting_.erase(it);
  done(std::move(status));
}

void CallBook::ExpireDeadlines(absl::Time now) {
  std::vector<Waiting> expired;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  // Answered after the scan: a callback may add a call.
  for (Waiting& w : expired) {
    w.done(absl::DeadlineExceededError(
        absl::StrCat("no reply within ", absl::FormatDuration(w.timeout))));
  }
}

void CallBook::FailAll(const absl::Status& status) {
  std::map<std::string, Waiting, std::less<>> waiting;
  waiting.swap(waiting_);
  for (auto& [id, w] : waiting) w.done(status);
}

}  // namespace warren::amqp
