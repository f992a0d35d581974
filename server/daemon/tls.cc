#include "server/daemon/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "server/common/net_address.h"

namespace warren::daemon {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view setting) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        setting, " ", path, ": cannot read it: ", std::strerror(errno)));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// Never prompts for a passphrase (OpenSSL's default would read the
// terminal): an encrypted key simply fails to load.
int NoPassphrase(char*, int, int, void*) { return 0; }

// The certificates of a PEM text, in order.
std::vector<X509Ptr> ParseCertificates(const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemoryBio(pem);
  while (bio != nullptr) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr);
    if (cert == nullptr) break;
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the text reads as an error
  return certs;
}

}  // namespace

bool IsLoopbackListen(absl::string_view listen) {
  if (absl::StartsWith(listen, "unix:") ||
      absl::StartsWith(listen, "unix-abstract:")) {
    return true;
  }
  // 0.0.0.0 and [::] are not loopback; names may be anywhere.
  return IsLoopbackHost(HostOf(listen));
}

absl::StatusOr<absl::Time> LeafCertificateNotAfter(const std::string& cert_file,
                                                   absl::string_view setting) {
  absl::StatusOr<std::string> pem = ReadFile(cert_file, setting);
  if (!pem.ok()) return pem.status();
  std::vector<X509Ptr> chain = ParseCertificates(*pem);
  if (chain.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(setting, " ", cert_file, ": holds no PEM certificate"));
  }
  std::tm not_after = {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(chain.front().get()), &not_after) !=
      1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        setting, " ", cert_file, ": the certificate's notAfter is unreadable"));
  }
  return absl::FromTM(not_after, absl::UTCTimeZone());
}

absl::Status CheckKeyPair(const std::string& cert_file,
                          const std::string& key_file,
                          absl::string_view cert_setting,
                          absl::string_view key_setting) {
  absl::StatusOr<std::string> cert_pem = ReadFile(cert_file, cert_setting);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadFile(key_file, key_setting);
  if (!key_pem.ok()) return key_pem.status();
  std::vector<X509Ptr> chain = ParseCertificates(*cert_pem);
  if (chain.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert_setting, " ", cert_file, ": holds no PEM certificate"));
  }
  BioPtr bio = MemoryBio(*key_pem);
  PkeyPtr key(bio == nullptr ? nullptr
                             : PEM_read_bio_PrivateKey(bio.get(), nullptr,
                                                       NoPassphrase, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        key_setting, " ", key_file, ": holds no unencrypted PEM private key"));
  }
  if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        key_setting, " ", key_file, ": is not the key of the certificate in ",
        cert_setting, " ", cert_file));
  }
  return absl::OkStatus();
}

absl::Status CheckCaBundle(const std::string& file, absl::string_view setting) {
  absl::StatusOr<std::string> pem = ReadFile(file, setting);
  if (!pem.ok()) return pem.status();
  if (ParseCertificates(*pem).empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(setting, " ", file, ": holds no PEM certificate"));
  }
  return absl::OkStatus();
}

absl::Status CheckServerTlsFiles(const ServerTlsFiles& files) {
  if (absl::Status s = CheckKeyPair(files.cert_file, files.key_file,
                                    "tls_cert_file", "tls_key_file");
      !s.ok()) {
    return s;
  }
  if (!files.client_ca_file.empty()) {
    return CheckCaBundle(files.client_ca_file, "tls_client_ca_file");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(
    const ServerTlsFiles& files) {
  const auto interval = static_cast<unsigned int>(
      std::max<int64_t>(1, absl::ToInt64Seconds(files.reload_interval)));
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files.key_file, files.cert_file, files.client_ca_file, interval);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (!files.client_ca_file.empty()) options.watch_root_certs();
  switch (files.client_auth) {
    case ClientAuth::kNone:
      options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      break;
    case ClientAuth::kRequest:
      options.set_cert_request_type(
          GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
    case ClientAuth::kRequire:
      options.set_cert_request_type(
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      break;
  }
  return grpc::experimental::TlsServerCredentials(options);
}

}  // namespace warren::daemon
