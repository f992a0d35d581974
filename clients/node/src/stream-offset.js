// Where a subscription of a stream queue starts, and where it resumes after a
// broken stream.
/**
 * The wrapper's `offset` option to a warren.v1.StreamOffset: 'first',
 * 'last', 'next', an offset (a non-negative integer, number or bigint: the
 * message with that offset is the first one delivered) or a Date (the first
 * messages the broker stored at or after it). null/undefined: unset (next).
 */
export function streamOffsetToProto(offset) {
  if (offset == null) return null;
  if (offset === 'first' || offset === 'last' || offset === 'next') return { [offset]: true };
  if (offset instanceof Date) {
    const ms = offset.getTime();
    if (!Number.isFinite(ms)) throw new RangeError('subscribe: offset is an invalid Date');
    const seconds = Math.floor(ms / 1000);
    return { timestamp: { seconds: String(seconds), nanos: (ms - seconds * 1000) * 1e6 } };
  }
  if ((typeof offset === 'number' && Number.isSafeInteger(offset) && offset >= 0) || (typeof offset === 'bigint' && offset >= 0n)) {
    return { offset: String(offset) };
  }
  throw new RangeError("subscribe: offset must be 'first', 'last', 'next', a non-negative integer or a Date");
}

/**
 * Remembers, across the streams of one Subscriber, where a stream
 * subscription resumes: just after the last delivery handed to the handler.
 * A handler once started runs to completion even when its stream breaks
 * (only its settle is lost, and a nack on a stream settles nothing the
 * broker would redeliver), while deliveries received and not started are
 * dropped with their stream; deliveries arrive and start in offset order,
 * so "last started + 1" is neither a gap nor a repeat.
 */
export class StreamResume {
  #start;
  #last = null; // bigint: the offset of the last delivery started
  #floor = null; // bigint: nothing below it reaches the handler
  #relative;
  #subscribedAt = null;

  constructor(offset) {
    this.#start = streamOffsetToProto(offset);
    if (this.#start?.offset != null) this.#floor = BigInt(this.#start.offset);
    // 'next' and 'last' mean "from when I subscribed": a stream broken before
    // its first delivery resumes at that time, since 'next' again would skip
    // what arrived while it was away (by chunk, and a second early: a few
    // earlier messages may come too, never fewer).
    this.#relative = this.#start == null || this.#start.next === true || this.#start.last === true;
  }

  /** The offset of the last delivery handed to the handler (a bigint), or null. */
  get last() {
    return this.#last;
  }

  /** Records the first time a stream of the subscription was open. */
  subscribed(now = new Date()) {
    this.#subscribedAt ??= now;
  }

  /** The StreamOffset to open the next stream with. */
  startOffset() {
    if (this.#last != null) return { offset: String(this.#last + 1n) };
    // A second early: the broker stamps chunks by its own clock, and a few
    // messages from before the subscription are better than a gap.
    if (this.#relative && this.#subscribedAt) return streamOffsetToProto(new Date(this.#subscribedAt.getTime() - 1000));
    return this.#start;
  }

  /**
   * Whether a delivery at `offset` goes to the handler: not when it is below
   * where this subscription asked to start (the server skips those too; this
   * keeps the promise even if it did not). Records it when it does.
   */
  admit(offset) {
    const o = BigInt(offset ?? 0);
    const floor = this.#last == null ? this.#floor : this.#last + 1n;
    if (floor != null && o < floor) return false;
    this.#last = o;
    return true;
  }
}

