// Warren: one gRPC channel to a warrend, its raw stubs, and the wrappers.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { loadWarrenProtos } from './proto.js';
import { callWithRetry } from './calls.js';
import { Publisher } from './publisher.js';
import { Subscriber } from './subscriber.js';
import { call, respond } from './rpc.js';
import { Elector } from './elector.js';
import { ConfigWatcher } from './config-watcher.js';
import { fenceToProto } from './fence.js';
import { Locker, holderFromProto } from './lock.js';
import { Registration } from './registration.js';
import { CHANNEL, streamDecision } from './policy.js';
import {
  Backoff, entryFromProto, leaderFromProto, sleep, streamMetadata, throwIfAborted, toBytes, unexpectedEnd,
} from './util.js';

export const DEFAULT_ADDRESS = '127.0.0.1:50051';

/**
 * Channel defaults. Keepalive: warrend accepts client pings every 10 s (also
 * without calls) and answers faster pings with GOAWAY "too_many_pings", so the
 * client pings every 20 s: a dead connection (a frozen server, a dropped NAT
 * entry) is noticed within ~30 s even on a quiet Elect stream, where a
 * follower gets no application heartbeats. Reconnect backoff: the shared
 * policy's (CHANNEL: 100 ms, at most 2 s; grpc-js's own cap is 120 s), so the
 * streams, which wait for the channel to be ready, are back within about 2 s
 * of their server, however long it was away.
 */
export const DEFAULT_CHANNEL_OPTIONS = Object.freeze({
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': CHANNEL.initialReconnectBackoffMs,
  'grpc.max_reconnect_backoff_ms': CHANNEL.maxReconnectBackoffMs,
});

/**
 * Channel credentials for TLS from PEM files: `caFile` (the CA of the
 * server's certificate; default the system's), `certFile` + `keyFile` (a
 * client certificate, for mutual TLS; both or neither). An unreadable file
 * throws naming it.
 */
export function tlsCredentials({ caFile, certFile, keyFile } = {}) {
  if (!certFile !== !keyFile) {
    throw new Error('TLS client certificate and key go together: give both or neither');
  }
  const read = (file) => (file ? readFileSync(file) : null);
  return grpc.credentials.createSsl(read(caFile), read(keyFile), read(certFile));
}

/** A client interceptor adding "authorization: Bearer <token>" to every call. */
export function bearerInterceptor(token) {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/**
 * The Warren constructor options that the environment sets, from the
 * variables the C++ client and the CLI read: WARREN_TOKEN, WARREN_TLS_CA,
 * WARREN_TLS_CERT, WARREN_TLS_KEY, WARREN_TLS_SERVER_NAME, and WARREN_TLS
 * (TLS unless empty, "0" or "false").
 */
export function optionsFromEnv(env = process.env) {
  const options = {};
  const names = {
    WARREN_TLS_CA: 'caFile', WARREN_TLS_CERT: 'certFile', WARREN_TLS_KEY: 'keyFile',
    WARREN_TLS_SERVER_NAME: 'serverName', WARREN_TOKEN: 'token',
  };
  for (const [name, option] of Object.entries(names)) if (env[name]) options[option] = env[name];
  if (!['', '0', 'false'].includes(env.WARREN_TLS ?? '')) options.tls = true;
  return options;
}

export class Warren {
  #timeoutMs;
  #publisher = null;

  /**
   * @param {string} [address] host:port; default WARREN_ADDRESS or 127.0.0.1:50051
   * @param {object} [options] { credentials, tls, caFile, certFile, keyFile,
   *   serverName, token, channelOptions, interceptors, timeoutMs, protoDir }.
   *   TLS when `credentials` are given, `tls` is true (system CAs) or any of
   *   caFile/certFile/keyFile/serverName is set; `token`: every call, streams
   *   included, carries "authorization: Bearer <token>".
   */
  constructor(address = process.env.WARREN_ADDRESS || DEFAULT_ADDRESS, {
    credentials,
    tls = false,
    caFile,
    certFile,
    keyFile,
    serverName,
    token,
    channelOptions = {},
    interceptors,
    timeoutMs = 15_000,
    protoDir,
  } = {}) {
    const pkg = loadWarrenProtos(protoDir);
    const options = { ...DEFAULT_CHANNEL_OPTIONS, ...channelOptions };
    if (serverName) options['grpc.ssl_target_name_override'] = serverName;
    if (!credentials && (tls || caFile || certFile || keyFile || serverName)) {
      credentials = tlsCredentials({ caFile, certFile, keyFile });
    }
    const all = [...(interceptors ?? [])];
    if (!credentials) {
      credentials = grpc.credentials.createInsecure();
      // grpc-js refuses call credentials on an insecure channel: over
      // plaintext the token goes in by an interceptor (anyone on the path
      // can read it: keep such a listener on loopback or a private network).
      if (token) all.push(bearerInterceptor(token));
    } else if (token) {
      credentials = grpc.credentials.combineChannelCredentials(credentials,
        grpc.credentials.createFromMetadataGenerator((_params, callback) => {
          const metadata = new grpc.Metadata();
          metadata.set('authorization', `Bearer ${token}`);
          callback(null, metadata);
        }));
    }
    if (all.length) options.interceptors = all;
    this.address = address;
    this.#timeoutMs = timeoutMs;
    const messaging = new pkg.MessagingService(address, credentials, options);
    // One HTTP/2 connection for all the services.
    const shared = { ...options, channelOverride: messaging.getChannel() };
    /** The raw generated stubs, for what the wrappers do not cover. */
    this.raw = {
      messaging,
      config: new pkg.ConfigService(address, credentials, shared),
      election: new pkg.ElectionService(address, credentials, shared),
      lock: new pkg.LockService(address, credentials, shared),
    };
  }

  /**
   * A Warren configured like the C++ client's MakeChannelFromEnv and the
   * CLI: WARREN_ADDRESS, WARREN_TOKEN and WARREN_TLS_* (see optionsFromEnv);
   * `options` are added (e.g. timeoutMs).
   */
  static fromEnv(options = {}, env = process.env) {
    return new Warren(env.WARREN_ADDRESS || DEFAULT_ADDRESS, { ...options, ...optionsFromEnv(env) });
  }

  /** Closes the channel. Close subscribers, electors, watchers, locks and registrations first. */
  close() {
    this.raw.messaging.close();
  }

  /** Resolves when the channel is connected (or rejects after timeoutMs). */
  waitForReady(timeoutMs = this.#timeoutMs) {
    return new Promise((resolve, reject) => {
      this.raw.messaging.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve()));
    });
  }

  // One unary call under the shared retry rule, within timeoutMs overall.
  async #unary(client, method, request, { timeoutMs = this.#timeoutMs, signal } = {}) {
    const { response } = await callWithRetry(client, method, request, { deadlineMs: Date.now() + timeoutMs, signal });
    return response;
  }

  // --- Messaging ---------------------------------------------------------

  /** A Publisher with its own retry settings. */
  publisher(options) {
    return new Publisher(this.raw.messaging, options);
  }

  /** Publishes with the default Publisher: see Publisher.publish. */
  publish(message, options) {
    this.#publisher ??= new Publisher(this.raw.messaging);
    return this.#publisher.publish(message, options);
  }

  /** Starts a Subscriber running `handler` for every delivery. */
  subscribe(options, handler) {
    return new Subscriber(this.raw.messaging, options, handler);
  }

  /**
   * Request/reply: publishes `message` as a request and resolves with the
   * reply (a Message); never retried. See rpc.js call().
   */
  call(message, options) {
    return call(this.raw.messaging, message, options);
  }

  /**
   * Answers requests from a queue or topic group: `handler(request)` returns
   * the reply. A Subscriber (plus a 'skipped' event). See rpc.js respond().
   */
  respond(options, handler) {
    this.#publisher ??= new Publisher(this.raw.messaging);
    return respond(this.raw.messaging, this.#publisher, options, handler);
  }

  // --- Election ----------------------------------------------------------

  /** Starts an Elector (a candidacy) in an election. */
  elect(options) {
    return new Elector(this.raw.election, options);
  }

  /** The current leader of an election, or null when nobody leads. */
  async getLeader(election, options) {
    try {
      const r = await this.#unary(this.raw.election, 'getLeader', { election }, options);
      return leaderFromProto(r.leader);
    } catch (err) {
      if (err.code === grpc.status.NOT_FOUND) return null;
      throw err;
    }
  }

  /**
   * Yields the current leader of an election (null while nobody leads), then
   * every change, until the loop is left. A stream that ends with a code the
   * shared policy resubscribes on is reopened with backoff (the first answer
   * of the new stream is the current leader again, so a change missed
   * meanwhile is not lost); a fatal code is thrown. When `signal` aborts,
   * the stream is cancelled and the loop throws an AbortError.
   */
  async *observeLeader(election, { signal, backoff = {} } = {}) {
    const retry = new Backoff(backoff);
    for (;;) {
      throwIfAborted(signal);
      const call = this.raw.election.observeLeader({ election }, streamMetadata());
      // The loop below sees the error; this keeps a cancel after it was
      // left from throwing as an unhandled 'error' event.
      call.on('error', () => {});
      const onAbort = () => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
      let error = null;
      try {
        for await (const response of call) {
          retry.reset();
          yield leaderFromProto(response.leader);
        }
        error = unexpectedEnd('observeLeader');
      } catch (err) {
        error = err;
      } finally {
        signal?.removeEventListener('abort', onAbort);
        call.cancel(); // also when the consumer left the loop early
      }
      throwIfAborted(signal);
      if (streamDecision(error.code) === 'fatal') throw error;
      await sleep(retry.next(), signal);
    }
  }

  // --- Locks -------------------------------------------------------------

  /** A Locker with its own defaults ({ heartbeatIntervalMs, backoff }). */
  locker(options) {
    return new Locker(this.raw.lock, options);
  }

  /** Waits for a lock and resolves with the held Lock: see Locker.acquire. */
  lock(name, options) {
    return new Locker(this.raw.lock).acquire(name, options);
  }

  /** Runs `fn(lock)` while holding the lock, releasing after however it ends: see Locker.withLock. */
  withLock(name, options, fn) {
    return new Locker(this.raw.lock).withLock(name, options, fn);
  }

  /**
   * Who holds a lock now: { holders (in acquisition order), waiting, limit
   * (0 when nobody holds) }; all empty for a lock nobody uses.
   */
  async getLock(name, options) {
    const r = await this.#unary(this.raw.lock, 'getLock', { name }, options);
    return { holders: r.holders.map(holderFromProto), waiting: r.waiting, limit: r.limit };
  }

  // --- Config ------------------------------------------------------------

  /** Reads a key: its entry { key, value, version, modifyTime }, or null when missing. */
  async getConfig(key, { consistent = false, ...options } = {}) {
    try {
      const r = await this.#unary(this.raw.config, 'getConfig', { key, consistent }, options);
      return entryFromProto(r.entry);
    } catch (err) {
      if (err.code === grpc.status.NOT_FOUND) return null;
      throw err;
    }
  }

  /**
   * Writes a key and returns its new entry. `expectedVersion`: compare-and-set
   * (FAILED_PRECONDITION on mismatch); `createOnly`: ALREADY_EXISTS if present;
   * `fence`: only while the fence holds, checked atomically with the write
   * (FAILED_PRECONDITION "fence: ..." otherwise).
   * Like every call here it is retried on the codes the policy marks 'retry';
   * a retry of a write whose answer was lost can find its own write
   * (FAILED_PRECONDITION, ALREADY_EXISTS): read the key back when that matters.
   */
  async putConfig(key, value, { expectedVersion, createOnly = false, fence, ...options } = {}) {
    const request = { ...putRequest({ key, value, expectedVersion, createOnly }), fence: fenceToProto(fence) };
    const r = await this.#unary(this.raw.config, 'putConfig', request, options);
    return entryFromProto(r.entry);
  }

  /**
   * Deletes a key (optionally version-checked, optionally its whole subtree;
   * `fence` as for putConfig). A key with children (not recursive) keeps them
   * and stops being a key.
   */
  async deleteConfig(key, { expectedVersion, recursive = false, fence, ...options } = {}) {
    const request = { ...deleteRequest({ key, expectedVersion, recursive }), fence: fenceToProto(fence) };
    await this.#unary(this.raw.config, 'deleteConfig', request, options);
  }

  /**
   * Applies `ops` if every check passes, all or nothing, and resolves with
   * the new entry of each put, in op order. `checks`: { key, version } (the
   * key exists at that version) or { key, exists }; `ops`: { put: { key,
   * value, expectedVersion?, createOnly? } } or { delete: { key,
   * expectedVersion?, recursive? } }; `fence` as for putConfig. The first
   * failing check or op: FAILED_PRECONDITION naming it (`checks[i]: ...`,
   * `ops[i]: ...`), and nothing changed. Retried like putConfig (a retry
   * whose first answer was lost can fail on its own writes).
   */
  async txn(checks = [], ops = [], { fence, ...options } = {}) {
    const request = { checks: checks.map(checkToProto), ops: ops.map(opToProto), fence: fenceToProto(fence) };
    const r = await this.#unary(this.raw.config, 'txn', request, options);
    return r.entries.map(entryFromProto);
  }

  /**
   * Holds a key while the returned Registration is open (service
   * registration): see Registration. `value` can be changed with update().
   */
  holdKey(key, value, options) {
    return new Registration(this.raw.config, key, value, options);
  }

  /** Yields every entry under `prefix` in path order, fetching page by page (timeoutMs per page). */
  async *listConfig(prefix = '', { keysOnly = false, pageSize = 0, ...options } = {}) {
    let pageToken = '';
    do {
      const r = await this.#unary(this.raw.config, 'listConfig', { prefix, pageSize, pageToken, keysOnly }, options);
      for (const e of r.entries) yield entryFromProto(e);
      pageToken = r.nextPageToken;
    } while (pageToken);
  }

  /** Starts a ConfigWatcher on a key (or, with { prefix: true }, a prefix). */
  watchConfig(key, options) {
    return new ConfigWatcher(this.raw.config, key, options);
  }
}

function putRequest({ key, value, expectedVersion, createOnly = false }) {
  const request = { key, value: toBytes(value), createOnly };
  if (expectedVersion != null) request.expectedVersion = String(expectedVersion);
  return request;
}

function deleteRequest({ key, expectedVersion, recursive = false }) {
  const request = { key, recursive };
  if (expectedVersion != null) request.expectedVersion = String(expectedVersion);
  return request;
}

function checkToProto(check) {
  const hasVersion = check?.version != null;
  if (hasVersion === (check?.exists != null)) throw new TypeError('txn: a check sets exactly one of version and exists');
  return hasVersion ? { key: check.key, version: String(check.version) } : { key: check.key, exists: Boolean(check.exists) };
}

function opToProto(op) {
  if ((op?.put == null) === (op?.delete == null)) throw new TypeError('txn: an op sets exactly one of put and delete');
  return op.put ? { put: putRequest(op.put) } : { delete: deleteRequest(op.delete) };
}
