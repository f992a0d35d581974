import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { Subscriber } from '../../src/index.js';
import { deferred, fakeStreamingClient, flush } from '../fakes.js';
import { waitFor } from '../helpers.js';

const delivery = (id, text = `m${id}`) => ({ response: 'delivery', delivery: { deliveryId: String(id), messageId: `id-${id}`, payload: Buffer.from(text) } });
const subscribed = { response: 'subscribed', subscribed: { queue: 'q' } };
const settles = (call) => call.writes.filter((w) => w.ack || w.nack);

test('opens with start, runs at most maxInFlight handlers, acks and nacks', async () => {
  const client = fakeStreamingClient();
  const gates = new Map();
  let running = 0;
  let peak = 0;
  const sub = new Subscriber(client, { queue: 'q', maxInFlight: 2, backoff: { initialMs: 1, maxMs: 1 } }, async (m) => {
    running++;
    peak = Math.max(peak, running);
    const gate = deferred();
    gates.set(m.deliveryId, gate);
    try {
      await gate.promise;
    } finally {
      running--;
    }
  });
  await flush();
  const call = client.last();
  assert.equal(call.writes[0].start.queue, 'q');
  assert.equal(call.writes[0].start.maxInFlight, 2); // the prefetch equals the local limit
  call.push(subscribed);
  for (let i = 1; i <= 5; i++) call.push(delivery(i));
  await flush();
  assert.equal(sub.running, 2);
  assert.deepEqual([...gates.keys()], ['1', '2']);

  gates.get('1').resolve();
  await waitFor(() => gates.has('3'));
  gates.get('2').reject(new Error('boom'));
  await waitFor(() => gates.has('4'));
  gates.get('3').reject(Object.assign(new Error('poison'), { requeue: false }));
  await waitFor(() => gates.has('5'));
  gates.get('4').resolve();
  gates.get('5').resolve();
  await waitFor(() => settles(call).length === 5);
  assert.equal(peak, 2);
  assert.deepEqual(settles(call), [
    { ack: { deliveryIds: ['1'] } },
    { nack: { deliveryIds: ['2'], requeue: true } },
    { nack: { deliveryIds: ['3'], requeue: false } },
    { ack: { deliveryIds: ['4'] } },
    { ack: { deliveryIds: ['5'] } },
  ]);
  call.on('ended', () => call.finish(Status.OK));
  await sub.stop();
});

test('stop: nacks what has not started, waits for running handlers, then half-closes', async () => {
  const client = fakeStreamingClient();
  const gate = deferred();
  let started = 0;
  const sub = new Subscriber(client, { queue: 'q', maxInFlight: 1 }, async () => { started++; await gate.promise; });
  await flush();
  const call = client.last();
  call.push(subscribed);
  call.push(delivery(1));
  call.push(delivery(2));
  call.push(delivery(3));
  await flush();
  call.on('ended', () => call.finish(Status.OK));
  let stopped = false;
  const stopping = sub.stop().then(() => { stopped = true; });
  await flush();
  assert.deepEqual(settles(call), [{ nack: { deliveryIds: ['2', '3'], requeue: true } }]);
  assert.equal(call.ended, false, 'must not close while a handler runs');
  assert.equal(stopped, false);
  gate.resolve();
  await stopping;
  assert.equal(started, 1);
  assert.deepEqual(settles(call)[1], { ack: { deliveryIds: ['1'] } });
  assert.equal(call.ended, true);
});

test('resubscribes after UNAVAILABLE and never settles an old stream\'s delivery on the new one', async () => {
  const client = fakeStreamingClient();
  const gate = deferred();
  const seen = [];
  const sub = new Subscriber(client, { queue: 'q', backoff: { initialMs: 5, maxMs: 5 } }, async (m) => {
    seen.push(m.text);
    if (m.deliveryId === '1') await gate.promise;
  });
  let reconnects = 0;
  sub.on('reconnecting', ({ error }) => { reconnects++; assert.equal(error.code, Status.UNAVAILABLE); });
  await flush();
  const first = client.last();
  first.push(subscribed);
  first.push(delivery(1, 'old'));
  await flush();
  first.finish(Status.UNAVAILABLE, 'server is shutting down');
  await waitFor(() => client.calls.length === 2);
  const second = client.last();
  assert.ok(second.writes[0].start, 'the new stream opens with start');
  second.push(subscribed);
  gate.resolve(); // the old handler finishes after the reconnect
  second.push(delivery(1, 'new')); // ids restart on a new stream
  await waitFor(() => settles(second).length === 1);
  await flush();
  assert.deepEqual(settles(second), [{ ack: { deliveryIds: ['1'] } }]);
  assert.equal(settles(first).length, 0);
  assert.deepEqual(seen, ['old', 'new']);
  assert.equal(reconnects, 1);
  second.on('ended', () => second.finish(Status.OK));
  await sub.stop();
});

test('an unexpected OK end also resubscribes; INVALID_ARGUMENT is fatal', async () => {
  const client = fakeStreamingClient();
  const sub = new Subscriber(client, { queue: 'q', backoff: { initialMs: 1, maxMs: 1 } }, () => {});
  await flush();
  client.last().finish(Status.OK);
  await waitFor(() => client.calls.length === 2);
  const errors = [];
  sub.on('error', (e) => errors.push(e));
  client.last().finish(Status.INVALID_ARGUMENT, 'start.queue is bad');
  await sub.closed;
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, Status.INVALID_ARGUMENT);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.calls.length, 2, 'no reconnect after a fatal error');
});

test('a stream silent for 3 heartbeat intervals is replaced', async () => {
  const client = fakeStreamingClient();
  const sub = new Subscriber(client, { queue: 'q', heartbeatIntervalMs: 10, backoff: { initialMs: 1, maxMs: 1 } }, () => {});
  await flush();
  const first = client.last();
  first.push(subscribed);
  await waitFor(() => client.calls.length === 2, { timeoutMs: 3000 });
  assert.equal(first.cancelled, true);
  client.last().on('ended', () => client.last().finish(Status.OK));
  client.last().push(subscribed);
  await sub.stop();
});

test('validates its options', () => {
  const client = fakeStreamingClient();
  assert.throws(() => new Subscriber(client, { queue: 'q', topic: { exchange: 'x' } }, () => {}), TypeError);
  assert.throws(() => new Subscriber(client, {}, () => {}), TypeError);
  assert.throws(() => new Subscriber(client, { queue: 'q', maxInFlight: 0 }, () => {}), RangeError);
  assert.throws(() => new Subscriber(client, { queue: 'q' }), TypeError);
});
