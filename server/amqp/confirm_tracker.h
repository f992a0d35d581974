// ConfirmTracker: the publishes of a confirm channel that the broker has
// not confirmed yet, keyed by delivery tag, and how each one is answered.
//
// A publish is answered once: OK at its basic.ack; FAILED_PRECONDITION if
// a basic.return (mandatory, unroutable) came before that ack; UNAVAILABLE
// at a basic.nack; DEADLINE_EXCEEDED when its deadline passes first (it
// stays tracked, unanswered no more, until the broker settles it). An ack
// or nack with `multiple` settles every tracked tag up to its own.
//
// When the broker closes the confirm channel, what it left unconfirmed is
// taken out (TakeUnanswered) and either republished on a fresh channel or
// failed (Replay), as Replayable() decides.
//
// Pure state: the caller passes the time and talks to the broker. Owned and
// used by one thread (the AMQP I/O thread); not thread-safe. Callbacks
// (`done`, `on_confirm`) run on the calling thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/amqp_types.h"

namespace warren::amqp {

class ConfirmTracker {
 public:
  using Done = absl::AnyInvocable<void(absl::Status)>;

  // A publish waiting for the broker (or, for Replay, to go out again).
  struct Publish {
    OutgoingMessage message;
    absl::Time deadline;
    Done done;  // empty once answered
  };

  // How often ExpireDeadlines looks at every tracked publish at most: a
  // scan per loop turn costs more than the publishing itself under load. A
  // deadline is answered at the first scan after it (the I/O loop wakes at
  // least every 50 ms while publishes are unconfirmed).
  static constexpr absl::Duration kDeadlineScanInterval =
      absl::Milliseconds(10);

  // `on_confirm` (optional) gets, for every acked publish, the time from
  // its basic.publish to its basic.ack.
  explicit ConfirmTracker(
      std::function<void(absl::Duration)> on_confirm = nullptr)
      : on_confirm_(std::move(on_confirm)) {}

  // A fresh confirm channel: its first publish gets delivery tag 1. Call it
  // only with nothing tracked (after TakeUnanswered or FailAll).
  void OnChannelOpened() { next_tag_ = 1; }

  // basic.publish of `publish` went out at `now`: tracks it under the
  // channel's next delivery tag, which it returns.
  uint64_t OnPublished(Publish publish, absl::Time now);

  // basic.return of a message with `message_id`, with the broker's reply
  // (code and text). The broker sends it before the ack of the same
  // message, and the frame names no delivery tag: the oldest tracked
  // publish with that id that was not returned yet is taken for it.
  void OnReturned(absl::string_view message_id, std::string reply);
  // The same for a channel whose messages each carry a correlation id of
  // their own (the Call channel's): matched by it, because callers may
  // reuse a message id (for de-duplication) across concurrent calls.
  void OnReturnedByCorrelationId(absl::string_view correlation_id,
                                 std::string reply);

  // basic.ack (`ack`) or basic.nack for `tag`, or with `multiple` for every
  // tracked tag up to it. Answers what it settles that is still unanswered
  // and returns how many publishes it settled (answered or not), which
  // PublishRefusals counts.
  size_t OnConfirm(uint64_t tag, bool multiple, bool ack, absl::Time now);

  // Answers DEADLINE_EXCEEDED for every unanswered publish whose deadline
  // is `now` or earlier; at most once per kDeadlineScanInterval.
  void ExpireDeadlines(absl::Time now);

  // The confirm channel is gone: takes every unanswered publish, oldest
  // first, and forgets the answered ones (the broker will not settle
  // them any more).
  std::vector<Publish> TakeUnanswered();

  // Answers every unanswered publish with `status` and forgets them all.
  void FailAll(const absl::Status& status);

  size_t size() const { return unconfirmed_.size(); }
  bool empty() const { return unconfirmed_.empty(); }

  // Whether the publishes a channel left unconfirmed should be republished
  // when the broker closed it with `channel_error`. A missing exchange is
  // pinned on one message by republishing (each is checked again first,
  // so the one that caused it fails alone); UNAVAILABLE (a replaced or lost
  // channel) blames none. Anything else (an access refusal, a precondition)
  // cannot be pinned on one message: all of them get it.
  static bool Replayable(const absl::Status& channel_error);

  // Replays `publishes` (from TakeUnanswered, on a fresh channel) after
  // `channel_error`: through `republish`, oldest first, if Replayable(),
  // otherwise answers each with `channel_error`. `republish` answers the
  // publish it is given whenever it fails it; a non-OK status from it means
  // the connection failed: the publishes not replayed yet are answered
  // with that status, and it is returned.
  static absl::Status Replay(
      std::vector<Publish> publishes, const absl::Status& channel_error,
      absl::FunctionRef<absl::Status(Publish&)> republish);

  // Answers every unanswered one of `publishes` with `status`.
  static void AnswerAll(std::vector<Publish>& publishes,
                        const absl::Status& status);

 private:
  // Marks the oldest tracked publish not yet returned whose `field` is
  // `value` as returned with `reply`.
  void MarkReturned(std::string OutgoingMessage::*field,
                    absl::string_view value, std::string reply);

  struct Pending {
    Publish publish;
    absl::Time published;
    bool returned = false;
    std::string return_reply;
  };

  void Answer(Pending& pending, bool ack);

  const std::function<void(absl::Duration)> on_confirm_;
  uint64_t next_tag_ = 1;
  std::map<uint64_t, Pending> unconfirmed_;
  absl::Time next_deadline_scan_ = absl::InfinitePast();
};

}  // namespace warren::amqp
