// The server's mutex: absl::Mutex, except under ThreadSanitizer.
//
// Debian's Abseil is a prebuilt library that was not compiled with TSan, so
// TSan cannot see absl::Mutex's lock and unlock (they go through futexes in
// that library) and would report every guarded access as a race. A TSan
// build therefore swaps in a mutex over std::mutex and
// std::condition_variable with the same interface subset, which TSan
// understands; every other build uses absl::Mutex itself (with its deadlock
// detection in debug builds).
#pragma once

#include "absl/synchronization/mutex.h"

#if defined(__SANITIZE_THREAD__)
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#endif

namespace warren {

#if !defined(__SANITIZE_THREAD__)

using Mutex = absl::Mutex;
using MutexLock = absl::MutexLock;
using ReaderMutexLock = absl::ReaderMutexLock;

#else

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  // Like absl::Mutex, every unlock lets waiters re-check their conditions.
  // Notifying before unlocking keeps the unlock the last touch, so a thread
  // that locks next may destroy the mutex, as absl::Mutex allows.
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    cv_.notify_all();
    mu_.unlock();
  }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() { Lock(); }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() { Unlock(); }

  void Await(const absl::Condition& condition) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    cv_.wait(lock, [&] { return condition.Eval(); });
    lock.release();
  }
  bool AwaitWithDeadline(const absl::Condition& condition,
                         absl::Time deadline) {
    std::unique_lock<std::mutex> lock(mu_, std::adopt_lock);
    bool met = true;
    if (deadline == absl::InfiniteFuture()) {
      cv_.wait(lock, [&] { return condition.Eval(); });
    } else {
      met = cv_.wait_until(lock, absl::ToChronoTime(deadline),
                           [&] { return condition.Eval(); });
    }
    lock.release();
    return met;
  }
  bool AwaitWithTimeout(const absl::Condition& condition,
                        absl::Duration timeout) {
    return AwaitWithDeadline(condition, absl::Now() + timeout);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->ReaderLock();
  }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  Mutex* const mu_;
};

#endif

}  // namespace warren
