// Delays, retries, stream queues with replay and resume, single active
// consumer, headers routing and request/reply, through the wrapper against
// the live warrend in WARREN_ADDRESS (and a private one for the resume).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { RetryLater, TimeoutError, Warren } from '../../src/index.js';
import { PrivateWarrend, nextEvent, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

const stream = { queueType: 'QUEUE_TYPE_STREAM' };

/** Subscribes until 'subscribed' (the queue exists then), rejecting on a fatal error. */
async function subscribed(sub) {
  await Promise.race([nextEvent(sub, 'subscribed'), nextEvent(sub, 'error').then((e) => { throw e; })]);
  return sub;
}

test('a delayed publish arrives after its delay, never before', async () => {
  const queue = uniq('node_delay');
  const got = [];
  const sub = await subscribed(warren.subscribe({ queue }, (m) => { got.push({ text: m.text, at: Date.now() }); }));
  try {
    const sentAt = Date.now();
    await warren.publish({ queue, payload: 'later', delayMs: 1000 });
    await warren.publish({ queue, payload: 'now' });
    await waitFor(() => got.length === 2, { what: 'both messages' });
    assert.deepEqual(got.map((g) => g.text), ['now', 'later']);
    const waited = got[1].at - sentAt;
    assert.ok(waited >= 1000, `arrived after ${waited} ms`);
    assert.ok(waited < 3000, `arrived after ${waited} ms`);
  } finally {
    await sub.stop();
  }
});

test('a nack with retryAfterMs comes back after the delay with deliveryCount 1, without holding others up', async () => {
  const queue = uniq('node_retry');
  const seen = [];
  const sub = await subscribed(warren.subscribe({ queue }, (m) => {
    seen.push({ text: m.text, count: m.deliveryCount, at: Date.now() });
    if (m.text === 'poison' && m.deliveryCount === 0) throw new RetryLater(500);
  }));
  try {
    await warren.publish({ queue, payload: 'poison' });
    await waitFor(() => seen.length === 1);
    await warren.publish({ queue, payload: 'other' });
    await waitFor(() => seen.length === 3, { what: 'the retry' });
    assert.deepEqual(seen.map((s) => [s.text, s.count]), [['poison', 0], ['other', 0], ['poison', 1]]);
    const waited = seen[2].at - seen[0].at;
    assert.ok(waited >= 500 && waited < 2500, `retried after ${waited} ms`);
  } finally {
    await sub.stop();
  }
});

test('two subscribers replay a stream from the first message, each on its own', async () => {
  const queue = uniq('node_stream');
  const declare = await subscribed(warren.subscribe({ queue, queueOptions: stream }, () => {}));
  await declare.stop();
  for (let i = 0; i < 5; i++) await warren.publish({ queue, payload: `e${i}` });
  const logs = [[], []];
  const subs = logs.map((log) => warren.subscribe({ queue, queueOptions: stream, offset: 'first' }, (m) => {
    log.push([m.text, m.streamOffset]);
  }));
  try {
    await waitFor(() => logs.every((l) => l.length === 5), { what: 'both replays' });
    for (const log of logs) {
      assert.deepEqual(log.map(([t]) => t), ['e0', 'e1', 'e2', 'e3', 'e4']);
      for (let i = 1; i < 5; i++) assert.ok(log[i][1] > log[i - 1][1], 'offsets grow');
    }
    assert.deepEqual(logs[0], logs[1], 'the same offsets for both');
    // From a stored offset: exactly the messages from it on.
    const from = logs[0][3][1];
    const rest = [];
    const resumed = warren.subscribe({ queue, queueOptions: stream, offset: from }, (m) => { rest.push(m.text); });
    await waitFor(() => rest.length === 2);
    await warren.publish({ queue, payload: 'e5' });
    await waitFor(() => rest.length === 3);
    assert.deepEqual(rest, ['e3', 'e4', 'e5']);
    await resumed.stop();
  } finally {
    await Promise.all(subs.map((s) => s.stop()));
  }
});

test('a stream subscriber resumes after its server restarts: no gap, no repeat', async () => {
  const server = await new PrivateWarrend().start();
  const client = new Warren(server.address);
  const queue = uniq('node_stream');
  const got = [];
  let subscribedCount = 0;
  const sub = client.subscribe({ queue, queueOptions: stream, offset: 'first', backoff: { initialMs: 50, maxMs: 500 } },
    (m) => { got.push(m.text); });
  sub.on('subscribed', () => { subscribedCount++; });
  try {
    await waitFor(() => subscribedCount === 1, { what: 'first subscribe' });
    for (let i = 0; i < 3; i++) await warren.publish({ queue, payload: `before${i}` });
    await waitFor(() => got.length === 3, { what: 'the first three' });
    const last = sub.lastOffset;
    await server.stop();
    for (let i = 0; i < 3; i++) await warren.publish({ queue, payload: `while${i}` });
    await server.start();
    await waitFor(() => subscribedCount === 2, { timeoutMs: 20_000, what: 'resubscribe' });
    await warren.publish({ queue, payload: 'after' });
    await waitFor(() => got.includes('after'), { timeoutMs: 15_000, what: 'the message after the restart' });
    assert.deepEqual(got, ['before0', 'before1', 'before2', 'while0', 'while1', 'while2', 'after']);
    assert.equal(sub.lastOffset, last + 4n);
    await sub.stop();
  } finally {
    client.close();
    await server.stop();
  }
});

test('single active consumer: one subscriber receives; when it stops, the other takes over', async () => {
  const queue = uniq('node_sac');
  const got = { a: [], b: [] };
  const options = { queue, queueOptions: { singleActiveConsumer: true } };
  const a = await subscribed(warren.subscribe(options, (m) => { got.a.push(m.text); }));
  const b = await subscribed(warren.subscribe(options, (m) => { got.b.push(m.text); }));
  try {
    for (let i = 0; i < 5; i++) await warren.publish({ queue, payload: `m${i}` });
    await waitFor(() => got.a.length === 5, { what: 'the active one' });
    assert.equal(got.b.length, 0, 'the standby receives nothing');
    await a.stop();
    for (let i = 5; i < 8; i++) await warren.publish({ queue, payload: `m${i}` });
    await waitFor(() => got.b.length === 3, { what: 'the standby taking over' });
    assert.deepEqual(got.b, ['m5', 'm6', 'm7']);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('headers routing: an all-binding and an any-binding each get exactly their matches', async () => {
  const exchange = uniq('node_hx');
  const got = { all: [], any: [] };
  const topic = (matchAny) => ({ exchange, exchangeType: 'EXCHANGE_TYPE_HEADERS', matchHeaders: { kind: 'invoice', region: 'eu' }, matchAny });
  const subs = [
    await subscribed(warren.subscribe({ topic: topic(false) }, (m) => { got.all.push(m.text); })),
    await subscribed(warren.subscribe({ topic: topic(true) }, (m) => { got.any.push(m.text); })),
  ];
  try {
    const send = (payload, headers) => warren.publish({ exchange, routingKey: '', payload, headers, mandatory: false });
    await send('both', { kind: 'invoice', region: 'eu' });
    await send('kind only', { kind: 'invoice', region: 'us' });
    await send('neither', { kind: 'order' });
    await send('end', { kind: 'invoice', region: 'eu' });
    await waitFor(() => got.all.includes('end') && got.any.includes('end'), { what: 'the last message' });
    assert.deepEqual(got.all, ['both', 'end']);
    assert.deepEqual(got.any, ['both', 'kind only', 'end']);
  } finally {
    await Promise.all(subs.map((s) => s.stop()));
  }
});

test('call and respond: each call gets its own reply', async () => {
  const queue = uniq('node_rpc');
  const responder = await subscribed(warren.respond({ queue }, (request) => ({
    payload: request.text.toUpperCase(), headers: { 'answered-by': 'node' },
  })));
  try {
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => warren.call({ queue, payload: `ping ${i}` }, { timeoutMs: 10_000 })));
    assert.deepEqual(replies.map((r) => r.text), Array.from({ length: 10 }, (_, i) => `PING ${i}`));
    assert.equal(replies[0].headers['answered-by'], 'node');
  } finally {
    await responder.stop();
  }
});

test('a call nobody answers is a TimeoutError; one no queue takes is FAILED_PRECONDITION', async () => {
  const queue = uniq('node_rpc');
  const declare = await subscribed(warren.subscribe({ queue }, () => {}));
  await declare.stop();
  const started = Date.now();
  await assert.rejects(warren.call({ queue, payload: 'anyone?' }, { timeoutMs: 1000 }),
    (err) => err instanceof TimeoutError && err.code === grpc.status.DEADLINE_EXCEEDED);
  const waited = Date.now() - started;
  assert.ok(waited >= 900 && waited < 5000, `gave up after ${waited} ms`);
  await assert.rejects(warren.call({ queue: uniq('node_nobody'), payload: 'x' }, { timeoutMs: 5000 }),
    (err) => err.code === grpc.status.FAILED_PRECONDITION);
});

test('a priority queue delivers its backlog highest priority first', async () => {
  const queue = uniq('node_prio');
  const options = { queue, queueOptions: { maxPriority: 10 } };
  const declare = await subscribed(warren.subscribe(options, () => {}));
  await declare.stop();
  for (const [payload, priority] of [['low', 1], ['high', 9], ['mid', 5], ['none', 0]]) await warren.publish({ queue, payload, priority });
  const got = [];
  const sub = warren.subscribe({ ...options, maxInFlight: 1 }, (m) => { got.push(m.text); });
  try {
    await waitFor(() => got.length === 4, { what: 'the backlog' });
    assert.deepEqual(got, ['high', 'mid', 'low', 'none']);
  } finally {
    await sub.stop();
  }
});

test('options the server refuses end the subscriber with INVALID_ARGUMENT naming the field', async () => {
  const sub = warren.subscribe({ queue: uniq('node_bad'), queueOptions: { queueType: 'QUEUE_TYPE_QUORUM', maxPriority: 5 } }, () => {});
  const err = await nextEvent(sub, 'error');
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  assert.match(err.details, /start\.queue_options\.max_priority/);
  await sub.closed;
});

test('a quorum queue with deliveryLimit 3: a message failing forever is delivered 3 times, then dead-lettered', async () => {
  const queue = uniq('node_limited');
  const dlx = uniq('node_dlx'); // the dead-lettered message keeps its routing key: the queue's name
  const dead = [];
  const counts = [];
  const subs = [];
  try {
    subs.push(await subscribed(warren.subscribe({
      topic: { exchange: dlx, exchangeType: 'EXCHANGE_TYPE_DIRECT', bindingKeys: [queue] }, group: `${queue}.dead`,
    }, (m) => { dead.push(m.text); })));
    subs.push(await subscribed(warren.subscribe({
      queue, queueOptions: { queueType: 'QUEUE_TYPE_QUORUM', deliveryLimit: 3, deadLetterExchange: dlx },
    }, (m) => {
      counts.push(m.deliveryCount);
      throw new Error('always fails'); // nack + requeue
    })));
    await warren.publish({ queue, payload: 'poison' });
    await waitFor(() => dead.length === 1, { what: 'the dead letter' });
    assert.deepEqual(counts, [0, 1, 2]);
    assert.deepEqual(dead, ['poison']);
  } finally {
    await Promise.all(subs.map((s) => s.stop()));
  }
});
