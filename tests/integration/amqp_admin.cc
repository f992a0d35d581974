#include "tests/integration/amqp_admin.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <vector>

#include "absl/strings/str_cat.h"

namespace warren::testing {

struct AmqpAdmin::State {
  amqp_connection_state_t conn = nullptr;
  // Every call uses a fresh channel: a failed declaration closes its
  // channel, and the next call must not inherit that.
  uint16_t channel = 0;
};

namespace {

amqp_bytes_t Bytes(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

}  // namespace

absl::StatusOr<std::unique_ptr<AmqpAdmin>> AmqpAdmin::Connect(
    const std::string& url) {
  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info;
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) {
    return absl::InvalidArgumentError("bad url " + url);
  }
  std::unique_ptr<AmqpAdmin> admin(new AmqpAdmin);
  admin->state_ = std::make_unique<State>();
  admin->state_->conn = amqp_new_connection();
  amqp_socket_t* socket = amqp_tcp_socket_new(admin->state_->conn);
  if (amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK) {
    return absl::UnavailableError("cannot connect to " + url);
  }
  amqp_rpc_reply_t login =
      amqp_login(admin->state_->conn, "/", 0, AMQP_DEFAULT_FRAME_SIZE, 0,
                 AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    return absl::UnavailableError("login failed at " + url);
  }
  return admin;
}

AmqpAdmin::~AmqpAdmin() {
  if (state_ && state_->conn != nullptr) {
    amqp_connection_close(state_->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state_->conn);
  }
}

absl::Status AmqpAdmin::Reply(const char* what) {
  amqp_rpc_reply_t reply = amqp_get_rpc_reply(state_->conn);
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return absl::OkStatus();
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
    amqp_channel_close_ok_t ok;
    amqp_send_method(state_->conn, state_->channel,
                     AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", close->reply_code, " ",
                     std::string(static_cast<char*>(close->reply_text.bytes),
                                 close->reply_text.len)));
  }
  return absl::UnavailableError(absl::StrCat(what, " failed"));
}

#define WARREN_ADMIN_CHANNEL()                                     \
  do {                                                             \
    ++state_->channel;                                             \
    amqp_channel_open(state_->conn, state_->channel);              \
    if (absl::Status s = Reply("channel.open"); !s.ok()) return s; \
  } while (0)

absl::Status AmqpAdmin::DeclareExchange(const std::string& name,
                                        const std::string& type) {
  WARREN_ADMIN_CHANNEL();
  amqp_exchange_declare(state_->conn, state_->channel, Bytes(name), Bytes(type),
                        0, 1, 0, 0, amqp_empty_table);
  return Reply("exchange.declare");
}

absl::Status AmqpAdmin::DeclareQueue(
    const std::string& name, const std::map<std::string, int64_t>& long_args,
    const std::map<std::string, std::string>& string_args) {
  WARREN_ADMIN_CHANNEL();
  std::vector<amqp_table_entry_t> entries;
  for (const auto& [key, value] : long_args) {
    amqp_table_entry_t e;
    e.key = Bytes(key);
    e.value.kind = AMQP_FIELD_KIND_I64;
    e.value.value.i64 = value;
    entries.push_back(e);
  }
  for (const auto& [key, value] : string_args) {
    amqp_table_entry_t e;
    e.key = Bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = Bytes(value);
    entries.push_back(e);
  }
  amqp_table_t args{static_cast<int>(entries.size()),
                    entries.empty() ? nullptr : entries.data()};
  amqp_queue_declare(state_->conn, state_->channel, Bytes(name), 0, 1, 0, 0,
                     args);
  return Reply("queue.declare");
}

absl::Status AmqpAdmin::Bind(const std::string& queue,
                             const std::string& exchange,
                             const std::string& key) {
  WARREN_ADMIN_CHANNEL();
  amqp_queue_bind(state_->conn, state_->channel, Bytes(queue), Bytes(exchange),
                  Bytes(key), amqp_empty_table);
  return Reply("queue.bind");
}

absl::Status AmqpAdmin::DeleteQueue(const std::string& name) {
  WARREN_ADMIN_CHANNEL();
  amqp_queue_delete(state_->conn, state_->channel, Bytes(name), 0, 0);
  return Reply("queue.delete");
}

absl::StatusOr<uint32_t> AmqpAdmin::ReadyCount(const std::string& queue) {
  WARREN_ADMIN_CHANNEL();
  amqp_queue_declare_ok_t* ok =
      amqp_queue_declare(state_->conn, state_->channel, Bytes(queue), 1, 0, 0,
                         0, amqp_empty_table);
  if (absl::Status s = Reply("queue.declare (passive)"); !s.ok()) return s;
  return ok->message_count;
}

}  // namespace warren::testing
