package io.warren.client;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.warren.v1.Delivery;
import io.warren.v1.Fence;
import io.warren.v1.MessagingServiceGrpc;
import io.warren.v1.PublishRequest;
import io.warren.v1.PublishResponse;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Future;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Publishes messages with at-least-once retries.
 *
 * <p>Every message gets a message id on the client (a UUID, unless the request
 * has one) before the first attempt, and every retry sends the SAME id: when a
 * broker confirm is lost on the way back, the message may arrive twice, and the
 * consumer can tell the copies apart by id.
 *
 * <p>Retries follow {@link RetryPolicy#unary}: the codes that mean the server
 * or the broker is down, busy or at a limit (UNAVAILABLE, RESOURCE_EXHAUSTED,
 * DEADLINE_EXCEEDED of one attempt, ABORTED, INTERNAL, UNKNOWN, CANCELLED)
 * are retried after the {@link BackoffPolicy}, until
 * {@link Options#retryTimeout} has passed since the first attempt; the others
 * (NOT_FOUND exchange, FAILED_PRECONDITION unroutable, INVALID_ARGUMENT,
 * PERMISSION_DENIED...) complete the future exceptionally at once, with a
 * {@link io.grpc.StatusRuntimeException}. Cancelling the future cancels the
 * attempt in flight and stops the retries.
 *
 * <p>Messages are published {@code mandatory} by default: one that no queue
 * receives fails with FAILED_PRECONDITION instead of being dropped by the
 * broker while the publish succeeds. {@link Options#mandatory(boolean)} opts out.
 * Delayed messages ({@link #publishDelayed}, or a request with {@code delay})
 * and replies ({@link #reply}) are never mandatory: the broker cannot tell
 * whether a delayed message will be routed, nor route a direct reply-to
 * address as a queue.
 *
 * <p>Thread-safe; the futures complete on gRPC or timer threads, so do not
 * block in their callbacks.
 */
public final class Publisher {
  /** Retry, timeout and routing settings. */
  public static final class Options {
    Duration attemptTimeout = Duration.ofSeconds(10);
    Duration retryTimeout = Duration.ofSeconds(30);
    BackoffPolicy backoff = BackoffPolicy.DEFAULT;
    boolean mandatory = true;

    /** The deadline of one attempt (default 10 s). */
    public Options attemptTimeout(Duration d) {
      attemptTimeout = d;
      return this;
    }

    /** How long to keep retrying after the first attempt (default 30 s). */
    public Options retryTimeout(Duration d) {
      retryTimeout = d;
      return this;
    }

    public Options backoff(BackoffPolicy b) {
      backoff = b;
      return this;
    }

    /**
     * Whether a message that no queue receives is an error (default true:
     * FAILED_PRECONDITION). With false the broker drops it silently and the
     * publish succeeds. A {@link PublishRequest} that sets mandatory itself
     * is always published mandatory.
     */
    public Options mandatory(boolean b) {
      mandatory = b;
      return this;
    }
  }

  private final Warren warren;
  private final Options options;
  private final MessagingServiceGrpc.MessagingServiceFutureStub stub;

  Publisher(Warren warren, Options options) {
    this.warren = warren;
    this.options = options;
    this.stub = MessagingServiceGrpc.newFutureStub(warren.channel());
  }

  /** Publishes to a queue through the default exchange (routing key = queue). */
  public CompletableFuture<String> publishToQueue(String queue, byte[] payload) {
    return publishToQueue(queue, payload, null);
  }

  /**
   * Publishes to a queue if {@code fence} holds just before the publish (null:
   * unconditionally); see {@link #publish(String, String, byte[], Fence)}.
   */
  public CompletableFuture<String> publishToQueue(String queue, byte[] payload, Fence fence) {
    return publish("", queue, payload, fence);
  }

  /** Publishes to an exchange with a routing key. */
  public CompletableFuture<String> publish(String exchange, String routingKey, byte[] payload) {
    return publish(exchange, routingKey, payload, null);
  }

  /**
   * Publishes to an exchange if {@code fence} (see {@link Fences}) holds just
   * before the publish; otherwise the future fails with FAILED_PRECONDITION
   * ({@code fence: ...}) and nothing is published. The message carries the
   * headers {@code warren-fence} ({@code election:<name>} or
   * {@code lock:<name>}) and {@code warren-fencing-token} (decimal), so
   * consumers can drop messages whose token is older than the newest they
   * saw. Null publishes unconditionally.
   */
  public CompletableFuture<String> publish(
      String exchange, String routingKey, byte[] payload, Fence fence) {
    PublishRequest.Builder request =
        PublishRequest.newBuilder()
            .setExchange(exchange)
            .setRoutingKey(routingKey)
            .setPayload(ByteString.copyFrom(payload));
    if (fence != null) request.setFence(fence);
    return publish(request.build());
  }

  /**
   * Publishes a message that reaches {@code exchange} only after
   * {@code delay} (at most the server's {@code max_publish_delay}, 24 h by
   * default); the future completes once the broker holds it in a delay
   * queue. Delays are rounded up to two significant digits in milliseconds,
   * so it may arrive up to 10 % late, never early.
   */
  public CompletableFuture<String> publishDelayed(
      String exchange, String routingKey, byte[] payload, Duration delay) {
    return publish(
        PublishRequest.newBuilder()
            .setExchange(exchange)
            .setRoutingKey(routingKey)
            .setPayload(ByteString.copyFrom(payload))
            .setDelay(Protos.duration(delay))
            .build());
  }

  /** {@link #publishDelayed} to a queue through the default exchange. */
  public CompletableFuture<String> publishToQueueDelayed(
      String queue, byte[] payload, Duration delay) {
    return publishDelayed("", queue, payload, delay);
  }

  /**
   * Answers a request (a delivery with {@link Delivery#getReplyTo()}, e.g.
   * from {@link Warren#call}): publishes {@code reply} on the default exchange
   * to the request's reply address with its correlation id, whatever
   * {@code reply} says of those. Fails with IllegalArgumentException when the
   * request wants no reply.
   */
  public CompletableFuture<String> reply(Delivery request, PublishRequest reply) {
    if (request.getReplyTo().isEmpty()) {
      throw new IllegalArgumentException("the request has no reply_to: it wants no reply");
    }
    return publish(
        reply.toBuilder()
            .setExchange("")
            .setRoutingKey(request.getReplyTo())
            .setCorrelationId(request.getCorrelationId())
            .setReplyTo("")
            .setMandatory(false)
            .build(),
        false);
  }

  /** {@link #reply(Delivery, PublishRequest)} with just a payload. */
  public CompletableFuture<String> reply(Delivery request, byte[] payload) {
    return reply(request, PublishRequest.newBuilder().setPayload(ByteString.copyFrom(payload)).build());
  }

  /**
   * Publishes one message; the future completes with its message id once the
   * broker confirmed it, or fails with the last error. A request with a
   * {@code fence} is fenced (see {@link #publish(String, String, byte[], Fence)});
   * one with a {@code delay} is delayed (see {@link #publishDelayed}); its
   * {@code reply_to} and {@code correlation_id} reach the consumer.
   */
  public CompletableFuture<String> publish(PublishRequest request) {
    return publish(request, !isDelayed(request));
  }

  private static boolean isDelayed(PublishRequest request) {
    return request.hasDelay()
        && (request.getDelay().getSeconds() > 0 || request.getDelay().getNanos() > 0);
  }

  private CompletableFuture<String> publish(PublishRequest request, boolean mayBeMandatory) {
    PublishRequest.Builder complete = request.toBuilder();
    if (request.getMessageId().isEmpty()) complete.setMessageId(UUID.randomUUID().toString());
    if (options.mandatory && mayBeMandatory) complete.setMandatory(true);
    PublishRequest withId = complete.build();
    CompletableFuture<String> result = new CompletableFuture<>();
    AtomicReference<Future<?>> inFlight = new AtomicReference<>();
    // The caller's cancel reaches the attempt in flight; no retry follows it.
    result.whenComplete(
        (id, error) -> {
          Future<?> call = inFlight.get();
          if (result.isCancelled() && call != null) call.cancel(true);
        });
    long giveUpAt = System.nanoTime() + options.retryTimeout.toNanos();
    attempt(withId, 0, giveUpAt, result, inFlight);
    return result;
  }

  private void attempt(
      PublishRequest request,
      int n,
      long giveUpAt,
      CompletableFuture<String> result,
      AtomicReference<Future<?>> inFlight) {
    if (result.isDone()) return; // cancelled by the caller while waiting to retry
    ListenableFuture<PublishResponse> call =
        stub.withDeadlineAfter(options.attemptTimeout.toNanos(), TimeUnit.NANOSECONDS)
            .publish(request);
    inFlight.set(call);
    if (result.isCancelled()) call.cancel(true); // cancelled before `call` was visible
    Futures.addCallback(
        call,
        new FutureCallback<PublishResponse>() {
          @Override
          public void onSuccess(PublishResponse response) {
            result.complete(response.getMessageId());
          }

          @Override
          public void onFailure(Throwable t) {
            Status status = Status.fromThrowable(t);
            Duration delay = options.backoff.delay(n);
            if (result.isDone()
                || RetryPolicy.unary(status.getCode()) != RetryPolicy.UnaryAction.RETRY
                || System.nanoTime() + delay.toNanos() > giveUpAt) {
              result.completeExceptionally(status.asRuntimeException());
              return;
            }
            try {
              warren
                  .scheduler()
                  .schedule(
                      () -> attempt(request, n + 1, giveUpAt, result, inFlight),
                      delay.toNanos(),
                      TimeUnit.NANOSECONDS);
            } catch (RejectedExecutionException closed) {
              result.completeExceptionally(status.asRuntimeException());
            }
          }
        },
        MoreExecutors.directExecutor());
  }
}
