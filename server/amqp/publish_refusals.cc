#include "server/amqp/publish_refusals.h"

#include <algorithm>

namespace warren::amqp {

void PublishRefusals::OnConnected(absl::Time now) {
  OnConfirmed();
  connected_ = now;
}

void PublishRefusals::OnConfirmed() {
  run_start_ = absl::InfinitePast();
  run_refusals_ = 0;
  replacements_ = 0;
  last_replacement_ = absl::InfinitePast();
  refusals_since_replacement_ = 0;
}

void PublishRefusals::OnRefused(absl::Time now) {
  if (run_refusals_ == 0) run_start_ = now;
  ++run_refusals_;
  ++refusals_since_replacement_;
}

absl::Duration PublishRefusals::PauseAfter(size_t replacements) const {
  absl::Duration pause = options_.streak;
  for (size_t i = options_.replacements_before_move; i < replacements; ++i) {
    pause = std::min(pause * 2, options_.max_pause);
  }
  return pause;
}

PublishRefusals::Action PublishRefusals::Next(absl::Time now) const {
  if (run_refusals_ == 0) return Action::kNone;
  if (replacements_ == 0) {
    return run_refusals_ >= options_.min_refusals &&
                   now - run_start_ >= options_.streak
               ? Action::kReplaceChannel
               : Action::kNone;
  }
  // Only a replacement that was refused too says anything new.
  if (refusals_since_replacement_ == 0 ||
      now - last_replacement_ < PauseAfter(replacements_)) {
    return Action::kNone;
  }
  if (replacements_ >= options_.replacements_before_move &&
      now - connected_ <= options_.failover_window) {
    return Action::kMoveConnection;
  }
  return Action::kReplaceChannel;
}

void PublishRefusals::OnChannelReplaced(absl::Time now) {
  ++replacements_;
  last_replacement_ = now;
  refusals_since_replacement_ = 0;
}

}  // namespace warren::amqp
