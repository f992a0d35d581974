#include "server/messaging/delay_validation.h"

#include "absl/strings/str_cat.h"
#include "server/common/duration.h"

namespace warren::messaging {
namespace {

// A Duration with seconds and nanos of opposite signs is malformed, and a
// negative one meaningless: both refused before conversion.
absl::Status CheckDelay(const google::protobuf::Duration& proto,
                        absl::Duration max, const std::string& field) {
  if (proto.seconds() < 0 || proto.nanos() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must not be negative"));
  }
  const absl::Duration delay = FromProtoDuration(proto);
  if (delay > max) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is ", absl::FormatDuration(delay),
        "; this server allows at most ", absl::FormatDuration(max)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePublishDelay(const warren::v1::PublishRequest& request,
                                  absl::Duration max,
                                  const std::string& field) {
  if (!request.has_delay()) return absl::OkStatus();
  if (auto s = CheckDelay(request.delay(), max, field); !s.ok()) return s;
  if (FromProtoDuration(request.delay()) <= absl::ZeroDuration()) {
    return absl::OkStatus();
  }
  if (request.has_ttl()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " cannot be combined with ttl"));
  }
  if (request.mandatory()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " cannot be combined with mandatory"));
  }
  return absl::OkStatus();
}

absl::Status ValidateRetryAfter(const warren::v1::Nack& nack, bool stream_queue,
                                absl::Duration max) {
  if (!nack.has_retry_after()) return absl::OkStatus();
  if (auto s = CheckDelay(nack.retry_after(), max, "nack.retry_after");
      !s.ok()) {
    return s;
  }
  if (stream_queue &&
      FromProtoDuration(nack.retry_after()) > absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "nack.retry_after: a stream queue keeps every message and cannot "
        "retry one (replay it by offset instead)");
  }
  return absl::OkStatus();
}

}  // namespace warren::messaging
