// The direct RabbitMQ side of the benchmark: rabbitmq-c used the way an
// application that links it would use it at its best: confirms pipelined
// with a window, acks on a consumer with a prefetch, one connection per
// thread (rabbitmq-c connections are not thread-safe).
#pragma once

#include <amqp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace warren::bench {

class AmqpConnection {
 public:
  // Connects and logs in; no channel is open yet.
  static absl::StatusOr<std::unique_ptr<AmqpConnection>> Open(
      const std::string& url, const std::string& name);
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  amqp_connection_state_t get() const { return conn_; }
  int channel_max() const { return amqp_get_channel_max(conn_); }

  absl::Status OpenChannel(uint16_t channel);
  absl::Status ConfirmSelect(uint16_t channel);
  // A durable classic queue (idempotent).
  absl::Status DeclareQueue(uint16_t channel, const std::string& name);
  absl::Status PurgeQueue(uint16_t channel, const std::string& name);
  absl::Status DeleteQueue(uint16_t channel, const std::string& name);
  absl::StatusOr<uint32_t> QueueDepth(uint16_t channel,
                                      const std::string& name);
  // basic.qos + basic.consume (manual acks).
  absl::Status Consume(uint16_t channel, const std::string& queue,
                       uint16_t prefetch,
                       amqp_table_t arguments = amqp_empty_table);
  // The outcome of the last synchronous call.
  absl::Status Check(const char* what);

 private:
  explicit AmqpConnection(amqp_connection_state_t conn) : conn_(conn) {}
  amqp_connection_state_t conn_;
};

struct PipelinedPublish {
  std::string queue;  // published through the default exchange
  std::string payload;
  int window = 256;
  bool persistent = true;
  int64_t limit = 0;  // stop after this many confirms; 0: until `stop`
  // Stamps the send time into the payload's first 8 bytes when set.
  bool stamp = false;
  std::atomic<bool>* stop = nullptr;
  std::atomic<int64_t>* confirmed = nullptr;
};

// Publishes on `channel` (opened and in confirm mode) keeping up to
// `window` messages unconfirmed, until `stop` or `limit`, then waits for
// the outstanding confirms. A nack is an error.
absl::Status PublishPipelined(AmqpConnection& conn, uint16_t channel,
                              PipelinedPublish params);

}  // namespace warren::bench
