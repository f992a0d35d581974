package io.warren.client;

import com.google.common.util.concurrent.MoreExecutors;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;

/**
 * Where a wrapper's listener callbacks run: in order, one at a time, on the
 * user's executor, or, when none was given, on a thread of the wrapper's own
 * that ends after the last callback.
 */
final class SerialCallbacks {
  private final Executor events;
  private final ExecutorService owned;

  SerialCallbacks(Executor given, String threadName) {
    if (given != null) {
      owned = null;
      events = MoreExecutors.newSequentialExecutor(given);
    } else {
      owned = Executors.newSingleThreadExecutor(Warren.daemonThreads(threadName));
      events = owned;
    }
  }

  /** Queues {@code callback} after the earlier ones; false when closed (nobody listens any more). */
  boolean run(Runnable callback) {
    try {
      events.execute(callback);
      return true;
    } catch (RejectedExecutionException closed) {
      return false;
    }
  }

  /** Ends the wrapper's own thread once the callbacks queued so far have run. */
  void shutdownAfterQueued() {
    if (owned != null) events.execute(owned::shutdown);
  }
}
