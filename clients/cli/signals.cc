#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "clients/cli/stream.h"

namespace warren::cli {
namespace {

absl::Mutex handler_mu(absl::kConstInit);
std::function<void()>* handler ABSL_GUARDED_BY(handler_mu) = nullptr;

}  // namespace

void StopSignals::Install() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Detached: it waits for signals until the process exits.
  std::thread([set] {
    bool stopping = false;
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      absl::MutexLock lock(&handler_mu);
      if (handler == nullptr || stopping) {
        // Nothing to stop gracefully, or the graceful stop takes too long
        // for the user: end now, as the default action would.
        _exit(128 + sig);
      }
      stopping = true;
      (*handler)();
    }
  }).detach();
}

StopSignals::Scope::Scope(std::function<void()> stop) {
  absl::MutexLock lock(&handler_mu);
  handler = new std::function<void()>(std::move(stop));
}

StopSignals::Scope::~Scope() {
  absl::MutexLock lock(&handler_mu);
  delete handler;
  handler = nullptr;
}

}  // namespace warren::cli
