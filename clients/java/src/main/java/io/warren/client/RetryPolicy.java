package io.warren.client;

import io.grpc.Status;
import io.grpc.stub.AbstractStub;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Set;

/**
 * The one retry rule of every Warren wrapper: what a unary call or a stream
 * ending with each gRPC status code leads to, the backoff between attempts and
 * the channel's reconnect settings. It mirrors {@code clients/retry-policy.json},
 * which all five client languages follow (docs/semantics.md explains each
 * row); {@code RetryPolicyTest} reads that file and fails when this class
 * drifts from it.
 *
 * <p>A call or stream that the caller cancelled or closed is never retried,
 * whatever its code: the wrappers check that before they ask this class.
 */
public final class RetryPolicy {
  private RetryPolicy() {}

  /** What a wrapper does when a unary call ends with a code. */
  public enum UnaryAction {
    /** Success. */
    DONE,
    /** The same request (same message id) again, after the backoff, until the caller's deadline. */
    RETRY,
    /** Retrying cannot help: the error goes to the caller at once. */
    FATAL
  }

  /** What a wrapper does when a stream it did not close ends with a code. */
  public enum StreamAction {
    /** Open the stream again after the backoff. */
    RESUBSCRIBE,
    /** Report the error and stop. */
    FATAL
  }

  /**
   * The codes that mean "try again": the server or the broker is down, busy,
   * restarting or at a limit that may free up. Every other code but OK is the
   * request's own fault and fails the same way on a retry.
   */
  private static final Set<Status.Code> TRANSIENT =
      EnumSet.of(
          Status.Code.CANCELLED,
          Status.Code.UNKNOWN,
          Status.Code.DEADLINE_EXCEEDED,
          Status.Code.RESOURCE_EXHAUSTED,
          Status.Code.ABORTED,
          Status.Code.INTERNAL,
          Status.Code.UNAVAILABLE);

  /**
   * The wait before retry n (from 0) of a call or a stream: a uniform pick in
   * [d/2, d], d = min(MAX_BACKOFF, INITIAL_BACKOFF * BACKOFF_MULTIPLIER^n)
   * ({@link BackoffPolicy#DEFAULT}). A stream that delivered its first
   * response starts again from n = 0.
   */
  public static final Duration INITIAL_BACKOFF = Duration.ofMillis(100);

  public static final double BACKOFF_MULTIPLIER = 2.0;
  public static final Duration MAX_BACKOFF = Duration.ofSeconds(3);

  /** gRPC's first reconnect wait after a failed connection attempt. */
  public static final Duration INITIAL_RECONNECT_BACKOFF = Duration.ofMillis(100);

  /** The longest gRPC waits between connection attempts (its own default is 120 s). */
  public static final Duration MAX_RECONNECT_BACKOFF = Duration.ofSeconds(2);

  /** Streams are opened wait-for-ready: they wait for the channel instead of failing while it reconnects. */
  public static final boolean STREAMS_WAIT_FOR_READY = true;

  /** The stub the wrappers open their streams with. */
  static <S extends AbstractStub<S>> S forStreams(S stub) {
    return STREAMS_WAIT_FOR_READY ? stub.withWaitForReady() : stub;
  }

  public static UnaryAction unary(Status.Code code) {
    if (code == Status.Code.OK) return UnaryAction.DONE;
    return TRANSIENT.contains(code) ? UnaryAction.RETRY : UnaryAction.FATAL;
  }

  /** For a stream end the caller did not ask for; an end without error (OK) is unexpected too. */
  public static StreamAction stream(Status.Code code) {
    return code == Status.Code.OK || TRANSIENT.contains(code)
        ? StreamAction.RESUBSCRIBE
        : StreamAction.FATAL;
  }
}
