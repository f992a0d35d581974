#include "server/daemon/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/log_rate_limit.h"
#include "server/common/logging.h"
#include "server/common/net_address.h"

namespace warren::daemon {
namespace {

// Connections taken from the queue per wake-up and socket, so that one busy
// socket does not starve the others or the sweeps.
constexpr int kAcceptsPerWake = 256;
// The listen queue: the kernel caps it at net.core.somaxconn.
constexpr int kBacklog = 4096;
// How long accept must have gone without running out of descriptors before
// the listener says it accepts again.
constexpr absl::Duration kRecoveryQuiet = absl::Seconds(1);

std::string ErrnoText(int error) { return std::strerror(error); }

// The peer's IP address without port; IPv4-mapped IPv6 addresses as IPv4,
// so that one client counts once whichever socket it reached.
std::string PeerAddress(const sockaddr_storage& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
  } else if (addr.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
      inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], text, sizeof(text));
    } else {
      inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    }
  } else {
    return "unknown";
  }
  return text;
}

// One listening socket on `addr`; `dual_stack`: an IPv6 wildcard socket that
// also takes IPv4 connections.
absl::StatusOr<UniqueFd> ListenOn(const sockaddr* addr, socklen_t len,
                                  bool dual_stack) {
  UniqueFd fd(
      socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    return absl::UnavailableError(absl::StrCat("socket: ", ErrnoText(errno)));
  }
  const int one = 1;
  // SO_REUSEADDR only lets a restarted warrend bind while connections of
  // the previous one linger in TIME_WAIT; unlike SO_REUSEPORT it never lets
  // two processes listen on one port.
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (addr->sa_family == AF_INET6) {
    const int v6only = dual_stack ? 0 : 1;
    setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
  }
  // Inherited by the accepted sockets: gRPC sets it on the sockets it
  // accepts itself, and latency depends on it.
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (bind(fd.get(), addr, len) != 0) {
    const int error = errno;
    return absl::Status(error == EADDRINUSE ? absl::StatusCode::kAlreadyExists
                                            : absl::StatusCode::kUnavailable,
                        absl::StrCat("bind: ", ErrnoText(error)));
  }
  if (listen(fd.get(), kBacklog) != 0) {
    return absl::UnavailableError(absl::StrCat("listen: ", ErrnoText(errno)));
  }
  return fd;
}

int PortOf(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

void SetPort(sockaddr* addr, int port) {
  if (addr->sa_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(port);
  }
}

LogRateLimit& RefusalLogLimit() {
  static LogRateLimit* limit =
      new LogRateLimit(kRejectionLinesPerSecond, absl::Seconds(1));
  return *limit;
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

ConnectionTable::Verdict ConnectionTable::Check(const std::string& peer,
                                                bool may_sweep) {
  auto over = [&] {
    if (max_total_ != 0 && entries_.size() >= max_total_) {
      return Verdict::kTotalLimit;
    }
    if (max_per_peer_ != 0 && count(peer) >= max_per_peer_) {
      return Verdict::kPeerLimit;
    }
    return Verdict::kAdmit;
  };
  if (over() == Verdict::kAdmit || !may_sweep) return over();
  // Some of them may have been closed since the last sweep.
  Sweep();
  return over();
}

void ConnectionTable::Add(int fd, const std::string& peer) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return;
  auto it = entries_.find(fd);
  // A stale entry: gRPC closed that connection, and the number now holds
  // this one.
  if (it != entries_.end()) Forget(it);
  entries_.emplace(fd, Entry{st.st_ino, st.st_dev, peer});
  ++per_peer_[peer];
}

size_t ConnectionTable::Sweep() {
  size_t forgotten = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    struct stat st {};
    const bool same = fstat(it->first, &st) == 0 &&
                      st.st_ino == it->second.inode &&
                      st.st_dev == it->second.device;
    auto next = std::next(it);
    if (!same) {
      Forget(it);
      ++forgotten;
    }
    it = next;
  }
  return forgotten;
}

size_t ConnectionTable::count(const std::string& peer) const {
  auto it = per_peer_.find(peer);
  return it == per_peer_.end() ? 0 : it->second;
}

void ConnectionTable::Forget(std::map<int, Entry>::iterator it) {
  auto peer = per_peer_.find(it->second.peer);
  if (peer != per_peer_.end() && --peer->second == 0) per_peer_.erase(peer);
  entries_.erase(it);
}

absl::StatusOr<std::unique_ptr<Listener>> Listener::Bind(
    ListenerOptions options) {
  const std::string& address = options.address;
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen ", address, ": expected host:port"));
  }
  std::string host = HostOf(address);
  std::vector<UniqueFd> sockets;
  auto fail = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("cannot listen on ", address,
                                               ": ", s.message()));
  };
  if (host.empty() || host == "0.0.0.0" || host == "::") {
    // Every interface: one dual-stack IPv6 socket, as gRPC does, or IPv4
    // alone where the machine has no IPv6.
    sockaddr_in6 any6{};
    any6.sin6_family = AF_INET6;
    any6.sin6_addr = in6addr_any;
    any6.sin6_port = htons(port);
    auto fd = ListenOn(reinterpret_cast<sockaddr*>(&any6), sizeof(any6),
                       /*dual_stack=*/true);
    if (!fd.ok() && fd.status().code() != absl::StatusCode::kAlreadyExists) {
      sockaddr_in any4{};
      any4.sin_family = AF_INET;
      any4.sin_addr.s_addr = htonl(INADDR_ANY);
      any4.sin_port = htons(port);
      fd = ListenOn(reinterpret_cast<sockaddr*>(&any4), sizeof(any4), false);
    }
    if (!fd.ok()) return fail(fd.status());
    sockets.push_back(*std::move(fd));
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const int rc = getaddrinfo(host.c_str(), "0", &hints, &found);
    if (rc != 0) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc))));
    }
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(found, freeaddrinfo);
    absl::Status first_error = absl::OkStatus();
    // Every address of the name, on one port: with port 0 the first socket
    // picks it and the others take the same.
    for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
      sockaddr_storage addr{};
      std::memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
      SetPort(reinterpret_cast<sockaddr*>(&addr), port);
      auto fd =
          ListenOn(reinterpret_cast<sockaddr*>(&addr), ai->ai_addrlen, false);
      if (!fd.ok()) {
        // A taken port is an error; an address this machine lacks (::1
        // without IPv6) is skipped while another one works.
        if (fd.status().code() == absl::StatusCode::kAlreadyExists) {
          return fail(fd.status());
        }
        if (first_error.ok()) first_error = fd.status();
        continue;
      }
      if (port == 0) port = PortOf(fd->get());
      sockets.push_back(*std::move(fd));
    }
    if (sockets.empty()) {
      return fail(first_error.ok() ? absl::UnavailableError("no address")
                                   : first_error);
    }
  }
  const int bound = PortOf(sockets.front().get());
  return std::unique_ptr<Listener>(
      new Listener(std::move(options), std::move(sockets), bound));
}

Listener::Listener(ListenerOptions options, std::vector<UniqueFd> sockets,
                   int port)
    : options_(std::move(options)),
      sockets_(std::move(sockets)),
      port_(port),
      table_(options_.max_connections, options_.max_connections_per_peer) {}

Listener::~Listener() { Stop(); }

void Listener::Start(std::function<void(int fd)> hand_over,
                     std::function<void(bool accepting)> on_accepting) {
  hand_over_ = std::move(hand_over);
  on_accepting_ = std::move(on_accepting);
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  reserve_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
  thread_ = std::thread([this] { Run(); });
}

void Listener::Stop() {
  if (thread_.joinable()) {
    stopping_ = true;
    const uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof(one)) < 0) {
      // The poll's timeout ends the loop within a second anyway.
    }
    thread_.join();
  }
  sockets_.clear();
}

Listener::Stats Listener::stats() const {
  warren::MutexLock lock(&mu_);
  Stats stats = stats_;
  stats.open = table_.total();
  return stats;
}

void Listener::SetAccepting(bool accepting) {
  {
    warren::MutexLock lock(&mu_);
    if (stats_.accepting == accepting) return;
    stats_.accepting = accepting;
  }
  if (accepting) {
    WARREN_LOG_WARN("listener: file descriptors are free again; accepting");
  } else {
    WARREN_LOG_ERROR(
        "listener: out of file descriptors (the process's RLIMIT_NOFILE or "
        "the system's); closing new connections at once until some are "
        "free");
  }
  if (on_accepting_) on_accepting_(accepting);
}

void Listener::Run() {
  std::vector<pollfd> fds;
  for (const UniqueFd& s : sockets_) fds.push_back({s.get(), POLLIN, 0});
  fds.push_back({wake_.get(), POLLIN, 0});
  const int sweep_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options_.sweep_interval));
  while (!stopping_) {
    bool accepting;
    {
      warren::MutexLock lock(&mu_);
      accepting = stats_.accepting;
    }
    // Without a reserve descriptor a full queue would wake the poll at once
    // again: look again a little later instead. While out of descriptors,
    // look for free ones four times a second.
    const int timeout = !reserve_.valid() ? 50
                        : !accepting      ? std::min(sweep_ms, 250)
                                          : sweep_ms;
    const int ready = poll(fds.data(), fds.size(), timeout);
    if (stopping_) break;
    if (ready < 0 && errno != EINTR) {
      WARREN_LOG_ERROR("listener: poll: {}", ErrnoText(errno));
    }
    if (!reserve_.valid()) {
      reserve_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
    }
    const absl::Time now = absl::Now();
    if (now - last_sweep_ >= options_.sweep_interval) {
      last_sweep_ = now;
      warren::MutexLock lock(&mu_);
      table_.Sweep();
    }
    if (!accepting && reserve_.valid() &&
        now - last_no_descriptors_ >= kRecoveryQuiet) {
      // Descriptors are free again when none was missing for a while and
      // one more can be opened now. (Not at the first accept that works:
      // under a steady flood each connection gRPC closes frees one
      // descriptor for one accept, and health would flap with every one.)
      UniqueFd probe(dup(reserve_.get()));
      if (probe.valid()) SetAccepting(true);
    }
    for (size_t i = 0; i + 1 < fds.size(); ++i) {
      if (fds[i].revents & POLLIN) AcceptFrom(fds[i].fd);
    }
  }
}

void Listener::AcceptFrom(int listen_fd) {
  for (int n = 0; n < kAcceptsPerWake && !stopping_; ++n) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    UniqueFd fd(accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len,
                        SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd.valid()) {
      const int error = errno;
      if (error == EAGAIN || error == EWOULDBLOCK) return;
      if (error == EMFILE || error == ENFILE) {
        last_no_descriptors_ = absl::Now();
        SetAccepting(false);
        if (!reserve_.valid()) return;
        DropOne(listen_fd);
        continue;
      }
      if (error == ENOBUFS || error == ENOMEM) {
        last_no_descriptors_ = absl::Now();
        SetAccepting(false);
        return;  // the poll's timeout: look again soon
      }
      // ECONNABORTED, EPROTO, EINTR, ...: that connection is gone; the
      // next ones may be fine.
      continue;
    }
    const std::string peer = PeerAddress(addr);
    ConnectionTable::Verdict verdict;
    {
      warren::MutexLock lock(&mu_);
      // A client that hammers a full limit must not cost a sweep of a big
      // table per connection: then at most one every 100 ms (a small table
      // is swept every time, so a freed slot is seen at once).
      const bool may_sweep =
          table_.total() <= 1024 ||
          absl::Now() - last_sweep_ >= absl::Milliseconds(100);
      verdict = table_.Check(peer, may_sweep);
      if (may_sweep && verdict != ConnectionTable::Verdict::kAdmit) {
        last_sweep_ = absl::Now();
      }
      switch (verdict) {
        case ConnectionTable::Verdict::kAdmit:
          table_.Add(fd.get(), peer);
          ++stats_.accepted;
          break;
        case ConnectionTable::Verdict::kTotalLimit:
          ++stats_.refused_total_limit;
          break;
        case ConnectionTable::Verdict::kPeerLimit:
          ++stats_.refused_peer_limit;
          break;
      }
    }
    if (verdict != ConnectionTable::Verdict::kAdmit) {
      int64_t suppressed = 0;
      if (RefusalLogLimit().Admit(&suppressed)) {
        WARREN_LOG_WARN(
            "listener: closed a connection from {}: {}{}", peer,
            verdict == ConnectionTable::Verdict::kTotalLimit
                ? absl::StrCat("max_connections (", options_.max_connections,
                               ") reached")
                : absl::StrCat("max_connections_per_peer (",
                               options_.max_connections_per_peer,
                               ") reached for this address"),
            SuppressedNote(suppressed));
      }
      continue;  // fd closes here
    }
    hand_over_(fd.release());
  }
}

void Listener::DropOne(int listen_fd) {
  reserve_.reset();
  UniqueFd dropped(accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (dropped.valid()) {
    warren::MutexLock lock(&mu_);
    ++stats_.dropped_no_descriptors;
  }
  dropped.reset();
  reserve_.reset(open("/dev/null", O_RDONLY | O_CLOEXEC));
}

absl::StatusOr<FdLimits> RaiseFdLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError(absl::StrCat("getrlimit: ", ErrnoText(errno)));
  }
  FdLimits out;
  out.soft_before = limit.rlim_cur;
  out.hard = limit.rlim_max;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      return absl::InternalError(absl::StrCat("setrlimit: ", ErrnoText(errno)));
    }
  }
  out.soft = limit.rlim_cur;
  return out;
}

}  // namespace warren::daemon
