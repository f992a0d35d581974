// MessagingService through the wrapper, against the live warrend in
// WARREN_ADDRESS (and private warrends for the restart tests).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Warren } from '../../src/index.js';
import { PrivateWarrend, nextEvent, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

test('messages received equal messages sent, at most maxInFlight handlers at once', async () => {
  const queue = uniq('node_q');
  // Declare the queue, then fill it before consuming: the broker then hands
  // out a full prefetch at once, so the concurrency limit is really tested.
  const declare = warren.subscribe({ queue }, () => { throw new Error('no message expected yet'); });
  await nextEvent(declare, 'subscribed');
  await declare.stop();
  const sent = new Map();
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => {
    const text = `message ${i} ${'é'.repeat(i % 3)}`;
    return warren.publish({ queue, payload: text, headers: { n: String(i) } }).then((r) => { sent.set(r.messageId, `${i}:${text}`); return r; });
  }));
  assert.equal(new Set(results.map((r) => r.messageId)).size, 50, 'every message got its own id');

  const received = new Map();
  let running = 0;
  let peak = 0;
  const sub = warren.subscribe({ queue, maxInFlight: 4 }, async (m) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 5));
    received.set(m.messageId, `${m.headers.n}:${m.text}`);
    running--;
  });
  await waitFor(() => received.size === 50, { what: '50 messages' });
  assert.deepEqual([...received.entries()].sort(), [...sent.entries()].sort());
  assert.ok(peak <= 4, `peak ${peak} handlers`);
  assert.ok(peak > 1, `handlers ran concurrently (peak ${peak})`);
  await sub.stop();
});

test('a handler that throws is nacked and the message comes again (redelivered)', async () => {
  const queue = uniq('node_q');
  const seen = [];
  const sub = warren.subscribe({ queue }, (m) => {
    seen.push({ id: m.messageId, redelivered: m.redelivered });
    if (!m.redelivered) throw new Error('first time fails');
  });
  await nextEvent(sub, 'subscribed');
  const { messageId } = await warren.publish({ queue, payload: 'retry me' });
  await waitFor(() => seen.length >= 2, { what: 'the redelivery' });
  assert.deepEqual(seen.slice(0, 2), [{ id: messageId, redelivered: false }, { id: messageId, redelivered: true }]);
  await sub.stop();
});

test('stop settles what was handled: nothing is redelivered', async () => {
  const queue = uniq('node_q');
  const first = [];
  const sub = warren.subscribe({ queue }, (m) => { first.push(m.messageId); });
  await nextEvent(sub, 'subscribed');
  for (let i = 0; i < 3; i++) await warren.publish({ queue, payload: `m${i}` });
  await waitFor(() => first.length === 3);
  await sub.stop();

  const again = [];
  const sub2 = warren.subscribe({ queue }, (m) => { again.push(m); });
  await nextEvent(sub2, 'subscribed');
  const { messageId: sentinel } = await warren.publish({ queue, payload: 'sentinel' });
  await waitFor(() => again.some((m) => m.messageId === sentinel), { what: 'the sentinel' });
  assert.deepEqual(again.map((m) => m.messageId), [sentinel], 'only the sentinel: the acked messages did not come back');
  await sub2.stop();
});

test('topic binding without group: every subscriber gets every message (fan-out)', async () => {
  const exchange = uniq('node_ex');
  const got = [[], []];
  const subs = got.map((list) => warren.subscribe(
    { topic: { exchange, exchangeType: 'EXCHANGE_TYPE_TOPIC', bindingKeys: ['orders.*'] } },
    (m) => { list.push(`${m.routingKey}:${m.text}`); },
  ));
  await Promise.all(subs.map((s) => nextEvent(s, 'subscribed')));
  await warren.publish({ exchange, routingKey: 'orders.created', payload: 'o1' });
  // Bound to nobody: dropped, which this publish says it accepts.
  await warren.publish({ exchange, routingKey: 'invoices.created', payload: 'not bound', mandatory: false });
  await warren.publish({ exchange, routingKey: 'orders.paid', payload: 'o2' });
  await waitFor(() => got.every((l) => l.length === 2), { what: 'both subscribers' });
  for (const list of got) assert.deepEqual(list, ['orders.created:o1', 'orders.paid:o2']);
  await Promise.all(subs.map((s) => s.stop()));
});

test('fatal publish errors surface at once; an unroutable message is one unless the caller opts out', async () => {
  await assert.rejects(warren.publish({ exchange: uniq('node_missing'), routingKey: 'x', payload: 'p' }),
    (err) => err.code === grpc.status.NOT_FOUND && err.attempts === 1 && typeof err.messageId === 'string');
  // mandatory by default: a queue nobody declared does not silently swallow it.
  await assert.rejects(warren.publish({ queue: uniq('node_nobody'), payload: 'p' }),
    (err) => err.code === grpc.status.FAILED_PRECONDITION && err.attempts === 1);
  assert.equal((await warren.publish({ queue: uniq('node_nobody'), payload: 'p', mandatory: false })).attempts, 1);
});

test('the subscriber resubscribes after its server restarts', async () => {
  const server = await new PrivateWarrend().start();
  const client = new Warren(server.address);
  const queue = uniq('node_q');
  const received = new Set();
  let subscribedCount = 0;
  const reconnects = [];
  const sub = client.subscribe({ queue, backoff: { initialMs: 50, maxMs: 500 } }, (m) => { received.add(m.text); });
  sub.on('subscribed', () => { subscribedCount++; });
  sub.on('reconnecting', (info) => reconnects.push(info));
  try {
    await waitFor(() => subscribedCount === 1, { what: 'first subscribe' });
    await warren.publish({ queue, payload: 'before' }); // through the main server: same broker
    await waitFor(() => received.has('before'));

    await server.stop(); // open streams end with UNAVAILABLE
    await waitFor(() => reconnects.length > 0, { what: 'reconnecting' });
    assert.equal(reconnects[0].error.code, grpc.status.UNAVAILABLE);
    await warren.publish({ queue, payload: 'while down' }); // waits in the durable queue
    await server.start(); // same port
    await waitFor(() => subscribedCount === 2, { timeoutMs: 20_000, what: 'resubscribe' });
    await warren.publish({ queue, payload: 'after' });
    await waitFor(() => received.has('after') && received.has('while down'), { timeoutMs: 15_000, what: 'messages after restart' });
    assert.deepEqual([...received].sort(), ['after', 'before', 'while down']);
    await sub.stop();
  } finally {
    client.close();
    await server.stop();
  }
});

test('the publisher retries through a server restart with the same message id', async () => {
  const server = await new PrivateWarrend().start();
  const attempts = [];
  // Sees every Publish attempt as it goes out, even one that fails to connect.
  const recorder = (options, nextCall) => new grpc.InterceptingCall(nextCall(options), {
    sendMessage(message, next) {
      if (options.method_definition.path.endsWith('/Publish')) attempts.push(message.messageId);
      next(message);
    },
  });
  const client = new Warren(server.address, { interceptors: [recorder] });
  const queue = uniq('node_q');
  try {
    const declare = client.subscribe({ queue }, () => {}); // declares the durable queue
    await nextEvent(declare, 'subscribed');
    await declare.stop();
    await server.stop();

    const publisher = client.publisher({ backoff: { initialMs: 50, maxMs: 300 }, timeoutMs: 30_000 });
    const publishing = publisher.publish({ queue, payload: 'survives a restart' });
    await waitFor(() => attempts.length >= 2, { what: 'failed attempts while the server is down' });
    await server.start();
    const result = await publishing;
    assert.ok(result.attempts >= 3, `${result.attempts} attempts`);
    assert.equal(attempts.length, result.attempts);
    assert.deepEqual(new Set(attempts), new Set([result.messageId]), 'every attempt carried the same id');

    const got = [];
    const sub = warren.subscribe({ queue }, (m) => { got.push(m.messageId); });
    await waitFor(() => got.length >= 1, { what: 'the message' });
    assert.equal(got[0], result.messageId);
    await sub.stop();
  } finally {
    client.close();
    await server.stop();
  }
});
