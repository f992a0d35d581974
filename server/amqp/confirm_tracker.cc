#include "server/amqp/confirm_tracker.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace warren::amqp {

uint64_t ConfirmTracker::OnPublished(Publish publish, absl::Time now) {
  const uint64_t tag = next_tag_++;
  Pending pending;
  pending.publish = std::move(publish);
  pending.published = now;
  unconfirmed_.emplace(tag, std::move(pending));
  return tag;
}

void ConfirmTracker::OnReturned(absl::string_view message_id,
                                std::string reply) {
  MarkReturned(&OutgoingMessage::message_id, message_id, std::move(reply));
}

void ConfirmTracker::OnReturnedByCorrelationId(absl::string_view correlation_id,
                                               std::string reply) {
  MarkReturned(&OutgoingMessage::correlation_id, correlation_id,
               std::move(reply));
}

void ConfirmTracker::MarkReturned(std::string OutgoingMessage::*field,
                                  absl::string_view value, std::string reply) {
  for (auto& [tag, pending] : unconfirmed_) {
    if (!pending.returned && pending.publish.message.*field == value) {
      pending.returned = true;
      pending.return_reply = std::move(reply);
      return;
    }
  }
}

size_t ConfirmTracker::OnConfirm(uint64_t tag, bool multiple, bool ack,
                                 absl::Time now) {
  auto end = unconfirmed_.upper_bound(tag);
  auto begin = multiple ? unconfirmed_.begin() : unconfirmed_.find(tag);
  if (begin == unconfirmed_.end()) return 0;
  std::vector<Pending> settled;
  for (auto it = begin; it != end;) {
    settled.push_back(std::move(it->second));
    it = unconfirmed_.erase(it);
  }
  for (Pending& pending : settled) {
    if (ack && on_confirm_) on_confirm_(now - pending.published);
    Answer(pending, ack);
  }
  return settled.size();
}

void ConfirmTracker::Answer(Pending& pending, bool ack) {
  Publish& p = pending.publish;
  if (!p.done) return;  // answered already (deadline)
  if (!ack) {
    p.done(absl::UnavailableError(
        "RabbitMQ refused the message (basic.nack); retry"));
  } else if (pending.returned) {
    p.done(absl::FailedPreconditionError(absl::StrCat(
        "message is unroutable: no queue is bound for routing key '",
        p.message.routing_key, "' on exchange '", p.message.exchange, "' (",
        pending.return_reply, ")")));
  } else {
    p.done(absl::OkStatus());
  }
}

void ConfirmTracker::ExpireDeadlines(absl::Time now) {
  if (now < next_deadline_scan_) return;
  next_deadline_scan_ = now + kDeadlineScanInterval;
  for (auto& [tag, pending] : unconfirmed_) {
    Publish& p = pending.publish;
    if (p.done && p.deadline <= now) {
      // The confirm may still come; the answer stays not-OK regardless.
      p.done(absl::DeadlineExceededError(
          "RabbitMQ did not confirm the message before the deadline; it may "
          "or may not have been delivered: retry with the same message_id"));
      p.done = nullptr;
    }
  }
}

std::vector<ConfirmTracker::Publish> ConfirmTracker::TakeUnanswered() {
  std::vector<Publish> taken;
  for (auto& [tag, pending] : unconfirmed_) {
    if (pending.publish.done) taken.push_back(std::move(pending.publish));
  }
  unconfirmed_.clear();
  return taken;
}

void ConfirmTracker::FailAll(const absl::Status& status) {
  std::vector<Publish> taken = TakeUnanswered();
  AnswerAll(taken, status);
}

bool ConfirmTracker::Replayable(const absl::Status& channel_error) {
  return absl::StrContains(channel_error.message(), "no exchange") ||
         channel_error.code() == absl::StatusCode::kUnavailable;
}

absl::Status ConfirmTracker::Replay(
    std::vector<Publish> publishes, const absl::Status& channel_error,
    absl::FunctionRef<absl::Status(Publish&)> republish) {
  if (!Replayable(channel_error)) {
    AnswerAll(publishes, channel_error);
    return absl::OkStatus();
  }
  for (size_t i = 0; i < publishes.size(); ++i) {
    if (absl::Status s = republish(publishes[i]); !s.ok()) {
      // Without this the rest would be dropped unanswered: their callers
      // (a unary Publish, a stream's in-flight count) would wait forever.
      for (size_t rest = i + 1; rest < publishes.size(); ++rest) {
        if (publishes[rest].done) publishes[rest].done(s);
      }
      return s;
    }
  }
  return absl::OkStatus();
}

void ConfirmTracker::AnswerAll(std::vector<Publish>& publishes,
                               const absl::Status& status) {
  for (Publish& p : publishes) {
    if (p.done) p.done(status);
    p.done = nullptr;
  }
}

}  // namespace warren::amqp
