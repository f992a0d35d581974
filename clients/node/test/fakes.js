// In-memory stand-ins for the raw grpc-js clients: each call records what the
// wrapper writes and lets a test push responses and end the stream.
import { EventEmitter } from 'node:events';
import { status as Status, Metadata } from '@grpc/grpc-js';

export class FakeCall extends EventEmitter {
  constructor(request, metadata, options) {
    super();
    this.request = request; // server-streaming calls: the request
    this.metadata = metadata; // what the wrapper opened the stream with
    this.options = options;
    this.writes = [];
    this.writable = true;
    this.ended = false;
    this.cancelled = false;
    this.done = false;
  }

  write(message) {
    if (!this.writable) throw new Error('write after end');
    this.writes.push(message);
    this.emit('wrote', message);
  }

  end() {
    this.writable = false;
    this.ended = true;
    this.emit('ended');
  }

  cancel() {
    this.cancelled = true;
    this.finish(Status.CANCELLED, 'Cancelled on client');
  }

  push(response) {
    this.emit('data', response);
  }

  finish(code = Status.OK, details = '') {
    if (this.done) return;
    this.done = true;
    this.writable = false;
    if (code !== Status.OK) this.emit('error', Object.assign(new Error(details), { code, details }));
    this.emit('status', { code, details, metadata: new Metadata() });
  }

  // As grpc-js's streams: yields each response, ends on OK, throws on any
  // other status.
  async* [Symbol.asyncIterator]() {
    const queue = [];
    let end = null;
    let wake = null;
    const onData = (d) => { queue.push(d); wake?.(); };
    const onStatus = (s) => { end = s; wake?.(); };
    this.on('data', onData);
    this.on('status', onStatus);
    try {
      for (;;) {
        if (queue.length) {
          yield queue.shift();
        } else if (end) {
          if (end.code !== Status.OK) throw Object.assign(new Error(end.details), { code: end.code, details: end.details });
          return;
        } else {
          await new Promise((resolve) => { wake = resolve; });
          wake = null;
        }
      }
    } finally {
      this.off('data', onData);
      this.off('status', onStatus);
    }
  }
}

/** A raw client whose streaming methods hand out FakeCalls (kept in `calls`). */
export function fakeStreamingClient() {
  const client = new EventEmitter();
  client.calls = [];
  const open = (request, metadata, options) => {
    const call = new FakeCall(request, metadata, options);
    client.calls.push(call);
    client.emit('call', call);
    return call;
  };
  client.subscribe = (metadata, options) => open(undefined, metadata, options);
  client.elect = (metadata, options) => open(undefined, metadata, options);
  client.lock = (metadata, options) => open(undefined, metadata, options);
  client.holdKey = (metadata, options) => open(undefined, metadata, options);
  client.watchConfig = (request, metadata, options) => open(request, metadata, options);
  client.observeLeader = (request, metadata, options) => open(request, metadata, options);
  client.last = () => client.calls[client.calls.length - 1];
  return client;
}

/** A deferred promise: resolve/reject from outside. */
export function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** Lets pending promise callbacks and nextTicks run. */
export function flush() {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * A raw unary client: every method answers from `script` (a list of status
 * codes, OK when it runs out) and records { method, request, deadline }.
 */
export function scriptedUnaryClient(script = [], response = (method, request) => ({})) {
  const client = { requests: [] };
  const answer = (method) => (request, metadata, options, callback) => {
    client.requests.push({ method, request, deadline: options.deadline });
    const code = script.length ? script.shift() : Status.OK;
    let cancelled = false;
    setImmediate(() => {
      if (cancelled) callback(Object.assign(new Error('Cancelled on client'), { code: Status.CANCELLED }));
      else if (code === Status.OK) callback(null, response(method, request));
      else callback(Object.assign(new Error(Status[code]), { code, details: Status[code] }));
    });
    return { cancel() { cancelled = true; } };
  };
  for (const method of ['publish', 'getConfig', 'putConfig', 'deleteConfig', 'listConfig', 'txn', 'getLeader', 'getLock']) {
    client[method] = answer(method);
  }
  return client;
}
