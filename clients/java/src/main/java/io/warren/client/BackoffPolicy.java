package io.warren.client;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Exponential backoff with jitter, capped: the delay before retry {@code n}
 * (from 0) is a random value in [d/2, d] with d = min(max, initial * 2^n).
 *
 * <p>The random half spreads the clients of a restarted server over time, so
 * they do not all reconnect in the same instant; the fixed half keeps a retry
 * from ever coming immediately.
 */
public final class BackoffPolicy {
  /** 100 ms doubling up to 5 s: quick after a blip, gentle on a long outage. */
  public static final BackoffPolicy DEFAULT =
      new BackoffPolicy(Duration.ofMillis(100), Duration.ofSeconds(5));

  private final Duration initial;
  private final Duration max;

  public BackoffPolicy(Duration initial, Duration max) {
    if (initial.isNegative() || initial.isZero() || max.compareTo(initial) < 0) {
      throw new IllegalArgumentException("need 0 < initial <= max");
    }
    this.initial = initial;
    this.max = max;
  }

  public Duration initial() {
    return initial;
  }

  public Duration max() {
    return max;
  }

  /** The delay before retry number {@code attempt} (0 = the first retry). */
  public Duration delay(int attempt) {
    long capNanos = max.toNanos();
    long d = initial.toNanos();
    for (int i = 0; i < attempt && d < capNanos; i++) d *= 2;
    d = Math.min(d, capNanos);
    return Duration.ofNanos(d / 2 + ThreadLocalRandom.current().nextLong(d / 2 + 1));
  }
}
