#include "server/common/log_rate_limit.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace warren {

LogRateLimit::LogRateLimit(int64_t lines_per_window, absl::Duration window,
                           std::function<absl::Time()> now)
    : LogRateLimit(lines_per_window, 0, window, std::move(now)) {}

LogRateLimit::LogRateLimit(int64_t lines_per_window, int64_t bytes_per_window,
                           absl::Duration window,
                           std::function<absl::Time()> now)
    : lines_per_window_(lines_per_window),
      bytes_per_window_(bytes_per_window),
      window_(window),
      now_(std::move(now)) {}

bool LogRateLimit::Admit(size_t line_bytes, int64_t* suppressed) {
  const absl::Time now = now_();
  warren::MutexLock lock(&mu_);
  if (now - window_start_ >= window_) {
    window_start_ = now;
    written_ = 0;
    written_bytes_ = 0;
  }
  const auto bytes = static_cast<int64_t>(line_bytes);
  // The first line of a window is always let through (a line longer than
  // the whole budget would otherwise never be written, nor counted).
  const bool over_bytes = bytes_per_window_ > 0 && written_ > 0 &&
                          written_bytes_ + bytes > bytes_per_window_;
  if (written_ >= lines_per_window_ || over_bytes) {
    ++suppressed_;
    return false;
  }
  ++written_;
  written_bytes_ += bytes;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

std::string SuppressedNote(int64_t suppressed) {
  if (suppressed == 0) return "";
  return absl::StrCat(" (", suppressed, " similar lines suppressed)");
}

}  // namespace warren
