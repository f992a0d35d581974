// Locker and Lock: LockService.Lock as a Promise of a held lock.
//
//   const lock = await warren.lock('jobs/invoice-42', { timeoutMs: 5000 });
//   try {
//     await work({ signal: lock.signal, fence: lock.fence });
//   } finally {
//     await lock.release();
//   }
//
// Waiting: acquire() opens the stream and resolves once the server says
// `acquired`. A stream that breaks while waiting (the server deleted the
// waiter's node when it saw the break) is opened again, with the backoff,
// when the shared policy resubscribes on its code and the caller's
// `timeoutMs` leaves room; the retry asks the server to wait only for what
// is left of it. A fatal code (a limit that differs from the lock's, a bad
// name, ...) and the server's own DEADLINE_EXCEEDED once the time is up
// reject at once.
//
// Holding follows the Elector's safety rule: every doubt is a loss, reported
// at once ('lost', `isHeld` false, `signal` aborted).
// - The lease: the server sends a heartbeat every interval (the one in
//   Acquired) while it has fresh proof that its ZooKeeper session is alive.
//   No message for two intervals: 'lost' (reason 'lease_expired') and the
//   stream is dropped, without waiting for a loss that a frozen server or a
//   partition would never report.
// - A stream that breaks while holding is 'lost' ('stream_broken'): the
//   server deletes the holder's node when it sees the break, so the lock is
//   never re-acquired behind the caller's back. Acquire again to continue.
// - The server's own losses: 'connection_suspended' (the lock may come back
//   with the same token: 'reacquired'; `signal` stays aborted) and
//   'session_expired' (the end).
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { fenceFromLock } from './fence.js';
import { DEFAULTS, streamDecision } from './policy.js';
import {
  AbortError, Backoff, Timer, dateFromTimestamp, durationFromMs, lossReasonName, msFromDuration, sleep,
  streamEndError, streamMetadata, throwIfAborted, toBytes,
} from './util.js';

/** warren.v1.LockHolder to a plain holder; the token as a bigint. */
export function holderFromProto(h) {
  return {
    name: h.name,
    holderId: h.holderId,
    value: h.value ?? Buffer.alloc(0),
    fencingToken: BigInt(h.fencingToken || 0),
    acquiredTime: dateFromTimestamp(h.acquiredTime),
  };
}

export class Locker {
  #client;
  #heartbeatIntervalMs;
  #backoff;

  /**
   * @param {object} client a raw warren.v1.LockService client
   * @param {object} [options] { heartbeatIntervalMs, backoff }: the defaults
   *   of this locker's acquires
   */
  constructor(client, { heartbeatIntervalMs = DEFAULTS.elector.heartbeatIntervalMs, backoff = {} } = {}) {
    this.#client = client;
    this.#heartbeatIntervalMs = heartbeatIntervalMs;
    this.#backoff = backoff;
  }

  /**
   * Waits for the lock and resolves with the held Lock. `limit`: 1 (or 0)
   * a mutex, N a semaphore of N (everyone on one lock must agree).
   * `timeoutMs`: unset waits as long as it takes, 0 tries once; when it
   * passes, rejects with DEADLINE_EXCEEDED and nothing is left behind.
   * `onQueued({ position, holders })` hears where it waits. An aborted
   * `signal` stops the wait (AbortError); it has no effect once the lock is
   * held (release() then).
   */
  async acquire(name, {
    limit = 1, timeoutMs, holderId = randomUUID(), value = '',
    heartbeatIntervalMs = this.#heartbeatIntervalMs, onQueued, signal, backoff = this.#backoff,
  } = {}) {
    if (typeof name !== 'string' || name === '') throw new TypeError('acquire: a lock name is required');
    throwIfAborted(signal);
    const deadline = timeoutMs == null ? Infinity : Date.now() + timeoutMs;
    const retry = new Backoff(backoff);
    const acquire = {
      name, holderId, value: toBytes(value), limit, heartbeatInterval: durationFromMs(heartbeatIntervalMs),
    };
    for (;;) {
      const waitTimeout = deadline === Infinity ? null : durationFromMs(Math.max(0, deadline - Date.now()));
      const attempt = { ...acquire, waitTimeout };
      const { lock, error, answered } = await this.#attempt(attempt, { heartbeatIntervalMs, onQueued, signal });
      if (lock) return lock;
      if (error instanceof AbortError || streamDecision(error.code) === 'fatal') throw error;
      if (answered) retry.reset();
      const delayMs = retry.next();
      if (Date.now() + delayMs >= deadline) throw error;
      await sleep(delayMs, signal);
    }
  }

  /** Acquires, runs `fn(lock)`, and releases however `fn` ends; resolves with what `fn` returns. */
  async withLock(name, options, fn) {
    const lock = await this.acquire(name, options);
    try {
      return await fn(lock);
    } finally {
      await lock.release();
    }
  }

  // One stream: resolves with { lock } once acquired, or with { error,
  // answered } when the stream ended before that.
  #attempt(acquire, { heartbeatIntervalMs, onQueued, signal }) {
    return new Promise((resolve) => {
      const call = this.#client.lock(streamMetadata());
      let lock = null;
      let answered = false;
      const onAbort = () => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
      call.on('error', () => {}); // handled through 'status'
      call.on('data', (response) => {
        if (lock) return; // the Lock listens itself from then on
        answered = true;
        if (response.event === 'queued') {
          onQueued?.({ position: response.queued.position, holders: response.queued.holders.map(holderFromProto) });
        } else if (response.event === 'acquired') {
          signal?.removeEventListener('abort', onAbort);
          lock = new Lock(call, response.acquired, { limit: acquire.limit, heartbeatIntervalMs });
          resolve({ lock });
        }
      });
      call.on('status', (status) => {
        if (lock) return;
        signal?.removeEventListener('abort', onAbort);
        const error = signal?.aborted ? new AbortError(signal.reason) : streamEndError('lock', status);
        resolve({ error, answered });
      });
      call.write({ acquire });
    });
  }
}

/**
 * A held lock (or semaphore permit): its holder record, the fencing token,
 * the lease, and release(). Events: 'lost' { reason, error? },
 * 'reacquired' { fencingToken } (after a suspension the server's session
 * survived), 'close'.
 */
export class Lock extends EventEmitter {
  #call;
  #held = true;
  #releasing = false;
  #done = false;
  #leaseMs;
  #leaseTimer = new Timer();
  #controller = new AbortController();
  #closed;
  #resolveClosed;

  constructor(call, acquired, { limit, heartbeatIntervalMs }) {
    super();
    const holder = holderFromProto(acquired.holder);
    this.name = holder.name;
    this.holderId = holder.holderId;
    this.value = holder.value;
    this.acquiredTime = holder.acquiredTime;
    /** The fencing token (a bigint): the holder node's creation zxid. */
    this.fencingToken = holder.fencingToken;
    this.limit = limit || 1;
    /** The lease heartbeat interval in force (the server's answer; the request's if it gave none). */
    this.heartbeatIntervalMs = msFromDuration(acquired.heartbeatInterval) || heartbeatIntervalMs;
    this.#leaseMs = 2 * this.heartbeatIntervalMs;
    this.#call = call;
    this.#closed = new Promise((resolve) => { this.#resolveClosed = resolve; });
    call.on('data', (response) => this.#onResponse(response));
    call.on('status', (status) => this.#onStatus(status));
    this.#armLease();
  }

  /** True while held and the lease holds. */
  get isHeld() {
    return this.#held;
  }

  /** The fence of this lock ({ lock, fencingToken }) while held; else null. */
  get fence() {
    return this.#held ? fenceFromLock(this) : null;
  }

  /**
   * Aborted at the first loss (also a suspension the lock may come back
   * from) or release: hand it to the work done under the lock.
   */
  get signal() {
    return this.#controller.signal;
  }

  /** Resolves once the lock has ended: released, or lost for good. */
  get closed() {
    return this.#closed;
  }

  /**
   * Gives the lock up: not held from now on; resolves once the server has
   * deleted the holder's node (or, if it does not answer within 5 s, the
   * stream is cancelled, which deletes it too). Safe to call again, also
   * after a loss.
   */
  async release() {
    if (this.#done || this.#releasing) return this.#closed;
    this.#releasing = true;
    this.#held = false;
    this.#leaseTimer.stop();
    this.#controller.abort(new Error(`lock ${this.name}: released`));
    const call = this.#call;
    await new Promise((resolve) => {
      const fallback = setTimeout(() => { call.cancel(); }, 5000);
      this.#closed.then(() => { clearTimeout(fallback); resolve(); });
      try {
        call.write({ release: {} });
        call.end();
      } catch {
        call.cancel(); // the stream had ended already
      }
    });
    return this.#closed;
  }

  #onResponse(response) {
    if (this.#done || this.#releasing) return;
    if (this.#held) this.#armLease(); // any message renews the lease, not only heartbeats
    switch (response.event) {
      case 'lost':
        this.#lose(lossReasonName(response.lost.reason));
        break;
      case 'acquired': {
        const token = BigInt(response.acquired.holder.fencingToken || 0);
        if (token !== this.fencingToken) {
          // Not the lock this caller held: never hand it over silently.
          this.#lose('superseded');
          this.#drop();
          return;
        }
        if (!this.#held) {
          this.#held = true;
          this.#armLease();
          this.emit('reacquired', { fencingToken: token });
        }
        break;
      }
      default: // heartbeat: handled by the lease above; queued: not while holding
        break;
    }
  }

  #onStatus(status) {
    if (this.#done) return;
    if (!this.#releasing) this.#lose('stream_broken', streamEndError('lock', status));
    this.#finish();
  }

  #armLease() {
    this.#leaseTimer.start(this.#leaseMs, () => {
      if (!this.#held || this.#done) return;
      this.#lose('lease_expired');
      this.#drop();
    });
  }

  // Ends the stream from this side (the server deletes the node when it sees
  // the cancel) after a loss the stream itself did not report.
  #drop() {
    this.#call.cancel();
    this.#finish();
  }

  #lose(reason, error) {
    this.#leaseTimer.stop();
    if (!this.#held) return;
    this.#held = false;
    this.#controller.abort(new Error(`lock ${this.name}: lost (${reason})`));
    this.emit('lost', error ? { reason, error } : { reason });
  }

  #finish() {
    if (this.#done) return;
    this.#done = true;
    this.#held = false;
    this.#leaseTimer.stop();
    if (!this.#controller.signal.aborted) this.#controller.abort(new Error(`lock ${this.name}: ended`));
    this.#resolveClosed();
    this.emit('close');
  }
}

// `await using lock = await warren.lock(...)` where the runtime has it (the
// symbol exists from Node 18.18 / 20.4; the syntax needs a newer V8 or a
// compiler such as TypeScript 5.2).
if (typeof Symbol.asyncDispose === 'symbol') {
  Object.defineProperty(Lock.prototype, Symbol.asyncDispose, {
    value() { return this.release(); }, writable: true, configurable: true,
  });
}
