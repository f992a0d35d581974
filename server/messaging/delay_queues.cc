#include "server/messaging/delay_queues.h"

#include <openssl/evp.h>

#include <cmath>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace warren::messaging {
namespace {

constexpr size_t kMaxShortString = 255;

// Names: the default exchange has no name of its own to put in one.
constexpr char kDefaultExchangeName[] = "amq.default";

std::string TargetPart(absl::string_view prefix, absl::string_view target) {
  if (prefix.size() + target.size() <= kMaxShortString) {
    return std::string(target);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(target.data(), target.size(), digest, &length, EVP_sha256(),
                 nullptr) != 1 ||
      length < 8) {
    // Only on allocation failure inside OpenSSL: cut, still a valid name.
    return std::string(target.substr(0, kMaxShortString - prefix.size()));
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 8));
}

std::string BucketName(absl::string_view kind, absl::Duration bucket,
                       absl::string_view target) {
  const std::string prefix = absl::StrCat(
      "warren.", kind, ".", absl::ToInt64Milliseconds(bucket), "ms.");
  return absl::StrCat(prefix, TargetPart(prefix, target));
}

const std::string* FindHeader(const amqp::Headers& headers,
                              absl::string_view key) {
  for (const auto& [k, v] : headers) {
    if (k == key) return &v;
  }
  return nullptr;
}

}  // namespace

absl::Duration DelayBucket(absl::Duration delay) {
  int64_t ms =
      absl::ToInt64Milliseconds(absl::Ceil(delay, absl::Milliseconds(1)));
  if (ms < 1) ms = 1;
  int64_t unit = 1;
  while (ms / unit >= 100) unit *= 10;
  const int64_t rounded = (ms + unit - 1) / unit * unit;
  return absl::Milliseconds(rounded);
}

std::string RetryQueueName(absl::Duration bucket, absl::string_view queue) {
  return BucketName("retry", bucket, queue);
}

std::string DelayQueueName(absl::Duration bucket, absl::string_view exchange) {
  return BucketName("delay", bucket,
                    exchange.empty() ? kDefaultExchangeName : exchange);
}

absl::Duration DelayQueueExpiry(absl::Duration bucket, absl::Duration slack) {
  return 2 * bucket + slack;
}

bool IsRetryHeader(absl::string_view key) {
  return key == kRetriesHeader || key == kRetryExchangeHeader ||
         key == kRetryRoutingKeyHeader;
}

uint32_t RetriesOf(const amqp::Delivery& delivery) {
  uint32_t retries = 0;
  if (const std::string* value = FindHeader(delivery.headers, kRetriesHeader)) {
    if (!absl::SimpleAtoi(*value, &retries)) retries = 0;
  }
  return retries;
}

void RestoreRetriedOrigin(const std::string& queue, amqp::Delivery& d) {
  if (!d.exchange.empty() || d.routing_key != queue) return;
  const std::string* exchange = FindHeader(d.headers, kRetryExchangeHeader);
  const std::string* key = FindHeader(d.headers, kRetryRoutingKeyHeader);
  if (exchange == nullptr || key == nullptr) return;
  d.exchange = *exchange;
  d.routing_key = *key;
}

struct DelayQueues::State {
  State(amqp::AmqpBroker& broker, DelayQueuesOptions o)
      : amqp(broker), options(o) {}

  // Whether `name` was declared within the redeclare interval.
  bool Fresh(const std::string& name) {
    warren::MutexLock lock(&mu);
    auto it = declared.find(name);
    return it != declared.end() &&
           absl::Now() - it->second < options.redeclare_interval;
  }
  void Declared(const std::string& name) {
    const absl::Time now = absl::Now();
    warren::MutexLock lock(&mu);
    // Stale entries would be redeclared anyway; dropping them keeps the
    // map as small as the set of queues in use.
    if (declared.size() >= 1024) {
      for (auto it = declared.begin(); it != declared.end();) {
        it = now - it->second >= options.redeclare_interval ? declared.erase(it)
                                                            : std::next(it);
      }
    }
    declared[name] = now;
  }
  void Forget(const std::string& name) {
    warren::MutexLock lock(&mu);
    declared.erase(name);
  }

  amqp::AmqpBroker& amqp;
  const DelayQueuesOptions options;
  warren::Mutex mu;
  std::map<std::string, absl::Time> declared ABSL_GUARDED_BY(mu);
};

namespace {

// One message on its way into a delay queue.
struct Attempt {
  amqp::DelayQueueSpec queue;
  amqp::OutgoingMessage message;
  absl::Time deadline;
  absl::AnyInvocable<void(absl::Status)> done;
  // A queue that vanished after it was declared (expired while the cache
  // still held it, deleted by an operator) is declared again, once.
  bool redeclared = false;
};

template <typename StatePtr>
void PublishAttempt(StatePtr state, std::shared_ptr<Attempt> attempt);

template <typename StatePtr>
void DeclareThenPublish(StatePtr state, std::shared_ptr<Attempt> attempt) {
  if (state->Fresh(attempt->queue.name)) {
    PublishAttempt(std::move(state), std::move(attempt));
    return;
  }
  amqp::DelayQueueSpec spec = attempt->queue;
  state->amqp.DeclareDelayQueue(
      std::move(spec), [state, attempt](absl::Status declared) mutable {
        if (!declared.ok()) {
          attempt->done(std::move(declared));
          return;
        }
        state->Declared(attempt->queue.name);
        PublishAttempt(std::move(state), std::move(attempt));
      });
}

template <typename StatePtr>
void PublishAttempt(StatePtr state, std::shared_ptr<Attempt> attempt) {
  // Mandatory: a missing queue must come back unroutable, not vanish.
  amqp::OutgoingMessage message = attempt->message;
  message.mandatory = true;
  state->amqp.Publish(
      std::move(message), attempt->deadline,
      [state, attempt](absl::Status published) mutable {
        const bool gone =
            published.code() == absl::StatusCode::kFailedPrecondition ||
            published.code() == absl::StatusCode::kNotFound;
        if (gone && !attempt->redeclared) {
          attempt->redeclared = true;
          state->Forget(attempt->queue.name);
          DeclareThenPublish(std::move(state), std::move(attempt));
          return;
        }
        if (gone) {
          published = absl::UnavailableError(
              absl::StrCat("delay queue ", attempt->queue.name,
                           " vanished twice while publishing into it: ",
                           published.message()));
        }
        attempt->done(std::move(published));
      });
}

}  // namespace

DelayQueues::DelayQueues(amqp::AmqpBroker& amqp, DelayQueuesOptions options)
    : state_(std::make_shared<State>(amqp, options)) {}

void DelayQueues::Publish(amqp::OutgoingMessage message, absl::Duration delay,
                          absl::Time deadline, Done done) {
  if (delay <= absl::ZeroDuration()) {
    state_->amqp.Publish(std::move(message), deadline, std::move(done));
    return;
  }
  const absl::Duration bucket = DelayBucket(delay);
  auto attempt = std::make_shared<Attempt>();
  attempt->queue.name = DelayQueueName(bucket, message.exchange);
  attempt->queue.message_ttl = bucket;
  attempt->queue.dead_letter_exchange = message.exchange;
  attempt->queue.expires =
      DelayQueueExpiry(bucket, state_->options.expiry_slack);
  attempt->queue.with_exchange = true;
  message.exchange = attempt->queue.name;
  attempt->message = std::move(message);
  attempt->deadline = deadline;
  attempt->done = std::move(done);
  DeclareThenPublish(state_, std::move(attempt));
}

void DelayQueues::Retry(const amqp::Delivery& d, const RetryTarget& target,
                        absl::Duration after, absl::Time deadline, Done done) {
  const absl::Duration bucket = DelayBucket(after);
  auto attempt = std::make_shared<Attempt>();
  attempt->queue.name = RetryQueueName(bucket, target.queue);
  attempt->queue.quorum = target.quorum;
  attempt->queue.message_ttl = bucket;
  attempt->queue.dead_letter_exchange = "";
  attempt->queue.dead_letter_routing_key = target.queue;
  attempt->queue.expires =
      DelayQueueExpiry(bucket, state_->options.expiry_slack);

  amqp::OutgoingMessage& m = attempt->message;
  m.exchange = "";
  m.routing_key = attempt->queue.name;
  m.payload = d.payload;
  m.content_type = d.content_type;
  m.message_id = d.message_id;
  m.persistent = d.persistent;
  m.priority = d.priority;
  // A request retried must still reach its caller's reply address.
  m.reply_to = d.reply_to;
  m.correlation_id = d.correlation_id;
  // The origin of a message retried before is in its headers already.
  const std::string* exchange = FindHeader(d.headers, kRetryExchangeHeader);
  const std::string* key = FindHeader(d.headers, kRetryRoutingKeyHeader);
  const bool retried_before = exchange != nullptr && key != nullptr;
  for (const auto& [k, v] : d.headers) {
    if (!IsRetryHeader(k)) m.headers.emplace_back(k, v);
  }
  m.headers.emplace_back(kRetriesHeader, absl::StrCat(RetriesOf(d) + 1));
  m.headers.emplace_back(kRetryExchangeHeader,
                         retried_before ? *exchange : d.exchange);
  m.headers.emplace_back(kRetryRoutingKeyHeader,
                         retried_before ? *key : d.routing_key);
  attempt->deadline = deadline;
  attempt->done = std::move(done);
  DeclareThenPublish(state_, std::move(attempt));
}

}  // namespace warren::messaging
