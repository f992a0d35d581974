package io.warren.client;

import com.google.protobuf.ByteString;
import io.grpc.Status;
import io.warren.v1.Campaign;
import io.warren.v1.ElectRequest;
import io.warren.v1.ElectResponse;
import io.warren.v1.ElectionServiceGrpc;
import io.warren.v1.Fence;
import io.warren.v1.Leader;
import io.warren.v1.Proclaim;
import io.warren.v1.Resign;
import java.time.Duration;
import java.util.UUID;

/**
 * A candidacy in a leader election, with the client half of the lease.
 *
 * <p>Events arrive in order on {@link Listener}, one at a time, on
 * {@link Options#executor} (default: a thread of the elector's own):
 * elected (with the fencing token), following (with the leader, or null
 * while nobody leads), lost (with a {@link LossReason}).
 *
 * <p>Safety rules, so that at most one process believes it leads:
 * <ul>
 *   <li>A broken stream while leading is a loss at once ({@link LossReason#STREAM_BROKEN}):
 *       the server resigns a candidacy whose stream ended.
 *   <li>The lease: while leading, the server sends a heartbeat every interval
 *       only while its ZooKeeper session is connected. When no message at all
 *       arrives for two intervals, the elector steps down by itself
 *       ({@link LossReason#LEASE_EXPIRED}) and drops the stream, even though
 *       the server never said so — it may be frozen or cut off.
 *   <li>{@link #isLeader()} turns false before the lost event is delivered.
 * </ul>
 *
 * <p>The interval: the server caps the requested heartbeat interval at a third
 * of its ZooKeeper session timeout and says which interval is in force in
 * {@code Elected.heartbeat_interval}; the lease uses that. A server too old to
 * send it leaves the elector with the requested interval, shortened to the
 * smallest spacing observed between two heartbeats (spacings under 100 ms,
 * i.e. bursts after a stall, are ignored) — so ask such a server for no more
 * than a third of its {@code --zk_session_timeout} (the default, 1 s, suits
 * 3 s and more).
 *
 * <p>Re-campaigning: by default ({@link Options#recampaign} true) the elector
 * campaigns again, after the jittered {@link BackoffPolicy} and wait-for-ready,
 * whenever its stream ended with a code {@link RetryPolicy#stream}
 * resubscribes on (server restart, lease expiry, RESOURCE_EXHAUSTED at the
 * server's candidate limit...), like Curator's LeaderLatch. With false it
 * stays out after the first loss of its stream. The other codes (e.g.
 * INVALID_ARGUMENT for a bad election name, PERMISSION_DENIED) stop it and go
 * to {@link Listener#onError}.
 *
 * <p>{@link #close()} resigns: it sends Resign, ends the stream and waits
 * (up to 5 s) for the server to end it.
 */
public final class Elector implements AutoCloseable {
  /** Why leadership ended. */
  public enum LossReason {
    /** This candidate resigned (close()). */
    RESIGNED,
    /** The server's ZooKeeper connection was suspended; may come back with the same token. */
    CONNECTION_SUSPENDED,
    /** The server's ZooKeeper session expired. */
    SESSION_EXPIRED,
    /** No message for two heartbeat intervals: the elector stepped down by itself. */
    LEASE_EXPIRED,
    /** The stream to the server broke. */
    STREAM_BROKEN,
    /** The server gave no (known) reason. */
    UNKNOWN
  }

  /** Leadership events, delivered in order, one at a time. */
  public interface Listener {
    /** This candidate leads; {@code self.getFencingToken()} fences its writes. */
    default void onElected(Leader self) {}

    /** Another candidate leads ({@code leader} null while nobody does). */
    default void onFollowing(Leader leader) {}

    /** This candidate no longer leads. */
    default void onLost(LossReason reason) {}

    /** The candidacy failed for good (not retryable); the elector stopped. */
    default void onError(Status status) {}
  }

  /** The candidacy and its policies. */
  public static final class Options extends ListenerOptions<Options> {
    final String election;
    String candidateId = UUID.randomUUID().toString();
    byte[] value = new byte[0];
    Duration heartbeatInterval = Duration.ofSeconds(1);
    boolean rejoinAfterExpiry = true;
    boolean recampaign = true;

    public Options(String election) {
      this.election = election;
    }

    /** This candidate's id (default: a random UUID, kept across re-campaigns). */
    public Options candidateId(String id) {
      candidateId = id;
      return this;
    }

    /** The value published while leading, e.g. an address. */
    public Options value(byte[] v) {
      value = v.clone();
      return this;
    }

    /** The lease heartbeat interval asked of the server (default 1 s); see the class comment. */
    public Options heartbeatInterval(Duration d) {
      if (d.toMillis() < 100) throw new IllegalArgumentException("heartbeatInterval < 100ms");
      heartbeatInterval = d;
      return this;
    }

    /**
     * Passed to the server: after its ZooKeeper session expired, campaign again
     * on the new session within the same stream (default true).
     */
    public Options rejoinAfterExpiry(boolean b) {
      rejoinAfterExpiry = b;
      return this;
    }

    /** Campaign again after the stream ended (default true). */
    public Options recampaign(boolean b) {
      recampaign = b;
      return this;
    }
  }

  private final Warren warren;
  private final Options options;
  private final Listener listener;
  private final SerialCallbacks events;
  private final StreamRetry retry;

  // Guarded by `lock`.
  private final Object lock = new Object();
  private Stream stream;
  private boolean closing;
  private volatile boolean leading;
  private volatile Leader leader; // self while leading, else the followed leader
  private final Lease lease;

  Elector(Warren warren, Options options, Listener listener) {
    this.warren = warren;
    this.options = options;
    this.listener = listener;
    this.retry = new StreamRetry(warren, options.backoff, lock, this::openLocked);
    this.events = new SerialCallbacks(options.executor, "warren-elector");
    this.lease = new Lease(warren, this::checkLease);
    synchronized (lock) {
      openLocked();
    }
  }

  /** Whether this candidate leads right now (by the lease, too). */
  public boolean isLeader() {
    return leading;
  }

  /** The leader as last known: this candidate while it leads, else the one it follows (or null). */
  public Leader leader() {
    return leader;
  }

  /** The lease's heartbeat interval in force (for tests). */
  Duration leaseInterval() {
    synchronized (lock) {
      return lease.intervalLocked();
    }
  }

  /**
   * The fence of this candidate's leadership, for fenced writes and publishes
   * ({@link Warren#putConfig(String, byte[], Fence)}, {@link Publisher}): it
   * holds while this leadership lasts and is refused once it ended.
   *
   * @throws IllegalStateException when this candidate does not lead
   */
  public Fence fence() {
    synchronized (lock) {
      if (!leading) throw new IllegalStateException("not the leader of " + options.election);
      return Fences.of(leader);
    }
  }

  /** This candidate's id. */
  public String candidateId() {
    return options.candidateId;
  }

  /** Updates this candidate's value (takes effect while it leads; the server refuses it otherwise). */
  public void proclaim(byte[] value) {
    synchronized (lock) {
      options.value = value.clone(); // also the value of later campaigns
      if (stream != null) {
        stream.sendLocked(
            ElectRequest.newBuilder()
                .setProclaim(Proclaim.newBuilder().setValue(ByteString.copyFrom(value)))
                .build());
      }
    }
  }

  /**
   * Resigns and ends the candidacy, waiting (up to 5 s) for the server to end
   * the stream. Idempotent. An interrupt stops the waiting: the stream is
   * cancelled (the server resigns it as well) and the interrupt flag is kept.
   */
  @Override
  public void close() {
    Stream s;
    synchronized (lock) {
      if (closing) return;
      closing = true;
      retry.cancelLocked();
      s = stream;
      if (s != null) {
        s.sendLocked(ElectRequest.newBuilder().setResign(Resign.getDefaultInstance()).build());
        s.halfCloseLocked();
      }
    }
    if (s != null) {
      s.awaitEndOrCancel("elector closed");
    }
    synchronized (lock) {
      stopLeadingLocked(LossReason.RESIGNED); // if the server's own "lost" did not come
    }
    events.shutdownAfterQueued();
  }

  private void emit(Runnable r) {
    events.run(r);
  }

  private void openLocked() {
    if (closing) return;
    Stream s = new Stream();
    stream = s;
    RetryPolicy.forStreams(ElectionServiceGrpc.newStub(warren.channel())).elect(s);
    s.sendLocked(
        ElectRequest.newBuilder()
            .setCampaign(
                Campaign.newBuilder()
                    .setElection(options.election)
                    .setCandidateId(options.candidateId)
                    .setValue(ByteString.copyFrom(options.value))
                    .setRejoinAfterExpiry(options.rejoinAfterExpiry)
                    .setHeartbeatInterval(Protos.duration(options.heartbeatInterval)))
            .build());
  }

  private void stopLeadingLocked(LossReason reason) {
    lease.stopLocked();
    if (!leading) return;
    leading = false;
    leader = null;
    emit(() -> listener.onLost(reason));
  }

  private void checkLease() {
    Stream s;
    synchronized (lock) {
      s = stream;
      if (!leading || s == null) return;
      if (!lease.expiredLocked(s.lastMessageNanos)) return;
      stopLeadingLocked(LossReason.LEASE_EXPIRED);
    }
    // Drop the stream: if the server still lives, that resigns us there too.
    s.cancel("lease expired");
  }

  private static LossReason reasonOf(io.warren.v1.LossReason r) {
    switch (r) {
      case LOSS_REASON_RESIGNED:
        return LossReason.RESIGNED;
      case LOSS_REASON_CONNECTION_SUSPENDED:
        return LossReason.CONNECTION_SUSPENDED;
      case LOSS_REASON_SESSION_EXPIRED:
        return LossReason.SESSION_EXPIRED;
      default:
        return LossReason.UNKNOWN;
    }
  }

  /** One Elect call; a re-campaign makes a new one. */
  private final class Stream extends StreamCall<ElectRequest, ElectResponse> {
    Stream() {
      super(lock, retry);
    }

    @Override
    public void onNext(ElectResponse response) {
      long now = received();
      synchronized (lock) {
        if (stream != this) return;
        switch (response.getEventCase()) {
          case ELECTED:
            {
              Leader self = response.getElected().getLeader();
              leading = true;
              leader = self;
              lease.startLocked(
                  response.getElected().getHeartbeatInterval(), options.heartbeatInterval);
              emit(() -> listener.onElected(self));
              break;
            }
          case FOLLOWING:
            {
              // A leader is told "lost" before "following"; in case it was
              // not, it must not go on believing it leads.
              stopLeadingLocked(LossReason.UNKNOWN);
              Leader other =
                  response.getFollowing().hasLeader() ? response.getFollowing().getLeader() : null;
              leader = other;
              emit(() -> listener.onFollowing(other));
              break;
            }
          case LOST:
            stopLeadingLocked(reasonOf(response.getLost().getReason()));
            break;
          case HEARTBEAT:
            if (leading) lease.heartbeatLocked(now);
            break;
          default:
            break;
        }
      }
    }

    @Override
    void ended(Status status) {
      synchronized (lock) {
        if (stream != this) return;
        stream = null;
        if (closing) return;
        // The server resigns a candidacy whose stream ended: a loss, now.
        stopLeadingLocked(LossReason.STREAM_BROKEN);
        if (!StreamRetry.resubscribes(status)) {
          closing = true;
          emit(() -> listener.onError(status));
          events.shutdownAfterQueued(); // close() has nothing left to end
          return;
        }
        if (!options.recampaign) return;
        retry.scheduleLocked(); // null (nothing scheduled) when the Warren client was closed under us
      }
    }
  }
}
