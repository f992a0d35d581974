// Addresses as gRPC and our settings write them ("host:port", "[v6]:port",
// gRPC peers "ipv4:a.b.c.d:port" / "ipv6:[x]:port"): one parser for the
// loopback checks of the listeners and for who a client is (client_quota).
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace warren {

// The host of an address: without gRPC's "ipv4:"/"ipv6:" scheme, the port
// and the brackets of an IPv6 address (which gRPC may write as %5B/%5D);
// the text after the scheme when it has no port.
std::string HostOf(absl::string_view address);

// Whether `host` (a name or an address, no port) is this machine's
// loopback: localhost, 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104.
bool IsLoopbackHost(absl::string_view host);

}  // namespace warren
