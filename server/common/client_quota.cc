#include "server/common/client_quota.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/net_address.h"

namespace warren {

std::string QuotaClient(absl::string_view principal, absl::string_view peer) {
  if (!principal.empty()) return std::string(principal);
  if (absl::StartsWith(peer, "ipv4:") || absl::StartsWith(peer, "ipv6:")) {
    return HostOf(peer);
  }
  return std::string(peer);
}

ClientQuota::Lease::Lease(Lease&& other) noexcept
    : quota_(std::exchange(other.quota_, nullptr)),
      client_(std::move(other.client_)) {}

ClientQuota::Lease& ClientQuota::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    quota_ = std::exchange(other.quota_, nullptr);
    client_ = std::move(other.client_);
  }
  return *this;
}

void ClientQuota::Lease::Release() {
  if (ClientQuota* quota = std::exchange(quota_, nullptr)) {
    quota->Release(client_);
  }
}

absl::StatusOr<ClientQuota::Lease> ClientQuota::Acquire(
    const std::string& client) {
  warren::MutexLock lock(&mu_);
  if (limits_.total != 0 && total_ >= limits_.total) {
    return absl::ResourceExhaustedError(absl::StrCat(
        limits_.total_name, " (", limits_.total, ") ", limits_.what,
        " are open on this server; retry later or elsewhere"));
  }
  auto it = counts_.find(client);
  const size_t held = it == counts_.end() ? 0 : it->second;
  if (limits_.per_client != 0 && held >= limits_.per_client) {
    return absl::ResourceExhaustedError(absl::StrCat(
        limits_.per_client_name, " (", limits_.per_client, ") ", limits_.what,
        " are open for client '", client, "'; end one first"));
  }
  if (it == counts_.end()) it = counts_.emplace(client, 0).first;
  ++it->second;
  ++total_;
  return Lease(this, client);
}

void ClientQuota::Release(const std::string& client) {
  warren::MutexLock lock(&mu_);
  auto it = counts_.find(client);
  if (it == counts_.end()) return;  // cannot happen: leases are unique
  --total_;
  if (--it->second == 0) counts_.erase(it);
}

size_t ClientQuota::total() const {
  warren::MutexLock lock(&mu_);
  return total_;
}

size_t ClientQuota::count(const std::string& client) const {
  warren::MutexLock lock(&mu_);
  auto it = counts_.find(client);
  return it == counts_.end() ? 0 : it->second;
}

size_t ClientQuota::clients() const {
  warren::MutexLock lock(&mu_);
  return counts_.size();
}

}  // namespace warren
