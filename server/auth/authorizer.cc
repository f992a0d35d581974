#include "server/auth/authorizer.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/auth/identity.h"
#include "server/common/logging.h"

namespace warren::auth {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "auth file ", path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
  }
  return text.str();
}

}  // namespace

absl::Status Caller::Check(Action action, const Resource& resource,
                           absl::string_view why) const {
  if (authorizer_ == nullptr) return absl::OkStatus();
  auto state = authorizer_->Current();
  if (state->policy.Allows(principal_, action, resource)) {
    return absl::OkStatus();
  }
  return authorizer_->Reject(
      absl::PermissionDeniedError(absl::StrCat(
          "principal '", principal_, "' may not ", ActionName(action), " on ",
          resource.ToString(SeparatorOf(action)),
          why.empty() ? "" : absl::StrCat(" (", why, ")"))),
      method_, peer_, principal_);
}

namespace {

// Grants wider than they look are said at every load, so that whoever
// edits the policy sees them in the log of that change.
void LogPolicyWarnings(const Policy& policy) {
  for (const std::string& warning : policy.warnings()) {
    WARREN_LOG_WARN("auth: policy: {}", warning);
  }
}

}  // namespace

absl::Status Caller::Reauthenticate() const {
  if (authorizer_ == nullptr || token_.empty()) return absl::OkStatus();
  auto state = authorizer_->Current();
  const std::string* principal =
      state->tokens.has_value() ? state->tokens->Find(token_) : nullptr;
  if (principal != nullptr && *principal == principal_) {
    return absl::OkStatus();
  }
  return authorizer_->Reject(
      absl::UnauthenticatedError(absl::StrCat(
          "the bearer token of principal '", Abbreviated(principal_),
          "' was revoked while this stream was open")),
      method_, peer_, principal_);
}

absl::Status Caller::Recheck(Action action, const Resource& resource) const {
  if (absl::Status valid = Reauthenticate(); !valid.ok()) return valid;
  return Check(action, resource);
}

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Create(
    AuthOptions options) {
  if (options.tokens_file.empty() && options.policy_file.empty()) {
    return absl::InvalidArgumentError(
        "auth needs auth_tokens_file or auth_policy_file");
  }
  std::unique_ptr<Authorizer> authorizer(new Authorizer(std::move(options)));
  std::string tokens_text, policy_text;
  for (auto [path, text] :
       {std::pair{&authorizer->options_.tokens_file, &tokens_text},
        std::pair{&authorizer->options_.policy_file, &policy_text}}) {
    if (path->empty()) continue;
    auto read = ReadFile(*path);
    if (!read.ok()) return read.status();
    *text = *std::move(read);
  }
  auto state = authorizer->Load(tokens_text, policy_text);
  if (!state.ok()) return state.status();
  LogPolicyWarnings((*state)->policy);
  warren::MutexLock lock(&authorizer->mu_);
  authorizer->state_ = *std::move(state);
  return authorizer;
}

Authorizer::~Authorizer() { StopPolling(); }

void Authorizer::StopPolling() {
  {
    warren::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (poller_.joinable()) poller_.join();
}

absl::StatusOr<std::shared_ptr<const Authorizer::State>> Authorizer::Load(
    const std::string& tokens_text, const std::string& policy_text) const {
  auto state = std::make_shared<State>();
  state->tokens_text = tokens_text;
  state->policy_text = policy_text;
  if (!options_.tokens_file.empty()) {
    auto tokens = TokenTable::Parse(tokens_text);
    if (!tokens.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth_tokens_file ", options_.tokens_file, ": ",
                       tokens.status().message()));
    }
    state->tokens = *std::move(tokens);
  }
  if (!options_.policy_file.empty()) {
    auto policy = Policy::Parse(policy_text);
    if (!policy.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth_policy_file ", options_.policy_file, ": ",
                       policy.status().message()));
    }
    state->policy = *std::move(policy);
  }
  return std::shared_ptr<const State>(std::move(state));
}

absl::Status Authorizer::Reload() {
  std::string tokens_text, policy_text;
  absl::Status read = absl::OkStatus();
  for (auto [path, text] : {std::pair{&options_.tokens_file, &tokens_text},
                            std::pair{&options_.policy_file, &policy_text}}) {
    if (path->empty() || !read.ok()) continue;
    auto contents = ReadFile(*path);
    if (contents.ok()) {
      *text = *std::move(contents);
    } else {
      read = contents.status();
    }
  }
  auto current = Current();
  if (read.ok() && tokens_text == current->tokens_text &&
      policy_text == current->policy_text) {
    return absl::OkStatus();  // nothing changed
  }
  absl::StatusOr<std::shared_ptr<const State>> loaded =
      read.ok() ? Load(tokens_text, policy_text) : read;
  {
    warren::MutexLock lock(&mu_);
    if (!loaded.ok()) {
      // Log a broken version once; an unreadable file (e.g. in the middle of
      // a replacement) at each attempt would be noise too, so it counts as
      // one version.
      if (tokens_text != failed_tokens_text_ ||
          policy_text != failed_policy_text_) {
        failed_tokens_text_ = tokens_text;
        failed_policy_text_ = policy_text;
        WARREN_LOG_ERROR(
            "auth: reload failed, keeping the previous tokens and policy: {}",
            loaded.status().message());
      }
      return loaded.status();
    }
    failed_tokens_text_.clear();
    failed_policy_text_.clear();
    state_ = *std::move(loaded);
    if (policy_text != current->policy_text) LogPolicyWarnings(state_->policy);
    WARREN_LOG_INFO(
        "auth: reloaded: {}",
        absl::StrCat(
            state_->tokens
                ? absl::StrCat(state_->tokens->size(), " bearer tokens, ")
                : "",
            state_->policy.principal_count(), " principals in the policy"));
  }
  // Outside the lock: the hook checks open streams, which call Current().
  if (on_change_) on_change_();
  return absl::OkStatus();
}

void Authorizer::OnChange(std::function<void()> on_change) {
  on_change_ = std::move(on_change);
}

void Authorizer::StartPolling() {
  if (options_.reload_interval <= absl::ZeroDuration() || poller_.joinable()) {
    return;
  }
  poller_ = std::thread([this] { Poll(); });
}

void Authorizer::Poll() {
  while (true) {
    {
      warren::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                           options_.reload_interval);
      if (stopping_) return;
    }
    Reload().IgnoreError();  // logged by Reload
  }
}

std::shared_ptr<const Authorizer::State> Authorizer::Current() const {
  warren::MutexLock lock(&mu_);
  return state_;
}

std::string Authorizer::Describe() const {
  auto state = Current();
  return absl::StrCat(
      "auth is on: ",
      state->tokens ? absl::StrCat(state->tokens->size(),
                                   " bearer tokens from ", options_.tokens_file)
                    : "no bearer tokens (client certificates only)",
      "; ",
      options_.policy_file.empty()
          ? "no policy file: every authenticated caller may do everything"
          : absl::StrCat("policy of ", state->policy.principal_count(),
                         " principals from ", options_.policy_file),
      options_.reload_interval > absl::ZeroDuration()
          ? absl::StrCat("; reloaded on change (checked every ",
                         absl::FormatDuration(options_.reload_interval),
                         ") and on SIGHUP")
          : "; reloaded on SIGHUP");
}

absl::Status Authorizer::Reject(absl::Status status, absl::string_view method,
                                absl::string_view peer,
                                absl::string_view principal) const {
  // Everything here but the method may come from the client: each part is
  // capped (the text log escapes it), and the budget counts bytes.
  std::string line = absl::StrCat(
      "auth: rejected ", method, " from ", Abbreviated(peer, 100),
      " (principal ", principal.empty() ? "unknown" : Abbreviated(principal),
      "): ", Abbreviated(status.message(), 2 * kMaxEchoBytes));
  int64_t suppressed = 0;
  if (reject_log_limit_.Admit(line.size(), &suppressed)) {
    WARREN_LOG_WARN("{}{}", line, SuppressedNote(suppressed));
  }
  return status;
}

absl::StatusOr<Caller> Authorizer::Authenticate(
    const grpc::ServerContextBase& context, absl::string_view method) const {
  const std::string peer = context.peer();
  auto bearer = BearerToken(context.client_metadata());
  if (!bearer.ok()) return Reject(bearer.status(), method, peer, "");
  auto state = Current();
  Caller caller;
  caller.authorizer_ = this;
  caller.method_ = std::string(method);
  caller.peer_ = peer;
  if (bearer->has_value()) {
    if (!state->tokens.has_value()) {
      return Reject(absl::UnauthenticatedError(
                        "this server does not accept bearer tokens (it has "
                        "no auth_tokens_file); use a client certificate"),
                    method, peer, "");
    }
    const std::string* principal = state->tokens->Find(**bearer);
    if (principal == nullptr) {
      return Reject(absl::UnauthenticatedError("invalid bearer token"), method,
                    peer, "");
    }
    caller.principal_ = *principal;
    caller.token_ = std::string(**bearer);
    return caller;
  }
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  std::optional<std::string> subject;
  if (auth != nullptr) subject = CertificateSubject(*auth);
  if (!subject.has_value()) {
    return Reject(absl::UnauthenticatedError(
                      "missing bearer token (metadata 'authorization: Bearer "
                      "<token>') or client certificate"),
                  method, peer, "");
  }
  caller.principal_ = *std::move(subject);
  return caller;
}

absl::StatusOr<Caller> Authenticate(const Authorizer* authorizer,
                                    const grpc::ServerContextBase& context,
                                    absl::string_view method) {
  if (authorizer == nullptr) return Caller();
  return authorizer->Authenticate(context, method);
}

absl::StatusOr<Caller> Authorize(const Authorizer* authorizer,
                                 const grpc::ServerContextBase& context,
                                 absl::string_view method, Action action,
                                 const Resource& resource) {
  absl::StatusOr<Caller> caller = Authenticate(authorizer, context, method);
  if (!caller.ok()) return caller;
  if (absl::Status allowed = caller->Check(action, resource); !allowed.ok()) {
    return allowed;
  }
  return caller;
}

absl::Status Check(const Authorizer* authorizer,
                   const grpc::ServerContextBase& context,
                   absl::string_view method, Action action,
                   const Resource& resource) {
  return Authorize(authorizer, context, method, action, resource).status();
}

}  // namespace warren::auth
