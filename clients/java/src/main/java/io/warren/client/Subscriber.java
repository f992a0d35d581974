package io.warren.client;

import io.grpc.Status;
import io.warren.v1.Ack;
import io.warren.v1.Delivery;
import io.warren.v1.MessagingServiceGrpc;
import io.warren.v1.Nack;
import io.warren.v1.QueueOptions;
import io.warren.v1.QueueType;
import io.warren.v1.StreamOffset;
import io.warren.v1.SubscribeRequest;
import io.warren.v1.SubscribeResponse;
import io.warren.v1.SubscribeStart;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.OptionalLong;
import java.util.TreeMap;
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
 *   <li>A handler that throws {@link RetryAfter}, or any error with
 *       {@link Options#retryAfter} set, nacks with a retry delay: the message
 *       comes back after it (through a delay queue of the broker) while others
 *       flow, and {@link Delivery#getDeliveryCount()} counts the retries.
 *   <li>On a stream queue ({@link Options#stream}) the subscriber remembers
 *       the handled offsets: a resubscribe after a broken stream starts at the
 *       last handled {@link Delivery#getStreamOffset()} + 1, so nothing is
 *       skipped or handled twice (with {@link Options#maxInFlight} above 1: at
 *       the oldest delivery whose handler had not finished, so nothing is
 *       skipped). {@link Options#resumeFrom} starts from an offset the
 *       application stored itself.
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

  /**
   * Thrown by a handler: the delivery is nacked with this retry delay and
   * comes back to its queue after it (at most the server's
   * {@code max_retry_delay}, 1 h by default; the broker may be up to 10 %
   * late, never early). On a stream queue, which cannot requeue, it is a
   * plain nack (logged).
   */
  public static final class RetryAfter extends Exception {
    private static final long serialVersionUID = 1L;
    private final transient Duration delay;

    public RetryAfter(Duration delay) {
      this(delay, null);
    }

    public RetryAfter(Duration delay, Throwable cause) {
      super("retry after " + delay, cause);
      if (delay.isNegative() || delay.isZero()) {
        throw new IllegalArgumentException("a retry delay is positive");
      }
      this.delay = delay;
    }

    public Duration delay() {
      return delay;
    }
  }

  /** What to consume and how. */
  public static final class Options {
    SubscribeStart start;
    int maxInFlight = 16;
    boolean requeueOnError = true;
    Executor executor;
    Duration heartbeatInterval = Duration.ofSeconds(15);
    BackoffPolicy backoff = BackoffPolicy.DEFAULT;
    Listener listener = new Listener() {};
    Duration closeTimeout = Duration.ofSeconds(30);
    Duration retryAfter;
    Long resumeFrom;

    /**
     * Everything about the source (queue or topic binding with
     * {@code match_headers}, group, queue options such as
     * {@code single_active_consumer}, {@code max_priority},
     * {@code delivery_limit}, a stream's {@code offset}), passed to the server
     * as it is.
     */
    public Options(SubscribeStart start) {
      this.start = start;
    }

    /** Consumes {@code queue}, declaring it durable when missing. */
    public static Options queue(String queue) {
      return new Options(SubscribeStart.newBuilder().setQueue(queue).build());
    }

    /**
     * Reads the stream queue {@code queue} (declared as a stream when missing),
     * from the messages that arrive after the subscription starts unless
     * {@link #startAt} or {@link #resumeFrom} say otherwise.
     */
    public static Options stream(String queue) {
      return new Options(
          SubscribeStart.newBuilder()
              .setQueue(queue)
              .setQueueOptions(QueueOptions.newBuilder().setQueueType(QueueType.QUEUE_TYPE_STREAM))
              .build());
    }

    /**
     * Where a stream subscription starts ({@link StreamOffsets}); the
     * subscriber's own resume point replaces it after a broken stream.
     */
    public Options startAt(StreamOffset offset) {
      start = start.toBuilder().setOffset(offset).build();
      return this;
    }

    /**
     * Starts a stream subscription at {@code offset}: the offset after the
     * last one the application handled and stored (its
     * {@link Delivery#getStreamOffset()} + 1). No delivery below it reaches
     * the handler.
     */
    public Options resumeFrom(long offset) {
      startAt(StreamOffsets.offset(offset));
      resumeFrom = offset;
      return this;
    }

    /**
     * Handler errors nack with this retry delay (the message comes back
     * after it; see {@link RetryAfter}) instead of at once; null (the
     * default): {@link #requeueOnError} decides.
     */
    public Options retryAfter(Duration delay) {
      if (delay != null && (delay.isNegative() || delay.isZero())) {
        throw new IllegalArgumentException("a retry delay is positive");
      }
      retryAfter = delay;
      return this;
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
  // Stream queues only: offsets delivered but not yet handled (offset ->
  // count, as a resumed stream may hand out one a stale handler still runs),
  // and the offset after the newest handled one (-1: none yet).
  private final TreeMap<Long, Integer> unfinishedOffsets = new TreeMap<>();
  private long afterHandled = -1;

  Subscriber(Warren warren, Options options, Handler handler) {
    this.warren = warren;
    this.options = options;
    this.handler = handler;
    if (options.resumeFrom != null) afterHandled = options.resumeFrom;
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
   * Stream queues: the offset a resubscribe would start at (the last handled
   * offset + 1, or the oldest unfinished one); empty before the first
   * handled delivery (or {@link Options#resumeFrom}). Store it to resume in
   * another process.
   */
  public OptionalLong resumeOffset() {
    synchronized (lock) {
      long at = resumeOffsetLocked();
      return at < 0 ? OptionalLong.empty() : OptionalLong.of(at);
    }
  }

  private boolean isStream() {
    return options.start.getQueueOptions().getQueueType() == QueueType.QUEUE_TYPE_STREAM;
  }

  private long resumeOffsetLocked() {
    return unfinishedOffsets.isEmpty() ? afterHandled : unfinishedOffsets.firstKey();
  }

  private void offsetStartedLocked(long offset) {
    unfinishedOffsets.merge(offset, 1, Integer::sum);
  }

  private void offsetDoneLocked(long offset, boolean handled) {
    unfinishedOffsets.computeIfPresent(offset, (k, n) -> n == 1 ? null : n - 1);
    if (handled) afterHandled = Math.max(afterHandled, offset + 1);
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
        p.stream.settleLocked(p.delivery.getDeliveryId(), false, true, null);
        if (p.stream.onStreamQueue) offsetDoneLocked(p.delivery.getStreamOffset(), false);
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
    if (isStream()) {
      long at = resumeOffsetLocked();
      if (at >= 0) start.setOffset(StreamOffsets.offset(at));
      if (start.getOffset().getStartCase() == StreamOffset.StartCase.OFFSET) {
        s.lowestOffset = start.getOffset().getOffset();
      }
    }
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
        p.stream.settleLocked(p.delivery.getDeliveryId(), false, true, null);
        if (p.stream.onStreamQueue) offsetDoneLocked(p.delivery.getStreamOffset(), false);
      }
    }
  }

  private void runHandler(Pending p) {
    boolean ok = false;
    Duration retryAfter = null;
    try {
      handler.handle(p.delivery);
      ok = true;
    } catch (Throwable t) {
      log.log(Level.FINE, "handler failed", t);
      retryAfter = t instanceof RetryAfter ? ((RetryAfter) t).delay() : options.retryAfter;
      if (retryAfter != null && p.stream.onStreamQueue) {
        // The server refuses a retry on a stream (it cannot requeue) and
        // would end the subscription: settle it as a plain nack instead.
        log.warning("retry delay ignored on stream queue: a stream keeps every message");
        retryAfter = null;
      }
      try {
        options.listener.onHandlerError(p.delivery, t);
      } catch (RuntimeException ignored) {
        // A listener must not break settling.
      }
    }
    synchronized (lock) {
      p.stream.settleLocked(p.delivery.getDeliveryId(), ok, options.requeueOnError, retryAfter);
      // A stream keeps the message whatever the handler did: a failed one is
      // handled too (replay it by offset), so a resume does not loop on it.
      if (p.stream.onStreamQueue) offsetDoneLocked(p.delivery.getStreamOffset(), true);
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
    final boolean onStreamQueue = isStream();
    long lowestOffset = -1; // deliveries below the offset asked for are skipped

    Stream() {
      super(lock, retry);
    }

    void settleLocked(long id, boolean ack, boolean requeue, Duration retryAfter) {
      // On a stream that already ended the id means nothing any more: the
      // server returned the message to the queue when the stream ended.
      if (ack) {
        sendLocked(SubscribeRequest.newBuilder().setAck(Ack.newBuilder().addDeliveryIds(id)).build());
      } else {
        Nack.Builder nack = Nack.newBuilder().addDeliveryIds(id).setRequeue(requeue);
        if (retryAfter != null) nack.setRetryAfter(Protos.duration(retryAfter));
        sendLocked(SubscribeRequest.newBuilder().setNack(nack).build());
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
            Delivery d = response.getDelivery();
            if (closing) {
              settleLocked(d.getDeliveryId(), false, true, null);
            } else if (onStreamQueue && d.getStreamOffset() < lowestOffset) {
              // Already handled before a resume: the server may hand out the
              // start of the offset's chunk; a stream keeps it anyway.
              settleLocked(d.getDeliveryId(), true, false, null);
            } else {
              if (onStreamQueue) offsetStartedLocked(d.getStreamOffset());
              pending.add(new Pending(this, d));
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
        pending.removeIf(
            p -> {
              if (p.stream != this) return false;
              if (onStreamQueue) offsetDoneLocked(p.delivery.getStreamOffset(), false);
              return true;
            });
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
