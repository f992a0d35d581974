#include "server/amqp/amqp_connection_monitor.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "server/common/logging.h"

namespace warren::amqp {
namespace {

struct ConnectionDeleter {
  void operator()(amqp_connection_state_t conn) const {
    amqp_destroy_connection(conn);
  }
};
using Connection =
    std::unique_ptr<std::remove_pointer_t<amqp_connection_state_t>,
                    ConnectionDeleter>;

const char* StateName(BrokerState state) {
  switch (state) {
    case BrokerState::kConnecting:
      return "connecting";
    case BrokerState::kConnected:
      return "connected";
    case BrokerState::kBlocked:
      return "blocked by broker flow control";
    case BrokerState::kClosed:
      return "closed";
  }
  return "unknown";
}

std::string RpcReplyError(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* close =
            static_cast<amqp_connection_close_t*>(reply.reply.decoded);
        return absl::StrCat(
            "broker closed the connection: ", close->reply_code, " ",
            std::string(static_cast<const char*>(close->reply_text.bytes),
                        close->reply_text.len));
      }
      return absl::StrCat("broker error, method ", reply.reply.id);
  }
  return "unknown reply";
}

}  // namespace

absl::StatusOr<BrokerAddress> ParseBrokerUrl(const std::string& url) {
  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info;
  amqp_default_connection_info(&info);
  // Redact before parsing so that no error message carries the password.
  std::string redacted = url;
  const size_t at = redacted.rfind('@');
  const size_t scheme = redacted.find("://");
  if (at != std::string::npos && scheme != std::string::npos) {
    const size_t colon = redacted.find(':', scheme + 3);
    if (colon != std::string::npos && colon < at) {
      redacted.replace(colon + 1, at - colon - 1, "****");
    }
  }
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "amqp_urls: '", redacted,
        "' is not an AMQP URL (amqp[s]://user:password@host:port/vhost)"));
  }
  BrokerAddress address;
  address.host = info.host;
  address.port = info.port;
  address.user = info.user;
  address.password = info.password;
  // "amqp://host/" names the empty vhost by the letter of the URI spec;
  // like most clients, take it as the default vhost "/".
  address.vhost = *info.vhost == '\0' ? "/" : info.vhost;
  address.tls = info.ssl != 0;
  address.redacted = std::move(redacted);
  return address;
}

absl::StatusOr<std::unique_ptr<AmqpConnectionMonitor>>
AmqpConnectionMonitor::Create(AmqpMonitorOptions options) {
  if (options.urls.empty()) {
    return absl::InvalidArgumentError("amqp_urls is empty");
  }
  std::vector<BrokerAddress> brokers;
  for (const std::string& url : options.urls) {
    auto parsed = ParseBrokerUrl(url);
    if (!parsed.ok()) return parsed.status();
    brokers.push_back(*std::move(parsed));
  }
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  std::unique_ptr<AmqpConnectionMonitor> monitor(new AmqpConnectionMonitor(
      std::move(options), std::move(brokers), wake_fd));
  monitor->thread_ = std::thread([m = monitor.get()] { m->Run(); });
  return monitor;
}

AmqpConnectionMonitor::AmqpConnectionMonitor(AmqpMonitorOptions options,
                                             std::vector<BrokerAddress> brokers,
                                             int wake_fd)
    : options_(std::move(options)),
      brokers_(std::move(brokers)),
      wake_fd_(wake_fd) {}

AmqpConnectionMonitor::~AmqpConnectionMonitor() {
  stopping_.store(true);
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    WARREN_LOG_ERROR("amqp monitor: cannot wake I/O thread: {}",
                     std::strerror(errno));
  }
  if (thread_.joinable()) thread_.join();
  close(wake_fd_);
}

absl::Status AmqpConnectionMonitor::WaitConnected(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!reachable()) {
    if (absl::Now() >= deadline) {
      std::string urls;
      for (const auto& b : brokers_) {
        absl::StrAppend(&urls, urls.empty() ? "" : ", ", b.redacted);
      }
      return absl::UnavailableError(
          absl::StrCat("could not connect to RabbitMQ at ", urls, " within ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

int AmqpConnectionMonitor::AddListener(
    absl::AnyInvocable<void(BrokerState)> listener) {
  warren::MutexLock lock(&listeners_mu_);
  const int id = next_listener_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void AmqpConnectionMonitor::RemoveListener(int id) {
  warren::MutexLock lock(&listeners_mu_);
  listeners_.erase(id);
}

void AmqpConnectionMonitor::SetState(BrokerState next) {
  const BrokerState previous = state_.exchange(next);
  if (previous == next) return;
  WARREN_LOG_INFO("rabbitmq connection {} -> {}", StateName(previous),
                  StateName(next));
  warren::MutexLock lock(&listeners_mu_);
  for (auto& [id, listener] : listeners_) listener(next);
}

bool AmqpConnectionMonitor::WaitOrStop(absl::Duration timeout) {
  pollfd wake{wake_fd_, POLLIN, 0};
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(timeout));
  while (poll(&wake, 1, ms) < 0 && errno == EINTR) {
  }
  return stopping_.load();
}

void AmqpConnectionMonitor::Run() {
  absl::BitGen rng;
  absl::Duration backoff = absl::Milliseconds(200);
  size_t next = 0;
  bool ever_connected = false;
  while (!stopping_.load()) {
    const BrokerAddress& broker = brokers_[next % brokers_.size()];
    ++next;
    absl::Status ended = ServeOne(broker);
    if (stopping_.load()) break;
    if (state() == BrokerState::kConnected ||
        state() == BrokerState::kBlocked) {
      ever_connected = true;
    }
    SetState(BrokerState::kConnecting);
    if (ever_connected) reconnects_.fetch_add(1);
    WARREN_LOG_WARN("rabbitmq {}: {}", broker.redacted, ended.message());
    // Try the other brokers of a cluster at once; back off after a round.
    if (next % brokers_.size() != 0) continue;
    const absl::Duration wait =
        backoff + absl::Milliseconds(absl::Uniform(
                      rng, 0, absl::ToInt64Milliseconds(backoff) / 2 + 1));
    backoff = std::min(backoff * 2, absl::Seconds(10));
    if (WaitOrStop(wait)) break;
  }
  SetState(BrokerState::kClosed);
}

absl::Status AmqpConnectionMonitor::ServeOne(const BrokerAddress& broker) {
  Connection conn(amqp_new_connection());
  if (conn == nullptr) return absl::ResourceExhaustedError("out of memory");
  amqp_socket_t* socket = broker.tls ? amqp_ssl_socket_new(conn.get())
                                     : amqp_tcp_socket_new(conn.get());
  if (socket == nullptr) return absl::InternalError("cannot create a socket");
  if (broker.tls) {
    amqp_ssl_socket_set_verify_peer(socket, 1);
    amqp_ssl_socket_set_verify_hostname(socket, 1);
    if (!options_.ca_file.empty() &&
        amqp_ssl_socket_set_cacert(socket, options_.ca_file.c_str()) !=
            AMQP_STATUS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read amqp_ca_file ", options_.ca_file));
    }
  }
  timeval connect_timeout = absl::ToTimeval(options_.connect_timeout);
  const int opened = amqp_socket_open_noblock(socket, broker.host.c_str(),
                                              broker.port, &connect_timeout);
  if (opened != AMQP_STATUS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect: ", amqp_error_string2(opened)));
  }
  amqp_set_handshake_timeout(conn.get(), &connect_timeout);
  amqp_set_rpc_timeout(conn.get(), &connect_timeout);
  const int heartbeat_s = static_cast<int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.heartbeat)));
  amqp_rpc_reply_t login = amqp_login(
      conn.get(), broker.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE, heartbeat_s,
      AMQP_SASL_METHOD_PLAIN, broker.user.c_str(), broker.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    return absl::UnavailableError(
        absl::StrCat("login failed: ", RpcReplyError(login)));
  }
  SetState(BrokerState::kConnected);

  const int sock_fd = amqp_get_sockfd(conn.get());
  // Wake at least twice per heartbeat interval so that ours go out in time.
  const int poll_ms = heartbeat_s * 1000 / 2;
  while (!stopping_.load()) {
    pollfd fds[2] = {{sock_fd, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    if (amqp_frames_enqueued(conn.get()) == 0 &&
        !amqp_data_in_buffer(conn.get())) {
      const int ready = poll(fds, 2, poll_ms);
      if (ready < 0 && errno != EINTR) {
        return absl::InternalError(
            absl::StrCat("poll: ", std::strerror(errno)));
      }
      if (fds[1].revents != 0) break;
    }
    // Drain what arrived; this also sends and checks heartbeats.
    while (true) {
      amqp_frame_t frame;
      timeval zero{0, 0};
      const int status =
          amqp_simple_wait_frame_noblock(conn.get(), &frame, &zero);
      if (status == AMQP_STATUS_TIMEOUT) break;
      if (status != AMQP_STATUS_OK) {
        return absl::UnavailableError(
            absl::StrCat("connection lost: ", amqp_error_string2(status)));
      }
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      switch (frame.payload.method.id) {
        case AMQP_CONNECTION_BLOCKED_METHOD:
          SetState(BrokerState::kBlocked);
          break;
        case AMQP_CONNECTION_UNBLOCKED_METHOD:
          SetState(BrokerState::kConnected);
          break;
        case AMQP_CONNECTION_CLOSE_METHOD: {
          amqp_connection_close_ok_t close_ok;
          amqp_send_method(conn.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
                           &close_ok);
          const auto* close = static_cast<amqp_connection_close_t*>(
              frame.payload.method.decoded);
          return absl::UnavailableError(absl::StrCat(
              "broker closed the connection: ", close->reply_code, " ",
              std::string(static_cast<const char*>(close->reply_text.bytes),
                          close->reply_text.len)));
        }
        default:
          break;
      }
    }
  }
  amqp_connection_close(conn.get(), AMQP_REPLY_SUCCESS);
  return absl::CancelledError("monitor stopped");
}

}  // namespace warren::amqp
