package io.warren.client;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.warren.v1.ConfigEntry;
import io.warren.v1.ConfigServiceGrpc;
import io.warren.v1.GetConfigRequest;
import io.warren.v1.GetConfigResponse;
import io.warren.v1.HoldKeyRequest;
import io.warren.v1.HoldKeyResponse;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * A config key that exists while this registration is open (ConfigService
 * HoldKey), e.g. a service's address for others to discover with
 * {@link Warren#getConfig}, {@link ConfigWatcher} or ListConfig: the server
 * holds it as an ephemeral node of its ZooKeeper session, recreates it after
 * a new session and deletes it when the stream ends, so a crashed process's
 * registration does not linger.
 *
 * <p>Re-holding: when the stream ends with a code {@link RetryPolicy#stream}
 * resubscribes on (server restart, an unexpected end, or the lease below),
 * the registration holds the key again on a new stream after the jittered
 * {@link BackoffPolicy}, wait-for-ready, with the latest value. The other
 * codes stop it and go to {@link Listener#onError}: INVALID_ARGUMENT,
 * PERMISSION_DENIED, and ALREADY_EXISTS when the key is a persistent key or
 * someone else holds it. A re-hold refused with ALREADY_EXISTS because the
 * key is still this registration's previous node (exactly the entry it last
 * held: its server has not deleted it yet, or died and leaves it until its
 * ZooKeeper session expires) is tried again after the backoff instead.
 *
 * <p>State: {@link #isHeld()} follows the lease as the Elector's does (no
 * message for two heartbeat intervals: not held, and the stream is dropped
 * and opened again); {@link Listener#onHeld} and {@link Listener#onLost} tell
 * each change, in order, one at a time, on {@link Options#executor}
 * (default: a thread of the registration's own, ended with it).
 *
 * <p>{@link #close()} ends the stream: the server deletes the key at once.
 */
public final class Registration implements AutoCloseable {
  /** What happens to the held key. */
  public interface Listener {
    /** The key is held with this entry (at first, after each value change, after a re-hold). */
    default void onHeld(ConfigEntry entry) {}

    /** The key may be gone (or is); the registration holds it again when it can. */
    default void onLost(LossReason reason) {}

    /** Holding failed for good (not retryable); the registration stopped. */
    default void onError(Status status) {}
  }

  /** The key, its value and the policies. */
  public static final class Options extends ListenerOptions<Options> {
    final String key;
    byte[] value;
    Duration heartbeatInterval = Duration.ofSeconds(1);

    public Options(String key, byte[] value) {
      this.key = key;
      this.value = value.clone();
    }

    /**
     * The lease heartbeat interval asked of the server (default 1 s, as the
     * Elector's); the server may cap it below its session timeout and says
     * with each {@code held} which one is in force, which the lease follows.
     */
    public Options heartbeatInterval(Duration d) {
      if (d.toMillis() < 100) throw new IllegalArgumentException("heartbeatInterval < 100ms");
      heartbeatInterval = d;
      return this;
    }
  }

  private final Warren warren;
  private final Options options;
  private final Listener listener;
  private final SerialCallbacks events;
  private final StreamRetry retry;
  private final Lease lease;
  private final CountDownLatch firstHeld = new CountDownLatch(1);

  // Guarded by `lock`.
  private final Object lock = new Object();
  private Stream stream;
  private boolean closing;
  private boolean held;
  private ConfigEntry entry;
  private byte[] value;
  private Status failedWith;

  Registration(Warren warren, Options options, Listener listener) {
    this.warren = warren;
    this.options = options;
    this.listener = listener;
    this.value = options.value;
    this.retry = new StreamRetry(warren, options.backoff, lock, this::openLocked);
    this.lease = new Lease(warren, this::checkLease);
    this.events = new SerialCallbacks(options.executor, "warren-registration");
    synchronized (lock) {
      openLocked();
    }
  }

  /** The held key. */
  public String key() {
    return options.key;
  }

  /**
   * Waits until the key is held for the first time; false on timeout.
   *
   * @throws io.grpc.StatusRuntimeException when holding failed for good
   */
  public boolean awaitHeld(Duration timeout) throws InterruptedException {
    boolean got = firstHeld.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
    synchronized (lock) {
      if (failedWith != null) throw failedWith.asRuntimeException();
    }
    return got;
  }

  /** Whether the key is held right now, by the lease too. */
  public boolean isHeld() {
    synchronized (lock) {
      Stream s = stream;
      return held && s != null && !lease.expiredLocked(s.lastMessageNanos);
    }
  }

  /** The key as last held (empty before the first hold). */
  public Optional<ConfigEntry> entry() {
    synchronized (lock) {
      return Optional.ofNullable(entry);
    }
  }

  /** Changes the value: now, when held, and for every later re-hold. */
  public void setValue(byte[] newValue) {
    synchronized (lock) {
      value = newValue.clone();
      if (stream != null) {
        stream.sendLocked(HoldKeyRequest.newBuilder().setValue(ByteString.copyFrom(value)).build());
      }
    }
  }

  /** The lease's heartbeat interval in force (for tests). */
  Duration leaseInterval() {
    synchronized (lock) {
      return lease.intervalLocked();
    }
  }

  /**
   * Ends the registration and waits (up to 5 s) for the server to delete the
   * key. Idempotent. An interrupt stops the waiting: the stream is cancelled
   * (the server deletes the key as well) and the interrupt flag is kept.
   */
  @Override
  public void close() {
    Stream s;
    synchronized (lock) {
      if (closing) return;
      closing = true;
      retry.cancelLocked();
      lease.stopLocked();
      held = false;
      s = stream;
      if (s != null) s.halfCloseLocked();
    }
    if (s != null) {
      s.awaitEndOrCancel("registration closed");
    }
    events.shutdownAfterQueued();
  }

  private void openLocked() {
    if (closing) return;
    Stream s = new Stream();
    stream = s;
    RetryPolicy.forStreams(ConfigServiceGrpc.newStub(warren.channel())).holdKey(s);
    s.sendLocked(
        HoldKeyRequest.newBuilder()
            .setKey(options.key)
            .setValue(ByteString.copyFrom(value))
            .setHeartbeatInterval(Protos.duration(options.heartbeatInterval))
            .build());
  }

  private void failLocked(Status status) {
    closing = true;
    failedWith = status;
    firstHeld.countDown();
    events.run(() -> listener.onError(status));
    events.shutdownAfterQueued(); // close() has nothing left to end
  }

  /**
   * A re-hold found the key held: by someone else (a failure for good, as
   * the retry rule says), or still by this registration's previous node,
   * which its server has not deleted yet (the cancel of a stream whose lease
   * expired is still on its way, or a server that died leaves its node until
   * its ZooKeeper session expires). The node is ours when it is exactly the
   * entry we last held (same version, same write time): then hold again
   * after the backoff, as the node goes.
   */
  private void whoseIsItLocked(Status refusal, ConfigEntry ours) {
    ListenableFuture<GetConfigResponse> read =
        ConfigServiceGrpc.newFutureStub(warren.channel())
            .withDeadlineAfter(10, TimeUnit.SECONDS)
            .getConfig(GetConfigRequest.newBuilder().setKey(options.key).setConsistent(true).build());
    Futures.addCallback(
        read,
        new FutureCallback<GetConfigResponse>() {
          @Override
          public void onSuccess(GetConfigResponse now) {
            ConfigEntry e = now.getEntry();
            boolean stillOurs =
                e.getHeld()
                    && e.getVersion() == ours.getVersion()
                    && e.getModifyTime().equals(ours.getModifyTime());
            decide(stillOurs);
          }

          @Override
          public void onFailure(Throwable t) {
            // Gone by now (NOT_FOUND), or the server cannot say now (the next
            // attempt tells); any other answer (e.g. no right to read the
            // key) leaves the refusal standing.
            Status.Code code = Status.fromThrowable(t).getCode();
            decide(
                code == Status.Code.NOT_FOUND
                    || RetryPolicy.unary(code) == RetryPolicy.UnaryAction.RETRY);
          }

          private void decide(boolean holdAgain) {
            synchronized (lock) {
              if (closing || stream != null) return;
              if (holdAgain) {
                retry.scheduleLocked();
              } else {
                failLocked(refusal);
              }
            }
          }
        },
        MoreExecutors.directExecutor());
  }

  private void lostLocked(LossReason reason) {
    lease.stopLocked();
    if (!held) return;
    held = false;
    events.run(() -> listener.onLost(reason));
  }

  private void checkLease() {
    Stream s;
    synchronized (lock) {
      s = stream;
      if (!held || s == null || !lease.expiredLocked(s.lastMessageNanos)) return;
      lostLocked(LossReason.LEASE_EXPIRED);
    }
    // Drop the stream (the server deletes the key if it still lives) and hold it anew.
    s.cancel("lease expired");
  }

  /** One HoldKey call; a re-hold makes a new one. */
  private final class Stream extends StreamCall<HoldKeyRequest, HoldKeyResponse> {
    Stream() {
      super(lock, retry);
    }

    @Override
    public void onNext(HoldKeyResponse response) {
      long now = received();
      synchronized (lock) {
        if (stream != this || closing) return;
        switch (response.getEventCase()) {
          case HELD:
            {
              ConfigEntry e = response.getHeld();
              entry = e;
              // The interval in force comes with `held` (a server too old to
              // send it leaves the lease to learn it from the heartbeats).
              lease.startLocked(response.getHeartbeatInterval(), options.heartbeatInterval);
              held = true;
              events.run(() -> listener.onHeld(e));
              firstHeld.countDown();
              break;
            }
          case LOST:
            lostLocked(LossReason.of(response.getLost().getReason()));
            break;
          case HEARTBEAT:
            if (held) lease.heartbeatLocked(now);
            break;
          default:
            break;
        }
      }
    }

    @Override
    void ended(Status status) {
      synchronized (lock) {
        if (stream != this) return;
        stream = null;
        if (closing) return;
        // The server deletes the key of an ended stream.
        lostLocked(LossReason.STREAM_BROKEN);
        if (status.getCode() == Status.Code.ALREADY_EXISTS && entry != null) {
          whoseIsItLocked(status, entry);
        } else if (StreamRetry.resubscribes(status)) {
          retry.scheduleLocked(); // null (nothing scheduled) when the Warren client was closed under us
        } else {
          failLocked(status);
        }
      }
    }
  }
}
