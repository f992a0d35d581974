#include "server/common/net_address.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace warren {

std::string HostOf(absl::string_view address) {
  if (!absl::ConsumePrefix(&address, "ipv4:")) {
    absl::ConsumePrefix(&address, "ipv6:");
  }
  for (const auto& [open, close] :
       {std::pair<absl::string_view, absl::string_view>{"[", "]"},
        {"%5B", "%5D"}}) {
    if (absl::StartsWith(address, open)) {
      const size_t end = address.find(close);
      if (end == absl::string_view::npos) return std::string(address);
      return std::string(address.substr(open.size(), end - open.size()));
    }
  }
  const size_t colon = address.rfind(':');
  return std::string(
      colon == absl::string_view::npos ? address : address.substr(0, colon));
}

bool IsLoopbackHost(absl::string_view host) {
  const std::string text(host);
  if (absl::AsciiStrToLower(text) == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;  // names may be anywhere
}

}  // namespace warren
