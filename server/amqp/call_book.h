// CallBook: the request/reply calls of one connection that wait for their
// reply, keyed by correlation id, and how each one is answered.
//
// A call is answered once: with the first reply that carries its
// correlation id, with the failure of its request's publish, with
// DEADLINE_EXCEEDED when its deadline passes first, or with the status of
// FailAll when the reply channel is lost. Replies that find no waiting call
// (late, duplicate, or never ours) are dropped and counted: a reply can
// only ever answer the call whose id it carries.
//
// Pure state: the caller passes the time and talks to the broker. Owned and
// used by one thread (the AMQP I/O thread); not thread-safe, except
// dropped(). Callbacks run on the calling thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/amqp_types.h"

namespace warren::amqp {

class CallBook {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<Delivery>)>;

  // A call whose request goes out now; `correlation_id` must be fresh.
  void Add(std::string correlation_id, absl::Time deadline, absl::Time now,
           Done done);

  // A reply arrived: answers the call it belongs to and forgets it. False
  // (and counted) when no call waits for it.
  bool OnReply(Delivery reply);

  // The request of a call could not be published: answers it with `status`
  // unless it was answered already (a reply may beat its confirm).
  void Fail(absl::string_view correlation_id, absl::Status status);

  // Answers DEADLINE_EXCEEDED ("no reply within <d>") for every call whose
  // deadline is `now` or earlier.
  void ExpireDeadlines(absl::Time now);

  // Answers every call with `status` and forgets them all.
  void FailAll(const absl::Status& status);

  size_t size() const { return waiting_.size(); }
  bool empty() const { return waiting_.empty(); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Waiting {
    absl::Time deadline;
    absl::Duration timeout;
    Done done;
  };

  std::map<std::string, Waiting, std::less<>> waiting_;
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace warren::amqp
