// Counts what each client holds open of one kind of resource (watches,
// candidacies) against a limit per client and a limit over all clients, so
// that no client, and not all of them together, can make the server hold an
// unbounded number of them.
//
// Acquire() hands out a Lease that gives its slot back when released or
// destroyed, exactly once however the stream that holds it ends. A client
// whose count drops to zero is forgotten: the table holds only clients that
// hold something now.
//
// Thread-safe. The quota must outlive its leases.
#pragma once

#include <cstddef>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/mutex.h"

namespace warren {

// Who a client is for per-client limits: its authenticated principal when
// there is one (auth on), else the address of its peer without the port
// ("ipv4:10.1.2.3:5000" → "10.1.2.3", "ipv6:[::1]:5000" → "::1"), so that
// one client's many connections share one budget. Peers that are not IP
// addresses (unix sockets) are taken whole.
std::string QuotaClient(absl::string_view principal, absl::string_view peer);

class ClientQuota {
 public:
  struct Limits {
    // The settings' names, for the messages: e.g. "max_watches" and
    // "max_watches_per_client".
    std::string total_name;
    std::string per_client_name;
    // What is counted, plural, for the messages: e.g. "watches".
    std::string what;
    // 0: no limit.
    size_t total = 0;
    size_t per_client = 0;
  };

  // One slot of one client. Move-only; empty when default-constructed or
  // moved from.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Release(); }

    // Gives the slot back; later calls do nothing.
    void Release();
    bool held() const { return quota_ != nullptr; }

   private:
    friend class ClientQuota;
    Lease(ClientQuota* quota, std::string client)
        : quota_(quota), client_(std::move(client)) {}
    ClientQuota* quota_ = nullptr;
    std::string client_;
  };

  explicit ClientQuota(Limits limits) : limits_(std::move(limits)) {}

  // A slot for `client`, or RESOURCE_EXHAUSTED naming the limit that is
  // reached (the total first: then no client could have one).
  absl::StatusOr<Lease> Acquire(const std::string& client);

  // For tests and metrics.
  size_t total() const;
  size_t count(const std::string& client) const;
  size_t clients() const;

 private:
  void Release(const std::string& client);

  const Limits limits_;
  mutable warren::Mutex mu_;
  std::map<std::string, size_t> counts_ ABSL_GUARDED_BY(mu_);
  size_t total_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace warren
