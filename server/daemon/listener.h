// warrend's gRPC listening socket and its accept loop, owned by warrend
// rather than by gRPC, so that:
//  - running out of file descriptors never jams the listen queue: gRPC 1.51
//    stops accepting for good after accept4 fails with EMFILE while clients
//    still queue up (grpc/grpc#20418); this loop keeps one descriptor in
//    reserve, and when accept fails for lack of descriptors it closes the
//    reserve, accepts the oldest queued connection and closes it at once,
//    and reopens the reserve, so the queue keeps moving and new clients are
//    served again as soon as descriptors are free;
//  - connections are bounded in total and per peer IP address: a connection
//    past a limit is closed at once, before it costs more than its fd.
//
// Each accepted connection is handed over to gRPC (an external connection
// acceptor), which owns and closes its descriptor. The loop counts the
// connections it handed over and still open by remembering each one's
// (fd, inode) and checking with fstat whether that socket still holds the
// descriptor (gRPC has no callback when it closes a connection).
//
// Thread-safe: one thread of its own accepts; the accessors may be called
// from any thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace warren::daemon {

// A file descriptor closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// The connections handed over and still open, per peer, against the
// limits. Not thread-safe (the accept loop's own).
class ConnectionTable {
 public:
  // 0: no limit.
  ConnectionTable(size_t max_total, size_t max_per_peer)
      : max_total_(max_total), max_per_peer_(max_per_peer) {}

  enum class Verdict { kAdmit, kTotalLimit, kPeerLimit };
  // Whether one more connection from `peer` is within the limits (after
  // forgetting the connections that have been closed, when a limit would
  // refuse it and `may_sweep`).
  Verdict Check(const std::string& peer, bool may_sweep = true);
  // Remembers `fd` (an open socket of `peer`, about to be handed over).
  void Add(int fd, const std::string& peer);
  // Forgets every connection whose descriptor was closed (or now holds
  // another file). Answers how many were forgotten.
  size_t Sweep();

  size_t total() const { return entries_.size(); }
  size_t count(const std::string& peer) const;

 private:
  struct Entry {
    ino_t inode;
    dev_t device;
    std::string peer;
  };
  void Forget(std::map<int, Entry>::iterator it);

  const size_t max_total_;
  const size_t max_per_peer_;
  std::map<int, Entry> entries_;
  std::map<std::string, size_t> per_peer_;
};

struct ListenerOptions {
  // host:port as gRPC takes it: "127.0.0.1:0" (a free port), "[::1]:50051",
  // "localhost:50051" (every address of the name), "0.0.0.0:50051" or
  // "[::]:50051" (every interface, IPv4 and IPv6).
  std::string address;
  // 0: no limit.
  size_t max_connections = 0;
  size_t max_connections_per_peer = 0;
  // How often closed connections are forgotten even when no limit is near.
  absl::Duration sweep_interval = absl::Seconds(1);
};

class Listener {
 public:
  // Binds and listens on every address of options.address (a port taken by
  // another socket is an error: no SO_REUSEPORT); does not accept yet.
  static absl::StatusOr<std::unique_ptr<Listener>> Bind(
      ListenerOptions options);
  ~Listener();  // Stop()

  // The port bound (the one chosen when options.address asked for 0).
  int port() const { return port_; }

  // Starts accepting on a thread of its own. `hand_over` takes ownership of
  // each admitted connection's descriptor (non-blocking, close-on-exec);
  // `on_accepting` is told when accepting stops working for lack of
  // descriptors (false) and when it works again (true: no descriptor was
  // missing for a second and one is free now; new connections are served
  // as soon as a descriptor is free, before that).
  void Start(std::function<void(int fd)> hand_over,
             std::function<void(bool accepting)> on_accepting);
  // Stops accepting and closes the listening sockets; waits for the accept
  // thread, so `hand_over` is not called after it returns.
  void Stop();

  struct Stats {
    size_t open = 0;  // handed over and still open (as of the last sweep)
    uint64_t accepted = 0;
    uint64_t refused_total_limit = 0;
    uint64_t refused_peer_limit = 0;
    // Closed at once because no descriptor was free.
    uint64_t dropped_no_descriptors = 0;
    bool accepting = true;
  };
  Stats stats() const;

 private:
  Listener(ListenerOptions options, std::vector<UniqueFd> sockets, int port);
  void Run();
  void AcceptFrom(int listen_fd);
  // accept failed for lack of descriptors: the reserve trick.
  void DropOne(int listen_fd);
  void SetAccepting(bool accepting);

  const ListenerOptions options_;
  std::vector<UniqueFd> sockets_;
  const int port_;
  UniqueFd wake_;     // eventfd: Stop() wakes the poll
  UniqueFd reserve_;  // /dev/null, given up to drop a connection
  std::function<void(int)> hand_over_;
  std::function<void(bool)> on_accepting_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  // The accept thread's own.
  absl::Time last_sweep_ = absl::InfinitePast();
  absl::Time last_no_descriptors_ = absl::InfinitePast();

  mutable warren::Mutex mu_;
  ConnectionTable table_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// Raises the soft RLIMIT_NOFILE to the hard limit; answers both (after the
// change) for the log, or why it failed.
struct FdLimits {
  uint64_t soft_before = 0;
  uint64_t soft = 0;
  uint64_t hard = 0;
};
absl::StatusOr<FdLimits> RaiseFdLimit();

}  // namespace warren::daemon
