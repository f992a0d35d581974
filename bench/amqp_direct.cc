#include "bench/amqp_direct.h"

#include <amqp_tcp_socket.h>

#include <cstring>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/bench_common.h"

namespace warren::bench {
namespace {

amqp_bytes_t Bytes(const std::string& s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

}  // namespace

absl::StatusOr<std::unique_ptr<AmqpConnection>> AmqpConnection::Open(
    const std::string& url, const std::string& name) {
  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) {
    return absl::InvalidArgumentError(absl::StrCat("bad AMQP URL ", url));
  }
  amqp_connection_state_t conn = amqp_new_connection();
  std::unique_ptr<AmqpConnection> c(new AmqpConnection(conn));
  amqp_socket_t* socket = amqp_tcp_socket_new(conn);
  if (socket == nullptr) return absl::InternalError("amqp_tcp_socket_new");
  if (int rc = amqp_socket_open(socket, info.host, info.port);
      rc != AMQP_STATUS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to RabbitMQ: ", amqp_error_string2(rc)));
  }
  amqp_table_entry_t capability_entries[2];
  capability_entries[0].key = amqp_cstring_bytes("publisher_confirms");
  capability_entries[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
  capability_entries[0].value.value.boolean = 1;
  capability_entries[1].key = amqp_cstring_bytes("connection.blocked");
  capability_entries[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
  capability_entries[1].value.value.boolean = 1;
  amqp_table_entry_t properties[2];
  properties[0].key = amqp_cstring_bytes("capabilities");
  properties[0].value.kind = AMQP_FIELD_KIND_TABLE;
  properties[0].value.value.table = amqp_table_t{2, capability_entries};
  properties[1].key = amqp_cstring_bytes("connection_name");
  properties[1].value.kind = AMQP_FIELD_KIND_UTF8;
  properties[1].value.value.bytes = Bytes(name);
  amqp_table_t client_properties{2, properties};
  const char* vhost = *info.vhost == '\0' ? "/" : info.vhost;
  amqp_rpc_reply_t login = amqp_login_with_properties(
      conn, vhost, 0, AMQP_DEFAULT_FRAME_SIZE, 0, &client_properties,
      AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    return absl::UnavailableError("RabbitMQ login failed");
  }
  return c;
}

AmqpConnection::~AmqpConnection() {
  amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn_);
}

absl::Status AmqpConnection::Check(const char* what) {
  amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return absl::OkStatus();
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        return absl::UnavailableError(
            absl::StrCat(what, ": channel closed: ", m->reply_code, " ",
                         std::string(static_cast<char*>(m->reply_text.bytes),
                                     m->reply_text.len)));
      }
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        return absl::UnavailableError(
            absl::StrCat(what, ": connection closed: ", m->reply_code, " ",
                         std::string(static_cast<char*>(m->reply_text.bytes),
                                     m->reply_text.len)));
      }
      return absl::UnavailableError(absl::StrCat(what, ": server exception"));
    default:
      return absl::UnavailableError(
          absl::StrCat(what, ": ", amqp_error_string2(r.library_error)));
  }
}

absl::Status AmqpConnection::OpenChannel(uint16_t channel) {
  amqp_channel_open(conn_, channel);
  return Check("channel.open");
}

absl::Status AmqpConnection::ConfirmSelect(uint16_t channel) {
  amqp_confirm_select(conn_, channel);
  return Check("confirm.select");
}

absl::Status AmqpConnection::DeclareQueue(uint16_t channel,
                                          const std::string& name) {
  amqp_queue_declare(conn_, channel, Bytes(name), 0, /*durable=*/1, 0, 0,
                     amqp_empty_table);
  return Check("queue.declare");
}

absl::Status AmqpConnection::PurgeQueue(uint16_t channel,
                                        const std::string& name) {
  amqp_queue_purge(conn_, channel, Bytes(name));
  return Check("queue.purge");
}

absl::Status AmqpConnection::DeleteQueue(uint16_t channel,
                                         const std::string& name) {
  amqp_queue_delete(conn_, channel, Bytes(name), 0, 0);
  return Check("queue.delete");
}

absl::StatusOr<uint32_t> AmqpConnection::QueueDepth(uint16_t channel,
                                                    const std::string& name) {
  amqp_queue_declare_ok_t* ok = amqp_queue_declare(
      conn_, channel, Bytes(name), /*passive=*/1, 0, 0, 0, amqp_empty_table);
  if (absl::Status s = Check("queue.declare(passive)"); !s.ok()) return s;
  return ok->message_count;
}

absl::Status AmqpConnection::Consume(uint16_t channel, const std::string& queue,
                                     uint16_t prefetch,
                                     amqp_table_t arguments) {
  amqp_basic_qos(conn_, channel, 0, prefetch, 0);
  if (absl::Status s = Check("basic.qos"); !s.ok()) return s;
  amqp_basic_consume(conn_, channel, Bytes(queue), amqp_empty_bytes, 0,
                     /*no_ack=*/0, 0, arguments);
  return Check("basic.consume");
}

absl::Status PublishPipelined(AmqpConnection& conn, uint16_t channel,
                              PipelinedPublish p) {
  amqp_connection_state_t c = conn.get();
  uint64_t next_tag = 1;
  // Unconfirmed delivery tags (confirms may be single or `multiple`).
  std::set<uint64_t> unconfirmed;
  int64_t published = 0;
  std::string payload = p.payload;
  std::string message_id;
  auto should_publish = [&] {
    if (p.stop != nullptr && p.stop->load(std::memory_order_relaxed)) {
      return false;
    }
    return p.limit == 0 || published < p.limit;
  };
  while (true) {
    const bool more = should_publish();
    if (!more && unconfirmed.empty()) break;
    while (should_publish() &&
           unconfirmed.size() < static_cast<size_t>(p.window)) {
      // The same properties warrend sets: delivery mode, message id and
      // timestamp.
      amqp_basic_properties_t props;
      std::memset(&props, 0, sizeof(props));
      props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG |
                     AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
      props.delivery_mode = p.persistent ? 2 : 1;
      message_id = absl::StrCat("direct-", next_tag);
      props.message_id = Bytes(message_id);
      props.timestamp = static_cast<uint64_t>(absl::ToUnixSeconds(absl::Now()));
      if (p.stamp) StampPayload(payload, NowNs());
      const int rc =
          amqp_basic_publish(c, channel, amqp_empty_bytes, Bytes(p.queue), 0, 0,
                             &props, Bytes(payload));
      if (rc != AMQP_STATUS_OK) {
        return absl::UnavailableError(
            absl::StrCat("basic.publish: ", amqp_error_string2(rc)));
      }
      unconfirmed.insert(next_tag++);
      ++published;
    }
    // Wait for confirms: block while the window is full (or we are
    // draining), otherwise only take what has arrived.
    bool block = unconfirmed.size() >= static_cast<size_t>(p.window) ||
                 (!should_publish() && !unconfirmed.empty());
    while (true) {
      amqp_frame_t frame;
      timeval tv = block ? timeval{0, 100000} : timeval{0, 0};
      const int rc = amqp_simple_wait_frame_noblock(c, &frame, &tv);
      if (rc == AMQP_STATUS_TIMEOUT) {
        if (block) continue;
        break;
      }
      if (rc != AMQP_STATUS_OK) {
        return absl::UnavailableError(
            absl::StrCat("waiting for confirms: ", amqp_error_string2(rc)));
      }
      block = false;
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      uint64_t tag = 0;
      bool multiple = false;
      if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        const auto* m =
            static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        tag = m->delivery_tag;
        multiple = m->multiple != 0;
      } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        return absl::UnavailableError("the broker nacked a message");
      } else if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        return absl::UnavailableError("the broker closed the channel");
      } else {
        continue;
      }
      int64_t n = 0;
      if (multiple) {
        auto end = unconfirmed.upper_bound(tag);
        for (auto it = unconfirmed.begin(); it != end;) {
          it = unconfirmed.erase(it);
          ++n;
        }
      } else {
        n = static_cast<int64_t>(unconfirmed.erase(tag));
      }
      if (p.confirmed != nullptr) {
        p.confirmed->fetch_add(n, std::memory_order_relaxed);
      }
    }
    amqp_maybe_release_buffers(c);
  }
  return absl::OkStatus();
}

}  // namespace warren::bench
