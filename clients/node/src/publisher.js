// Publisher: MessagingService.Publish with a client-chosen message id and
// retries that keep it.
//
// Why the id is chosen here and not by the server: when a publish times out or
// the connection drops after the broker confirmed but before the answer
// arrived, the caller cannot know whether the message went out. Retrying is
// then the only way not to lose it, and reusing the id is what lets consumers
// drop the duplicate (at-least-once + idempotent consumer).
import { randomUUID } from 'node:crypto';
import { callWithRetry } from './calls.js';
import { fenceToProto } from './fence.js';
import { DEFAULTS } from './policy.js';
import { durationFromMs, toBytes } from './util.js';

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
    mandatory = DEFAULTS.publisher.mandatory,
    backoff = {},
    newMessageId = randomUUID,
  } = {}) {
    this.#client = client;
    this.#options = { attemptTimeoutMs, timeoutMs, mandatory, backoff, newMessageId };
  }

  /**
   * Publishes one message and resolves after the broker's confirm with
   * `{ messageId, attempts }`. The codes the shared policy marks 'retry'
   * (UNAVAILABLE, DEADLINE_EXCEEDED: the confirm did not come in time, so the
   * message may or may not be out; RESOURCE_EXHAUSTED, ...) are retried with
   * the same message id until `timeoutMs`; a fatal code (NOT_FOUND exchange,
   * FAILED_PRECONDITION unroutable mandatory message, INVALID_ARGUMENT, ...)
   * rejects at once. The error carries `messageId` and `attempts`; an aborted
   * `signal` rejects with an AbortError and is never retried. `fence`
   * ({ election | lock, fencingToken }): published only while it holds
   * (checked just before the publish, every attempt; FAILED_PRECONDITION
   * "fence: ..." otherwise), and the message carries the headers
   * `warren-fence` and `warren-fencing-token` for consumers.
   */
  async publish(message, { timeoutMs = this.#options.timeoutMs, signal, fence } = {}) {
    const request = toPublishRequest(message, this.#options.newMessageId, this.#options.mandatory);
    request.fence = fenceToProto(fence);
    try {
      const { attempts } = await callWithRetry(this.#client, 'publish', request, {
        deadlineMs: Date.now() + timeoutMs,
        attemptTimeoutMs: this.#options.attemptTimeoutMs,
        signal,
        backoff: this.#options.backoff,
      });
      return { messageId: request.messageId, attempts };
    } catch (err) {
      err.messageId = request.messageId;
      throw err;
    }
  }
}

/** The wrapper's message shape to a warren.v1.PublishRequest (with an id). */
export function toPublishRequest(m, newMessageId = randomUUID, mandatory = DEFAULTS.publisher.mandatory) {
  if (!m || typeof m !== 'object') throw new TypeError('publish: a message object is required');
  const routingKey = m.routingKey ?? m.queue;
  if (typeof routingKey !== 'string') throw new TypeError('publish: routingKey (or queue) is required');
  if (m.delayMs != null && !(typeof m.delayMs === 'number' && Number.isFinite(m.delayMs) && m.delayMs >= 0)) {
    throw new RangeError('publish: delayMs must be a non-negative number of milliseconds');
  }
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
    // A delayed message is routed later, where no one can refuse it: the
    // server takes `mandatory` with a delay as a mistake, so the default
    // does not apply to one (an explicit `mandatory: true` is still sent).
    mandatory: Boolean(m.mandatory ?? (m.delayMs > 0 ? false : mandatory)),
    delay: m.delayMs == null ? null : durationFromMs(m.delayMs),
    replyTo: m.replyTo ?? '',
    correlationId: m.correlationId ?? '',
  };
}
