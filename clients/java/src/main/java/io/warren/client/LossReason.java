package io.warren.client;

/**
 * Why a {@link HeldLock} or a {@link Registration} stopped being held. Only
 * {@link #CONNECTION_SUSPENDED} may be followed by the same hold coming back
 * (the server's ZooKeeper session survived); after the others, a lock is gone
 * for good and a registration is being held again (a new stream, a new
 * session).
 */
public enum LossReason {
  /** The server's ZooKeeper connection was suspended; may come back as it was. */
  CONNECTION_SUSPENDED,
  /** The server's ZooKeeper session expired. */
  SESSION_EXPIRED,
  /** No message for two heartbeat intervals: the client stopped believing it holds. */
  LEASE_EXPIRED,
  /** The stream to the server broke; the server gives up what it held for it. */
  STREAM_BROKEN,
  /** The server gave no (known) reason. */
  UNKNOWN;

  static LossReason of(io.warren.v1.LossReason reason) {
    switch (reason) {
      case LOSS_REASON_CONNECTION_SUSPENDED:
        return CONNECTION_SUSPENDED;
      case LOSS_REASON_SESSION_EXPIRED:
        return SESSION_EXPIRED;
      default:
        return UNKNOWN;
    }
  }
}
