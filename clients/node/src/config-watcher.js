// ConfigWatcher: ConfigService.WatchConfig kept open, as a live Map.
//
// Holds the latest entry of one key (or of every key under a prefix) and
// emits 'change' { type: 'put' | 'delete', key, entry, previous } for every
// change after the first state. When the stream ends with a code the shared
// policy resubscribes on (UNAVAILABLE, RESOURCE_EXHAUSTED at the server's
// watch limit, ...) it re-watches with capped, jittered backoff; the new
// initial state then REPLACES the old one,
// and the differences (keys written or deleted while the stream was down)
// are emitted as changes, so a listener never misses the latest state.
//
// Events: 'ready' (the first state is in), 'change', 'reconnecting'
// { error, delayMs }, 'error' (fatal: e.g. an invalid key; before the first
// state it rejects ready() instead), 'close'. An aborted `signal` closes it
// and rejects ready() (if still pending) and `closed` with an AbortError.
import { EventEmitter } from 'node:events';
import { streamDecision } from './policy.js';
import {
  Ending, Redial, Timer, durationFromMs, entryFromProto, silenceError, streamEndError, streamMetadata,
} from './util.js';

export class ConfigWatcher extends EventEmitter {
  #client;
  #request;
  #heartbeatIntervalMs;
  #redial;
  #entries = new Map();
  #call = null;
  #generation = 0;
  #synced = false; // the current stream has sent its initial state
  #initialParts = []; // the current stream's initial state so far
  #isReady = false;
  #closing = false;
  #idleTimer = new Timer();
  #ready;
  #readyResolve;
  #readyReject;
  #ending;

  /**
   * @param {object} client a raw warren.v1.ConfigService client
   * @param {string} key the key, or with `prefix` the prefix ('' = every key)
   * @param {object} [options] see index.d.ts (WatchConfigOptions)
   */
  constructor(client, key, { prefix = false, heartbeatIntervalMs = 15_000, backoff = {}, signal } = {}) {
    super();
    if (typeof key !== 'string') throw new TypeError('watchConfig: key must be a string');
    this.#client = client;
    this.key = key;
    this.prefix = prefix;
    this.#heartbeatIntervalMs = heartbeatIntervalMs;
    this.#redial = new Redial(this, backoff, () => this.#connect());
    this.#request = { key, prefix, heartbeatInterval: durationFromMs(heartbeatIntervalMs) };
    this.#ready = new Promise((resolve, reject) => { this.#readyResolve = resolve; this.#readyReject = reject; });
    this.#ready.catch(() => {}); // a fatal error is also emitted as 'error'
    this.#ending = new Ending(signal, (error) => this.#shutDown(error));
    process.nextTick(() => this.#ending.abortIfAborted() || this.#connect());
  }

  /**
   * Resolves once the first state is in; rejects on a fatal error, on
   * close() or an abort before that, or after `timeoutMs`.
   */
  ready({ timeoutMs } = {}) {
    if (timeoutMs == null || this.#isReady) return this.#ready;
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`watchConfig ${this.key}: no state within ${timeoutMs} ms`)), timeoutMs);
    });
    return Promise.race([this.#ready, timeout]).finally(() => clearTimeout(timer));
  }

  /** The entry of `key` (default: the watched key), or undefined. */
  get(key = this.key) {
    return this.#entries.get(key);
  }

  /** The watched key's value as a Buffer, or undefined when it does not exist. */
  get value() {
    return this.#entries.get(this.key)?.value;
  }

  /** Every known entry by key (a copy). */
  get entries() {
    return new Map(this.#entries);
  }

  /** Resolves after close() or a fatal error; rejects with an AbortError after an abort. */
  get closed() {
    return this.#ending.closed;
  }

  /** Stops watching; resolves once it has stopped, however it stopped. */
  async close() {
    this.#shutDown(null);
    return this.#ending.settled();
  }

  // `abortError`: why ready() and closed reject (null: close() or a fatal
  // error, after which closed resolves).
  #shutDown(abortError) {
    if (this.#closing) return;
    this.#closing = true;
    this.#redial.stop();
    this.#idleTimer.stop();
    const call = this.#call;
    this.#call = null;
    this.#generation++;
    call?.cancel();
    if (!this.#isReady) this.#readyReject(abortError ?? new Error(`watchConfig ${this.key}: closed before the first state`));
    this.emit('close');
    this.#ending.end(abortError);
  }

  #connect() {
    if (this.#closing) return;
    const generation = ++this.#generation;
    this.#synced = false;
    this.#initialParts = [];
    const call = this.#client.watchConfig(this.#request, streamMetadata());
    this.#call = call;
    call.on('error', () => {}); // handled through 'status'
    call.on('data', (response) => this.#onResponse(generation, response));
    call.on('status', (status) => this.#onStatus(generation, status));
    this.#armIdleWatchdog(generation);
  }

  #onResponse(generation, response) {
    if (generation !== this.#generation) return;
    this.#armIdleWatchdog(generation);
    this.#redial.reset();
    if (!this.#synced) {
      // A large initial state arrives in several responses: the ones before
      // the one marked initialState hold PUTs of the same state
      // (docs/config-limits.md). They are gathered and applied as one state.
      this.#initialParts.push(...response.events);
      if (!response.initialState) return;
      this.#synced = true;
      const fresh = new Map();
      for (const ev of this.#initialParts) {
        if (ev.type === 'CONFIG_EVENT_TYPE_PUT') fresh.set(ev.entry.key, entryFromProto(ev.entry));
      }
      this.#initialParts = [];
      this.#replace(fresh);
      return;
    }
    for (const ev of response.events) {
      const entry = entryFromProto(ev.entry);
      const previous = this.#entries.get(entry.key);
      if (ev.type === 'CONFIG_EVENT_TYPE_PUT') {
        this.#entries.set(entry.key, entry);
        this.emit('change', { type: 'put', key: entry.key, entry, previous });
      } else if (ev.type === 'CONFIG_EVENT_TYPE_DELETE') {
        this.#entries.delete(entry.key);
        this.emit('change', { type: 'delete', key: entry.key, entry: undefined, previous });
      }
    }
  }

  // The first state just fills the map; a later one (after a re-watch)
  // replaces it and reports what differs.
  #replace(fresh) {
    const old = this.#entries;
    this.#entries = fresh;
    if (!this.#isReady) {
      this.#isReady = true;
      this.#readyResolve();
      this.emit('ready');
      return;
    }
    for (const [key, entry] of fresh) {
      const previous = old.get(key);
      if (!previous || previous.version !== entry.version || !previous.value.equals(entry.value)) {
        this.emit('change', { type: 'put', key, entry, previous });
      }
    }
    for (const [key, previous] of old) {
      if (!fresh.has(key)) this.emit('change', { type: 'delete', key, entry: undefined, previous });
    }
  }

  #onStatus(generation, status) {
    if (generation !== this.#generation || this.#closing) return;
    this.#idleTimer.stop();
    this.#call = null;
    const error = streamEndError('watchConfig', status);
    if (streamDecision(status.code) === 'fatal') {
      // Before the first state the error goes to whoever awaits ready();
      // 'error' is emitted then only if someone listens for it.
      if (!this.#isReady) this.#readyReject(error);
      if (this.#isReady || this.listenerCount('error') > 0) this.emit('error', error);
      this.close();
      return;
    }
    this.#redial.schedule(error);
  }

  // Nothing, not even a heartbeat, for three intervals: the stream is dead
  // even if TCP has not noticed. Drop it and watch again.
  #armIdleWatchdog(generation) {
    this.#idleTimer.start(3 * this.#heartbeatIntervalMs + 1000, () => {
      if (generation !== this.#generation || this.#closing) return;
      const call = this.#call;
      this.#generation++;
      this.#call = null;
      call?.cancel();
      this.#redial.schedule(silenceError('no message or heartbeat on the watch stream for 3 heartbeat intervals'));
    });
  }
}
