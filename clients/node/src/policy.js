// The retry rule and the defaults that the five Warren clients share, as
// data: a copy of clients/retry-policy.json and clients/defaults.json in the
// repository (docs/semantics.md explains them). The package must work
// without the repository around it, so it carries the copy;
// test/unit/policy.test.js reads both files and fails when this copy, or what
// the wrappers do with it, drifts from them.
import { status as Status } from '@grpc/grpc-js';

// code name → [unary decision, stream decision]
const TABLE = {
  OK: ['done', 'resubscribe'],
  CANCELLED: ['retry', 'resubscribe'],
  UNKNOWN: ['retry', 'resubscribe'],
  INVALID_ARGUMENT: ['fatal', 'fatal'],
  DEADLINE_EXCEEDED: ['retry', 'resubscribe'],
  NOT_FOUND: ['fatal', 'fatal'],
  ALREADY_EXISTS: ['fatal', 'fatal'],
  PERMISSION_DENIED: ['fatal', 'fatal'],
  RESOURCE_EXHAUSTED: ['retry', 'resubscribe'],
  FAILED_PRECONDITION: ['fatal', 'fatal'],
  ABORTED: ['retry', 'resubscribe'],
  OUT_OF_RANGE: ['fatal', 'fatal'],
  UNIMPLEMENTED: ['fatal', 'fatal'],
  INTERNAL: ['retry', 'resubscribe'],
  UNAVAILABLE: ['retry', 'resubscribe'],
  DATA_LOSS: ['fatal', 'fatal'],
  UNAUTHENTICATED: ['fatal', 'fatal'],
};

/** Every code by name: { number, unary: 'done'|'retry'|'fatal', stream: 'resubscribe'|'fatal' }. */
export const RETRY_POLICY = Object.freeze(Object.fromEntries(Object.entries(TABLE).map(([name, [unary, stream]]) =>
  [name, Object.freeze({ number: Status[name], unary, stream })])));

const byNumber = new Map(Object.values(RETRY_POLICY).map((row) => [row.number, row]));

// gRPC turns a code it does not know into UNKNOWN, and so does this. An error
// without a numeric code did not come from the server at all (e.g. a request
// that does not serialize): sending it again cannot help.
function rowOf(code) {
  if (typeof code !== 'number') return null;
  return byNumber.get(code) ?? RETRY_POLICY.UNKNOWN;
}

/**
 * What a wrapper does when a unary call ends with `code`: 'done', 'retry'
 * (same request after the backoff, within the caller's deadline) or 'fatal'.
 * A call the caller aborted is never retried, whatever its code.
 */
export function unaryDecision(code) {
  return rowOf(code)?.unary ?? 'fatal';
}

/**
 * What a wrapper does when a stream it did not close ends with `code`:
 * 'resubscribe' (open it again after the backoff) or 'fatal'.
 */
export function streamDecision(code) {
  return rowOf(code)?.stream ?? 'fatal';
}

/**
 * The wait before retry n (n = 0 first): d = min(maxMs, initialMs *
 * multiplier^n), drawn uniformly from [d/2, d]. A stream's first response
 * resets n.
 */
export const BACKOFF = Object.freeze({ initialMs: 100, multiplier: 2, maxMs: 3000 });

/**
 * The channel: gRPC's own reconnect backoff (120 s at most by default) capped,
 * so a client is back within seconds of its server; streams wait for the
 * channel to be ready instead of failing while it reconnects.
 */
export const CHANNEL = Object.freeze({
  initialReconnectBackoffMs: 100,
  maxReconnectBackoffMs: 2000,
  streamsWaitForReady: true,
});

/** What the wrappers use when the caller does not choose. */
export const DEFAULTS = Object.freeze({
  publisher: Object.freeze({ mandatory: true }),
  subscriber: Object.freeze({ maxInFlight: 16 }),
  elector: Object.freeze({ heartbeatIntervalMs: 1000, rejoinAfterExpiry: true }),
});
