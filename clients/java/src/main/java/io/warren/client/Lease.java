package io.warren.client;

import java.time.Duration;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The client half of a lease (Elect, Lock, HoldKey): while this client holds
 * something, the server sends a heartbeat every interval only while it has
 * fresh proof that its ZooKeeper session lives. A holder that hears nothing
 * at all for two intervals must stop acting as holder, even though the server
 * never said so: it may be frozen or cut off.
 *
 * <p>The interval is the server's (the one in force, capped below its
 * session timeout) when the response says it; otherwise the requested one,
 * shortened to the smallest spacing observed between two heartbeats
 * (spacings under 100 ms, i.e. bursts after a stall, are ignored), since the
 * server may have capped it without saying so.
 *
 * <p>{@code lock} is the wrapper's lock, which guards every method named
 * ...Locked; {@code onSilence} runs on the timer thread without it.
 */
final class Lease {
  private static final long MIN_LEARNED_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

  private final Warren warren;
  private final Runnable onSilence;

  // Guarded by the wrapper's lock.
  private long intervalNanos;
  private boolean intervalIsServers;
  private long lastHeartbeatNanos;
  private ScheduledFuture<?> check;

  /** {@code onSilence} runs periodically while the lease runs; it asks {@link #expiredLocked}. */
  Lease(Warren warren, Runnable onSilence) {
    this.warren = warren;
    this.onSilence = onSilence;
  }

  /**
   * Starts (or goes on with) the lease once held: {@code inForce} is the
   * server's interval (zero when it did not say), {@code requested} the one
   * asked for.
   */
  void startLocked(com.google.protobuf.Duration inForce, Duration requested) {
    long serverNanos = inForce.getSeconds() * 1_000_000_000L + inForce.getNanos();
    intervalIsServers = serverNanos > 0;
    intervalNanos = intervalIsServers ? serverNanos : requested.toNanos();
    lastHeartbeatNanos = 0;
    if (check != null) return;
    // Small enough to notice expiry promptly even if the interval is learned
    // (shortened) later.
    long period =
        Math.max(
            TimeUnit.MILLISECONDS.toNanos(25),
            Math.min(intervalNanos / 4, TimeUnit.MILLISECONDS.toNanos(250)));
    try {
      check =
          warren.scheduler().scheduleAtFixedRate(onSilence, period, period, TimeUnit.NANOSECONDS);
    } catch (RejectedExecutionException closed) {
      // The Warren client was closed under us: its streams end, and so does this lease.
    }
  }

  /** A heartbeat arrived at {@code now}: learns the interval when the server did not say it. */
  void heartbeatLocked(long now) {
    if (!intervalIsServers && lastHeartbeatNanos != 0) {
      long gap = now - lastHeartbeatNanos;
      if (gap >= MIN_LEARNED_NANOS && gap < intervalNanos * 3 / 4) intervalNanos = gap;
    }
    lastHeartbeatNanos = now;
  }

  /** Whether nothing arrived for two intervals since {@code lastMessageNanos}. */
  boolean expiredLocked(long lastMessageNanos) {
    return System.nanoTime() - lastMessageNanos > 2 * intervalNanos;
  }

  /** Ends the periodic check (released, lost or closed). */
  void stopLocked() {
    if (check != null) {
      check.cancel(false);
      check = null;
    }
  }

  /** The interval in force. */
  Duration intervalLocked() {
    return Duration.ofNanos(intervalNanos);
  }
}
