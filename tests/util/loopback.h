// A TCP connection to a port on 127.0.0.1, for tests that talk to a server
// below gRPC (raw bytes, floods, HTTP). Header-only, so that unit and
// integration tests can use it without linking one more library.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace warren::testing {

// A connected socket (close-on-exec) to 127.0.0.1:`port`, or -1 when the
// socket could not be made or the connection was refused.
inline int ConnectToLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace warren::testing
