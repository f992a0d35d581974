// A bare HTTP/1.0 GET over loopback, for tests of warrend's HTTP endpoint
// (/metrics): the unit tests of the metrics server and the integration
// tests that scrape a running warrend. Header-only, so that both kinds of
// test can use it without linking one more library.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>

#include "tests/util/loopback.h"

namespace warren::testing {

// GET `path` from 127.0.0.1:`port`; the whole response (status line,
// headers, body), or "" when the connection failed. A server that stops
// answering fails the request after 5 s instead of hanging the test.
inline std::string HttpGet(int port, const std::string& path) {
  const int fd = ConnectToLoopback(port);
  if (fd < 0) return "";
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  std::string response;
  const std::string request = "GET " + path + " HTTP/1.0\r\n\r\n";
  if (write(fd, request.data(), request.size()) ==
      static_cast<ssize_t>(request.size())) {
    char buffer[8192];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
      response.append(buffer, static_cast<size_t>(n));
    }
  }
  close(fd);
  return response;
}

}  // namespace warren::testing
