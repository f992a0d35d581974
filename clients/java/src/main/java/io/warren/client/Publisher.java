package io.warren.client;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.MoreExecutors;
import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.warren.v1.MessagingServiceGrpc;
import io.warren.v1.PublishRequest;
import io.warren.v1.PublishResponse;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Publishes messages with at-least-once retries.
 *
 * <p>Every message gets a message id on the client (a UUID, unless the request
 * has one) before the first attempt, and every retry sends the SAME id: when a
 * broker confirm is lost on the way back, the message may arrive twice, and the
 * consumer can tell the copies apart by id.
 *
 * <p>Retried: {@code UNAVAILABLE} (server or broker down, or reconnecting —
 * docs/status-codes.md: retry is safe) and {@code DEADLINE_EXCEEDED} of one attempt
 * (the server may simply not have had the confirm yet; the same id keeps the
 * retry harmless). Retries stop when {@link Options#retryTimeout} has passed
 * since the first attempt. Every other code (NOT_FOUND exchange,
 * FAILED_PRECONDITION unroutable, INVALID_ARGUMENT, RESOURCE_EXHAUSTED...)
 * completes the future exceptionally at once, with a
 * {@link io.grpc.StatusRuntimeException}.
 *
 * <p>Thread-safe; the futures complete on gRPC or timer threads, so do not
 * block in their callbacks.
 */
public final class Publisher {
  /** Retry and timeout settings. */
  public static final class Options {
    Duration attemptTimeout = Duration.ofSeconds(10);
    Duration retryTimeout = Duration.ofSeconds(30);
    boolean retryDeadlineExceeded = true;
    BackoffPolicy backoff = BackoffPolicy.DEFAULT;

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

    /** Whether an attempt that ran out of time is retried (default true). */
    public Options retryDeadlineExceeded(boolean b) {
      retryDeadlineExceeded = b;
      return this;
    }

    public Options backoff(BackoffPolicy b) {
      backoff = b;
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
    return publish(
        PublishRequest.newBuilder()
            .setRoutingKey(queue)
            .setPayload(ByteString.copyFrom(payload))
            .build());
  }

  /** Publishes to an exchange with a routing key. */
  public CompletableFuture<String> publish(String exchange, String routingKey, byte[] payload) {
    return publish(
        PublishRequest.newBuilder()
            .setExchange(exchange)
            .setRoutingKey(routingKey)
            .setPayload(ByteString.copyFrom(payload))
            .build());
  }

  /**
   * Publishes one message; the future completes with its message id once the
   * broker confirmed it, or fails with the last error.
   */
  public CompletableFuture<String> publish(PublishRequest request) {
    PublishRequest withId =
        request.getMessageId().isEmpty()
            ? request.toBuilder().setMessageId(UUID.randomUUID().toString()).build()
            : request;
    CompletableFuture<String> result = new CompletableFuture<>();
    long giveUpAt = System.nanoTime() + options.retryTimeout.toNanos();
    attempt(withId, 0, giveUpAt, result);
    return result;
  }

  private void attempt(PublishRequest request, int n, long giveUpAt, CompletableFuture<String> result) {
    if (result.isDone()) return; // cancelled by the caller
    Futures.addCallback(
        stub.withDeadlineAfter(options.attemptTimeout.toNanos(), TimeUnit.NANOSECONDS)
            .publish(request),
        new FutureCallback<PublishResponse>() {
          @Override
          public void onSuccess(PublishResponse response) {
            result.complete(response.getMessageId());
          }

          @Override
          public void onFailure(Throwable t) {
            Status status = Status.fromThrowable(t);
            Duration delay = options.backoff.delay(n);
            if (!retryable(status.getCode())
                || System.nanoTime() + delay.toNanos() > giveUpAt) {
              result.completeExceptionally(status.asRuntimeException());
              return;
            }
            try {
              warren
                  .scheduler()
                  .schedule(
                      () -> attempt(request, n + 1, giveUpAt, result),
                      delay.toNanos(),
                      TimeUnit.NANOSECONDS);
            } catch (java.util.concurrent.RejectedExecutionException closed) {
              result.completeExceptionally(status.asRuntimeException());
            }
          }
        },
        MoreExecutors.directExecutor());
  }

  private boolean retryable(Status.Code code) {
    return code == Status.Code.UNAVAILABLE
        || (code == Status.Code.DEADLINE_EXCEEDED && options.retryDeadlineExceeded);
  }
}
