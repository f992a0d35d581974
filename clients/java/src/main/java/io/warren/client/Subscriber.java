package io.warren.client;

import io.grpc.Status;
import io.warren.v1.Ack;
import io.warren.v1.Delivery;
import io.warren.v1.MessagingServiceGrpc;
import io.warren.v1.Nack;
import io.warren.v1.SubscribeRequest;
import io.warren.v1.SubscribeResponse;
import io.warren.v1.SubscribeStart;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A subscription that runs a handler per delivery and settles it: ack when
 * the handler returns, nack when it throws (requeued unless
 * {@link Options#requeueOnError} is false).
 *
 * <ul>
 *   <li>At most {@link Options#maxInFlight} handlers run at once; the same
 *       number is the server-side prefetch, so the broker never hands this
 *       stream more than that many unacknowledged messages.
 *   <li>When the stream ends with a code that {@link RetryPolicy#stream} says to
 *       resubscribe on (UNAVAILABLE, RESOURCE_EXHAUSTED, ABORTED, INTERNAL,
 *       UNKNOWN, DEADLINE_EXCEEDED, a CANCELLED that we did not ask for, or an
 *       unexpected end without error), or stays silent for three heartbeat
 *       intervals, it subscribes again after the jittered {@link BackoffPolicy}
 *       (back to its shortest once a stream answered). Deliveries of the broken
 *       stream are not acked: the server has already put them back in the
 *       queue (at-least-once), so a handler that was running may see its
 *       message again. Streams are opened wait-for-ready, so one opened while
 *       the server is down waits for it rather than failing.
 *   <li>The other codes (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
 *       PERMISSION_DENIED...) mean retrying cannot help: the subscriber stops
 *       and reports them through {@link Listener#onFailed} and
 *       {@link #awaitSubscribed}.
 *   <li>{@link #close()} stops cleanly: no new handler starts, deliveries that
 *       did not start yet are nacked with requeue, running handlers finish and
 *       are acked or nacked, then the stream is closed.
 * </ul>
 */
public final class Subscriber implements AutoCloseable {
  private static final Logger log = Logger.getLogger(Subscriber.class.getName());

  /** Processes one delivery; returning acks it, throwing nacks it. */
  @FunctionalInterface
  public interface Handler {
    void handle(Delivery delivery) throws Exception;
  }

  /** Optional notifications about the subscription's life. Called on gRPC threads: do not block. */
  public interface Listener {
    /** A stream is open and consuming {@code queue} (again, after a resubscribe). */
    default void onSubscribed(String queue) {}

    /** The stream broke; the subscriber resubscribes after {@code retryIn}. */
    default void onStreamBroken(Status status, Duration retryIn) {}

    /** The subscription failed for good (not retryable); the subscriber is stopped. */
    default void onFailed(Status status) {}

    /** A handler threw; its delivery is nacked. */
    default void onHandlerError(Delivery delivery, Throwable error) {}
  }

  /** What to consume and how. */
  public static final class Options {
    final SubscribeStart start;
    int maxInFlight = 16;
    boolean requeueOnError = true;
    Executor executor;
    Duration heartbeatInterval = Duration.ofSeconds(15);
    BackoffPolicy backoff = BackoffPolicy.DEFAULT;
    Listener listener = new Listener() {};
    Duration closeTimeout = Duration.ofSeconds(30);

    /** Everything about the source (queue or topic binding, group, queue options). */
    public Options(SubscribeStart start) {
      this.start = start;
    }

    /** Consumes {@code queue}, declaring it durable when missing. */
    public static Options queue(String queue) {
      return new Options(SubscribeStart.newBuilder().setQueue(queue).build());
    }

    /** The most handlers running at once, and the server-side prefetch (default 16). */
    public Options maxInFlight(int n) {
      if (n < 1) throw new IllegalArgumentException("maxInFlight must be at least 1");
      maxInFlight = n;
      return this;
    }

    /** Whether a failed delivery goes back to the queue (default true) or is dead-lettered. */
    public Options requeueOnError(boolean b) {
      requeueOnError = b;
      return this;
    }

    /** Where handlers run (default: a pool of maxInFlight threads owned by the subscriber). */
    public Options executor(Executor e) {
      executor = e;
      return this;
    }

    /** The heartbeat interval asked of the server (default 15 s); 3 missed = a dead stream. */
    public Options heartbeatInterval(Duration d) {
      heartbeatInterval = d;
      return this;
    }

    public Options backoff(BackoffPolicy b) {
      backoff = b;
      return this;
    }

    public Options listener(Listener l) {
      listener = l;
      return this;
    }

    /** How long close() waits for running handlers (default 30 s). */
    public Options closeTimeout(Duration d) {
      closeTimeout = d;
      return this;
    }
  }

  private final Warren warren;
  private final Options options;
  private final Handler handler;
  private final Executor executor;
  private final ExecutorService ownedExecutor;
  private final StreamRetry retry;
  private final CompletableFuture<String> firstSubscribed = new CompletableFuture<>();

  // Everything below is guarded by `lock`.
  private final Object lock = new Object();
  private final ArrayDeque<Pending> pending = new ArrayDeque<>();
  private Stream stream;
  private int running;
  private boolean closing;

  Subscriber(Warren warren, Options options, Handler handler) {
    this.warren = warren;
    this.options = options;
    this.handler = handler;
    this.retry = new StreamRetry(warren, options.backoff, lock, this::openLocked);
    if (options.executor != null) {
      executor = options.executor;
      ownedExecutor = null;
    } else {
      ownedExecutor =
          Executors.newFixedThreadPool(options.maxInFlight, Warren.daemonThreads("warren-handler"));
      executor = ownedExecutor;
    }
    synchronized (lock) {
      openLocked();
    }
  }

  /**
   * Waits until the first stream is open and returns the queue it consumes;
   * throws the subscription's error if it failed for good.
   */
  public String awaitSubscribed(Duration timeout) throws TimeoutException, InterruptedException {
    try {
      return firstSubscribed.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
    } catch (ExecutionException e) {
      throw (RuntimeException) e.getCause();
    }
  }

  /**
   * Stops: see the class comment. Idempotent. An interrupt stops the waiting
   * for running handlers and for the server: the stream is cancelled at once
   * (their deliveries go back to the queue) and the interrupt flag is kept.
   */
  @Override
  public void close() {
    boolean interrupted = false;
    Stream s;
    synchronized (lock) {
      if (closing && stream == null && running == 0) return;
      closing = true;
      retry.cancelLocked();
      // Deliveries whose handler has not started go back at once rather than
      // when the stream ends, so another consumer can take them now.
      while (!pending.isEmpty()) {
        Pending p = pending.poll();
        p.stream.settleLocked(p.delivery.getDeliveryId(), false, true);
      }
      long deadline = System.nanoTime() + options.closeTimeout.toNanos();
      while (running > 0) {
        long left = deadline - System.nanoTime();
        if (left <= 0) break; // give up waiting; their deliveries requeue with the stream
        try {
          TimeUnit.NANOSECONDS.timedWait(lock, left);
        } catch (InterruptedException e) {
          interrupted = true;
          break;
        }
      }
      s = stream;
      if (s != null) s.halfCloseLocked();
    }
    // The server ends the stream once we half-closed; cancel if it does not.
    if (s != null) {
      try {
        if (interrupted || !s.ended.await(5, TimeUnit.SECONDS)) s.cancel("subscriber closed");
      } catch (InterruptedException e) {
        interrupted = true;
        s.cancel("subscriber closed");
      }
    }
    if (ownedExecutor != null) ownedExecutor.shutdown();
    firstSubscribed.completeExceptionally(
        Status.CANCELLED.withDescription("subscriber closed").asRuntimeException());
    if (interrupted) Thread.currentThread().interrupt();
  }

  private void openLocked() {
    if (closing) return;
    SubscribeStart.Builder start = options.start.toBuilder().setMaxInFlight(options.maxInFlight);
    if (options.heartbeatInterval != null) {
      start.setHeartbeatInterval(Protos.duration(options.heartbeatInterval));
    }
    Stream s = new Stream();
    stream = s;
    RetryPolicy.forStreams(MessagingServiceGrpc.newStub(warren.channel())).subscribe(s);
    s.sendLocked(SubscribeRequest.newBuilder().setStart(start).build());
    if (options.heartbeatInterval != null) s.watchHeartbeats(warren, options.heartbeatInterval);
  }

  private void dispatchLocked() {
    while (!closing && running < options.maxInFlight && !pending.isEmpty()) {
      Pending p = pending.poll();
      if (p.stream.ended.getCount() == 0) continue; // requeued by the server already
      running++;
      try {
        executor.execute(() -> runHandler(p));
      } catch (RejectedExecutionException e) {
        running--;
        p.stream.settleLocked(p.delivery.getDeliveryId(), false, true);
      }
    }
  }

  private void runHandler(Pending p) {
    boolean ok = false;
    try {
      handler.handle(p.delivery);
      ok = true;
    } catch (Throwable t) {
      log.log(Level.FINE, "handler failed", t);
      try {
        options.listener.onHandlerError(p.delivery, t);
      } catch (RuntimeException ignored) {
        // A listener must not break settling.
      }
    }
    synchronized (lock) {
      p.stream.settleLocked(p.delivery.getDeliveryId(), ok, options.requeueOnError);
      running--;
      dispatchLocked();
      lock.notifyAll();
    }
  }

  private static final class Pending {
    final Stream stream;
    final Delivery delivery;

    Pending(Stream stream, Delivery delivery) {
      this.stream = stream;
      this.delivery = delivery;
    }
  }

  /** One Subscribe call; a resubscribe makes a new one. */
  private final class Stream extends StreamCall<SubscribeRequest, SubscribeResponse> {
    Stream() {
      super(lock, retry);
    }

    void settleLocked(long id, boolean ack, boolean requeue) {
      // On a stream that already ended the id means nothing any more: the
      // server returned the message to the queue when the stream ended.
      if (ack) {
        sendLocked(SubscribeRequest.newBuilder().setAck(Ack.newBuilder().addDeliveryIds(id)).build());
      } else {
        sendLocked(
            SubscribeRequest.newBuilder()
                .setNack(Nack.newBuilder().addDeliveryIds(id).setRequeue(requeue))
                .build());
      }
    }

    @Override
    public void onNext(SubscribeResponse response) {
      received();
      switch (response.getResponseCase()) {
        case SUBSCRIBED:
          options.listener.onSubscribed(response.getSubscribed().getQueue());
          firstSubscribed.complete(response.getSubscribed().getQueue());
          break;
        case DELIVERY:
          synchronized (lock) {
            if (closing) {
              settleLocked(response.getDelivery().getDeliveryId(), false, true);
            } else {
              pending.add(new Pending(this, response.getDelivery()));
              dispatchLocked();
            }
          }
          break;
        default: // heartbeat: lastMessageNanos is all it is for
          break;
      }
    }

    @Override
    void ended(Status status) {
      Duration retryIn = null;
      synchronized (lock) {
        pending.removeIf(p -> p.stream == this);
        lock.notifyAll();
        if (closing || stream != this) return;
        stream = null;
        // Null when the stream is not retried, or the Warren client was closed under us.
        if (StreamRetry.resubscribes(status)) retryIn = retry.scheduleLocked();
        if (retryIn == null) closing = true;
      }
      if (retryIn != null) {
        options.listener.onStreamBroken(status, retryIn);
      } else {
        options.listener.onFailed(status);
        firstSubscribed.completeExceptionally(status.asRuntimeException());
        if (ownedExecutor != null) ownedExecutor.shutdown();
      }
    }
  }
}
