// Unary calls as promises: one attempt (unaryCall), and attempts under the
// shared retry rule (callWithRetry), which the Publisher and the Warren
// helpers (getConfig, putConfig, ...) use.
import { Metadata } from '@grpc/grpc-js';
import { unaryDecision } from './policy.js';
import { AbortError, Backoff, sleep } from './util.js';

/**
 * One unary call as a Promise, with an absolute deadline. When `signal`
 * aborts, the call is cancelled and the promise rejects with an AbortError.
 */
export function unaryCall(client, method, request, deadlineMs, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortError(signal.reason));
      return;
    }
    const call = client[method](request, new Metadata(), { deadline: new Date(deadlineMs) }, (err, response) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) reject(new AbortError(signal.reason));
      else if (err) reject(err);
      else resolve(response);
    });
    function onAbort() {
      call.cancel();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A unary call retried as the shared policy says (RETRY_POLICY: the codes
 * marked 'retry'), with the same request each time, after a backoff, until
 * `deadlineMs`. Each attempt has its own deadline of at most
 * `attemptTimeoutMs`, inside the overall one. Resolves with `{ response,
 * attempts }`; rejects with the error that ended it (a fatal code, the last
 * retryable one when the deadline leaves no room for another attempt, or an
 * AbortError), carrying `attempts`.
 */
export async function callWithRetry(client, method, request, {
  deadlineMs, attemptTimeoutMs = Infinity, signal, backoff = {},
}) {
  const retry = new Backoff(backoff);
  for (let attempts = 1; ; attempts++) {
    const attemptDeadline = Math.min(deadlineMs, Date.now() + attemptTimeoutMs);
    let error;
    try {
      return { response: await unaryCall(client, method, request, attemptDeadline, signal), attempts };
    } catch (err) {
      error = err;
    }
    error.attempts = attempts;
    if (error instanceof AbortError || unaryDecision(error.code) !== 'retry') throw error;
    const delayMs = retry.next();
    if (Date.now() + delayMs >= deadlineMs) throw error;
    try {
      await sleep(delayMs, signal);
    } catch (aborted) {
      aborted.attempts = attempts;
      throw aborted;
    }
  }
}
