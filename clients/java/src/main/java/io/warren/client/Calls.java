package io.warren.client;

import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import io.grpc.Status;
import io.warren.v1.CallRequest;
import io.warren.v1.CallResponse;
import io.warren.v1.Delivery;
import io.warren.v1.MessagingServiceGrpc;
import io.warren.v1.PublishRequest;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Request/reply through the server's Call: one attempt, never retried (a
 * request may have been handled even when its reply is lost), so an error
 * goes to the caller as it is.
 */
final class Calls {
  private Calls() {}

  /**
   * Completes with the reply, or fails with {@link TimeoutException} when no
   * reply came within {@code timeout} (null: the server's call timeout), or
   * with the call's {@link io.grpc.StatusRuntimeException} (FAILED_PRECONDITION:
   * a mandatory request no queue received; UNAVAILABLE: the request may have
   * been handled, but no reply can arrive). Cancelling it cancels the call.
   */
  static CompletableFuture<Delivery> call(Warren warren, PublishRequest message, Duration timeout) {
    MessagingServiceGrpc.MessagingServiceFutureStub stub =
        MessagingServiceGrpc.newFutureStub(warren.channel());
    if (timeout != null) stub = stub.withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS);
    ListenableFuture<CallResponse> call =
        stub.call(CallRequest.newBuilder().setMessage(message).build());
    CompletableFuture<Delivery> result = new CompletableFuture<>();
    result.whenComplete(
        (reply, error) -> {
          if (result.isCancelled()) call.cancel(true);
        });
    Futures.addCallback(
        call,
        new FutureCallback<CallResponse>() {
          @Override
          public void onSuccess(CallResponse response) {
            result.complete(response.getReply());
          }

          @Override
          public void onFailure(Throwable t) {
            Status status = Status.fromThrowable(t);
            if (status.getCode() == Status.Code.DEADLINE_EXCEEDED) {
              TimeoutException timedOut =
                  new TimeoutException(
                      status.getDescription() != null
                          ? status.getDescription()
                          : "no reply within " + timeout);
              timedOut.initCause(status.asRuntimeException());
              result.completeExceptionally(timedOut);
            } else {
              result.completeExceptionally(status.asRuntimeException());
            }
          }
        },
        MoreExecutors.directExecutor());
    return result;
  }
}
