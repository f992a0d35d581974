// Request/reply over the broker: call() asks and waits for the reply
// (MessagingService.Call: the server's direct reply-to and correlation id),
// respond() answers requests from a queue or a topic group.
import { randomUUID } from 'node:crypto';
import { status as Status } from '@grpc/grpc-js';
import { unaryCall } from './calls.js';
import { DEFAULTS } from './policy.js';
import { toPublishRequest } from './publisher.js';
import { Message, Subscriber } from './subscriber.js';

/** The server's own default when a call carries no deadline (--call_timeout). */
export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

/**
 * What call() rejects with when no reply came in time: named 'TimeoutError'
 * like the DOMException of AbortSignal.timeout(), with the gRPC code
 * DEADLINE_EXCEEDED as `code` and the server's words (if any) in `cause`.
 */
export class TimeoutError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'TimeoutError';
    this.code = Status.DEADLINE_EXCEEDED;
    this.details = message;
  }
}

/**
 * Publishes `message` as a request and resolves with the first reply (a
 * Message, deliveryId '0': a reply needs no ack). Never retried: a request
 * is not idempotent, and one whose answer was lost may have been handled.
 * No reply within `timeoutMs` (default 30 s): TimeoutError. Other errors
 * are the gRPC error (FAILED_PRECONDITION: no queue took the request;
 * UNAVAILABLE: the request may have been handled, but no reply can come).
 */
export async function call(client, message, { timeoutMs = DEFAULT_CALL_TIMEOUT_MS, signal } = {}) {
  for (const field of ['replyTo', 'correlationId', 'delayMs']) {
    if (message?.[field]) throw new TypeError(`call: ${field} is set by the server for a call; leave it out`);
  }
  const request = toPublishRequest(message, randomUUID, DEFAULTS.publisher.mandatory);
  let response;
  try {
    response = await unaryCall(client, 'call', { message: request }, Date.now() + timeoutMs, signal);
  } catch (err) {
    err.messageId = request.messageId;
    if (err.code !== Status.DEADLINE_EXCEEDED) throw err;
    const timeout = new TimeoutError(`call: no reply within ${timeoutMs} ms`, { cause: err });
    timeout.messageId = request.messageId;
    throw timeout;
  }
  return new Message(response.reply ?? {});
}

/**
 * A Subscriber that answers requests: `handler(request)` returns the reply
 * (a payload, or { payload, headers, contentType }; undefined: an empty
 * reply), which is published to the request's `replyTo` with its
 * `correlationId`; the request is acked once the broker has confirmed the
 * reply. A handler error nacks the request as any Subscriber does
 * (requeueOnError, err.requeue, err.retryAfterMs), and nothing is replied.
 * A request without `replyTo` wants no reply: it is acked unhandled, and
 * reported as a 'skipped' event (a process warning without a listener).
 */
export function respond(client, publisher, options, handler) {
  if (typeof handler !== 'function') throw new TypeError('respond: a handler function is required');
  const subscriber = new Subscriber(client, options, async (request) => {
    if (!request.replyTo) {
      if (subscriber.listenerCount('skipped') > 0) subscriber.emit('skipped', request);
      else process.emitWarning(`respond: message ${request.messageId} has no replyTo; acked without an answer`, 'WarrenWarning');
      return;
    }
    const reply = replyShape(await handler(request));
    // Not mandatory: a caller that gave up is no reason to fail the request.
    await publisher.publish({
      ...reply, exchange: '', routingKey: request.replyTo, correlationId: request.correlationId, mandatory: false,
    });
  });
  return subscriber;
}

function replyShape(result) {
  if (result == null) return { payload: Buffer.alloc(0) };
  if (typeof result === 'string' || result instanceof Uint8Array) return { payload: result };
  if (typeof result === 'object') {
    const { payload, headers, contentType } = result;
    return { payload, headers, contentType };
  }
  throw new TypeError('respond: a handler returns a payload (string, Buffer) or { payload, headers, contentType }');
}
