// Watches the expiry of the certificate warrend serves: a certificate that
// has expired, or expires soon, breaks every new connection at once, and an
// operator should hear of it before. warrend keeps running either way (an
// expired certificate may be replaced while it runs: gRPC re-reads the
// files), but it logs a warning at start-up, after every change of the file
// and once a day while the condition lasts, and exports the expiry time as
// a metric (warren_tls_certificate_expiry_timestamp_seconds) for alerts.
//
// Thread-safe: Check() may run on a timer thread and on the main thread
// (SIGHUP) at once.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "server/common/mutex.h"
#include "server/common/timer_queue.h"

namespace warren::daemon {

// Warn from this long before a certificate expires.
inline constexpr absl::Duration kCertificateExpiryWarning =
    absl::Hours(24 * 14);

// The warning for a certificate that expires at `not_after`, seen at `now`;
// nullopt when it is valid for longer than kCertificateExpiryWarning.
std::optional<std::string> CertificateExpiryWarning(absl::Time not_after,
                                                    absl::Time now);

class CertificateExpiry {
 public:
  explicit CertificateExpiry(std::string cert_file)
      : cert_file_(std::move(cert_file)) {}

  // Reads the certificate file and logs what an operator should know (see
  // the file comment); `now` is the time of the check.
  void Check(absl::Time now = absl::Now());

  // The expiry of the certificate read last; nullopt before the first read
  // that succeeded.
  std::optional<absl::Time> not_after() const;

  // Checks now and then every `interval` on `timers`' thread (gRPC picks up
  // a replaced file at the same pace), until `timers` is destroyed; it must
  // be destroyed before this object.
  void CheckEvery(TimerQueue& timers, absl::Duration interval);

 private:
  const std::string cert_file_;
  mutable warren::Mutex mu_;
  std::optional<absl::Time> not_after_ ABSL_GUARDED_BY(mu_);
  absl::Time last_warning_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace warren::daemon
