// Logging for the whole server: one library (spdlog) behind this header, so
// that the rest of the code does not depend on it directly and the output
// format (plain text or JSON lines) is chosen in one place.
//
// Thread-safe: the logger may be used from any thread, including ZooKeeper and
// gRPC callbacks (it never blocks for long: the sink is stderr).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "spdlog/spdlog.h"

// Debian's Abseil has its own string_view (not std's): teach fmt to print it,
// so that status messages can be logged as they are.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(
        fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace warren {

// A value a client chose (a key, a name, a routing key) is echoed into a log
// line or an error message with at most this many bytes: a client must not
// be able to make one line megabytes long.
inline constexpr size_t kMaxEchoBytes = 200;

// The longest message a log line carries; a longer one is cut and says its
// length. A safety net under kMaxEchoBytes, for text nobody capped.
inline constexpr size_t kMaxLogMessageBytes = 4096;

// `value` whole when it has at most `max_bytes` bytes; else its first
// `max_bytes` bytes (never half a UTF-8 character) followed by
// "... (N bytes)".
std::string Abbreviated(absl::string_view value,
                        size_t max_bytes = kMaxEchoBytes);

// Appends `message` to `out` so that it stays on one line and cannot steer
// a terminal: control characters (newline, carriage return, escape, ...),
// DEL, C1 controls and bytes that are not well-formed UTF-8 become \n, \r,
// \t or \xNN; a backslash is doubled so that an escape cannot be forged.
// Well-formed UTF-8 text stays as it is. At most `max_bytes` of `message`
// are written (see Abbreviated). The text log writes every message through
// this.
void AppendEscapedForLog(absl::string_view message, std::string* out,
                         size_t max_bytes = kMaxLogMessageBytes);

// Configures the process-wide logger. `level` is one of trace, debug, info,
// warn, error; `json` switches to one JSON object per line.
absl::Status InitLogging(const std::string& level, bool json);

// Sends gRPC's own log lines (gpr_log) through this logger, escaped and
// capped like every line, and within a budget of their own: gRPC logs one
// line per failed TLS handshake, which anyone who can connect can cause.
// At most kGrpcLogLines lines and kGrpcLogBytes bytes per kGrpcLogWindow;
// the next line written tells how many were held back. Call after
// InitLogging.
inline constexpr int64_t kGrpcLogLines = 20;
inline constexpr int64_t kGrpcLogBytes = 4096;
inline constexpr absl::Duration kGrpcLogWindow = absl::Seconds(10);
void RouteGrpcLogging();

}  // namespace warren

#define WARREN_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define WARREN_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define WARREN_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define WARREN_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
