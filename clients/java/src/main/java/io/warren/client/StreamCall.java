package io.warren.client;

import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * One call of a resubscribing stream (Subscribe, Elect, WatchConfig): what
 * every such call needs to send safely, to be cancelled by us, to notice
 * silence and to end once. A wrapper's inner class adds what its messages
 * mean; a resubscribe makes a new call.
 *
 * <p>{@code lock} is the wrapper's lock, which guards the fields marked so.
 */
abstract class StreamCall<ReqT, RespT> implements ClientResponseObserver<ReqT, RespT> {
  final CountDownLatch ended = new CountDownLatch(1);
  volatile long lastMessageNanos = System.nanoTime();
  private final Object lock;
  private final StreamRetry retry;
  private ClientCallStreamObserver<ReqT> requests;
  private ScheduledFuture<?> watchdog;
  private boolean answered; // gRPC calls onNext one at a time per stream
  private boolean halfClosed; // guarded by lock
  private Status ourCancel; // guarded by lock: why we cancelled, if we did

  StreamCall(Object lock, StreamRetry retry) {
    this.lock = lock;
    this.retry = retry;
  }

  /** How the call ended: the server's status, or ours if we cancelled it. Called once. */
  abstract void ended(Status status);

  @Override
  public final void beforeStart(ClientCallStreamObserver<ReqT> requestStream) {
    requests = requestStream;
  }

  void sendLocked(ReqT r) {
    // gRPC refuses a message on a call we cancelled (IllegalStateException).
    if (!halfClosed && ourCancel == null && ended.getCount() > 0) requests.onNext(r);
  }

  void halfCloseLocked() {
    if (!halfClosed && ourCancel == null && ended.getCount() > 0) {
      halfClosed = true;
      requests.onCompleted();
    }
  }

  void cancel(String why) {
    synchronized (lock) {
      if (ourCancel == null) ourCancel = Status.UNAVAILABLE.withDescription(why);
    }
    requests.cancel(why, null);
  }

  /**
   * After a half-close: waits (up to 5 s) for the server to end the call,
   * else cancels it. An interrupt cancels it at once and keeps the flag.
   */
  void awaitEndOrCancel(String why) {
    try {
      if (!ended.await(5, TimeUnit.SECONDS)) cancel(why);
    } catch (InterruptedException e) {
      cancel(why);
      Thread.currentThread().interrupt();
    }
  }

  /** Cancels the call when no message arrives for three heartbeat intervals. */
  void watchHeartbeats(Warren warren, Duration interval) {
    long period = interval.toNanos();
    watchdog =
        warren
            .scheduler()
            .scheduleAtFixedRate(
                () -> {
                  long silent = System.nanoTime() - lastMessageNanos;
                  if (silent > 3 * period) {
                    cancel("no message or heartbeat for " + Duration.ofNanos(silent));
                  }
                },
                period,
                period,
                TimeUnit.NANOSECONDS);
  }

  /**
   * To be called first in onNext: records the message's arrival (returned)
   * and, on the call's first one, starts the backoff over, as the server took
   * the call.
   */
  long received() {
    long now = System.nanoTime();
    lastMessageNanos = now;
    if (!answered) {
      answered = true;
      retry.answered();
    }
    return now;
  }

  @Override
  public final void onError(Throwable t) {
    end(Status.fromThrowable(t));
  }

  @Override
  public final void onCompleted() {
    end(Status.OK);
  }

  private void end(Status status) {
    synchronized (lock) {
      ended.countDown();
      if (watchdog != null) watchdog.cancel(false);
      if (ourCancel != null) status = ourCancel;
    }
    ended(status);
  }
}
