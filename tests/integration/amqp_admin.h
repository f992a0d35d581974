// Direct RabbitMQ access for test set-up and inspection (declaring queues and
// exchanges, counting what a queue holds), through rabbitmq-c's synchronous
// API: the tests check Warren against the broker's own view.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace warren::testing {

class AmqpAdmin {
 public:
  static absl::StatusOr<std::unique_ptr<AmqpAdmin>> Connect(
      const std::string& url);
  ~AmqpAdmin();

  absl::Status DeclareExchange(const std::string& name,
                               const std::string& type);
  // `long_args` are integer queue arguments, `string_args` string ones.
  absl::Status DeclareQueue(
      const std::string& name,
      const std::map<std::string, int64_t>& long_args = {},
      const std::map<std::string, std::string>& string_args = {});
  absl::Status Bind(const std::string& queue, const std::string& exchange,
                    const std::string& key);
  absl::Status DeleteQueue(const std::string& name);
  // Messages ready for delivery (not counting unacknowledged ones).
  absl::StatusOr<uint32_t> ReadyCount(const std::string& queue);

 private:
  AmqpAdmin() = default;
  absl::Status Reply(const char* what);
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace warren::testing
