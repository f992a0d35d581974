// Small helpers shared by the wrappers: backoff, abort errors, stream call
// metadata and the conversions between the wire shapes of @grpc/proto-loader
// and plain JS values (Buffer, Date, bigint, milliseconds).
import { status as Status, Metadata } from '@grpc/grpc-js';
import { BACKOFF, CHANNEL } from './policy.js';

/**
 * Exponential backoff with jitter, capped. Each delay is drawn from
 * [base * (1 - jitter), base] where base grows by `multiplier` from
 * `initialMs` up to `maxMs`, so clients that lost the same server do not come
 * back in lockstep, and a long outage costs at most one attempt per `maxMs`.
 * The defaults are the shared policy's (BACKOFF): 100 ms, x2, 3 s, [d/2, d].
 */
export class Backoff {
  constructor({
    initialMs = BACKOFF.initialMs, maxMs = BACKOFF.maxMs, multiplier = BACKOFF.multiplier, jitter = 0.5,
    random = Math.random,
  } = {}) {
    if (!(initialMs > 0) || !(maxMs >= initialMs)) throw new RangeError('backoff: need 0 < initialMs <= maxMs');
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.multiplier = multiplier;
    this.jitter = Math.min(Math.max(jitter, 0), 1);
    this.random = random;
    this.attempt = 0;
  }

  /** The delay before the next attempt, in milliseconds. */
  next() {
    const base = Math.min(this.maxMs, this.initialMs * this.multiplier ** this.attempt);
    this.attempt++;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  /** Starts over after a success. */
  reset() {
    this.attempt = 0;
  }
}

/**
 * What every call, stream and wrapper rejects with when the caller's
 * AbortSignal aborts: named 'AbortError' like Node's own (events.once,
 * timers/promises), with the signal's reason as `cause`, and the gRPC code of
 * a cancelled call (CANCELLED) as `code`, so code that sorts errors by
 * `err.code` sees what it would for a cancelled raw call.
 */
export class AbortError extends Error {
  constructor(reason) {
    super('The operation was aborted', reason === undefined ? undefined : { cause: reason });
    this.name = 'AbortError';
    this.code = Status.CANCELLED;
    this.details = 'aborted by the caller';
  }
}

/**
 * How a long-lived wrapper opens its stream again: it waits the backoff,
 * announced as 'reconnecting' { error, delayMs } on the wrapper, then calls
 * `connect`. reset() when a stream has answered (the policy starts the
 * backoff over then); stop() when the wrapper ends.
 */
export class Redial {
  #backoff;
  #timer = new Timer();
  #emitter;
  #connect;

  constructor(emitter, backoffOptions, connect) {
    this.#backoff = new Backoff(backoffOptions);
    this.#emitter = emitter;
    this.#connect = connect;
  }

  schedule(error) {
    const delayMs = this.#backoff.next();
    this.#emitter.emit('reconnecting', { error, delayMs });
    this.#timer.start(delayMs, this.#connect);
  }

  reset() {
    this.#backoff.reset();
  }

  stop() {
    this.#timer.stop();
  }
}

/** Why a wrapper dropped a stream that went silent (a frozen server, a proxy that swallowed it). */
export function silenceError(message) {
  const err = new Error(message);
  err.code = Status.DEADLINE_EXCEEDED;
  return err;
}

/**
 * The end of a long-lived wrapper (Subscriber, ConfigWatcher, Elector), which
 * comes once: `closed` resolves after stop()/close() or a fatal error, and
 * rejects with an AbortError when the caller's `signal` aborted it. The
 * wrapper passes `onAbort`, which must end it (calling end()); a signal that
 * has aborted already is left to the wrapper to check before it connects.
 */
export class Ending {
  #resolve;
  #reject;
  #signal;
  #onAbort;
  #done = false;

  constructor(signal, onAbort) {
    this.closed = new Promise((resolve, reject) => { this.#resolve = resolve; this.#reject = reject; });
    this.closed.catch(() => {}); // an abort need not be awaited to be harmless
    this.#signal = signal;
    this.#onAbort = () => onAbort(new AbortError(signal.reason));
    if (signal && !signal.aborted) signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** True once end() ran. */
  get done() {
    return this.#done;
  }

  /** Calls onAbort if the signal has aborted; true then. */
  abortIfAborted() {
    if (!this.#signal?.aborted) return false;
    this.#onAbort();
    return true;
  }

  /** Ends: `closed` resolves, or rejects with `error`. False if it had ended already. */
  end(error) {
    if (this.#done) return false;
    this.#done = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    if (error) this.#reject(error);
    else this.#resolve();
    return true;
  }

  /**
   * Resolves once `closed` has settled, either way: what stop() and close()
   * return, since they are clean-up (an abort rejects `closed`, not them).
   */
  settled() {
    return this.closed.then(() => {}, () => {});
  }
}

/** Throws an AbortError when `signal` has aborted. */
export function throwIfAborted(signal) {
  if (signal?.aborted) throw new AbortError(signal.reason);
}

/**
 * Metadata for opening a stream: wait-for-ready, so a stream opened while the
 * channel reconnects waits for it instead of failing at once; no deadline
 * (a stream lives until it is closed).
 */
export function streamMetadata() {
  return new Metadata({ waitForReady: CHANNEL.streamsWaitForReady });
}

/** The name of a status code, e.g. 'UNAVAILABLE'. */
export function codeName(code) {
  return Status[code] ?? String(code);
}

/** An Error for a stream that ended without an error status. */
export function unexpectedEnd(what) {
  const err = new Error(`${what} stream ended unexpectedly`);
  err.code = Status.OK;
  return err;
}

/** An Error for a stream that ended with an error status (code, details, metadata kept). */
export function statusError(what, status) {
  const err = new Error(`${what}: ${codeName(status.code)}: ${status.details}`);
  err.code = status.code;
  err.details = status.details;
  err.metadata = status.metadata;
  return err;
}

/** The Error for a stream that ended with `status` without the caller closing it. */
export function streamEndError(what, status) {
  return status.code === Status.OK ? unexpectedEnd(what) : statusError(what, status);
}

/** warren.v1.LossReason to the wrappers' reason names. */
export function lossReasonName(reason) {
  return {
    LOSS_REASON_RESIGNED: 'resigned',
    LOSS_REASON_CONNECTION_SUSPENDED: 'connection_suspended',
    LOSS_REASON_SESSION_EXPIRED: 'session_expired',
  }[reason] ?? 'unknown';
}

/** Milliseconds to a google.protobuf.Duration. */
export function durationFromMs(ms) {
  if (ms == null) return null;
  const whole = Math.floor(ms / 1000);
  return { seconds: String(whole), nanos: Math.round((ms - whole * 1000) * 1e6) };
}

/** A google.protobuf.Duration (longs as strings) to milliseconds, or null when unset. */
export function msFromDuration(d) {
  if (!d) return null;
  return Number(d.seconds) * 1000 + Math.floor((d.nanos ?? 0) / 1e6);
}

/** A google.protobuf.Timestamp (longs as strings) to a Date, or null. */
export function dateFromTimestamp(ts) {
  if (!ts) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6));
}

/** Strings are sent as UTF-8; Buffers and Uint8Arrays as they are. */
export function toBytes(value) {
  if (value == null) return Buffer.alloc(0);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError('a payload or value must be a string, Buffer or Uint8Array');
}

/** warren.v1.ConfigEntry to a plain entry. */
export function entryFromProto(e) {
  return {
    key: e.key,
    value: e.value ?? Buffer.alloc(0),
    version: Number(e.version),
    modifyTime: dateFromTimestamp(e.modifyTime),
    held: Boolean(e.held),
  };
}

/** warren.v1.Leader to a plain leader; the fencing token as a bigint (a zxid is 64 bits). */
export function leaderFromProto(l) {
  if (!l) return null;
  return {
    election: l.election,
    candidateId: l.candidateId,
    value: l.value ?? Buffer.alloc(0),
    fencingToken: BigInt(l.fencingToken || 0),
    electedTime: dateFromTimestamp(l.electedTime),
  };
}

/**
 * A restartable one-shot timer. The long-lived wrappers use it for their
 * watchdogs (lease, idle stream) and for backoff waits. Not unref'd: a
 * subscriber waiting to reconnect must keep the process alive.
 */
export class Timer {
  #handle = null;

  start(ms, fn) {
    this.stop();
    this.#handle = setTimeout(() => {
      this.#handle = null;
      fn();
    }, ms);
  }

  stop() {
    if (this.#handle) clearTimeout(this.#handle);
    this.#handle = null;
  }

  get running() {
    return this.#handle !== null;
  }
}

/** Resolves after `ms`; rejects with an AbortError when `signal` aborts first. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortError(signal.reason));
      return;
    }
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(new AbortError(signal.reason));
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
