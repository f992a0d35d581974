// A bound on how many lines one source of log lines may write: a client
// that sends bad requests as fast as it can must not fill the operator's
// disk or drown every other line. At most `lines_per_window` lines are
// written per `window`; the rest are counted, and the next line written
// says how many were held back, so nothing goes missing silently.
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/common/mutex.h"

namespace warren {

// Lines a second for the server's logs of rejected requests (the
// interceptor's and the authorizer's, each its own budget).
inline constexpr int64_t kRejectionLinesPerSecond = 20;

class LogRateLimit {
 public:
  LogRateLimit(int64_t lines_per_window, absl::Duration window,
               std::function<absl::Time()> now = absl::Now);

  // Whether a line may be written now. When it may, `*suppressed` is the
  // number of lines held back since the last one written (to be told in
  // that line).
  bool Admit(int64_t* suppressed);

 private:
  const int64_t lines_per_window_;
  const absl::Duration window_;
  const std::function<absl::Time()> now_;
  warren::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// "" for none, else " (N similar lines suppressed)": the tail of the line
// that Admit let through after holding N back.
std::string SuppressedNote(int64_t suppressed);

}  // namespace warren
