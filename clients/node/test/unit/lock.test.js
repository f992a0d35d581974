// The Locker and Lock against a fake LockService stream: what is sent, the
// lease, losses, retries while waiting, and release.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { AbortError, Locker, fenceFromLock } from '../../src/index.js';
import { fakeStreamingClient, flush } from '../fakes.js';
import { nextEvent, recordEvents, waitFor } from '../helpers.js';

const holder = (token, id = 'me') => ({
  name: 'jobs/a', holderId: id, value: Buffer.from('v'), fencingToken: String(token), acquiredTime: null,
});
const acquired = (token, intervalMs = 1000) => ({
  event: 'acquired',
  acquired: { holder: holder(token), heartbeatInterval: { seconds: String(intervalMs / 1000), nanos: 0 } },
});
const heartbeat = { event: 'heartbeat', heartbeat: { serverTime: null } };
const fast = { initialMs: 1, maxMs: 1 };
const ms = (d) => Number(d.seconds) * 1000 + d.nanos / 1e6;

// The server's answer to a release: the stream ends OK.
function answerRelease(call) {
  call.on('wrote', (m) => { if (m.release) call.finish(Status.OK); });
}

test('acquire sends the request, reports the queue, resolves with the held lock; release gives it up', async () => {
  const client = fakeStreamingClient();
  const queued = [];
  const pending = new Locker(client).acquire('jobs/a', {
    holderId: 'me', value: 'v', limit: 3, heartbeatIntervalMs: 500, onQueued: (q) => queued.push(q),
  });
  await flush();
  const call = client.last();
  const { acquire } = call.writes[0];
  assert.equal(acquire.name, 'jobs/a');
  assert.equal(acquire.holderId, 'me');
  assert.equal(acquire.value.toString(), 'v');
  assert.equal(acquire.limit, 3);
  assert.equal(ms(acquire.heartbeatInterval), 500);
  assert.equal(acquire.waitTimeout, null, 'no timeout: wait while the stream lives');
  call.push({ event: 'queued', queued: { position: 1, holders: [holder(5, 'other')] } });
  assert.equal(queued[0].position, 1);
  assert.equal(queued[0].holders[0].fencingToken, 5n);
  // 2^63 + 1: a token beyond Number's exact range stays exact.
  call.push(acquired('9223372036854775809', 2000));
  const lock = await pending;
  assert.equal(lock.isHeld, true);
  assert.equal(lock.fencingToken, 9223372036854775809n);
  assert.equal(lock.heartbeatIntervalMs, 2000, 'the interval the server says is in force');
  assert.equal(lock.limit, 3);
  assert.deepEqual(lock.fence, { lock: 'jobs/a', fencingToken: 9223372036854775809n });
  assert.equal(lock.signal.aborted, false);

  const log = recordEvents(lock, ['lost', 'close']);
  answerRelease(call);
  await lock.release();
  assert.deepEqual(call.writes.slice(1), [{ release: {} }]);
  assert.equal(call.ended, true, 'half-closed after the release');
  assert.equal(lock.isHeld, false);
  assert.equal(lock.signal.aborted, true);
  assert.equal(lock.fence, null);
  assert.throws(() => fenceFromLock(lock), /not held/);
  assert.deepEqual(log.map((e) => e.name), ['close'], 'a release is not a loss');
  await lock.release(); // again: nothing more
  assert.equal(client.calls.length, 1);
});

test('timeoutMs is sent as the wait: 0 tries once; the server\'s DEADLINE_EXCEEDED rejects', async () => {
  const client = fakeStreamingClient();
  const pending = new Locker(client).acquire('jobs/a', { timeoutMs: 0, backoff: fast });
  await flush();
  assert.deepEqual(client.last().writes[0].acquire.waitTimeout, { seconds: '0', nanos: 0 });
  client.last().finish(Status.DEADLINE_EXCEEDED, 'acquire.wait_timeout: lock jobs/a not acquired within 0s');
  await assert.rejects(pending, (e) => e.code === Status.DEADLINE_EXCEEDED && /not acquired/.test(e.message));
  assert.equal(client.calls.length, 1, 'no retry: no time left');
});

test('a stream broken while waiting is retried with what is left of the timeout; a fatal code rejects', async () => {
  const client = fakeStreamingClient();
  const pending = new Locker(client).acquire('jobs/a', { timeoutMs: 5000, backoff: fast });
  await flush();
  const first = ms(client.last().writes[0].acquire.waitTimeout);
  assert.ok(first <= 5000 && first > 4000, `first wait ${first}`);
  await new Promise((r) => setTimeout(r, 50));
  client.last().finish(Status.UNAVAILABLE, 'server is shutting down');
  await waitFor(() => client.calls.length === 2, { what: 'the retry' });
  const second = ms(client.last().writes[0].acquire.waitTimeout);
  assert.ok(second < first - 40, `the retry waits ${second} ms, less than the first ${first} ms`);
  assert.equal(client.last().writes[0].acquire.holderId, client.calls[0].writes[0].acquire.holderId, 'same holder id');
  client.last().finish(Status.FAILED_PRECONDITION, 'acquire.limit: lock jobs/a has limit 3, not 1');
  await assert.rejects(pending, (e) => e.code === Status.FAILED_PRECONDITION);
  assert.equal(client.calls.length, 2);
});

test('the lease: heartbeats keep the lock, silence for 2 intervals loses it and drops the stream', async () => {
  const client = fakeStreamingClient();
  const pending = new Locker(client).acquire('jobs/a');
  await flush();
  const call = client.last();
  call.push(acquired(7, 200));
  const lock = await pending;
  const until = Date.now() + 1000; // 5 intervals; heartbeats every 50 ms keep the 400 ms lease
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    call.push(heartbeat);
    assert.equal(lock.isHeld, true, 'heartbeats renew the lease');
  }
  const silentSince = Date.now();
  const lost = await nextEvent(lock, 'lost', { timeoutMs: 2000 });
  const after = Date.now() - silentSince;
  assert.equal(lost.reason, 'lease_expired');
  assert.ok(after >= 390 && after < 1500, `lost after ${after} ms (lease 400 ms)`);
  assert.equal(lock.isHeld, false);
  assert.equal(lock.signal.aborted, true);
  assert.equal(call.cancelled, true, 'the suspect stream is dropped: the server deletes the node');
  await lock.closed;
  assert.equal(client.calls.length, 1, 'never re-acquired');
});

test('a stream broken while holding is lost at once and never re-acquired', async () => {
  const client = fakeStreamingClient();
  const pending = new Locker(client, { backoff: fast }).acquire('jobs/a');
  await flush();
  client.last().push(acquired(7));
  const lock = await pending;
  const log = recordEvents(lock, ['lost', 'close']);
  client.last().finish(Status.UNAVAILABLE, 'server is shutting down');
  assert.deepEqual(log.map((e) => e.name), ['lost', 'close'], 'synchronously');
  assert.equal(log.of('lost')[0].args[0].reason, 'stream_broken');
  assert.equal(log.of('lost')[0].args[0].error.code, Status.UNAVAILABLE);
  assert.equal(lock.isHeld, false);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.calls.length, 1);
  await lock.release(); // harmless after a loss
});

test('suspension: lost, then reacquired with the same token; expiry: lost, then the end', async () => {
  const client = fakeStreamingClient();
  const pending = new Locker(client).acquire('jobs/a');
  await flush();
  const call = client.last();
  call.push(acquired(7));
  const lock = await pending;
  const log = recordEvents(lock, ['lost', 'reacquired', 'close']);
  call.push({ event: 'lost', lost: { reason: 'LOSS_REASON_CONNECTION_SUSPENDED' } });
  assert.equal(lock.isHeld, false);
  assert.equal(lock.signal.aborted, true, 'work under the lock stops at the first doubt');
  call.push(acquired(7));
  assert.equal(lock.isHeld, true);
  call.push({ event: 'lost', lost: { reason: 'LOSS_REASON_SESSION_EXPIRED' } });
  call.finish(Status.ABORTED, 'session expired');
  assert.deepEqual(log.map((e) => [e.name, e.args[0]?.reason ?? e.args[0]?.fencingToken]), [
    ['lost', 'connection_suspended'], ['reacquired', 7n], ['lost', 'session_expired'], ['close', undefined],
  ]);
  assert.equal(call.cancelled, false);
});

test('an abort while waiting cancels the stream and rejects with an AbortError', async () => {
  const client = fakeStreamingClient();
  const controller = new AbortController();
  const pending = new Locker(client, { backoff: fast }).acquire('jobs/a', { signal: controller.signal });
  await flush();
  client.last().push({ event: 'queued', queued: { position: 0, holders: [] } });
  const reason = new Error('shutting down');
  controller.abort(reason);
  await assert.rejects(pending, (e) => e instanceof AbortError && e.cause === reason);
  assert.equal(client.last().cancelled, true);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.calls.length, 1);
});

test('withLock and Symbol.asyncDispose release however the work ends', async () => {
  const client = fakeStreamingClient();
  client.on('call', (call) => {
    answerRelease(call);
    setImmediate(() => call.push(acquired(client.calls.length)));
  });
  const locker = new Locker(client);
  let seen = null;
  await assert.rejects(locker.withLock('jobs/a', {}, async (lock) => {
    seen = lock;
    assert.equal(lock.isHeld, true);
    throw new Error('work failed');
  }), /work failed/);
  assert.equal(seen.isHeld, false);
  assert.deepEqual(client.calls[0].writes.at(-1), { release: {} });

  assert.equal(typeof Symbol.asyncDispose, 'symbol', 'Node has the symbol');
  const lock = await locker.acquire('jobs/a');
  await lock[Symbol.asyncDispose]();
  assert.equal(lock.isHeld, false);
  assert.deepEqual(client.calls[1].writes.at(-1), { release: {} });
});
