// Registration: ConfigService.HoldKey kept open, a key that exists while its
// holder lives (service registration). Readers find it with getConfig,
// listConfig and watchConfig (its entry has `held: true`).
//
// Events: 'held' (entry: after the create, each value change, and each
// re-hold), 'lost' { reason, error? }, 'reconnecting' { error, delayMs },
// 'error' (fatal: the key is someone else's, a bad key, no permission, ...),
// 'close'.
//
// - The server keeps the key through a ZooKeeper session of its own: after a
//   suspension it says 'lost' and 'held' again; after an expiry it recreates
//   the key on the new session ('lost', then 'held').
// - A stream that breaks (the server deleted the key when it saw the break,
//   or it is gone with the server's session) is 'lost' ('stream_broken'), and
//   the key is held again on a new stream after the backoff when the shared
//   policy resubscribes on the code. ALREADY_EXISTS is fatal there as
//   everywhere: a key that someone else holds or put is theirs. After a
//   warrend crash (no clean stream end), the old key lives until that
//   warrend's session expires, and a re-hold through another warrend meets
//   it: that ends the registration with 'error'.
// - The lease, as the Elector's: while held, the server heartbeats every
//   `heartbeatIntervalMs`; no message for two intervals is 'lost'
//   ('lease_expired'), the stream is dropped and the key held again.
import { EventEmitter } from 'node:events';
import { DEFAULTS, streamDecision } from './policy.js';
import {
  Ending, Redial, Timer, durationFromMs, entryFromProto, lossReasonName, silenceError, streamEndError, streamMetadata,
  toBytes,
} from './util.js';

export class Registration extends EventEmitter {
  #client;
  #key;
  #value;
  #heartbeatIntervalMs;
  #redial;
  #call = null;
  #answered = false; // the current stream has sent something
  #generation = 0;
  #held = false;
  #entry = null;
  #closing = false;
  #leaseTimer = new Timer();
  #sent = null; // the value last sent on the current stream
  #pendingUpdates = [];
  #ready;
  #readyResolve;
  #readyReject;
  #isReady = false;
  #ending;

  /**
   * @param {object} client a raw warren.v1.ConfigService client
   * @param {string} key the key to hold
   * @param {Bytes} value its value
   * @param {object} [options] see index.d.ts (HoldKeyOptions)
   */
  constructor(client, key, value, {
    heartbeatIntervalMs = DEFAULTS.elector.heartbeatIntervalMs, backoff = {}, signal,
  } = {}) {
    super();
    if (typeof key !== 'string' || key === '') throw new TypeError('holdKey: a key is required');
    this.#client = client;
    this.#key = key;
    this.#value = toBytes(value);
    this.#heartbeatIntervalMs = heartbeatIntervalMs;
    this.#redial = new Redial(this, backoff, () => this.#connect());
    this.#ready = new Promise((resolve, reject) => { this.#readyResolve = resolve; this.#readyReject = reject; });
    this.#ready.catch(() => {}); // a fatal error is also emitted as 'error'
    this.#ending = new Ending(signal, (error) => this.#abort(error));
    process.nextTick(() => this.#ending.abortIfAborted() || this.#connect());
  }

  /** The held key. */
  get key() {
    return this.#key;
  }

  /** True while the server says the key exists and the lease holds. */
  get isHeld() {
    return this.#held;
  }

  /** The key's entry as last held (`held: true`), or null before the first. */
  get entry() {
    return this.#entry;
  }

  /** Resolves after close() or a fatal error; rejects with an AbortError after an abort. */
  get closed() {
    return this.#ending.closed;
  }

  /**
   * Resolves with the entry once the key is first held; rejects on a fatal
   * error (e.g. ALREADY_EXISTS), on close() or an abort before that, or
   * after `timeoutMs`.
   */
  ready({ timeoutMs } = {}) {
    if (timeoutMs == null || this.#isReady) return this.#ready;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`holdKey ${this.#key}: not held within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.#ready, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * Changes the value (kept for re-holds too). Resolves with the entry once
   * the server holds the key with it; rejects if the registration ends first.
   */
  update(value) {
    if (this.#closing) return Promise.reject(new Error(`holdKey ${this.#key}: closed`));
    this.#value = toBytes(value);
    const updated = new Promise((resolve, reject) => this.#pendingUpdates.push({ resolve, reject }));
    // Not held (connecting, suspended): the 'held' that comes next sends it.
    if (this.#held) this.#send();
    return updated;
  }

  /**
   * Deletes the key (half-closes the stream; the server deletes it, then ends
   * the stream) and ends the registration. Resolves once it has ended,
   * however it ended.
   */
  async close() {
    if (this.#closing) return this.#ending.settled();
    this.#closing = true;
    this.#redial.stop();
    this.#leaseTimer.stop();
    const call = this.#call;
    // A stream not answered yet has created nothing that a cancel would not
    // delete: cancel rather than wait.
    if (call && !this.#answered) call.cancel();
    else if (call) {
      await new Promise((resolve) => {
        const fallback = setTimeout(() => { call.cancel(); resolve(); }, 5000);
        call.on('status', () => { clearTimeout(fallback); resolve(); });
        call.end();
      });
    }
    this.#call = null;
    this.#held = false;
    this.#finish();
    return this.#ending.settled();
  }

  #connect() {
    if (this.#closing) return;
    const generation = ++this.#generation;
    const call = this.#client.holdKey(streamMetadata());
    this.#call = call;
    this.#answered = false;
    call.on('error', () => {}); // handled through 'status'
    call.on('data', (response) => this.#onResponse(generation, response));
    call.on('status', (status) => this.#onStatus(generation, status));
    this.#sent = this.#value;
    call.write({ key: this.#key, value: this.#value, heartbeatInterval: durationFromMs(this.#heartbeatIntervalMs) });
  }

  #send() {
    this.#sent = this.#value;
    this.#call.write({ key: '', value: this.#value });
  }

  #onResponse(generation, response) {
    if (generation !== this.#generation || this.#closing) return;
    if (this.#held) this.#armLease(generation); // any message renews the lease
    this.#answered = true;
    this.#redial.reset();
    switch (response.event) {
      case 'held': {
        const entry = entryFromProto(response.held);
        this.#held = true;
        this.#entry = entry;
        this.#armLease(generation);
        if (!entry.value.equals(this.#value)) {
          // Held with a value changed since: send the latest (once).
          if (!this.#sent.equals(this.#value)) this.#send();
        } else {
          for (const { resolve } of this.#pendingUpdates.splice(0)) resolve(entry);
        }
        if (!this.#isReady) {
          this.#isReady = true;
          this.#readyResolve(entry);
        }
        this.emit('held', entry);
        break;
      }
      case 'lost':
        this.#lose(lossReasonName(response.lost.reason));
        break;
      default: // heartbeat: handled by the lease above
        break;
    }
  }

  #onStatus(generation, status) {
    if (generation !== this.#generation) return;
    this.#call = null;
    if (this.#closing) return; // close() is waiting for this
    const error = streamEndError('holdKey', status);
    this.#lose('stream_broken', error);
    if (streamDecision(status.code) === 'fatal') {
      this.#closing = true;
      // Before the first hold the error goes to whoever awaits ready();
      // 'error' is emitted then only if someone listens for it.
      if (!this.#isReady) this.#readyReject(error);
      if (this.#isReady || this.listenerCount('error') > 0) this.emit('error', error);
      this.#finish();
    } else {
      this.#redial.schedule(error);
    }
  }

  #armLease(generation) {
    this.#leaseTimer.start(2 * this.#heartbeatIntervalMs, () => {
      if (generation !== this.#generation || !this.#held || this.#closing) return;
      this.#lose('lease_expired');
      // The stream is suspect: drop it (the server, if alive, deletes the key
      // when it sees the cancel) and hold the key afresh.
      const call = this.#call;
      this.#generation++;
      this.#call = null;
      call?.cancel();
      this.#redial.schedule(silenceError('no heartbeat for 2 intervals while held'));
    });
  }

  #lose(reason, error) {
    this.#leaseTimer.stop();
    if (!this.#held) return;
    this.#held = false;
    this.emit('lost', error ? { reason, error } : { reason });
  }

  #abort(error) {
    if (this.#ending.done) return;
    this.#closing = true;
    const call = this.#call;
    this.#generation++;
    this.#call = null;
    call?.cancel();
    this.#lose('aborted');
    this.#finish(error);
  }

  #finish(error) {
    this.#leaseTimer.stop();
    this.#redial.stop();
    const ended = error ?? new Error(`holdKey ${this.#key}: closed`);
    if (!this.#isReady) this.#readyReject(ended);
    for (const { reject } of this.#pendingUpdates.splice(0)) reject(ended);
    if (this.#ending.end(error)) this.emit('close');
  }
}
