import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { AbortError, Publisher } from '../../src/index.js';

// A raw MessagingService client whose publish answers from a script of codes.
function scriptedClient(codes) {
  const requests = [];
  return {
    requests,
    publish(request, metadata, options, callback) {
      requests.push({ request, deadline: options.deadline });
      const code = codes.length ? codes.shift() : Status.OK;
      setImmediate(() => {
        if (code === Status.OK) callback(null, { messageId: request.messageId });
        else callback(Object.assign(new Error(Status[code]), { code }));
      });
      return { cancel() {} };
    },
  };
}

const fast = { initialMs: 1, maxMs: 5 };

test('retries UNAVAILABLE and DEADLINE_EXCEEDED with the same message id', async () => {
  const client = scriptedClient([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.UNAVAILABLE]);
  const publisher = new Publisher(client, { backoff: fast });
  const result = await publisher.publish({ queue: 'q', payload: 'x' });
  assert.equal(result.attempts, 4);
  assert.equal(client.requests.length, 4);
  assert.match(result.messageId, /^[0-9a-f-]{36}$/);
  for (const { request } of client.requests) assert.equal(request.messageId, result.messageId);
});

test("keeps the caller's message id", async () => {
  const client = scriptedClient([Status.UNAVAILABLE]);
  const result = await new Publisher(client, { backoff: fast }).publish({ queue: 'q', payload: 'x', messageId: 'my-id' });
  assert.deepEqual(result, { messageId: 'my-id', attempts: 2 });
  assert.deepEqual(client.requests.map((r) => r.request.messageId), ['my-id', 'my-id']);
});

test('fatal errors surface at once, carrying the message id', async () => {
  for (const code of [Status.NOT_FOUND, Status.FAILED_PRECONDITION, Status.INVALID_ARGUMENT, Status.PERMISSION_DENIED]) {
    const client = scriptedClient([code]);
    await assert.rejects(new Publisher(client, { backoff: fast }).publish({ queue: 'q', payload: 'x', messageId: 'id1' }),
      (err) => err.code === code && err.messageId === 'id1' && err.attempts === 1);
    assert.equal(client.requests.length, 1);
  }
});

test('gives up at the overall timeout with the last error', async () => {
  const client = scriptedClient(Array(1000).fill(Status.UNAVAILABLE));
  const started = Date.now();
  await assert.rejects(new Publisher(client, { backoff: { initialMs: 10, maxMs: 20 } }).publish({ queue: 'q' }, { timeoutMs: 300 }),
    (err) => err.code === Status.UNAVAILABLE && err.attempts > 1);
  const elapsed = Date.now() - started;
  assert.ok(elapsed < 2000, `took ${elapsed} ms`);
  // Every attempt ran under the same overall deadline (300 ms < the 10 s per
  // attempt), set when publish() started.
  const overall = client.requests[0].deadline.getTime();
  assert.ok(overall >= started + 300 && overall < started + 300 + 500, `deadline ${overall - started} ms after the start`);
  for (const { deadline } of client.requests) assert.equal(deadline.getTime(), overall);
});

test('an aborted signal stops the retries with an AbortError carrying the message id', async () => {
  const client = scriptedClient(Array(1000).fill(Status.UNAVAILABLE));
  const controller = new AbortController();
  const reason = new Error('stop');
  setTimeout(() => controller.abort(reason), 50);
  await assert.rejects(
    new Publisher(client, { backoff: { initialMs: 10, maxMs: 10 } }).publish({ queue: 'q', messageId: 'm1' }, { signal: controller.signal }),
    (err) => err instanceof AbortError && err.name === 'AbortError' && err.cause === reason && err.code === Status.CANCELLED &&
      err.messageId === 'm1' && err.attempts >= 1);
  const attempts = client.requests.length;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(client.requests.length, attempts, 'no attempt after the abort');
});

test('maps the message to a PublishRequest', async () => {
  const client = scriptedClient([]);
  await new Publisher(client).publish({
    exchange: 'ex', routingKey: 'rk', payload: Buffer.from([1, 2]), headers: { a: 'b' }, contentType: 'application/octet-stream',
    transient: true, priority: 3, ttlMs: 1500, mandatory: true,
  });
  const r = client.requests[0].request;
  assert.equal(r.exchange, 'ex');
  assert.equal(r.routingKey, 'rk');
  assert.deepEqual([...r.payload], [1, 2]);
  assert.deepEqual(r.headers, { a: 'b' });
  assert.equal(r.transient, true);
  assert.equal(r.priority, 3);
  assert.deepEqual(r.ttl, { seconds: '1', nanos: 500_000_000 });
  assert.equal(r.mandatory, true);
  await assert.rejects(new Publisher(client).publish({ payload: 'no routing key' }), TypeError);
});

test('mandatory by default; a message or a publisher opts out', async () => {
  const client = scriptedClient([]);
  await new Publisher(client).publish({ queue: 'q' });
  await new Publisher(client).publish({ queue: 'q', mandatory: false });
  await new Publisher(client, { mandatory: false }).publish({ queue: 'q' });
  await new Publisher(client, { mandatory: false }).publish({ queue: 'q', mandatory: true });
  assert.deepEqual(client.requests.map((r) => r.request.mandatory), [true, false, false, true]);
});
