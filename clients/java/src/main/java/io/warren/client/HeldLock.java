package io.warren.client;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.warren.v1.Acquire;
import io.warren.v1.Acquired;
import io.warren.v1.Fence;
import io.warren.v1.LockHolder;
import io.warren.v1.LockRequest;
import io.warren.v1.LockResponse;
import io.warren.v1.LockServiceGrpc;
import io.warren.v1.Release;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A lock (or a semaphore's slot) this client holds, from {@link Locker#acquire}.
 * {@link #close()} releases it: use try-with-resources.
 *
 * <p>Safety rules, as the {@link Elector}'s, so that a holder stops acting as
 * one before anyone else may hold:
 * <ul>
 *   <li>The lease: the server sends a heartbeat every interval only while it
 *       knows its ZooKeeper session lives. {@link #isHeld()} turns false as
 *       soon as nothing arrived for two intervals, and the lock is then given
 *       up ({@link LossReason#LEASE_EXPIRED}): the stream is dropped.
 *   <li>A suspended server connection is a loss at once
 *       ({@link LossReason#CONNECTION_SUSPENDED}); when the server's session
 *       survives, the lock is held again with the same token
 *       ({@link Listener#onHeldAgain}).
 *   <li>A broken stream, an expired session or an expired lease loses the
 *       lock for good: it is never taken again behind the caller's back.
 * </ul>
 *
 * <p>Fence the work done under the lock with {@link #fence()}: a fenced write
 * or publish is refused once the lock is lost, even by a holder that has not
 * noticed yet.
 *
 * <p>Listener callbacks run in order, one at a time, on the Locker's
 * executor (default: a thread of the lock's own, started only when there is
 * something to tell and ended with the lock).
 */
public final class HeldLock implements AutoCloseable {
  /** Told when the lock is lost and held again. */
  public interface Listener {
    /**
     * The lock is no longer held; after {@link LossReason#CONNECTION_SUSPENDED}
     * it may come back ({@link #onHeldAgain}), after any other reason it is
     * gone for good (a suspension that ends with the stream is told again,
     * as {@link LossReason#STREAM_BROKEN}).
     */
    void onLost(HeldLock lock, LossReason reason);

    /** Held again after a suspension, with the same fencing token. */
    default void onHeldAgain(HeldLock lock) {}
  }

  private enum State {
    WAITING,
    HELD,
    SUSPENDED, // lost while the server's connection is suspended; may come back
    GONE, // lost for good
    CLOSED // released, or given up while waiting
  }

  private final Warren warren;
  private final Locker.Options options;
  private final Acquire request; // without wait_timeout, set per attempt
  private final Duration timeout; // null: wait while the stream lives
  private final long deadlineNanos;
  private final Listener listener;
  private final StreamRetry retry;
  private final Lease lease;
  private final CompletableFuture<Void> acquired = new CompletableFuture<>();

  // Guarded by `lock`.
  private final Object lock = new Object();
  private State state = State.WAITING;
  private Stream stream;
  private LockHolder holder;
  private SerialCallbacks events; // from the first Acquired on, when there is a listener
  private boolean eventsEnded;

  HeldLock(
      Warren warren,
      Locker.Options options,
      String name,
      int limit,
      Duration timeout,
      Listener listener) {
    this.warren = warren;
    this.options = options;
    this.timeout = timeout;
    this.deadlineNanos = timeout == null ? 0 : System.nanoTime() + timeout.toNanos();
    this.listener = listener;
    this.request =
        Acquire.newBuilder()
            .setName(name)
            .setHolderId(options.holderId)
            .setValue(ByteString.copyFrom(options.value))
            .setLimit(limit)
            .setHeartbeatInterval(Protos.duration(options.heartbeatInterval))
            .build();
    this.retry = new StreamRetry(warren, options.backoff, lock, this::openLocked);
    this.lease = new Lease(warren, this::checkLease);
    synchronized (lock) {
      openLocked();
    }
  }

  /** Waits for the outcome of the acquire: this lock held, or the reason why not. */
  HeldLock awaitAcquired() throws InterruptedException, TimeoutException {
    try {
      if (timeout == null) {
        acquired.get();
      } else {
        long left = deadlineNanos - System.nanoTime() + Locker.VERDICT_GRACE.toNanos();
        acquired.get(left, TimeUnit.NANOSECONDS);
      }
      return this;
    } catch (ExecutionException e) {
      if (e.getCause() instanceof TimeoutException) {
        TimeoutException t = new TimeoutException(e.getCause().getMessage());
        t.initCause(e.getCause().getCause());
        throw t;
      }
      throw (RuntimeException) e.getCause();
    } catch (TimeoutException e) {
      // No verdict from the server (it may be down): give up, unless the
      // lock came just now.
      synchronized (lock) {
        if (state == State.HELD || state == State.SUSPENDED) return this;
      }
      close();
      throw new TimeoutException("lock " + name() + " not acquired within " + timeout);
    } catch (InterruptedException e) {
      close();
      throw e;
    }
  }

  /** The lock's name. */
  public String name() {
    return request.getName();
  }

  /** This holder as the server announced it: id, value, fencing token, when it asked. */
  public LockHolder holder() {
    synchronized (lock) {
      return holder;
    }
  }

  /**
   * The fencing token: the creation zxid of this holder's node, greater than
   * that of every earlier holder of the lock.
   */
  public long fencingToken() {
    return holder().getFencingToken();
  }

  /**
   * The fence of this holding for fenced writes and publishes: it holds
   * while this client holds the lock, and is refused by the server once the
   * lock is lost or released.
   */
  public Fence fence() {
    return Fences.of(holder());
  }

  /**
   * Whether this client holds the lock right now: it was acquired, not lost
   * or released, and a message arrived within the last two heartbeat
   * intervals (the lease).
   */
  public boolean isHeld() {
    synchronized (lock) {
      Stream s = stream;
      return state == State.HELD && s != null && !lease.expiredLocked(s.lastMessageNanos);
    }
  }

  /** The lease's heartbeat interval in force (for tests). */
  Duration leaseInterval() {
    synchronized (lock) {
      return lease.intervalLocked();
    }
  }

  /**
   * Releases the lock (or stops waiting for it) and waits (up to 5 s) for
   * the server to confirm; the next waiter may hold it from then on.
   * Idempotent. An interrupt stops the waiting: the stream is cancelled
   * (the server releases the lock as well) and the interrupt flag is kept.
   */
  @Override
  public void close() {
    Stream s;
    boolean waiting;
    synchronized (lock) {
      if (state == State.CLOSED) return;
      waiting = state == State.WAITING;
      state = State.CLOSED;
      retry.cancelLocked();
      lease.stopLocked();
      s = stream;
      if (waiting) {
        stream = null;
        acquired.completeExceptionally(
            new TimeoutException("lock " + name() + ": gave up waiting"));
      } else if (s != null) {
        s.sendLocked(LockRequest.newBuilder().setRelease(Release.getDefaultInstance()).build());
        s.halfCloseLocked();
      }
    }
    if (s != null) {
      if (waiting) {
        // Cancelling is how a waiter leaves: the server deletes its node at once.
        s.cancel("stopped waiting");
      } else {
        s.awaitEndOrCancel("lock released");
      }
    }
    synchronized (lock) {
      endEventsLocked();
    }
  }

  private void openLocked() {
    if (state != State.WAITING) return;
    Acquire.Builder acquire = request.toBuilder();
    if (timeout != null) {
      long left = Math.max(0, deadlineNanos - System.nanoTime());
      acquire.setWaitTimeout(Protos.duration(Duration.ofNanos(left)));
    }
    Stream s = new Stream();
    stream = s;
    RetryPolicy.forStreams(LockServiceGrpc.newStub(warren.channel())).lock(s);
    s.sendLocked(LockRequest.newBuilder().setAcquire(acquire).build());
  }

  private void emitLocked(Runnable callback) {
    if (events != null && !eventsEnded) events.run(callback);
  }

  /** The lock's own callback thread (if any) ends after the callbacks queued so far. */
  private void endEventsLocked() {
    if (events != null && !eventsEnded) {
      eventsEnded = true;
      events.shutdownAfterQueued();
    }
  }

  private void lostLocked(LossReason reason) {
    lease.stopLocked();
    state = reason == LossReason.CONNECTION_SUSPENDED ? State.SUSPENDED : State.GONE;
    emitLocked(() -> listener.onLost(this, reason));
  }

  private void acquiredLocked(Acquired a) {
    switch (state) {
      case WAITING:
        holder = a.getHolder();
        state = State.HELD;
        lease.startLocked(a.getHeartbeatInterval(), options.heartbeatInterval);
        if (listener != null) events = new SerialCallbacks(options.executor, "warren-lock");
        acquired.complete(null);
        break;
      case SUSPENDED:
        holder = a.getHolder();
        state = State.HELD;
        lease.startLocked(a.getHeartbeatInterval(), options.heartbeatInterval);
        emitLocked(() -> listener.onHeldAgain(this));
        break;
      default:
        break; // released or lost for good: nothing to hold again
    }
  }

  private void checkLease() {
    Stream s;
    synchronized (lock) {
      s = stream;
      if (state != State.HELD || s == null || !lease.expiredLocked(s.lastMessageNanos)) return;
      lostLocked(LossReason.LEASE_EXPIRED);
    }
    // Drop the stream: if the server still lives, that releases the lock there too.
    s.cancel("lease expired");
  }

  /** The stream ended while waiting: wait again within what is left of the timeout, or fail. */
  private void waitAgainOrFailLocked(Status status) {
    if (StreamRetry.resubscribes(status)) {
      boolean scheduled =
          timeout == null
              ? retry.scheduleLocked() != null
              : retry.scheduleBeforeLocked(deadlineNanos) != null;
      if (scheduled) return;
    }
    state = State.CLOSED;
    if (!StreamRetry.resubscribes(status)) {
      acquired.completeExceptionally(status.asRuntimeException());
      return;
    }
    String why =
        status.getCode() == Status.Code.DEADLINE_EXCEEDED && status.getDescription() != null
            ? status.getDescription()
            : timeout == null
                ? "lock " + name() + " not acquired: the client was closed"
                : "lock " + name() + " not acquired within " + timeout;
    TimeoutException t = new TimeoutException(why);
    t.initCause(status.asRuntimeException());
    acquired.completeExceptionally(t);
  }

  /** One Lock call; only a waiter makes a new one after a break. */
  private final class Stream extends StreamCall<LockRequest, LockResponse> {
    Stream() {
      super(lock, retry);
    }

    @Override
    public void onNext(LockResponse response) {
      long now = received();
      synchronized (lock) {
        if (stream != this) return;
        switch (response.getEventCase()) {
          case ACQUIRED:
            acquiredLocked(response.getAcquired());
            break;
          case HEARTBEAT:
            if (state == State.HELD) lease.heartbeatLocked(now);
            break;
          case LOST:
            if (state == State.HELD) lostLocked(LossReason.of(response.getLost().getReason()));
            break;
          default:
            break; // Queued: the wait goes on
        }
      }
    }

    @Override
    void ended(Status status) {
      synchronized (lock) {
        if (stream != this) return;
        stream = null;
        switch (state) {
          case WAITING:
            waitAgainOrFailLocked(status);
            return;
          case HELD:
          case SUSPENDED:
            // The server releases a lock whose stream ended: lost for good.
            lostLocked(LossReason.STREAM_BROKEN);
            break;
          default:
            break;
        }
        lease.stopLocked();
        endEventsLocked();
      }
    }
  }
}
