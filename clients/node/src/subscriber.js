// Subscriber: MessagingService.Subscribe with handlers, acks and reconnects.
//
// What raw stubs leave to the caller, and this does:
// - one handler call per delivery, acked when it resolves, nacked when it
//   throws (requeue configurable, per error too);
// - at most `maxInFlight` handlers at once, across reconnects: the same
//   number is sent as the stream's prefetch, so the server never hands this
//   client more than it will run;
// - a stream that ends with a code the shared policy resubscribes on
//   (UNAVAILABLE, RESOURCE_EXHAUSTED, an unexpected OK, ...), or goes silent
//   past the heartbeat watchdog, is reopened with capped, jittered backoff.
//   Deliveries of the old stream are not settled any more: the server already
//   put them back in the queue (at-least-once), so a handler still running
//   for one may see it again;
// - stop(): no new handlers, running ones finish and are settled, queued ones
//   are nacked back to the queue, then the stream is half-closed;
// - an aborted `signal`: no new handlers, queued ones are nacked, the stream
//   is cancelled at once (running handlers are not waited for; their
//   deliveries go back to the queue) and `closed` rejects with an AbortError;
// - a stream queue (QUEUE_TYPE_STREAM) is read from `offset`, and a stream
//   that breaks is reopened just after the last delivery handed to the
//   handler (StreamResume): no gap, no repeat;
// - a handler error with `retryAfterMs` (or the option) is a nack whose
//   message comes back after that delay, so a failing message does not loop
//   hot.
import { EventEmitter } from 'node:events';
import { DEFAULTS, streamDecision } from './policy.js';
import {
  Ending, Redial, Timer, dateFromTimestamp, durationFromMs, silenceError, streamEndError, streamMetadata,
} from './util.js';
import { StreamResume } from './stream-offset.js';

const STREAM = 'QUEUE_TYPE_STREAM';

/** One delivery, as given to the handler. */
export class Message {
  /**
   * @param {object} d a warren.v1.Delivery
   * @param {boolean} [fromStream] whether it came from a stream queue (only
   *   then is its stream offset meaningful: 0 is also a stream's first offset)
   */
  constructor(d, fromStream = false) {
    this.deliveryId = d.deliveryId;
    this.messageId = d.messageId;
    this.exchange = d.exchange;
    this.routingKey = d.routingKey;
    this.payload = d.payload ?? Buffer.alloc(0);
    this.headers = d.headers ?? {};
    this.contentType = d.contentType;
    this.redelivered = d.redelivered;
    this.deliveryCount = d.deliveryCount ?? 0;
    this.timestamp = dateFromTimestamp(d.timestamp);
    this.streamOffset = fromStream ? BigInt(d.streamOffset ?? 0) : null;
    this.replyTo = d.replyTo ?? '';
    this.correlationId = d.correlationId ?? '';
  }

  /** The payload decoded as UTF-8. */
  get text() {
    return this.payload.toString('utf8');
  }
}

/**
 * A handler error asking for its message to come back after `retryAfterMs`
 * (through a delay queue of the broker; each retry counts in
 * `deliveryCount`): `throw new RetryLater(5000, 'backend busy')`. Any error
 * with a `retryAfterMs` property does the same.
 */
export class RetryLater extends Error {
  constructor(retryAfterMs, message = `retry after ${retryAfterMs} ms`, options) {
    super(message, options);
    this.name = 'RetryLater';
    this.retryAfterMs = retryAfterMs;
  }
}

export class Subscriber extends EventEmitter {
  #client;
  #handler;
  #opts;
  #start;
  #redial;
  #call = null;
  #answered = false; // the current stream has sent something
  #generation = 0;
  #pending = []; // deliveries received and not started yet: { generation, delivery }
  #running = 0;
  #stopping = false;
  #idleTimer = new Timer();
  #idle = []; // resolvers waiting for #running === 0
  #ending;
  #resume = null; // StreamResume of a stream-queue subscription

  /**
   * @param {object} client a raw warren.v1.MessagingService client
   * @param {object} options see index.d.ts (SubscribeOptions)
   * @param {(message: Message) => unknown | Promise<unknown>} handler
   */
  constructor(client, options, handler) {
    super();
    if (typeof handler !== 'function') throw new TypeError('subscribe: a handler function is required');
    const {
      queue, topic, group = '', queueOptions, maxInFlight = DEFAULTS.subscriber.maxInFlight, requeueOnError = true,
      heartbeatIntervalMs = 15_000, backoff = {}, signal, offset, retryAfterMs,
    } = options ?? {};
    if ((queue == null) === (topic == null)) throw new TypeError('subscribe: exactly one of queue and topic is required');
    if (!(Number.isInteger(maxInFlight) && maxInFlight > 0)) throw new RangeError('subscribe: maxInFlight must be a positive integer');
    const isStream = queueOptions?.queueType === STREAM;
    if (offset != null && !isStream) throw new TypeError('subscribe: offset needs queueOptions.queueType QUEUE_TYPE_STREAM');
    if (retryAfterMs != null && isStream) throw new TypeError('subscribe: retryAfterMs is not possible on a stream queue (replay by offset instead)');
    checkDelay('retryAfterMs', retryAfterMs);
    if (isStream) this.#resume = new StreamResume(offset);
    this.#client = client;
    this.#handler = handler;
    this.#opts = { maxInFlight, requeueOnError, heartbeatIntervalMs, retryAfterMs };
    this.#redial = new Redial(this, backoff, () => this.#connect());
    this.#start = {
      queue: queue ?? undefined,
      topic: topic == null ? undefined : {
        exchange: topic.exchange,
        exchangeType: topic.exchangeType ?? 'EXCHANGE_TYPE_UNSPECIFIED',
        bindingKeys: topic.bindingKeys ?? [],
        matchHeaders: topic.matchHeaders ?? {},
        matchAny: Boolean(topic.matchAny),
      },
      group,
      queueOptions: queueOptions == null ? null : {
        queueType: queueOptions.queueType ?? 'QUEUE_TYPE_UNSPECIFIED',
        deadLetterExchange: queueOptions.deadLetterExchange ?? '',
        deadLetterRoutingKey: queueOptions.deadLetterRoutingKey ?? '',
        messageTtl: durationFromMs(queueOptions.messageTtlMs),
        maxLength: String(queueOptions.maxLength ?? 0),
        maxPriority: queueOptions.maxPriority ?? 0,
        deliveryLimit: queueOptions.deliveryLimit ?? 0,
        singleActiveConsumer: Boolean(queueOptions.singleActiveConsumer),
        maxAge: durationFromMs(queueOptions.maxAgeMs),
        maxLengthBytes: String(queueOptions.maxLengthBytes ?? 0),
      },
      maxInFlight,
      heartbeatInterval: durationFromMs(heartbeatIntervalMs),
    };
    /** The name of the queue consumed (known once subscribed). */
    this.queue = null;
    this.#ending = new Ending(signal, (error) => this.#abort(error));
    // Connect on the next tick, so that listeners added right after
    // construction see the first 'subscribed' (or the 'close' of an abort).
    process.nextTick(() => this.#ending.abortIfAborted() || this.#connect());
  }

  /**
   * Stream queues: the offset (a bigint) of the last delivery handed to the
   * handler, or null before the first. The subscriber resumes after it by
   * itself when its stream breaks; store it (or each message's
   * `streamOffset`) to resume in another process with `offset: last + 1n`.
   */
  get lastOffset() {
    return this.#resume?.last ?? null;
  }

  /** Handlers running right now. */
  get running() {
    return this.#running;
  }

  /**
   * Resolves when the subscriber has stopped (by stop() or a fatal error);
   * rejects with an AbortError when `signal` aborted it.
   */
  get closed() {
    return this.#ending.closed;
  }

  /**
   * Stops: no new handlers start; deliveries not started are nacked back to
   * the queue; running handlers finish and are acked or nacked; then the
   * stream is closed. With `timeoutMs`, handlers still running then are
   * abandoned (their deliveries go back to the queue when the stream ends).
   * Resolves once the subscriber has stopped, however it stopped (also after
   * an abort: `closed` is what rejects then).
   */
  async stop({ timeoutMs } = {}) {
    if (this.#stopping) return this.#ending.settled();
    this.#stopping = true;
    this.#redial.stop();
    const queued = this.#pending.filter((p) => p.generation === this.#generation).map((p) => p.delivery.deliveryId);
    this.#pending = [];
    if (queued.length) this.#write({ nack: { deliveryIds: queued, requeue: true } });
    let timer;
    const drained = new Promise((resolve) => {
      if (this.#running === 0) resolve();
      else this.#idle.push(resolve);
    });
    const limit = timeoutMs == null ? null : new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs); });
    await (limit ? Promise.race([drained, limit]) : drained);
    clearTimeout(timer);
    await this.#closeStream();
    this.#finish();
    return this.#ending.settled();
  }

  #connect() {
    if (this.#stopping) return;
    const generation = ++this.#generation;
    const call = this.#client.subscribe(streamMetadata());
    this.#call = call;
    this.#answered = false;
    // Every way the stream ends arrives as 'status'; the 'error' listener
    // only keeps an error status from being thrown as an unhandled event.
    call.on('error', () => {});
    call.on('data', (response) => this.#onResponse(generation, response));
    call.on('status', (status) => this.#onStatus(generation, status));
    const start = this.#resume ? { ...this.#start, offset: this.#resume.startOffset() } : this.#start;
    call.write({ start });
    this.#armIdleWatchdog(generation);
  }

  #onResponse(generation, response) {
    if (generation !== this.#generation) return;
    this.#armIdleWatchdog(generation);
    this.#answered = true;
    this.#redial.reset();
    switch (response.response) {
      case 'subscribed':
        this.queue = response.subscribed.queue;
        this.#resume?.subscribed();
        this.emit('subscribed', { queue: this.queue });
        break;
      case 'delivery':
        if (this.#stopping) {
          // Raced with stop(): give it straight back.
          this.#write({ nack: { deliveryIds: [response.delivery.deliveryId], requeue: true } });
          break;
        }
        this.#pending.push({ generation, delivery: response.delivery });
        this.#pump();
        break;
      default: // heartbeat: its arrival (the watchdog re-armed above) is all it says
        break;
    }
  }

  #pump() {
    while (!this.#stopping && this.#running < this.#opts.maxInFlight && this.#pending.length > 0) {
      const { generation, delivery } = this.#pending.shift();
      if (generation !== this.#generation) continue; // its stream is gone: already requeued
      if (this.#resume && !this.#resume.admit(delivery.streamOffset)) {
        // Before where this subscription starts: settle it unseen.
        this.#write({ ack: { deliveryIds: [delivery.deliveryId] } });
        continue;
      }
      this.#run(generation, delivery);
    }
  }

  async #run(generation, delivery) {
    this.#running++;
    const message = new Message(delivery, this.#resume != null);
    let settle;
    try {
      await this.#handler(message);
      settle = { ack: { deliveryIds: [delivery.deliveryId] } };
    } catch (err) {
      settle = { nack: this.#nackFor(delivery.deliveryId, err) };
      if (this.listenerCount('handlerError') > 0) this.emit('handlerError', err, message);
    }
    this.#running--;
    // A delivery id means something only on the stream that delivered it.
    if (generation === this.#generation) this.#write(settle);
    if (this.#running === 0) this.#idle.splice(0).forEach((resolve) => resolve());
    this.#pump();
  }

  // How a handler's error settles its delivery: `err.retryAfterMs` (else the
  // option) brings the message back after that delay; otherwise `err.requeue`
  // (else requeueOnError) says requeue or dead-letter. On a stream queue a
  // nack only settles (a stream cannot requeue, nor retry later).
  #nackFor(deliveryId, err) {
    const requeue = typeof err?.requeue === 'boolean' ? err.requeue : this.#opts.requeueOnError;
    const nack = { deliveryIds: [deliveryId], requeue };
    const retryAfterMs = err?.retryAfterMs ?? this.#opts.retryAfterMs;
    if (this.#resume == null && typeof retryAfterMs === 'number' && retryAfterMs > 0) {
      nack.retryAfter = durationFromMs(retryAfterMs);
    }
    return nack;
  }

  #write(request) {
    const call = this.#call;
    if (call && call.writable !== false) {
      try {
        call.write(request);
      } catch {
        // The stream is ending; its status handler takes over.
      }
    }
  }

  #onStatus(generation, status) {
    if (generation !== this.#generation) return;
    this.#idleTimer.stop();
    this.#call = null;
    this.#pending = [];
    if (this.#stopping) return;
    const error = streamEndError('subscribe', status);
    if (streamDecision(status.code) === 'fatal') {
      this.#stopping = true;
      this.emit('error', error);
      this.#finish();
      return;
    }
    this.#redial.schedule(error);
  }

  // A stream that carries nothing, not even a heartbeat, for three intervals
  // is dead even if TCP has not noticed (a proxy that swallowed it, a frozen
  // server): drop it and open a new one.
  #armIdleWatchdog(generation) {
    this.#idleTimer.start(3 * this.#opts.heartbeatIntervalMs + 1000, () => {
      if (generation !== this.#generation || this.#stopping) return;
      const call = this.#call;
      this.#generation++; // stale from now on: its status is ignored
      this.#call = null;
      this.#pending = [];
      call?.cancel();
      this.#redial.schedule(silenceError('no message or heartbeat on the subscribe stream for 3 heartbeat intervals'));
    });
  }

  async #closeStream() {
    this.#idleTimer.stop();
    const call = this.#call;
    if (!call) return;
    const generation = this.#generation;
    if (!this.#answered) {
      // Not subscribed yet (e.g. waiting for the server to be back): nothing
      // to settle, so nothing to wait for.
      call.cancel();
      if (generation === this.#generation) this.#call = null;
      return;
    }
    // Half-close: the server then ends the stream with OK once it has read
    // (and handed to the broker) every ack before it.
    await new Promise((resolve) => {
      const fallback = setTimeout(() => { call.cancel(); resolve(); }, 5000);
      call.on('status', () => { clearTimeout(fallback); resolve(); });
      call.end();
    });
    if (generation === this.#generation) this.#call = null;
  }

  #abort(error) {
    if (this.#ending.done) return;
    this.#stopping = true;
    this.#redial.stop();
    const queued = this.#pending.filter((p) => p.generation === this.#generation).map((p) => p.delivery.deliveryId);
    this.#pending = [];
    if (queued.length) this.#write({ nack: { deliveryIds: queued, requeue: true } });
    const call = this.#call;
    this.#generation++; // running handlers settle nothing on it any more
    this.#call = null;
    call?.cancel();
    this.#idle.splice(0).forEach((resolve) => resolve()); // a stop() in progress need not wait
    this.#finish(error);
  }

  #finish(error) {
    this.#redial.stop();
    this.#idleTimer.stop();
    if (this.#ending.end(error)) this.emit('close');
  }
}

function checkDelay(name, ms) {
  if (ms != null && !(typeof ms === 'number' && Number.isFinite(ms) && ms >= 0)) {
    throw new RangeError(`subscribe: ${name} must be a non-negative number of milliseconds`);
  }
}
