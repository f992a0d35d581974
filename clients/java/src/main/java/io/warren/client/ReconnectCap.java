package io.warren.client;

import io.grpc.ConnectivityState;
import io.grpc.ManagedChannel;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Caps a channel's reconnect backoff at {@link RetryPolicy#MAX_RECONNECT_BACKOFF}.
 *
 * <p>grpc-java (1.41, Debian 12's) has no setting for it:
 * {@code ManagedChannelImplBuilder.build()} hard-wires its
 * {@code ExponentialBackoffPolicy} (1 s, ×1.6, up to 120 s), and neither
 * {@code NettyChannelBuilder} nor {@code ManagedChannelBuilder} can replace it.
 * So after a long outage the channel could try again minutes after the server
 * came back. What the API does offer is {@link ManagedChannel#resetConnectBackoff()}:
 * a channel in TRANSIENT_FAILURE connects at once. This class watches the
 * channel's state and, each time it sees TRANSIENT_FAILURE, calls it after a
 * backoff of its own (100 ms doubling to 2 s, jittered), so gRPC's longer
 * timer never runs out; READY starts the backoff over.
 */
final class ReconnectCap {
  private final ManagedChannel channel;
  private final ScheduledExecutorService scheduler;
  final BackoffPolicy backoff =
      new BackoffPolicy(
          RetryPolicy.INITIAL_RECONNECT_BACKOFF,
          RetryPolicy.BACKOFF_MULTIPLIER,
          RetryPolicy.MAX_RECONNECT_BACKOFF);

  // Guarded by `this`.
  private int attempt;
  private ScheduledFuture<?> pendingReset;

  ReconnectCap(ManagedChannel channel, ScheduledExecutorService scheduler) {
    this.channel = channel;
    this.scheduler = scheduler;
  }

  void start() {
    observe(channel.getState(false));
  }

  /**
   * For a stream that is retried: the channel connects at once if it is
   * waiting, and this cap starts again from its shortest wait.
   */
  synchronized void reset() {
    attempt = 0;
    channel.resetConnectBackoff();
  }

  private void observe(ConnectivityState state) {
    synchronized (this) {
      if (pendingReset != null) {
        pendingReset.cancel(false);
        pendingReset = null;
      }
      switch (state) {
        case SHUTDOWN:
          return;
        case READY:
          attempt = 0;
          break;
        case TRANSIENT_FAILURE:
          try {
            pendingReset =
                scheduler.schedule(
                    channel::resetConnectBackoff,
                    backoff.delay(attempt++).toNanos(),
                    TimeUnit.NANOSECONDS);
          } catch (RejectedExecutionException closed) {
            return; // the Warren client is closing
          }
          break;
        default: // IDLE, CONNECTING: gRPC is not waiting
          break;
      }
    }
    // Fires at once if the state moved on meanwhile, so no change is missed.
    channel.notifyWhenStateChanged(state, () -> observe(channel.getState(false)));
  }
}
