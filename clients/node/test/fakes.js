// In-memory stand-ins for the raw grpc-js clients: each call records what the
// wrapper writes and lets a test push responses and end the stream.
import { EventEmitter } from 'node:events';
import { status as Status, Metadata } from '@grpc/grpc-js';

export class FakeCall extends EventEmitter {
  constructor(request) {
    super();
    this.request = request; // server-streaming calls: the request
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
}

/** A raw client whose streaming methods hand out FakeCalls (kept in `calls`). */
export function fakeStreamingClient() {
  const client = new EventEmitter();
  client.calls = [];
  const open = (request) => {
    const call = new FakeCall(request);
    client.calls.push(call);
    client.emit('call', call);
    return call;
  };
  client.subscribe = () => open();
  client.elect = () => open();
  client.watchConfig = (request) => open(request);
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
