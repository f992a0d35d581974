package io.warren.client;

import java.util.concurrent.Executor;

/**
 * The options a wrapper with a serialized {@link SerialCallbacks} listener
 * and a resubscribing stream ({@link StreamRetry}) takes: where its callbacks
 * run and its backoff. Self-typed, so each wrapper's Options keeps returning
 * itself from these setters.
 */
abstract class ListenerOptions<T extends ListenerOptions<T>> {
  Executor executor;
  BackoffPolicy backoff = BackoffPolicy.DEFAULT;

  /** Where listener callbacks run (serialized; default: a thread of the wrapper's own). */
  public T executor(Executor e) {
    executor = e;
    return self();
  }

  /** The resubscribe backoff (default {@link BackoffPolicy#DEFAULT}). */
  public T backoff(BackoffPolicy b) {
    backoff = b;
    return self();
  }

  @SuppressWarnings("unchecked") // T is the subclass itself, by the declaration
  private T self() {
    return (T) this;
  }
}
