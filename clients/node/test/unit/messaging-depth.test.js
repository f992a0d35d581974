// The wrapper's side of stream offsets and resume, retry delays, delayed
// publish, headers routing, request/reply (call and respond), over fakes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { Publisher, RetryLater, Subscriber, TimeoutError, Warren } from '../../src/index.js';
import { call, respond } from '../../src/rpc.js';
import { deferred, fakeStreamingClient, flush } from '../fakes.js';
import { waitFor } from '../helpers.js';

const subscribed = { response: 'subscribed', subscribed: { queue: 'log' } };
const delivery = (id, extra = {}) => ({ response: 'delivery', delivery: { deliveryId: String(id), messageId: `id-${id}`, payload: Buffer.from(`m${id}`), ...extra } });
const atOffset = (id, offset) => delivery(id, { streamOffset: String(offset) });
const settles = (c) => c.writes.filter((w) => w.ack || w.nack);
const stream = { queueType: 'QUEUE_TYPE_STREAM' };
const fast = { initialMs: 1, maxMs: 1 };

async function stopped(sub, client) {
  const c = client.last();
  c.on('ended', () => c.finish(Status.OK));
  await sub.stop();
}

test('start carries every queue option, headers matching and the stream offset', async () => {
  const client = fakeStreamingClient();
  const sub = new Subscriber(client, {
    topic: { exchange: 'ex', exchangeType: 'EXCHANGE_TYPE_HEADERS', matchHeaders: { kind: 'invoice' }, matchAny: true },
    group: 'g',
    queueOptions: { queueType: 'QUEUE_TYPE_STREAM', maxAgeMs: 3_600_000, maxLengthBytes: 1e9 },
    offset: 'first',
  }, () => {});
  await flush();
  const { start } = client.last().writes[0];
  assert.deepEqual(start.topic.matchHeaders, { kind: 'invoice' });
  assert.equal(start.topic.matchAny, true);
  assert.deepEqual(start.queueOptions.maxAge, { seconds: '3600', nanos: 0 });
  assert.equal(start.queueOptions.maxLengthBytes, '1000000000');
  assert.deepEqual(start.offset, { first: true });
  await stopped(sub, client);

  const classic = new Subscriber(client, {
    queue: 'jobs', queueOptions: { maxPriority: 10, singleActiveConsumer: true },
  }, () => {});
  await flush();
  const qo = client.last().writes[0].start.queueOptions;
  assert.equal(qo.maxPriority, 10);
  assert.equal(qo.singleActiveConsumer, true);
  assert.equal(qo.deliveryLimit, 0);
  assert.equal(client.last().writes[0].start.offset, undefined, 'no offset on a classic queue');
  await stopped(classic, client);
});

test('offsets: first, last, next, a number, a bigint, a Date; bad ones throw', async () => {
  const cases = [
    ['first', { first: true }], ['last', { last: true }], ['next', { next: true }],
    [42, { offset: '42' }], [2n ** 60n, { offset: String(2n ** 60n) }],
    [new Date(1_700_000_000_500), { timestamp: { seconds: '1700000000', nanos: 500_000_000 } }],
  ];
  for (const [offset, want] of cases) {
    const client = fakeStreamingClient();
    const sub = new Subscriber(client, { queue: 'log', queueOptions: stream, offset }, () => {});
    await flush();
    assert.deepEqual(client.last().writes[0].start.offset, want, String(offset));
    await stopped(sub, client);
  }
  const client = fakeStreamingClient();
  for (const offset of [-1, 1.5, 'middle', new Date(NaN)]) {
    assert.throws(() => new Subscriber(client, { queue: 'log', queueOptions: stream, offset }, () => {}), RangeError);
  }
  assert.throws(() => new Subscriber(client, { queue: 'q', offset: 'first' }, () => {}), TypeError, 'offset on a classic queue');
  assert.throws(() => new Subscriber(client, { queue: 'log', queueOptions: stream, retryAfterMs: 100 }, () => {}), TypeError);
});

test('a broken stream resumes just after the last delivery handed to the handler: no gap, no repeat', async () => {
  const client = fakeStreamingClient();
  const gate = deferred();
  const seen = [];
  const sub = new Subscriber(client, { queue: 'log', queueOptions: stream, offset: 'first', maxInFlight: 2, backoff: fast }, async (m) => {
    seen.push(m.streamOffset);
    if (m.streamOffset > 10n) await gate.promise; // still running when the stream breaks
  });
  try {
    await flush();
    const first = client.last();
    first.push(subscribed);
    for (let i = 0; i < 5; i++) first.push(atOffset(i + 1, 10 + i)); // 10 done; 11, 12 run; 13, 14 wait
    await waitFor(() => seen.length === 3);
    await flush();
    assert.deepEqual(seen, [10n, 11n, 12n]);
    assert.equal(sub.lastOffset, 12n);
    first.finish(Status.UNAVAILABLE, 'gone');
    await waitFor(() => client.calls.length === 2);
    const second = client.last();
    assert.deepEqual(second.writes[0].start.offset, { offset: '13' }, 'after the last started, not the last received');
    second.push(subscribed);
    // A broker may hand out earlier messages of the same chunk: never to the handler.
    second.push(atOffset(1, 12));
    second.push(atOffset(2, 13));
    gate.resolve();
    await waitFor(() => settles(second).length === 2);
    assert.deepEqual(seen, [10n, 11n, 12n, 13n]);
    assert.deepEqual(settles(second), [{ ack: { deliveryIds: ['1'] } }, { ack: { deliveryIds: ['2'] } }]);
    assert.deepEqual(settles(first), [{ ack: { deliveryIds: ['1'] } }], 'the old stream settles nothing after its end');
  } finally {
    await stopped(sub, client);
  }
});

test('a stream from next broken before its first delivery resumes at its subscription time', async () => {
  const client = fakeStreamingClient();
  const sub = new Subscriber(client, { queue: 'log', queueOptions: stream, backoff: fast }, () => {});
  await flush();
  assert.equal(client.last().writes[0].start.offset, null, 'unset: next');
  const before = Math.floor(Date.now() / 1000);
  client.last().push(subscribed);
  client.last().finish(Status.UNAVAILABLE, 'gone');
  await waitFor(() => client.calls.length === 2);
  const { timestamp } = client.last().writes[0].start.offset;
  assert.ok(Number(timestamp.seconds) >= before - 1 && Number(timestamp.seconds) <= before, JSON.stringify(timestamp));
  await stopped(sub, client);
});

test('a numeric start offset is a floor for the handler', async () => {
  const client = fakeStreamingClient();
  const seen = [];
  const sub = new Subscriber(client, { queue: 'log', queueOptions: stream, offset: 5 }, (m) => { seen.push(m.streamOffset); });
  await flush();
  const c = client.last();
  c.push(subscribed);
  c.push(atOffset(1, 4));
  c.push(atOffset(2, 5));
  await waitFor(() => settles(c).length === 2);
  assert.deepEqual(seen, [5n]);
  await stopped(sub, client);
});

test('messages expose deliveryCount, streamOffset (streams only), replyTo and correlationId', async () => {
  const client = fakeStreamingClient();
  const got = [];
  const sub = new Subscriber(client, { queue: 'q' }, (m) => { got.push(m); });
  await flush();
  client.last().push(subscribed);
  client.last().push(delivery(1, { deliveryCount: 2, streamOffset: '0', replyTo: 'amq.rabbitmq.reply-to.x', correlationId: 'c1' }));
  await waitFor(() => got.length === 1);
  assert.equal(got[0].deliveryCount, 2);
  assert.equal(got[0].streamOffset, null, 'not a stream queue');
  assert.equal(got[0].replyTo, 'amq.rabbitmq.reply-to.x');
  assert.equal(got[0].correlationId, 'c1');
  await stopped(sub, client);
});

test('a handler error with retryAfterMs (RetryLater, or the option) nacks with retry_after', async () => {
  const client = fakeStreamingClient();
  const errors = [new RetryLater(1500), new Error('plain'), Object.assign(new Error('x'), { retryAfterMs: 0, requeue: false })];
  const sub = new Subscriber(client, { queue: 'q', retryAfterMs: 200 }, () => { throw errors.shift(); });
  await flush();
  const c = client.last();
  c.push(subscribed);
  for (let i = 1; i <= 3; i++) c.push(delivery(i));
  await waitFor(() => settles(c).length === 3);
  assert.deepEqual(settles(c), [
    { nack: { deliveryIds: ['1'], requeue: true, retryAfter: { seconds: '1', nanos: 500_000_000 } } },
    { nack: { deliveryIds: ['2'], requeue: true, retryAfter: { seconds: '0', nanos: 200_000_000 } } },
    { nack: { deliveryIds: ['3'], requeue: false } },
  ]);
  await stopped(sub, client);
});

test('on a stream queue a RetryLater is a plain nack (a stream cannot retry)', async () => {
  const client = fakeStreamingClient();
  const sub = new Subscriber(client, { queue: 'log', queueOptions: stream }, () => { throw new RetryLater(100); });
  await flush();
  const c = client.last();
  c.push(subscribed);
  c.push(atOffset(1, 0));
  await waitFor(() => settles(c).length === 1);
  assert.deepEqual(settles(c), [{ nack: { deliveryIds: ['1'], requeue: true } }]);
  await stopped(sub, client);
});

// A raw client whose publish and call answer from functions of the request.
function unaryClient({ publish = () => ({}), call: answer } = {}) {
  const client = { requests: [] };
  const method = (name, fn) => (request, metadata, options, callback) => {
    client.requests.push({ name, request, deadline: options.deadline });
    let cancelled = false;
    setImmediate(async () => {
      if (cancelled) return callback(Object.assign(new Error('Cancelled'), { code: Status.CANCELLED }));
      try {
        callback(null, await fn(request, options));
      } catch (err) {
        callback(err);
      }
    });
    return { cancel() { cancelled = true; } };
  };
  client.publish = method('publish', publish);
  client.call = method('call', answer ?? (() => ({})));
  return client;
}

test('publish maps delayMs, replyTo and correlationId; a delayed message is not mandatory by default', async () => {
  const client = unaryClient();
  const publisher = new Publisher(client);
  await publisher.publish({ queue: 'q', payload: 'x', delayMs: 1500, replyTo: 'replies', correlationId: 'c-7' });
  await publisher.publish({ queue: 'q', delayMs: 10, mandatory: true });
  await publisher.publish({ queue: 'q' });
  const [delayed, explicit, plain] = client.requests.map((r) => r.request);
  assert.deepEqual(delayed.delay, { seconds: '1', nanos: 500_000_000 });
  assert.equal(delayed.mandatory, false);
  assert.equal(delayed.replyTo, 'replies');
  assert.equal(delayed.correlationId, 'c-7');
  assert.equal(explicit.mandatory, true, 'the caller said so: the server decides');
  assert.equal(plain.delay, null);
  assert.equal(plain.mandatory, true);
  await assert.rejects(publisher.publish({ queue: 'q', delayMs: -1 }), RangeError);
});

test('call: one attempt under the deadline, resolves with the reply as a Message', async () => {
  const client = unaryClient({
    call: (request) => ({ reply: { deliveryId: '0', payload: Buffer.from(`re: ${request.message.payload}`), correlationId: 'c', headers: { a: 'b' } } }),
  });
  const started = Date.now();
  const reply = await call(client, { queue: 'rpc', payload: 'ping' }, { timeoutMs: 2000 });
  assert.equal(reply.text, 're: ping');
  assert.deepEqual(reply.headers, { a: 'b' });
  assert.equal(client.requests.length, 1);
  const { request, deadline } = client.requests[0];
  assert.equal(request.message.routingKey, 'rpc');
  assert.equal(request.message.mandatory, true);
  assert.equal(request.message.replyTo, '');
  assert.ok(deadline.getTime() >= started + 2000 && deadline.getTime() < started + 2500);
  await assert.rejects(call(client, { queue: 'rpc', replyTo: 'mine' }), TypeError);
  await assert.rejects(call(client, { queue: 'rpc', delayMs: 5 }), TypeError);
});

test('call: DEADLINE_EXCEEDED is a TimeoutError; nothing is ever retried', async () => {
  for (const code of [Status.DEADLINE_EXCEEDED, Status.UNAVAILABLE, Status.FAILED_PRECONDITION]) {
    const client = unaryClient({ call: () => { throw Object.assign(new Error(Status[code]), { code, details: Status[code] }); } });
    await assert.rejects(call(client, { queue: 'rpc' }), (err) => err.code === code &&
      (code === Status.DEADLINE_EXCEEDED) === (err instanceof TimeoutError && err.name === 'TimeoutError'));
    assert.equal(client.requests.length, 1, `${Status[code]}: one attempt`);
  }
});

test('respond: publishes the reply to replyTo with the correlation id, then acks; errors nack; no replyTo is skipped', async () => {
  const streaming = fakeStreamingClient();
  const confirm = deferred();
  const unary = unaryClient({ publish: async () => { await confirm.promise; return {}; } });
  const publisher = new Publisher(unary);
  const sub = respond(streaming, publisher, { queue: 'rpc' }, (request) => {
    if (request.text === 'bad') throw new Error('cannot');
    return { payload: `re: ${request.text}`, headers: { by: 'test' }, contentType: 'text/plain' };
  });
  const skipped = [];
  sub.on('skipped', (m) => skipped.push(m.messageId));
  await flush();
  const c = streaming.last();
  c.push(subscribed);
  c.push({ response: 'delivery', delivery: { deliveryId: '1', payload: Buffer.from('ping'), replyTo: 'amq.rabbitmq.reply-to.abc', correlationId: 'corr-1' } });
  await waitFor(() => unary.requests.length === 1);
  assert.equal(settles(c).length, 0, 'no ack before the reply is confirmed');
  const reply = unary.requests[0].request;
  assert.equal(reply.exchange, '');
  assert.equal(reply.routingKey, 'amq.rabbitmq.reply-to.abc');
  assert.equal(reply.correlationId, 'corr-1');
  assert.equal(reply.mandatory, false);
  assert.equal(reply.payload.toString(), 're: ping');
  assert.deepEqual(reply.headers, { by: 'test' });
  assert.equal(reply.contentType, 'text/plain');
  confirm.resolve();
  await waitFor(() => settles(c).length === 1);
  assert.deepEqual(settles(c)[0], { ack: { deliveryIds: ['1'] } });

  c.push({ response: 'delivery', delivery: { deliveryId: '2', payload: Buffer.from('bad'), replyTo: 'r', correlationId: 'c2' } });
  c.push({ response: 'delivery', delivery: { deliveryId: '3', messageId: 'no-reply', payload: Buffer.from('fire and forget') } });
  await waitFor(() => settles(c).length === 3);
  assert.deepEqual(settles(c).slice(1).sort((a, b) => (a.ack ? 1 : -1) - (b.ack ? 1 : -1)), [
    { nack: { deliveryIds: ['2'], requeue: true } },
    { ack: { deliveryIds: ['3'] } },
  ]);
  assert.deepEqual(skipped, ['no-reply']);
  assert.equal(unary.requests.length, 1, 'no reply for a failed or unaddressed request');
  await stopped(sub, streaming);
});

test('Warren has call and respond', () => {
  const warren = new Warren('127.0.0.1:1');
  assert.equal(typeof warren.call, 'function');
  assert.equal(typeof warren.respond, 'function');
  warren.close();
});
