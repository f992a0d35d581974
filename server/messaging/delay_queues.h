// Delay queues: how Nack.retry_after and PublishRequest.delay make a message
// wait in the broker. A delay queue holds messages for a fixed time
// (x-message-ttl) and then dead-letters them where they should go, so a
// waiting message costs warrend nothing and survives a warrend restart
// (and, being durable and persistent, a broker restart).
//
// Delays are rounded up to two significant decimal digits in milliseconds
// (a "bucket": 1234 ms waits 1300 ms), so a target needs at most ~90 delay
// queues per decade of delays, and a message arrives up to 10 % late, never
// early. Every message of one queue has the same TTL: RabbitMQ expires
// messages only at a queue's head, so mixed delays in one queue would
// hold the short ones behind the long ones.
//
// Retry: the nacked message is republished (with a publisher confirm) into
// `warren.retry.<bucket>ms.<queue>`, which dead-letters into the default
// exchange with the subscription's queue name as routing key. Delayed
// publish: the message goes to the fanout exchange
// `warren.delay.<bucket>ms.<exchange>` (the default exchange is named
// `amq.default`), bound to a queue of the same name that dead-letters into
// the target exchange keeping the message's routing key.
//
// Delay queues expire (x-expires) once unused for 2 × bucket + a slack of
// 10 minutes; a publish does not count as use, so each one is redeclared at
// least once a minute while warrend publishes to it: a queue never expires
// with a message in it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/amqp/amqp_client.h"
#include "server/common/mutex.h"

namespace warren::messaging {

// The headers a retry adds to its message: how often it was retried, and
// where it was first published (a redelivery through the retry queue comes
// from the default exchange; these give its own exchange and key back).
inline constexpr char kRetriesHeader[] = "warren-retries";
inline constexpr char kRetryExchangeHeader[] = "warren-retry-exchange";
inline constexpr char kRetryRoutingKeyHeader[] = "warren-retry-routing-key";

// `delay` (positive) rounded up to whole milliseconds and then to two
// significant decimal digits.
absl::Duration DelayBucket(absl::Duration delay);

// Queue names of a bucket; a name over AMQP's 255 bytes has its target part
// replaced by the first 16 hex digits of the target's SHA-256.
std::string RetryQueueName(absl::Duration bucket, absl::string_view queue);
std::string DelayQueueName(absl::Duration bucket, absl::string_view exchange);

// The x-expires of a bucket's delay queue.
absl::Duration DelayQueueExpiry(absl::Duration bucket,
                                absl::Duration slack = absl::Minutes(10));

// One of the headers above: the server's own, never shown to subscribers
// and refused from publishers.
bool IsRetryHeader(absl::string_view key);

// How often a delivered message was retried through a retry queue.
uint32_t RetriesOf(const amqp::Delivery& delivery);

// A message that came back from a retry queue arrives from the default
// exchange with its queue's name as routing key; this gives it back the
// exchange and routing key it was published with. Only then: anything else
// carrying the headers is left as it is.
void RestoreRetriedOrigin(const std::string& queue, amqp::Delivery& delivery);

// The queue a retried message goes back to.
struct RetryTarget {
  std::string queue;
  bool quorum = false;
};

struct DelayQueuesOptions {
  // Added to 2 × bucket for x-expires; shorter only in tests.
  absl::Duration expiry_slack = absl::Minutes(10);
  // How long a declared delay queue is used before it is declared again.
  absl::Duration redeclare_interval = absl::Minutes(1);
};

// Declares delay queues on demand (each at most once per
// redeclare_interval) and publishes through them. Thread-safe; `done` runs
// on an AMQP I/O thread (or the fake's pump) and must not block.
class DelayQueues {
 public:
  using Done = absl::AnyInvocable<void(absl::Status)>;

  explicit DelayQueues(amqp::AmqpBroker& amqp, DelayQueuesOptions options = {});

  // Publishes `message` directly when `delay` is not positive; otherwise
  // into its delay queue, OK once the broker confirmed it there.
  void Publish(amqp::OutgoingMessage message, absl::Duration delay,
               absl::Time deadline, Done done);

  // Republishes `delivery` into `target`'s retry queue for `after`, with
  // warren-retries one more; OK once the broker confirmed it there (then,
  // and only then, may the original be acked).
  void Retry(const amqp::Delivery& delivery, const RetryTarget& target,
             absl::Duration after, absl::Time deadline, Done done);

 private:
  struct State;

  std::shared_ptr<State> state_;
};

}  // namespace warren::messaging
