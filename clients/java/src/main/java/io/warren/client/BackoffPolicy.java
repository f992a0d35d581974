package io.warren.client;

import java.time.Duration;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Exponential backoff with jitter, capped: the delay before retry {@code n}
 * (from 0) is a random value in [d/2, d] with
 * d = min(max, initial * multiplier^n).
 *
 * <p>The random half spreads the clients of a restarted server over time, so
 * they do not all reconnect in the same instant; the fixed half keeps a retry
 * from ever coming immediately.
 */
public final class BackoffPolicy {
  /** The wrappers' default, from {@link RetryPolicy}: 100 ms doubling up to 3 s. */
  public static final BackoffPolicy DEFAULT =
      new BackoffPolicy(
          RetryPolicy.INITIAL_BACKOFF, RetryPolicy.BACKOFF_MULTIPLIER, RetryPolicy.MAX_BACKOFF);

  private final Duration initial;
  private final double multiplier;
  private final Duration max;

  /** Doubling from {@code initial} up to {@code max}. */
  public BackoffPolicy(Duration initial, Duration max) {
    this(initial, 2.0, max);
  }

  public BackoffPolicy(Duration initial, double multiplier, Duration max) {
    if (initial.isNegative() || initial.isZero() || max.compareTo(initial) < 0) {
      throw new IllegalArgumentException("need 0 < initial <= max");
    }
    if (!(multiplier >= 1.0)) throw new IllegalArgumentException("need multiplier >= 1");
    this.initial = initial;
    this.multiplier = multiplier;
    this.max = max;
  }

  public Duration initial() {
    return initial;
  }

  public double multiplier() {
    return multiplier;
  }

  public Duration max() {
    return max;
  }

  /** The delay before retry number {@code attempt} (0 = the first retry). */
  public Duration delay(int attempt) {
    double capNanos = max.toNanos();
    double d = initial.toNanos();
    for (int i = 0; i < attempt && d < capNanos; i++) d *= multiplier;
    long cap = (long) Math.min(d, capNanos);
    return Duration.ofNanos(cap / 2 + ThreadLocalRandom.current().nextLong(cap / 2 + 1));
  }
}
