// A bound on how many lines one source of log lines may write: a client
// that sends bad requests as fast as it can must not fill the operator's
// disk or drown every other line. At most `lines_per_window` lines and
// `bytes_per_window` bytes are written per `window`; the rest are counted,
// and the next line written says how many were held back, so nothing goes
// missing silently. Lines are capped in length too (logging.h), so the
// byte budget bounds what even a burst of the longest lines costs.
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

// Lines and bytes a second for the server's logs of rejected requests (the
// interceptor's and the authorizer's, each its own budget).
inline constexpr int64_t kRejectionLinesPerSecond = 20;
inline constexpr int64_t kRejectionBytesPerSecond = 8 * 1024;

class LogRateLimit {
 public:
  // No bound on bytes: for lines whose length the server chooses.
  LogRateLimit(int64_t lines_per_window, absl::Duration window,
               std::function<absl::Time()> now = absl::Now);
  LogRateLimit(int64_t lines_per_window, int64_t bytes_per_window,
               absl::Duration window,
               std::function<absl::Time()> now = absl::Now);

  // Whether a line of `line_bytes` bytes may be written now. When it may,
  // `*suppressed` is the number of lines held back since the last one
  // written (to be told in that line).
  bool Admit(size_t line_bytes, int64_t* suppressed);
  bool Admit(int64_t* suppressed) { return Admit(0, suppressed); }

 private:
  const int64_t lines_per_window_;
  const int64_t bytes_per_window_;  // 0: no bound
  const absl::Duration window_;
  const std::function<absl::Time()> now_;
  warren::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t written_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

// "" for none, else " (N similar lines suppressed)": the tail of the line
// that Admit let through after holding N back.
std::string SuppressedNote(int64_t suppressed);

}  // namespace warren
