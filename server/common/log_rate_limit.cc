#include "server/common/log_rate_limit.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace warren {

LogRateLimit::LogRateLimit(int64_t lines_per_window, absl::Duration window,
                           std::function<absl::Time()> now)
    : lines_per_window_(lines_per_window),
      window_(window),
      now_(std::move(now)) {}

bool LogRateLimit::Admit(int64_t* suppressed) {
  const absl::Time now = now_();
  warren::MutexLock lock(&mu_);
  if (now - window_start_ >= window_) {
    window_start_ = now;
    written_ = 0;
  }
  if (written_ >= lines_per_window_) {
    ++suppressed_;
    return false;
  }
  ++written_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

std::string SuppressedNote(int64_t suppressed) {
  if (suppressed == 0) return "";
  return absl::StrCat(" (", suppressed, " similar lines suppressed)");
}

}  // namespace warren
