// Publisher: MessagingService.Publish with a client-chosen message id and
// retries that keep it.
//
// Why the id is chosen here and not by the server: when a publish times out or
// the connection drops after the broker confirmed but before the answer
// arrived, the caller cannot know whether the message went out. Retrying is
// then the only way not to lose it, and reusing the id is what lets consumers
// drop the duplicate (at-least-once + idempotent consumer).
import { randomUUID } from 'node:crypto';
import { status as Status, Metadata } from '@grpc/grpc-js';
import { Backoff, durationFromMs, sleep, toBytes } from './util.js';

/**
 * Codes retried by default. UNAVAILABLE: the server or the broker is down or
 * reconnecting (the server's contract says a retry is safe). DEADLINE_EXCEEDED
 * of one attempt: the broker's confirm did not come in time, so the message
 * may or may not have been published; retrying with the same id is exactly
 * the case the id exists for. Both stop at the overall deadline. Everything
 * else (NOT_FOUND exchange, FAILED_PRECONDITION unroutable mandatory message,
 * INVALID_ARGUMENT, RESOURCE_EXHAUSTED flow control, ...) surfaces at once.
 */
export const DEFAULT_RETRY_CODES = Object.freeze([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED]);

export class Publisher {
  #client;
  #options;

  /**
   * @param {object} client a raw warren.v1.MessagingService client
   * @param {object} [options] see index.d.ts (PublisherOptions)
   */
  constructor(client, {
    attemptTimeoutMs = 10_000,
    timeoutMs = 60_000,
    retryCodes = DEFAULT_RETRY_CODES,
    backoff = {},
    newMessageId = randomUUID,
  } = {}) {
    this.#client = client;
    this.#options = { attemptTimeoutMs, timeoutMs, retryCodes: new Set(retryCodes), backoff, newMessageId };
  }

  /**
   * Publishes one message and resolves after the broker's confirm with
   * `{ messageId, attempts }`. Rejects with the gRPC error (carrying
   * `messageId` and `attempts`) on a non-retryable code, when the overall
   * timeout passes, or when `signal` aborts.
   */
  async publish(message, { timeoutMs = this.#options.timeoutMs, signal } = {}) {
    const request = toPublishRequest(message, this.#options.newMessageId);
    const deadline = Date.now() + timeoutMs;
    const backoff = new Backoff(this.#options.backoff);
    for (let attempts = 1; ; attempts++) {
      signal?.throwIfAborted();
      const attemptDeadline = Math.min(deadline, Date.now() + this.#options.attemptTimeoutMs);
      try {
        await unaryCall(this.#client, 'publish', request, attemptDeadline, signal);
        return { messageId: request.messageId, attempts };
      } catch (err) {
        err.messageId = request.messageId;
        err.attempts = attempts;
        const delay = backoff.next();
        if (!this.#options.retryCodes.has(err.code) || Date.now() + delay >= deadline || signal?.aborted) throw err;
        await sleep(delay, signal);
      }
    }
  }
}

/** The wrapper's message shape to a warren.v1.PublishRequest (with an id). */
export function toPublishRequest(m, newMessageId = randomUUID) {
  if (!m || typeof m !== 'object') throw new TypeError('publish: a message object is required');
  const routingKey = m.routingKey ?? m.queue;
  if (typeof routingKey !== 'string') throw new TypeError('publish: routingKey (or queue) is required');
  return {
    exchange: m.exchange ?? '',
    routingKey,
    payload: toBytes(m.payload),
    headers: m.headers ?? {},
    contentType: m.contentType ?? '',
    messageId: m.messageId || newMessageId(),
    transient: Boolean(m.transient),
    priority: m.priority ?? 0,
    ttl: m.ttlMs == null ? null : durationFromMs(m.ttlMs),
    mandatory: Boolean(m.mandatory),
  };
}

/** One unary call as a Promise, with an absolute deadline and an AbortSignal. */
export function unaryCall(client, method, request, deadlineMs, signal) {
  return new Promise((resolve, reject) => {
    const call = client[method](request, new Metadata(), { deadline: new Date(deadlineMs) }, (err, response) => {
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(response);
    });
    function onAbort() {
      call.cancel();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
