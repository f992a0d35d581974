package io.warren.client;

import io.warren.v1.Fence;
import io.warren.v1.Leader;
import io.warren.v1.LockHolder;

/**
 * Makes {@link Fence}s: a fenced config write ({@link Warren#putConfig(String,
 * byte[], Fence)}, {@link Warren#deleteConfig(String, Fence)},
 * {@link Warren#txn}) or publish ({@link Publisher}) happens only while the
 * leadership or the lock it names still holds, and is refused with
 * FAILED_PRECONDITION ({@code fence: ...}) once it does not.
 *
 * <p>{@link Elector#fence()} and {@link HeldLock#fence()} make the fence of a
 * leadership or a lock this process holds; these make one from a name and a
 * token that came from elsewhere (e.g. handed to a worker).
 */
public final class Fences {
  private Fences() {}

  /** Holds while {@code election}'s leader has {@code fencingToken}. */
  public static Fence election(String election, long fencingToken) {
    return Fence.newBuilder().setElection(election).setFencingToken(fencingToken).build();
  }

  /** Holds while one of {@code lock}'s holders has {@code fencingToken}. */
  public static Fence lock(String lock, long fencingToken) {
    return Fence.newBuilder().setLock(lock).setFencingToken(fencingToken).build();
  }

  /** The fence of a leadership, e.g. the one {@link Elector.Listener#onElected} was given. */
  public static Fence of(Leader leader) {
    return election(leader.getElection(), leader.getFencingToken());
  }

  /** The fence of a lock holder, e.g. {@link HeldLock#holder()}. */
  public static Fence of(LockHolder holder) {
    return lock(holder.getName(), holder.getFencingToken());
  }
}
