package io.warren.client;

import io.warren.v1.GetLockRequest;
import io.warren.v1.GetLockResponse;
import io.warren.v1.LockServiceGrpc;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Takes distributed locks (mutexes) and semaphores (LockService), each held
 * as a {@link HeldLock} for try-with-resources:
 *
 * <pre>{@code
 * try (HeldLock held = warren.locker().acquire("jobs/report", 1, Duration.ofSeconds(10))) {
 *   work(held.fence());            // fenced writes are refused once the lock is lost
 * }                                // released here
 * }</pre>
 *
 * <p>Waiting: {@link #acquire} blocks until the lock is held, the timeout
 * passes ({@link TimeoutException}; nothing is left behind on the server) or
 * the server refuses the request for good (a {@link io.grpc.StatusRuntimeException}:
 * INVALID_ARGUMENT for a bad name, FAILED_PRECONDITION for a limit that
 * differs from the lock's, PERMISSION_DENIED...). A stream that breaks while
 * waiting with a code {@link RetryPolicy#stream} resubscribes on is opened
 * again after the jittered {@link BackoffPolicy}, asking the server to wait
 * only for what is left of the timeout; when no retry fits in it, acquire
 * throws a TimeoutException whose cause is the last error. The queue place
 * is lost with the stream: a retry queues anew.
 *
 * <p>Holding: see {@link HeldLock} (the lease, losses, release). A lock that
 * was lost is never taken again behind the caller's back.
 *
 * <p>Thread-safe; a Locker holds nothing itself and needs no closing.
 */
public final class Locker {
  /**
   * How long acquire waits beyond its timeout for the server's own verdict
   * before it gives up by itself (a server that is down or unreachable gives
   * none).
   */
  static final Duration VERDICT_GRACE = Duration.ofSeconds(1);

  /** Who asks, and the policies of the locks it takes. */
  public static final class Options extends ListenerOptions<Options> {
    String holderId = "";
    byte[] value = new byte[0];
    Duration heartbeatInterval = Duration.ofSeconds(1);

    /** The holder id shown to others (default: one the server generates per acquire). */
    public Options holderId(String id) {
      holderId = id;
      return this;
    }

    /** The value shown to others while holding, e.g. what this holder works on. */
    public Options value(byte[] v) {
      value = v.clone();
      return this;
    }

    /**
     * The lease heartbeat interval asked of the server (default 1 s, as the
     * Elector's); the server may cap it and says which one is in force.
     */
    public Options heartbeatInterval(Duration d) {
      if (d.toMillis() < 100) throw new IllegalArgumentException("heartbeatInterval < 100ms");
      heartbeatInterval = d;
      return this;
    }
  }

  private final Warren warren;
  private final Options options;

  Locker(Warren warren, Options options) {
    this.warren = warren;
    this.options = options;
  }

  /** {@link #acquire(String, int, Duration, HeldLock.Listener)} without a listener. */
  public HeldLock acquire(String name, int limit, Duration timeout)
      throws InterruptedException, TimeoutException {
    return acquire(name, limit, timeout, null);
  }

  /**
   * Acquires {@code name} and returns it held.
   *
   * @param limit the most holders at once: 0 or 1 for a mutex, N for a
   *     semaphore of N; everyone using the lock must give the same one
   * @param timeout how long to wait: null waits until the lock is held (or
   *     the thread is interrupted), {@link Duration#ZERO} tries once
   * @param listener told when the lock is lost (and held again after a
   *     suspension); null for none
   * @throws TimeoutException when the lock was not acquired in time
   * @throws InterruptedException when interrupted while waiting; nothing is
   *     left held
   * @throws io.grpc.StatusRuntimeException when the server refused the
   *     request for good
   */
  public HeldLock acquire(String name, int limit, Duration timeout, HeldLock.Listener listener)
      throws InterruptedException, TimeoutException {
    if (limit < 0) throw new IllegalArgumentException("limit must not be negative");
    if (timeout != null && timeout.isNegative()) {
      throw new IllegalArgumentException("timeout must not be negative");
    }
    return new HeldLock(warren, options, name, limit, timeout, listener).awaitAcquired();
  }

  /** Who holds {@code name} now and how many wait (all empty for a lock nobody uses). */
  public GetLockResponse getLock(String name) {
    return LockServiceGrpc.newBlockingStub(warren.channel())
        .withDeadlineAfter(10, TimeUnit.SECONDS)
        .getLock(GetLockRequest.newBuilder().setName(name).build());
  }
}
