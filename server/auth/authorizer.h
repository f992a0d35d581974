// Authentication and authorization of warrend's calls.
//
// The Authorizer holds the bearer tokens (token_table.h) and the policy
// (policy.h), both loaded from files at start-up and reloaded when a file
// changes: polled every `reload_interval`, and on Reload() (warrend calls it
// on SIGHUP). A reload that fails keeps the previous tokens and policy.
//
// A call is authenticated by its bearer token ("authorization: Bearer
// <token>" metadata) or, without one, by its verified client certificate
// (the subject is the principal). Each handler checks at its top, before
// any backend work, through Check() or Authenticate() + Caller::Check();
// with a null Authorizer (auth off) both allow everything. Rejections
// answer UNAUTHENTICATED or PERMISSION_DENIED (naming the action and the
// resource, never a token) and are logged, one line each.
//
// Thread-safe: checks run on any gRPC thread at once; a reload swaps an
// immutable snapshot.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/server_context.h"
#include "server/auth/policy.h"
#include "server/auth/token_table.h"
#include "server/common/log_rate_limit.h"
#include "server/common/mutex.h"

namespace warren::auth {

struct AuthOptions {
  // YAML of bearer tokens; empty: no bearer tokens (client certificates
  // only).
  std::string tokens_file;
  // YAML policy; empty: every authenticated principal may do everything.
  std::string policy_file;
  // How often the files are checked for changes; zero: never (Reload()
  // only).
  absl::Duration reload_interval = absl::Seconds(2);
};

class Authorizer;

// An authenticated caller of one call, for the checks of a stream (e.g. each
// message of a PublishStream). Default-constructed: auth is off, every
// check passes. Must not outlive its Authorizer.
class Caller {
 public:
  Caller() = default;

  // OK, or PERMISSION_DENIED naming the action and the resource, and when
  // given `why` (in parentheses): the request field that needs the grant
  // and what the broker would do with it, for a grant the caller may not
  // expect to need (e.g. publish for a queue's dead-letter exchange).
  absl::Status Check(Action action, const Resource& resource,
                     absl::string_view why = "") const;

  // For a stream that is already open, after the tokens or the policy
  // changed: UNAUTHENTICATED when the bearer token that opened it is no
  // longer valid (or names another principal now), else Check.
  absl::Status Recheck(Action action, const Resource& resource) const;
  // Only the token part of Recheck, for streams whose every message is
  // checked on its own (PublishStream).
  absl::Status Reauthenticate() const;

  const std::string& principal() const { return principal_; }

 private:
  friend class Authorizer;
  const Authorizer* authorizer_ = nullptr;
  std::string principal_;
  std::string method_;
  std::string peer_;
  // The bearer token of the call, kept to re-authenticate its stream after
  // a reload; empty for a client certificate (its verification does not
  // change while the connection lives). Never logged.
  std::string token_;
};

class Authorizer {
 public:
  // Loads the files (at least one must be set); INVALID_ARGUMENT naming the
  // file for one that is missing or malformed.
  static absl::StatusOr<std::unique_ptr<Authorizer>> Create(
      AuthOptions options);
  ~Authorizer();  // stops polling

  // Reads the files again and, if either changed and both are valid, puts
  // them in force; logs what happened. A failure keeps the previous state
  // and answers why (logged once per failing version of a file).
  absl::Status Reload();

  // Polls the files every reload_interval (when not zero) on a thread of
  // its own, until destroyed.
  void StartPolling();
  // Stops the polling thread (waits for a reload in progress, and its
  // OnChange hook, to end). Also done by the destructor.
  void StopPolling();

  // Runs `on_change` after each reload that put new tokens or a new policy
  // in force (on the polling thread, or the thread calling Reload), e.g. to
  // recheck open streams. Set before StartPolling.
  void OnChange(std::function<void()> on_change);

  // Identifies the caller of a call named `method` (for logs), or answers
  // UNAUTHENTICATED.
  absl::StatusOr<Caller> Authenticate(const grpc::ServerContextBase& context,
                                      absl::string_view method) const;

  // One line on what is in force, for the start-up log.
  std::string Describe() const;

 private:
  friend class Caller;
  struct State {
    std::string tokens_text;
    std::string policy_text;
    std::optional<TokenTable> tokens;  // nullopt: no tokens file
    Policy policy = Policy::AllowAll();
  };

  explicit Authorizer(AuthOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::shared_ptr<const State>> Load(
      const std::string& tokens_text, const std::string& policy_text) const;
  std::shared_ptr<const State> Current() const;
  absl::Status Reject(absl::Status status, absl::string_view method,
                      absl::string_view peer,
                      absl::string_view principal) const;
  void Poll();

  const AuthOptions options_;
  mutable warren::Mutex mu_;
  std::shared_ptr<const State> state_ ABSL_GUARDED_BY(mu_);
  // The texts of the last failed reload, so that a broken file is logged
  // once, not at every poll.
  std::string failed_tokens_text_ ABSL_GUARDED_BY(mu_);
  std::string failed_policy_text_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_change_;
  // Refusals are logged, but a client cannot make that fill the disk.
  mutable LogRateLimit reject_log_limit_{
      kRejectionLinesPerSecond, kRejectionBytesPerSecond, absl::Seconds(1)};
  std::thread poller_;
};

// Null-safe entry points for the services: a null authorizer is auth off.
absl::StatusOr<Caller> Authenticate(const Authorizer* authorizer,
                                    const grpc::ServerContextBase& context,
                                    absl::string_view method);
// Authenticate, then Caller::Check: the caller, or why it may not. The
// check at the top of a stream's handler, which keeps the caller to check
// again later.
absl::StatusOr<Caller> Authorize(const Authorizer* authorizer,
                                 const grpc::ServerContextBase& context,
                                 absl::string_view method, Action action,
                                 const Resource& resource);
// Authorize, without the caller: the check at the top of a unary handler.
absl::Status Check(const Authorizer* authorizer,
                   const grpc::ServerContextBase& context,
                   absl::string_view method, Action action,
                   const Resource& resource);

}  // namespace warren::auth
