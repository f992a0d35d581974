package io.warren.client;

import io.grpc.Status;
import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The resubscribe loop the streaming wrappers share: whether an ended stream
 * is opened again ({@link RetryPolicy#stream}), after which jittered
 * {@link BackoffPolicy} delay (back to the shortest once a stream answered),
 * and the channel's reconnect backoff reset before the new call, so a waiting
 * channel connects at once.
 *
 * <p>{@code lock} is the wrapper's lock; {@code openLocked} opens a new
 * stream under it (and does nothing once the wrapper is closing).
 */
final class StreamRetry {
  private final Warren warren;
  private final BackoffPolicy backoff;
  private final Object lock;
  private final Runnable openLocked;

  // Guarded by `lock`.
  private int failures; // consecutive, for the backoff
  private ScheduledFuture<?> timer;

  StreamRetry(Warren warren, BackoffPolicy backoff, Object lock, Runnable openLocked) {
    this.warren = warren;
    this.backoff = backoff;
    this.lock = lock;
    this.openLocked = openLocked;
  }

  /** Whether a stream that ended with {@code status} is opened again (else: a failure for good). */
  static boolean resubscribes(Status status) {
    return RetryPolicy.stream(status.getCode()) == RetryPolicy.StreamAction.RESUBSCRIBE;
  }

  /** The server took a stream: the next break starts the backoff over. */
  void answered() {
    synchronized (lock) {
      failures = 0;
    }
  }

  /**
   * Opens a new stream after the next backoff delay and returns that delay,
   * or null when the Warren client was closed under us (nothing to open with).
   */
  Duration scheduleLocked() {
    return scheduleLocked(backoff.delay(failures++));
  }

  /**
   * As {@link #scheduleLocked()}, unless the stream would open again at or
   * after {@code deadlineNanos} ({@link System#nanoTime}): then null, and
   * nothing is scheduled.
   */
  Duration scheduleBeforeLocked(long deadlineNanos) {
    Duration delay = backoff.delay(failures);
    if (System.nanoTime() + delay.toNanos() >= deadlineNanos) return null;
    failures++;
    return scheduleLocked(delay);
  }

  private Duration scheduleLocked(Duration delay) {
    try {
      timer = warren.scheduler().schedule(this::reopen, delay.toNanos(), TimeUnit.NANOSECONDS);
      return delay;
    } catch (RejectedExecutionException e) {
      return null;
    }
  }

  /** Drops a scheduled reopen (on close). */
  void cancelLocked() {
    if (timer != null) timer.cancel(false);
  }

  private void reopen() {
    warren.resetConnectBackoff();
    synchronized (lock) {
      timer = null;
      openLocked.run();
    }
  }
}
