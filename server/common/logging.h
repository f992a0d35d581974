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

// Configures the process-wide logger. `level` is one of trace, debug, info,
// warn, error; `json` switches to one JSON object per line.
absl::Status InitLogging(const std::string& level, bool json);

}  // namespace warren

#define WARREN_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define WARREN_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define WARREN_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define WARREN_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)
