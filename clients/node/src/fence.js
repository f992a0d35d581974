// Fences: a write or publish made conditional on still holding a leadership
// or a lock. The server checks the token against the election's leader (or
// the lock's holders) atomically with a config write, and just before a
// publish; a fence that no longer holds is refused with FAILED_PRECONDITION
// ("fence: ..."), and nothing is written or published.
//
// A fence is a plain object: { election, fencingToken } or { lock,
// fencingToken }, the token a bigint (a zxid is 64 bits). It is taken once,
// while holding, and keeps its token: a fence taken by a deposed leader is
// exactly what the server must refuse.

/**
 * The fence of an Elector's current leadership. Throws when it does not lead:
 * there is no token to fence with.
 */
export function fenceFromElector(elector) {
  const token = elector.fencingToken;
  if (token == null) throw new Error('fence: this candidate does not lead');
  return Object.freeze({ election: elector.election, fencingToken: token });
}

/** The fence of a held Lock. Throws when it is no longer held. */
export function fenceFromLock(lock) {
  if (!lock.isHeld) throw new Error(`fence: lock ${lock.name} is not held`);
  return Object.freeze({ lock: lock.name, fencingToken: lock.fencingToken });
}

/** A fence (or null/undefined: none) to warren.v1.Fence. */
export function fenceToProto(fence) {
  if (fence == null) return null;
  const owners = ['election', 'lock'].filter((owner) => fence[owner] != null);
  if (owners.length !== 1) throw new TypeError('fence: give exactly one of election and lock');
  if (fence.fencingToken == null) throw new TypeError('fence: fencingToken is required');
  return { [owners[0]]: fence[owners[0]], fencingToken: String(fence.fencingToken) };
}
