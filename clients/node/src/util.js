// Small helpers shared by the wrappers: backoff, status-code classes and the
// conversions between the wire shapes of @grpc/proto-loader and plain JS
// values (Buffer, Date, bigint, milliseconds).
import { status as Status } from '@grpc/grpc-js';

/**
 * Exponential backoff with jitter, capped. Each delay is drawn from
 * [base * (1 - jitter), base] where base doubles (by `multiplier`) from
 * `initialMs` up to `maxMs`, so clients that lost the same server do not come
 * back in lockstep, and a long outage costs at most one attempt per `maxMs`.
 */
export class Backoff {
  constructor({ initialMs = 200, maxMs = 5000, multiplier = 2, jitter = 0.5, random = Math.random } = {}) {
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

// Codes after which trying the same stream again cannot help: the request
// itself is wrong, or the caller may not make it. Every other way a stream
// ends (UNAVAILABLE, an unexpected OK, CANCELLED by a proxy, INTERNAL, ...)
// is treated as transient by the long-lived wrappers.
const FATAL = new Set([
  Status.INVALID_ARGUMENT,
  Status.NOT_FOUND,
  Status.ALREADY_EXISTS,
  Status.FAILED_PRECONDITION,
  Status.OUT_OF_RANGE,
  Status.PERMISSION_DENIED,
  Status.UNAUTHENTICATED,
  Status.UNIMPLEMENTED,
]);

/** True when a stream that ended with `code` should not be reopened. */
export function isFatal(code) {
  return FATAL.has(code);
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

/** Milliseconds to a google.protobuf.Duration. */
export function durationFromMs(ms) {
  if (ms == null) return null;
  const whole = Math.floor(ms / 1000);
  return { seconds: String(whole), nanos: Math.round((ms - whole * 1000) * 1e6) };
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

/** Resolves after `ms`; rejects with the signal's reason when it aborts first. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }
    function onAbort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
