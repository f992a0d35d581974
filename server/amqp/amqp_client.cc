#include "server/amqp/amqp_client.h"

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "server/amqp/amqp_codec.h"
#include "server/amqp/call_book.h"
#include "server/amqp/confirm_tracker.h"
#include "server/amqp/consumer_book.h"
#include "server/amqp/publish_refusals.h"
#include "server/common/logging.h"
#include "server/common/uuid.h"

namespace warren::amqp {
namespace {

// Publishes go over one confirm channel at a time, 1 or 3: a replacement
// (PublishRefusals) takes the other number, so that acks of the old channel
// still queued in rabbitmq-c cannot settle the new channel's publishes.
constexpr uint16_t kPublishChannel = 1;
constexpr uint16_t kScratchChannel = 2;
constexpr uint16_t kSparePublishChannel = 3;
// Requests of Call and their replies (direct reply-to needs the request
// published on the channel that consumes the replies).
constexpr uint16_t kCallChannel = 4;
constexpr uint16_t kFirstSubscriptionChannel = 5;
// RabbitMQ's pseudo-queue for direct reply-to.
constexpr char kDirectReplyTo[] = "amq.rabbitmq.reply-to";
// How long a passive check that an exchange exists is trusted.
constexpr absl::Duration kExchangeCheckTtl = absl::Seconds(30);

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

}  // namespace

struct AmqpClient::Command {
  enum class Kind {
    kPublish,
    kDeclareExchange,
    kSubscribe,
    kSettle,
    kUnsubscribe,
    kCall,
    kDeclareDelayQueue
  };
  Kind kind;
  OutgoingMessage message;
  absl::Time deadline;
  absl::AnyInvocable<void(absl::Status)> done;
  SubscriptionId subscription = 0;
  SubscribeSpec spec;
  std::shared_ptr<SubscriptionSink> sink;
  uint64_t delivery_tag = 0;
  amqp::Settle settle = amqp::Settle::kAck;
  ExchangeKind exchange_kind = ExchangeKind::kTopic;
  AmqpBroker::CallDone call_done;
  DelayQueueSpec delay_queue;
};

// Everything that belongs to the I/O thread: the connection and the
// channels, the state of its publishes (ConfirmTracker) and subscriptions
// (ConsumerBook), and the messages arriving in frames.
class AmqpClient::IoLoop {
 public:
  explicit IoLoop(AmqpClient& client)
      : client_(client),
        confirms_(client.options_.on_confirm),
        consumers_(kFirstSubscriptionChannel) {}

  void Run();

 private:
  // A message arriving in frames: method, then header, then body.
  struct Content {
    enum class What { kDeliver, kReturn } what;
    Delivery delivery;
    uint64_t body_size = 0;
    bool have_header = false;
    std::string return_text;
  };

  absl::Status Serve(const BrokerAddress& broker);
  // Commands that arrive while there is no connection fail at once.
  void TakeCommands(bool connected, absl::Status* connection_error);
  absl::Status Execute(Command& command);
  // Answers `done` itself whenever it does not hand the message to the
  // confirm tracker; a non-OK status is a connection error.
  absl::Status DoPublish(OutgoingMessage& message, absl::Time deadline,
                         ConfirmTracker::Done& done);
  absl::Status DoDeclareExchange(Command& command);
  absl::Status DoDeclareDelayQueue(Command& command);
  absl::Status EnsureScratchChannel(absl::Status* connection_error);
  absl::Status DoSubscribe(Command& command);
  absl::Status DoSettle(Command& command);
  absl::Status DoUnsubscribe(Command& command);
  absl::Status DoCall(Command& command);
  // Opens the reply channel (confirm mode, consuming direct reply-to) unless
  // it is open; a non-OK status fails the call that asked.
  absl::Status EnsureCallChannel(absl::Status* connection_error);
  // The reply channel is gone: every waiting call fails with UNAVAILABLE.
  void LoseCallChannel(absl::string_view why);
  // OK when `exchange` exists (checked on the scratch channel, remembered
  // for kExchangeCheckTtl); otherwise why not. Publishing to a missing
  // exchange would close the channel and fail everything else on it.
  absl::Status CheckExchange(const std::string& exchange,
                             absl::Status* connection_error);
  // basic.publish of `m` on `channel`; UNAVAILABLE when the connection
  // failed.
  absl::Status SendPublish(uint16_t channel, const OutgoingMessage& m,
                           absl::Time now);
  absl::Status HandleFrame(const amqp_frame_t& frame);
  absl::Status HandleMethod(uint16_t channel, const amqp_method_t& method);
  void CompleteContent(uint16_t channel, Content content);
  void OnConfirm(uint64_t tag, bool multiple, bool ack);
  // The outcome of a synchronous call on `channel`: OK, a channel error
  // (the channel is closed and acknowledged), or a connection error, which
  // is also stored in `*connection_error`.
  absl::Status CheckReply(uint16_t channel, absl::string_view what,
                          absl::Status* connection_error);
  // The same for a reply that rabbitmq-c hands back instead of keeping it
  // (amqp_channel_close).
  absl::Status CheckReplyOf(const amqp_rpc_reply_t& reply, uint16_t channel,
                            absl::string_view what,
                            absl::Status* connection_error);
  absl::Status OpenChannel(uint16_t channel, absl::Status* connection_error);
  absl::Status OpenPublishChannel();
  // Closes the confirm channel and republishes what it left unconfirmed on
  // a fresh one (the other publish channel number).
  absl::Status ReplacePublishChannel();
  absl::Status ReplayUnconfirmed(const absl::Status& channel_error);
  // Makes the subscription channels closed so far reusable; only while
  // rabbitmq-c holds no queued frame (see ConsumerBook).
  void ReleaseClosedChannels();
  void EndSubscription(uint16_t channel, absl::Status status);
  void FailAll(const absl::Status& status);
  absl::Status SendAcks(const std::vector<ConsumerBook::Ack>& acks);
  // Whether executing `command` waits for an answer from the broker.
  bool WaitsForBroker(const Command& command) const;

  AmqpClient& client_;
  Connection conn_;
  bool blocked_ = false;
  bool scratch_open_ = false;
  uint16_t publish_channel_ = kPublishChannel;
  PublishRefusals refusals_;
  ConfirmTracker confirms_;
  std::map<std::string, absl::Time> known_exchanges_;
  ConsumerBook consumers_;
  std::map<uint16_t, Content> content_;
  bool call_channel_open_ = false;
  // The requests' confirms; a failed one fails its call in `calls_`.
  ConfirmTracker call_confirms_;
  CallBook calls_;
};

absl::StatusOr<std::unique_ptr<AmqpClient>> AmqpClient::Create(
    AmqpOptions options) {
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
  std::unique_ptr<AmqpClient> client(
      new AmqpClient(std::move(options), std::move(brokers), wake_fd));
  client->loop_ = std::make_unique<IoLoop>(*client);
  client->thread_ = std::thread([c = client.get()] { c->loop_->Run(); });
  return client;
}

AmqpClient::AmqpClient(AmqpOptions options, std::vector<BrokerAddress> brokers,
                       int wake_fd)
    : options_(std::move(options)),
      brokers_(std::move(brokers)),
      wake_fd_(wake_fd),
      commands_(new std::vector<Command>) {}

AmqpClient::~AmqpClient() {
  stopping_.store(true);
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    WARREN_LOG_ERROR("amqp: cannot wake the I/O thread: {}",
                     std::strerror(errno));
  }
  if (thread_.joinable()) thread_.join();
  close(wake_fd_);
  delete commands_;
}

void AmqpClient::Post(Command command) {
  bool was_empty;
  {
    warren::MutexLock lock(&commands_mu_);
    was_empty = commands_->empty();
    commands_->push_back(std::move(command));
  }
  // The I/O thread takes the whole queue at each wake-up, so a queue that
  // was not empty has a wake-up pending already: under load this saves a
  // write(2) per command and most of the I/O thread's wake-ups.
  if (!was_empty) return;
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof(one)) < 0) {
    WARREN_LOG_ERROR("amqp: cannot wake the I/O thread: {}",
                     std::strerror(errno));
  }
}

absl::Status AmqpClient::WaitConnected(absl::Duration timeout) {
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

int AmqpClient::AddListener(absl::AnyInvocable<void(BrokerState)> listener) {
  warren::MutexLock lock(&listeners_mu_);
  const int id = next_listener_++;
  listeners_.emplace(id, std::move(listener));
  return id;
}

void AmqpClient::RemoveListener(int id) {
  warren::MutexLock lock(&listeners_mu_);
  listeners_.erase(id);
}

void AmqpClient::SetState(BrokerState next) {
  const BrokerState previous = state_.exchange(next);
  if (previous == next) return;
  WARREN_LOG_INFO("rabbitmq connection {}: {} -> {}", options_.connection_name,
                  StateName(previous), StateName(next));
  warren::MutexLock lock(&listeners_mu_);
  for (auto& [id, listener] : listeners_) listener(next);
}

void AmqpClient::Publish(OutgoingMessage message, absl::Time deadline,
                         absl::AnyInvocable<void(absl::Status)> done) {
  Command c;
  c.kind = Command::Kind::kPublish;
  c.message = std::move(message);
  c.deadline = deadline;
  c.done = std::move(done);
  Post(std::move(c));
}

AmqpClient::SubscriptionId AmqpClient::Subscribe(
    SubscribeSpec spec, std::shared_ptr<SubscriptionSink> sink) {
  Command c;
  c.kind = Command::Kind::kSubscribe;
  c.subscription = next_subscription_.fetch_add(1);
  c.spec = std::move(spec);
  c.sink = std::move(sink);
  const SubscriptionId id = c.subscription;
  Post(std::move(c));
  return id;
}

void AmqpClient::DeclareExchange(std::string name, ExchangeKind kind,
                                 absl::AnyInvocable<void(absl::Status)> done) {
  Command c;
  c.kind = Command::Kind::kDeclareExchange;
  c.message.exchange = std::move(name);
  c.exchange_kind = kind;
  c.done = std::move(done);
  Post(std::move(c));
}

void AmqpClient::DeclareDelayQueue(
    DelayQueueSpec spec, absl::AnyInvocable<void(absl::Status)> done) {
  Command c;
  c.kind = Command::Kind::kDeclareDelayQueue;
  c.delay_queue = std::move(spec);
  c.done = std::move(done);
  Post(std::move(c));
}

void AmqpClient::Settle(SubscriptionId id, uint64_t delivery_tag,
                        amqp::Settle how) {
  Command c;
  c.kind = Command::Kind::kSettle;
  c.subscription = id;
  c.delivery_tag = delivery_tag;
  c.settle = how;
  Post(std::move(c));
}

void AmqpClient::Call(OutgoingMessage request, absl::Time deadline,
                      CallDone done) {
  Command c;
  c.kind = Command::Kind::kCall;
  c.message = std::move(request);
  c.deadline = deadline;
  c.call_done = std::move(done);
  Post(std::move(c));
}

void AmqpClient::Unsubscribe(SubscriptionId id) {
  Command c;
  c.kind = Command::Kind::kUnsubscribe;
  c.subscription = id;
  Post(std::move(c));
}

// ---------------------------------------------------------------------------
// The I/O thread.

void AmqpClient::IoLoop::Run() {
  absl::BitGen rng;
  absl::Duration backoff = absl::Milliseconds(200);
  size_t next = 0;  // counted from AmqpOptions::first_url
  const auto& brokers = client_.brokers_;
  while (!client_.stopping_.load()) {
    const BrokerAddress& broker =
        brokers[(client_.options_.first_url + next) % brokers.size()];
    ++next;
    absl::Status ended = Serve(broker);
    const bool was_connected = client_.reachable();
    if (was_connected) {
      backoff = absl::Milliseconds(200);
    }
    FailAll(absl::UnavailableError(absl::StrCat(
        "connection to RabbitMQ lost (", ended.message(),
        "); unconfirmed publishes may or may not have been delivered: retry "
        "with the same message_id")));
    conn_.reset();
    if (client_.stopping_.load()) break;
    client_.SetState(BrokerState::kConnecting);
    if (was_connected) client_.reconnects_.fetch_add(1);
    WARREN_LOG_WARN("rabbitmq {} ({}): {}", broker.redacted,
                    client_.options_.connection_name, ended.message());
    // Try the other brokers of a cluster at once; back off after a round.
    if (!was_connected && next % brokers.size() != 0) continue;
    const absl::Duration wait =
        backoff + absl::Milliseconds(absl::Uniform(
                      rng, 0, absl::ToInt64Milliseconds(backoff) / 2 + 1));
    backoff = std::min(backoff * 2, absl::Seconds(10));
    // Wait, failing whatever is asked meanwhile.
    const absl::Time until = absl::Now() + wait;
    while (!client_.stopping_.load() && absl::Now() < until) {
      pollfd wake{client_.wake_fd_, POLLIN, 0};
      const int ms = static_cast<int>(
          std::max<int64_t>(1, absl::ToInt64Milliseconds(until - absl::Now())));
      if (poll(&wake, 1, ms) > 0) {
        uint64_t drained;
        (void)!read(client_.wake_fd_, &drained, sizeof(drained));
        TakeCommands(false, nullptr);
      }
    }
  }
  FailAll(absl::UnavailableError("the server is shutting down"));
  TakeCommands(false, nullptr);
  client_.SetState(BrokerState::kClosed);
}

void AmqpClient::IoLoop::FailAll(const absl::Status& status) {
  LoseCallChannel(status.message());
  confirms_.FailAll(status);
  client_.unconfirmed_publishes_.store(0, std::memory_order_relaxed);
  for (auto& sink : consumers_.Clear()) sink->OnEnded(status);
  content_.clear();
  known_exchanges_.clear();
  publish_channel_ = kPublishChannel;
  blocked_ = false;
  scratch_open_ = false;
}

namespace {

// Holds back partial TCP segments while a batch of frames that need no
// answer (publishes, acks) is written: rabbitmq-c sends every frame by
// itself, and the broker then reads one small segment per message, which
// costs it more CPU per message than the same frames in full segments.
// Released before anything that waits for the broker, and at the end.
class SocketCork {
 public:
  explicit SocketCork(int fd) : fd_(fd) {}
  ~SocketCork() { Release(); }
  SocketCork(const SocketCork&) = delete;
  SocketCork& operator=(const SocketCork&) = delete;

  void Hold() {
    if (!held_ && fd_ >= 0) Set(1);
  }
  void Release() {
    if (held_) Set(0);
  }

 private:
  void Set(int on) {
    // A failure only loses the batching, never a frame.
    held_ =
        setsockopt(fd_, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) == 0 && on == 1;
  }

  const int fd_;
  bool held_ = false;
};

}  // namespace

bool AmqpClient::IoLoop::WaitsForBroker(const Command& command) const {
  switch (command.kind) {
    case Command::Kind::kPublish: {
      // A publish to an exchange not checked lately checks it first.
      const std::string& exchange = command.message.exchange;
      if (exchange.empty()) return false;
      auto known = known_exchanges_.find(exchange);
      return known == known_exchanges_.end() || known->second < absl::Now();
    }
    case Command::Kind::kSettle:
      return false;
    case Command::Kind::kCall:
      if (!call_channel_open_) return true;
      {
        const std::string& exchange = command.message.exchange;
        if (exchange.empty()) return false;
        auto known = known_exchanges_.find(exchange);
        return known == known_exchanges_.end() || known->second < absl::Now();
      }
    case Command::Kind::kDeclareExchange:
    case Command::Kind::kSubscribe:
    case Command::Kind::kUnsubscribe:
    case Command::Kind::kDeclareDelayQueue:
      return true;
  }
  return true;
}

void AmqpClient::IoLoop::TakeCommands(bool connected,
                                      absl::Status* connection_error) {
  std::vector<Command> commands;
  {
    warren::MutexLock lock(&client_.commands_mu_);
    commands.swap(*client_.commands_);
  }
  SocketCork cork(
      connected && commands.size() > 1 ? amqp_get_sockfd(conn_.get()) : -1);
  for (auto& command : commands) {
    if (connected && connection_error->ok()) {
      if (WaitsForBroker(command)) {
        cork.Release();
      } else {
        cork.Hold();
      }
      *connection_error = Execute(command);
      continue;
    }
    // No connection (or it just failed): answer at once.
    const absl::Status down =
        client_.stopping_.load()
            ? absl::UnavailableError("the server is shutting down")
            : absl::UnavailableError(
                  "RabbitMQ is not connected; retry (the server reconnects "
                  "by itself)");
    switch (command.kind) {
      case Command::Kind::kPublish:
      case Command::Kind::kDeclareExchange:
      case Command::Kind::kDeclareDelayQueue:
        command.done(down);
        break;
      case Command::Kind::kSubscribe:
        command.sink->OnEnded(down);
        break;
      case Command::Kind::kCall:
        command.call_done(down);
        break;
      case Command::Kind::kSettle:
      case Command::Kind::kUnsubscribe:
        break;  // the broker requeued everything with the connection
    }
  }
  if (connected && connection_error->ok()) {
    *connection_error = SendAcks(consumers_.TakeAcks());
  }
}

absl::Status AmqpClient::IoLoop::Execute(Command& command) {
  switch (command.kind) {
    case Command::Kind::kPublish:
      return DoPublish(command.message, command.deadline, command.done);
    case Command::Kind::kDeclareExchange:
      return DoDeclareExchange(command);
    case Command::Kind::kSubscribe:
      return DoSubscribe(command);
    case Command::Kind::kSettle:
      return DoSettle(command);
    case Command::Kind::kUnsubscribe:
      return DoUnsubscribe(command);
    case Command::Kind::kCall:
      return DoCall(command);
    case Command::Kind::kDeclareDelayQueue:
      return DoDeclareDelayQueue(command);
  }
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::Serve(const BrokerAddress& broker) {
  conn_.reset(amqp_new_connection());
  if (conn_ == nullptr) return absl::ResourceExhaustedError("out of memory");
  amqp_socket_t* socket = broker.tls ? amqp_ssl_socket_new(conn_.get())
                                     : amqp_tcp_socket_new(conn_.get());
  if (socket == nullptr) return absl::InternalError("cannot create a socket");
  if (broker.tls) {
    amqp_ssl_socket_set_verify_peer(socket, 1);
    amqp_ssl_socket_set_verify_hostname(socket, 1);
    if (!client_.options_.ca_file.empty() &&
        amqp_ssl_socket_set_cacert(socket, client_.options_.ca_file.c_str()) !=
            AMQP_STATUS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read amqp_ca_file ", client_.options_.ca_file));
    }
    if (!client_.options_.cert_file.empty() &&
        amqp_ssl_socket_set_key(socket, client_.options_.cert_file.c_str(),
                                client_.options_.key_file.c_str()) !=
            AMQP_STATUS_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot use amqp_cert_file ", client_.options_.cert_file,
                       " with amqp_key_file ", client_.options_.key_file));
    }
  }
  timeval timeout = absl::ToTimeval(client_.options_.connect_timeout);
  const int opened = amqp_socket_open_noblock(socket, broker.host.c_str(),
                                              broker.port, &timeout);
  if (opened != AMQP_STATUS_OK) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect: ", amqp_error_string2(opened)));
  }
  amqp_set_handshake_timeout(conn_.get(), &timeout);
  amqp_set_rpc_timeout(conn_.get(), &timeout);
  const int heartbeat_s = static_cast<int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(client_.options_.heartbeat)));
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
  properties[1].value.value.bytes =
      amqp_cstring_bytes(client_.options_.connection_name.c_str());
  amqp_table_t client_properties{2, properties};
  amqp_rpc_reply_t login = amqp_login_with_properties(
      conn_.get(), broker.vhost.c_str(), 0, AMQP_DEFAULT_FRAME_SIZE,
      heartbeat_s, &client_properties, AMQP_SASL_METHOD_PLAIN,
      broker.user.c_str(), broker.password.c_str());
  if (login.reply_type != AMQP_RESPONSE_NORMAL) {
    if (login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        login.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      const auto* close =
          static_cast<amqp_connection_close_t*>(login.reply.decoded);
      return absl::UnavailableError(
          absl::StrCat("login refused: ", close->reply_code, " ",
                       String(close->reply_text)));
    }
    return absl::UnavailableError(absl::StrCat(
        "login failed: ", login.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION
                              ? amqp_error_string2(login.library_error)
                              : "unexpected reply"));
  }
  if (absl::Status s = OpenPublishChannel(); !s.ok()) return s;
  refusals_.OnConnected(absl::Now());
  // Channel 0 is the connection's own; 1 to 4 are the publish, scratch,
  // spare publish and call channels. A channel_max of 0 means no limit but the
  // protocol's.
  const int channel_max = amqp_get_channel_max(conn_.get());
  client_.subscription_capacity_.store(
      static_cast<size_t>(channel_max == 0 ? 65535 : channel_max) + 1 -
      kFirstSubscriptionChannel);
  client_.SetState(BrokerState::kConnected);

  const int sock_fd = amqp_get_sockfd(conn_.get());
  while (!client_.stopping_.load()) {
    client_.unconfirmed_publishes_.store(confirms_.size(),
                                         std::memory_order_relaxed);
    if (amqp_frames_enqueued(conn_.get()) == 0 &&
        !amqp_data_in_buffer(conn_.get())) {
      // Wake twice per heartbeat interval so that ours go out in time, and
      // often enough to answer publish deadlines promptly.
      const int wait_ms =
          confirms_.empty() && calls_.empty() ? heartbeat_s * 500 : 50;
      pollfd fds[2] = {{sock_fd, POLLIN, 0}, {client_.wake_fd_, POLLIN, 0}};
      const int ready = poll(fds, 2, wait_ms);
      if (ready < 0 && errno != EINTR) {
        return absl::InternalError(
            absl::StrCat("poll: ", std::strerror(errno)));
      }
      if (fds[1].revents != 0) {
        uint64_t drained;
        (void)!read(client_.wake_fd_, &drained, sizeof(drained));
      }
    }
    absl::Status connection_error;
    TakeCommands(true, &connection_error);
    if (!connection_error.ok()) return connection_error;
    // Everything that has arrived; this also sends and checks heartbeats.
    while (true) {
      amqp_frame_t frame;
      timeval zero{0, 0};
      const int status =
          amqp_simple_wait_frame_noblock(conn_.get(), &frame, &zero);
      if (status == AMQP_STATUS_TIMEOUT) break;
      if (status != AMQP_STATUS_OK) {
        return absl::UnavailableError(
            absl::StrCat("connection lost: ", amqp_error_string2(status)));
      }
      if (absl::Status s = HandleFrame(frame); !s.ok()) return s;
    }
    // Nothing queued is left: no stale frame of a closed channel either.
    ReleaseClosedChannels();
    confirms_.ExpireDeadlines(absl::Now());
    calls_.ExpireDeadlines(absl::Now());
    client_.call_replies_dropped_.store(calls_.dropped(),
                                        std::memory_order_relaxed);
    switch (refusals_.Next(absl::Now())) {
      case PublishRefusals::Action::kNone:
        break;
      case PublishRefusals::Action::kReplaceChannel:
        if (absl::Status s = ReplacePublishChannel(); !s.ok()) return s;
        break;
      case PublishRefusals::Action::kMoveConnection:
        return absl::UnavailableError(
            "every publish through this node is refused (basic.nack) since "
            "the connection failed over, also on fresh channels; moving to "
            "another node");
    }
    amqp_maybe_release_buffers(conn_.get());
  }
  amqp_connection_close(conn_.get(), AMQP_REPLY_SUCCESS);
  return absl::CancelledError("the server is shutting down");
}

absl::Status AmqpClient::IoLoop::CheckReply(uint16_t channel,
                                            absl::string_view what,
                                            absl::Status* connection_error) {
  return CheckReplyOf(amqp_get_rpc_reply(conn_.get()), channel, what,
                      connection_error);
}

absl::Status AmqpClient::IoLoop::CheckReplyOf(const amqp_rpc_reply_t& reply,
                                              uint16_t channel,
                                              absl::string_view what,
                                              absl::Status* connection_error) {
  ReplyOutcome outcome = ClassifyReply(reply, what);
  switch (outcome.kind) {
    case ReplyOutcome::Kind::kOk:
      break;
    case ReplyOutcome::Kind::kChannelClosed: {
      amqp_channel_close_ok_t close_ok;
      if (amqp_send_method(conn_.get(), channel, AMQP_CHANNEL_CLOSE_OK_METHOD,
                           &close_ok) != AMQP_STATUS_OK) {
        *connection_error = absl::UnavailableError("cannot send close-ok");
      }
      break;
    }
    case ReplyOutcome::Kind::kConnectionClosed: {
      amqp_connection_close_ok_t close_ok;
      amqp_send_method(conn_.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
                       &close_ok);
      *connection_error = outcome.status;
      break;
    }
    case ReplyOutcome::Kind::kConnectionFailed:
      *connection_error = outcome.status;
      break;
  }
  return outcome.status;
}

absl::Status AmqpClient::IoLoop::OpenChannel(uint16_t channel,
                                             absl::Status* connection_error) {
  amqp_channel_open(conn_.get(), channel);
  return CheckReply(channel, "channel.open", connection_error);
}

absl::Status AmqpClient::IoLoop::OpenPublishChannel() {
  absl::Status connection_error;
  absl::Status s = OpenChannel(publish_channel_, &connection_error);
  if (s.ok()) {
    amqp_confirm_select(conn_.get(), publish_channel_);
    s = CheckReply(publish_channel_, "confirm.select", &connection_error);
  }
  if (!connection_error.ok()) return connection_error;
  // A channel that cannot be opened on a healthy connection is a broker
  // problem we cannot work around: reconnect.
  if (!s.ok()) return absl::UnavailableError(s.message());
  confirms_.OnChannelOpened();
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::DoPublish(OutgoingMessage& m,
                                           absl::Time deadline,
                                           ConfirmTracker::Done& done) {
  if (absl::Now() >= deadline) {
    done(absl::DeadlineExceededError(
        "the deadline passed before the message was published"));
    return absl::OkStatus();
  }
  if (blocked_) {
    done(absl::ResourceExhaustedError(
        "RabbitMQ applies flow control (connection blocked: a resource "
        "alarm); retry later"));
    return absl::OkStatus();
  }
  // Publishing to a missing exchange would close the shared confirm channel
  // and disturb every other publisher: check first (and remember).
  {
    absl::Status connection_error;
    absl::Status exists = CheckExchange(m.exchange, &connection_error);
    if (!exists.ok()) {
      done(exists);
      return connection_error;
    }
  }

  if (absl::Status lost = SendPublish(publish_channel_, m, absl::Now());
      !lost.ok()) {
    done(lost);
    return lost;
  }
  confirms_.OnPublished({std::move(m), deadline, std::move(done)}, absl::Now());
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::SendPublish(uint16_t channel,
                                             const OutgoingMessage& m,
                                             absl::Time now) {
  const PublishProperties props(m, now);
  const int sent = amqp_basic_publish(conn_.get(), channel, Bytes(m.exchange),
                                      Bytes(m.routing_key), m.mandatory ? 1 : 0,
                                      0, props.get(), Bytes(m.payload));
  if (sent == AMQP_STATUS_OK) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("connection to RabbitMQ lost while publishing: ",
                   amqp_error_string2(sent)));
}

absl::Status AmqpClient::IoLoop::CheckExchange(const std::string& exchange,
                                               absl::Status* connection_error) {
  if (exchange.empty()) return absl::OkStatus();
  auto known = known_exchanges_.find(exchange);
  if (known != known_exchanges_.end() && known->second >= absl::Now()) {
    return absl::OkStatus();
  }
  absl::Status opened = EnsureScratchChannel(connection_error);
  if (!opened.ok()) return opened;
  amqp_exchange_declare(conn_.get(), kScratchChannel, Bytes(exchange),
                        amqp_cstring_bytes("topic"), /*passive=*/1,
                        /*durable=*/0, /*auto_delete=*/0, /*internal=*/0,
                        amqp_empty_table);
  absl::Status exists =
      CheckReply(kScratchChannel, "exchange.declare", connection_error);
  if (!connection_error->ok()) return *connection_error;
  if (!exists.ok()) {
    scratch_open_ = false;  // the broker closed it
    known_exchanges_.erase(exchange);
    return exists.code() == absl::StatusCode::kNotFound
               ? absl::NotFoundError(
                     absl::StrCat("exchange '", exchange, "' does not exist"))
               : exists;
  }
  known_exchanges_[exchange] = absl::Now() + kExchangeCheckTtl;
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::EnsureCallChannel(
    absl::Status* connection_error) {
  if (call_channel_open_) return absl::OkStatus();
  absl::Status s = OpenChannel(kCallChannel, connection_error);
  if (s.ok()) {
    amqp_confirm_select(conn_.get(), kCallChannel);
    s = CheckReply(kCallChannel, "confirm.select", connection_error);
  }
  if (s.ok()) {
    // Direct reply-to: replies need no ack and the broker wants none.
    amqp_basic_consume(conn_.get(), kCallChannel,
                       amqp_cstring_bytes(kDirectReplyTo), amqp_empty_bytes,
                       /*no_local=*/0, /*no_ack=*/1, /*exclusive=*/0,
                       amqp_empty_table);
    s = CheckReply(kCallChannel, "basic.consume", connection_error);
  }
  if (!s.ok()) {
    if (connection_error->ok()) {
      // The broker closed it (CheckReply acknowledged that); nothing of it
      // is left to clean up.
      content_.erase(kCallChannel);
    }
    return absl::UnavailableError(
        absl::StrCat("cannot open the reply channel: ", s.message()));
  }
  call_channel_open_ = true;
  call_confirms_.OnChannelOpened();
  return absl::OkStatus();
}

void AmqpClient::IoLoop::LoseCallChannel(absl::string_view why) {
  call_channel_open_ = false;
  content_.erase(kCallChannel);
  calls_.FailAll(absl::UnavailableError(
      absl::StrCat("the reply channel was lost (", why,
                   "); the request may have been handled; no reply can "
                   "arrive")));
  // Their calls were answered just above.
  call_confirms_.FailAll(absl::UnavailableError("reply channel lost"));
}

absl::Status AmqpClient::IoLoop::DoCall(Command& command) {
  OutgoingMessage& m = command.message;
  if (absl::Now() >= command.deadline) {
    command.call_done(absl::DeadlineExceededError(
        "the deadline passed before the request was published"));
    return absl::OkStatus();
  }
  if (blocked_) {
    command.call_done(absl::ResourceExhaustedError(
        "RabbitMQ applies flow control (connection blocked: a resource "
        "alarm); retry later"));
    return absl::OkStatus();
  }
  absl::Status connection_error;
  if (absl::Status s = CheckExchange(m.exchange, &connection_error); !s.ok()) {
    command.call_done(s);
    return connection_error;
  }
  if (absl::Status s = EnsureCallChannel(&connection_error); !s.ok()) {
    command.call_done(s);
    return connection_error;
  }
  m.reply_to = kDirectReplyTo;
  m.correlation_id = NewUuid();
  const std::string correlation_id = m.correlation_id;
  const absl::Time now = absl::Now();
  calls_.Add(correlation_id, command.deadline, now,
             std::move(command.call_done));
  if (absl::Status lost = SendPublish(kCallChannel, m, now); !lost.ok()) {
    calls_.Fail(correlation_id, lost);
    return lost;
  }
  // The call's own deadline is kept by `calls_`; the confirm only matters
  // when it refuses the request (returned unroutable, or nacked).
  call_confirms_.OnPublished({std::move(m), absl::InfiniteFuture(),
                              [this, correlation_id](absl::Status status) {
                                if (!status.ok())
                                  calls_.Fail(correlation_id,
                                              std::move(status));
                              }},
                             now);
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::EnsureScratchChannel(
    absl::Status* connection_error) {
  if (scratch_open_) return absl::OkStatus();
  absl::Status opened = OpenChannel(kScratchChannel, connection_error);
  if (opened.ok()) scratch_open_ = true;
  return opened;
}

absl::Status AmqpClient::IoLoop::DoDeclareExchange(Command& command) {
  absl::Status connection_error;
  absl::Status s = EnsureScratchChannel(&connection_error);
  if (s.ok()) {
    amqp_exchange_declare(
        conn_.get(), kScratchChannel, Bytes(command.message.exchange),
        amqp_cstring_bytes(ExchangeType(command.exchange_kind)), 0,
        /*durable=*/1, 0, 0, amqp_empty_table);
    s = CheckReply(kScratchChannel, "exchange.declare", &connection_error);
    if (!s.ok()) scratch_open_ = false;  // the broker closed it
  }
  if (s.ok()) {
    known_exchanges_[command.message.exchange] =
        absl::Now() + kExchangeCheckTtl;
  }
  command.done(s);
  return connection_error;
}

absl::Status AmqpClient::IoLoop::DoDeclareDelayQueue(Command& command) {
  const DelayQueueSpec& q = command.delay_queue;
  absl::Status connection_error;
  absl::Status s = EnsureScratchChannel(&connection_error);
  // A delayed message is dead-lettered into its target later, where a
  // missing exchange would drop it unseen: refuse it now, as a publish.
  if (s.ok() && q.with_exchange && !q.dead_letter_exchange.empty()) {
    amqp_exchange_declare(
        conn_.get(), kScratchChannel, Bytes(q.dead_letter_exchange),
        amqp_cstring_bytes("topic"), /*passive=*/1, 0, 0, 0, amqp_empty_table);
    s = CheckReply(kScratchChannel, "exchange.declare", &connection_error);
    if (s.code() == absl::StatusCode::kNotFound) {
      scratch_open_ = false;  // the broker closed it
      command.done(absl::NotFoundError(absl::StrCat(
          "exchange '", q.dead_letter_exchange, "' does not exist")));
      return connection_error;
    }
  }
  if (s.ok() && q.with_exchange) {
    amqp_exchange_declare(conn_.get(), kScratchChannel, Bytes(q.name),
                          amqp_cstring_bytes("fanout"), 0, /*durable=*/1,
                          /*auto_delete=*/1, 0, amqp_empty_table);
    s = CheckReply(kScratchChannel, "exchange.declare", &connection_error);
  }
  if (s.ok()) {
    TableBuilder args;
    AddDelayQueueArguments(q, args);
    amqp_queue_declare(conn_.get(), kScratchChannel, Bytes(q.name), 0,
                       /*durable=*/1, 0, 0, args.table());
    s = CheckReply(kScratchChannel, "queue.declare", &connection_error);
  }
  if (s.ok() && q.with_exchange) {
    amqp_queue_bind(conn_.get(), kScratchChannel, Bytes(q.name), Bytes(q.name),
                    amqp_empty_bytes, amqp_empty_table);
    s = CheckReply(kScratchChannel, "queue.bind", &connection_error);
  }
  if (!s.ok()) {
    scratch_open_ = false;  // the broker closed it
    if (s.code() == absl::StatusCode::kFailedPrecondition) {
      s = absl::FailedPreconditionError(
          absl::StrCat("delay queue ", q.name,
                       " exists with other arguments: ", s.message()));
    }
  } else if (q.with_exchange) {
    known_exchanges_[q.name] = absl::Now() + kExchangeCheckTtl;
  }
  command.done(s);
  return connection_error;
}

void AmqpClient::IoLoop::OnConfirm(uint64_t tag, bool multiple, bool ack) {
  const absl::Time now = absl::Now();
  const size_t settled = confirms_.OnConfirm(tag, multiple, ack, now);
  for (size_t i = 0; i < settled; ++i) {
    if (ack) {
      refusals_.OnConfirmed();
    } else {
      refusals_.OnRefused(now);
    }
  }
}

absl::Status AmqpClient::IoLoop::ReplacePublishChannel() {
  WARREN_LOG_WARN(
      "rabbitmq ({}): publishes on confirm channel {} keep being refused "
      "(basic.nack); replacing the channel",
      client_.options_.connection_name, publish_channel_);
  const uint16_t old = publish_channel_;
  absl::Status connection_error;
  (void)CheckReplyOf(amqp_channel_close(conn_.get(), old, AMQP_REPLY_SUCCESS),
                     old, "channel.close", &connection_error);
  if (!connection_error.ok()) return connection_error;
  content_.erase(old);
  publish_channel_ =
      old == kPublishChannel ? kSparePublishChannel : kPublishChannel;
  refusals_.OnChannelReplaced(absl::Now());
  return ReplayUnconfirmed(
      absl::UnavailableError("the confirm channel was replaced"));
}

absl::Status AmqpClient::IoLoop::ReplayUnconfirmed(
    const absl::Status& channel_error) {
  // The confirm channel was closed. Everything not yet confirmed goes out
  // again on a fresh channel (same message ids, so a rare duplicate can be
  // recognised), or fails, as ConfirmTracker::Replayable decides.
  WARREN_LOG_WARN(
      "rabbitmq: confirm channel closed by the broker ({}); "
      "republishing {} unconfirmed messages",
      channel_error.message(), confirms_.size());
  std::vector<ConfirmTracker::Publish> replay = confirms_.TakeUnanswered();
  known_exchanges_.clear();
  if (absl::Status s = OpenPublishChannel(); !s.ok()) {
    ConfirmTracker::AnswerAll(replay, s);
    return s;
  }
  return ConfirmTracker::Replay(
      std::move(replay), channel_error, [this](ConfirmTracker::Publish& p) {
        return DoPublish(p.message, p.deadline, p.done);
      });
}

absl::Status AmqpClient::IoLoop::HandleFrame(const amqp_frame_t& frame) {
  const uint16_t channel = frame.channel;
  // A frame that reached us after its channel was closed belongs to no
  // subscription (see ConsumerBook::ReleaseClosedChannels).
  if (consumers_.IsClosed(channel)) return absl::OkStatus();
  if (frame.frame_type == AMQP_FRAME_METHOD) {
    return HandleMethod(channel, frame.payload.method);
  }
  auto it = content_.find(channel);
  if (it == content_.end()) return absl::OkStatus();  // a closed channel's
  Content& content = it->second;
  if (frame.frame_type == AMQP_FRAME_HEADER) {
    content.have_header = true;
    content.body_size = frame.payload.properties.body_size;
    DecodeProperties(*static_cast<const amqp_basic_properties_t*>(
                         frame.payload.properties.decoded),
                     content.delivery);
    content.delivery.payload.reserve(content.body_size);
  } else if (frame.frame_type == AMQP_FRAME_BODY) {
    content.delivery.payload.append(
        static_cast<const char*>(frame.payload.body_fragment.bytes),
        frame.payload.body_fragment.len);
  } else {
    return absl::OkStatus();
  }
  if (content.have_header &&
      content.delivery.payload.size() >= content.body_size) {
    Content done = std::move(content);
    content_.erase(it);
    CompleteContent(channel, std::move(done));
  }
  return absl::OkStatus();
}

void AmqpClient::IoLoop::CompleteContent(uint16_t channel, Content content) {
  if (channel == kCallChannel) {
    if (content.what == Content::What::kReturn) {
      call_confirms_.OnReturnedByCorrelationId(content.delivery.correlation_id,
                                               std::move(content.return_text));
    } else {
      calls_.OnReply(std::move(content.delivery));
    }
    return;
  }
  if (content.what == Content::What::kReturn) {
    // A replaced channel's returns: its messages are republished.
    if (channel != publish_channel_) return;
    confirms_.OnReturned(content.delivery.message_id,
                         std::move(content.return_text));
    return;
  }
  SubscriptionSink* sink =
      consumers_.OnDelivery(channel, content.delivery.delivery_tag);
  if (sink != nullptr) sink->OnDelivery(std::move(content.delivery));
}

absl::Status AmqpClient::IoLoop::HandleMethod(uint16_t channel,
                                              const amqp_method_t& method) {
  switch (method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      const auto* m = static_cast<amqp_basic_ack_t*>(method.decoded);
      if (channel == publish_channel_) {
        OnConfirm(m->delivery_tag, m->multiple != 0, true);
      } else if (channel == kCallChannel && call_channel_open_) {
        call_confirms_.OnConfirm(m->delivery_tag, m->multiple != 0, true,
                                 absl::Now());
      }
      return absl::OkStatus();
    }
    case AMQP_BASIC_NACK_METHOD: {
      const auto* m = static_cast<amqp_basic_nack_t*>(method.decoded);
      if (channel == publish_channel_) {
        OnConfirm(m->delivery_tag, m->multiple != 0, false);
      } else if (channel == kCallChannel && call_channel_open_) {
        call_confirms_.OnConfirm(m->delivery_tag, m->multiple != 0, false,
                                 absl::Now());
      }
      return absl::OkStatus();
    }
    case AMQP_BASIC_RETURN_METHOD: {
      const auto* m = static_cast<amqp_basic_return_t*>(method.decoded);
      Content c;
      c.what = Content::What::kReturn;
      c.return_text = absl::StrCat(m->reply_code, " ", String(m->reply_text));
      content_[channel] = std::move(c);
      return absl::OkStatus();
    }
    case AMQP_BASIC_DELIVER_METHOD: {
      const auto* m = static_cast<amqp_basic_deliver_t*>(method.decoded);
      Content c;
      c.what = Content::What::kDeliver;
      c.delivery.delivery_tag = m->delivery_tag;
      c.delivery.redelivered = m->redelivered != 0;
      c.delivery.exchange = String(m->exchange);
      c.delivery.routing_key = String(m->routing_key);
      content_[channel] = std::move(c);
      return absl::OkStatus();
    }
    case AMQP_BASIC_CANCEL_METHOD: {
      if (channel == kCallChannel) {
        LoseCallChannel("the broker cancelled the reply consumer");
        absl::Status connection_error;
        (void)CheckReplyOf(
            amqp_channel_close(conn_.get(), channel, AMQP_REPLY_SUCCESS),
            channel, "channel.close", &connection_error);
        return connection_error;
      }
      // The broker cancelled the consumer (its queue was deleted).
      EndSubscription(
          channel, absl::NotFoundError("the subscription's queue was deleted"));
      absl::Status connection_error;
      (void)CheckReplyOf(
          amqp_channel_close(conn_.get(), channel, AMQP_REPLY_SUCCESS), channel,
          "channel.close", &connection_error);
      consumers_.OnChannelClosed(channel);
      return connection_error;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      const auto* m = static_cast<amqp_channel_close_t*>(method.decoded);
      const absl::Status status =
          FromReplyCode(m->reply_code, String(m->reply_text));
      amqp_channel_close_ok_t close_ok;
      if (amqp_send_method(conn_.get(), channel, AMQP_CHANNEL_CLOSE_OK_METHOD,
                           &close_ok) != AMQP_STATUS_OK) {
        return absl::UnavailableError("cannot acknowledge a channel close");
      }
      content_.erase(channel);
      if (channel == publish_channel_) return ReplayUnconfirmed(status);
      if (channel == kCallChannel) {
        LoseCallChannel(status.message());
        return absl::OkStatus();
      }
      if (channel == kPublishChannel || channel == kSparePublishChannel) {
        return absl::OkStatus();  // a replaced one's
      }
      if (channel == kScratchChannel) {
        scratch_open_ = false;
        return absl::OkStatus();
      }
      EndSubscription(channel, status);
      consumers_.OnChannelClosed(channel);
      return absl::OkStatus();
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
      blocked_ = true;
      client_.SetState(BrokerState::kBlocked);
      return absl::OkStatus();
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
      blocked_ = false;
      client_.SetState(BrokerState::kConnected);
      return absl::OkStatus();
    case AMQP_CONNECTION_CLOSE_METHOD: {
      const auto* m = static_cast<amqp_connection_close_t*>(method.decoded);
      amqp_connection_close_ok_t close_ok;
      amqp_send_method(conn_.get(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD,
                       &close_ok);
      return absl::UnavailableError(
          absl::StrCat("broker closed the connection: ", m->reply_code, " ",
                       String(m->reply_text)));
    }
    default:
      return absl::OkStatus();
  }
}

void AmqpClient::IoLoop::EndSubscription(uint16_t channel,
                                         absl::Status status) {
  std::shared_ptr<SubscriptionSink> sink = consumers_.RemoveByChannel(channel);
  if (sink != nullptr) sink->OnEnded(std::move(status));
}

void AmqpClient::IoLoop::ReleaseClosedChannels() {
  if (!consumers_.has_closed_channels() || amqp_frames_enqueued(conn_.get())) {
    return;
  }
  for (uint16_t channel : consumers_.ReleaseClosedChannels()) {
    amqp_maybe_release_buffers_on_channel(conn_.get(), channel);
  }
}

absl::Status AmqpClient::IoLoop::DoSubscribe(Command& command) {
  const SubscribeSpec& spec = command.spec;
  const uint16_t channel =
      consumers_.AllocateChannel(amqp_get_channel_max(conn_.get()));
  if (channel == 0) {
    command.sink->OnEnded(absl::ResourceExhaustedError(
        "every AMQP channel of this RabbitMQ connection is in use"));
    return absl::OkStatus();
  }
  absl::Status connection_error;
  // Any step that fails ends this subscription alone; its channel was
  // closed by the broker (or never opened).
  auto fail = [&](absl::Status status, bool channel_open) {
    if (channel_open && connection_error.ok()) {
      absl::Status ignored = CheckReplyOf(
          amqp_channel_close(conn_.get(), channel, AMQP_REPLY_SUCCESS), channel,
          "channel.close", &connection_error);
      (void)ignored;
    }
    consumers_.OnChannelClosed(channel);
    command.sink->OnEnded(std::move(status));
    return connection_error;
  };
  absl::Status s = OpenChannel(channel, &connection_error);
  if (!s.ok()) return fail(s, false);

  if (spec.binding.has_value()) {
    amqp_exchange_declare(conn_.get(), channel, Bytes(spec.binding->exchange),
                          amqp_cstring_bytes(ExchangeType(spec.binding->kind)),
                          0, /*durable=*/1, 0, 0, amqp_empty_table);
    s = CheckReply(channel, "exchange.declare", &connection_error);
    if (!s.ok()) return fail(s, false);
  }

  const QueueSpec& q = spec.queue;
  TableBuilder args;
  AddQueueArguments(q, args);
  amqp_queue_declare_ok_t* declared = nullptr;
  if (q.use_existing) {
    declared = amqp_queue_declare(conn_.get(), channel, Bytes(q.name),
                                  /*passive=*/1, 0, 0, 0, amqp_empty_table);
    s = CheckReply(channel, "queue.declare", &connection_error);
    if (!connection_error.ok()) return fail(s, false);
    if (!s.ok()) {
      declared = nullptr;
      // Missing (the broker closed the channel): declare it on a new one.
      if (s.code() != absl::StatusCode::kNotFound) return fail(s, false);
      s = OpenChannel(channel, &connection_error);
      if (!s.ok()) return fail(s, false);
    }
  }
  if (declared == nullptr) {
    declared = amqp_queue_declare(conn_.get(), channel, Bytes(q.name), 0,
                                  q.durable ? 1 : 0, q.exclusive ? 1 : 0,
                                  q.auto_delete ? 1 : 0, args.table());
    s = CheckReply(channel, "queue.declare", &connection_error);
    if (s.code() == absl::StatusCode::kFailedPrecondition) {
      // The broker's text names the argument that differs.
      s = absl::FailedPreconditionError(absl::StrCat(
          "queue ", q.name, " exists with other arguments: ", s.message()));
    }
    if (!s.ok() || declared == nullptr) return fail(s, false);
  }
  const std::string queue = String(declared->queue);

  if (spec.binding.has_value()) {
    std::vector<std::string> keys = spec.binding->keys;
    if (keys.empty())
      keys.push_back(spec.binding->kind == ExchangeKind::kTopic ? "#" : "");
    TableBuilder binding_args;
    AddBindingArguments(*spec.binding, binding_args);
    for (const std::string& key : keys) {
      amqp_queue_bind(conn_.get(), channel, Bytes(queue),
                      Bytes(spec.binding->exchange), Bytes(key),
                      binding_args.table());
      s = CheckReply(channel, "queue.bind", &connection_error);
      if (!s.ok()) return fail(s, false);
    }
  }
  amqp_basic_qos(conn_.get(), channel, 0, spec.prefetch, 0);
  s = CheckReply(channel, "basic.qos", &connection_error);
  if (!s.ok()) return fail(s, false);
  TableBuilder consume_args;
  AddConsumeArguments(spec, consume_args);
  amqp_basic_consume(conn_.get(), channel, Bytes(queue), amqp_empty_bytes, 0,
                     /*no_ack=*/0, 0, consume_args.table());
  s = CheckReply(channel, "basic.consume", &connection_error);
  if (!s.ok()) return fail(s, false);

  consumers_.Add(command.subscription, channel, command.sink);
  command.sink->OnSubscribed(queue);
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::DoSettle(Command& command) {
  if (command.settle == amqp::Settle::kAck) {
    consumers_.QueueAck(command.subscription, command.delivery_tag);
    return absl::OkStatus();
  }
  const std::optional<uint16_t> channel =
      consumers_.TakeForNack(command.subscription, command.delivery_tag);
  if (!channel.has_value()) return absl::OkStatus();
  const int rc = amqp_basic_nack(
      conn_.get(), *channel, command.delivery_tag, /*multiple=*/0,
      command.settle == amqp::Settle::kRequeue ? 1 : 0);
  if (rc != AMQP_STATUS_OK) {
    return absl::UnavailableError(
        absl::StrCat("connection to RabbitMQ lost while settling: ",
                     amqp_error_string2(rc)));
  }
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::SendAcks(
    const std::vector<ConsumerBook::Ack>& acks) {
  for (const ConsumerBook::Ack& ack : acks) {
    const int rc = amqp_basic_ack(conn_.get(), ack.channel, ack.delivery_tag,
                                  ack.multiple ? 1 : 0);
    if (rc != AMQP_STATUS_OK) {
      return absl::UnavailableError(
          absl::StrCat("connection to RabbitMQ lost while settling: ",
                       amqp_error_string2(rc)));
    }
  }
  return absl::OkStatus();
}

absl::Status AmqpClient::IoLoop::DoUnsubscribe(Command& command) {
  const std::optional<uint16_t> channel =
      consumers_.ChannelOf(command.subscription);
  if (!channel.has_value()) return absl::OkStatus();
  // Acks taken before the unsubscribe go out before the channel closes:
  // closing it requeues whatever is still unacked.
  if (absl::Status s = SendAcks(consumers_.TakeAcks(command.subscription));
      !s.ok()) {
    return s;
  }
  consumers_.Remove(command.subscription);
  content_.erase(*channel);
  // Closing the channel hands every unacknowledged delivery back to the
  // queue (and deletes an auto-delete queue with its last consumer).
  absl::Status connection_error;
  (void)CheckReplyOf(
      amqp_channel_close(conn_.get(), *channel, AMQP_REPLY_SUCCESS), *channel,
      "channel.close", &connection_error);
  consumers_.OnChannelClosed(*channel);
  return connection_error;
}

}  // namespace warren::amqp
