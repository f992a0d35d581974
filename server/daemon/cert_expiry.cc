#include "server/daemon/cert_expiry.h"

#include "absl/strings/str_cat.h"
#include "server/common/logging.h"
#include "server/daemon/tls.h"

namespace warren::daemon {

std::optional<std::string> CertificateExpiryWarning(absl::Time not_after,
                                                    absl::Time now) {
  const std::string when =
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", not_after, absl::UTCTimeZone());
  if (not_after <= now) {
    return absl::StrCat("the server certificate expired on ", when,
                        ": clients refuse new connections; replace "
                        "tls_cert_file and tls_key_file");
  }
  if (not_after - now <= kCertificateExpiryWarning) {
    return absl::StrCat(
        "the server certificate expires on ", when, " (in ",
        absl::FormatDuration(absl::Trunc(not_after - now, absl::Minutes(1))),
        "); replace tls_cert_file and tls_key_file before then");
  }
  return std::nullopt;
}

void CertificateExpiry::Check(absl::Time now) {
  auto read = LeafCertificateNotAfter(cert_file_, "tls_cert_file");
  if (!read.ok()) {
    // Being replaced, or broken: the TLS reload check says which.
    WARREN_LOG_DEBUG("certificate expiry: {}", read.status().message());
    return;
  }
  warren::MutexLock lock(&mu_);
  const bool changed = !not_after_.has_value() || *not_after_ != *read;
  not_after_ = *read;
  std::optional<std::string> warning = CertificateExpiryWarning(*read, now);
  if (!warning.has_value()) {
    if (changed) {
      WARREN_LOG_INFO("the server certificate is valid until {}",
                      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", *read,
                                       absl::UTCTimeZone()));
    }
    last_warning_ = absl::InfinitePast();
    return;
  }
  if (changed || now - last_warning_ >= absl::Hours(24)) {
    WARREN_LOG_WARN("{}", *warning);
    last_warning_ = now;
  }
}

void CertificateExpiry::CheckEvery(TimerQueue& timers,
                                   absl::Duration interval) {
  Check();
  timers.ScheduleAfter(
      interval, [this, &timers, interval] { CheckEvery(timers, interval); });
}

std::optional<absl::Time> CertificateExpiry::not_after() const {
  warren::MutexLock lock(&mu_);
  return not_after_;
}

}  // namespace warren::daemon
