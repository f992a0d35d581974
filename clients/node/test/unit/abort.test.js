// An AbortSignal ends every call and stream the same way: the call or stream
// is cancelled, nothing is retried or reopened, and what the caller awaits
// rejects with an AbortError (name 'AbortError', code CANCELLED, the signal's
// reason as cause). stop() and close() are clean-up: they resolve once the
// wrapper has ended, however it ended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { AbortError, ConfigWatcher, Elector, Publisher, Subscriber, Warren } from '../../src/index.js';
import { deferred, fakeStreamingClient, flush, scriptedUnaryClient } from '../fakes.js';
import { recordEvents, waitFor } from '../helpers.js';

const fast = { initialMs: 1, maxMs: 1 };

/** A predicate for assert.rejects: the AbortError of `reason`. */
const abortedBy = (reason) => (err) => {
  assert.ok(err instanceof AbortError, `${err?.name}: ${err?.message}`);
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, Status.CANCELLED);
  assert.equal(err.cause, reason);
  return true;
};

/** Lets a few backoff periods pass, then checks that no stream was opened since. */
async function assertNoNewCall(client, count) {
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(client.calls.length, count, 'nothing reopened after the abort');
}

test('Subscriber: abort nacks what waits, cancels the stream, closes with an AbortError, never resubscribes', async () => {
  const client = fakeStreamingClient();
  const controller = new AbortController();
  const gate = deferred();
  const sub = new Subscriber(client, { queue: 'q', maxInFlight: 1, signal: controller.signal, backoff: fast },
    () => gate.promise);
  const log = recordEvents(sub, ['close', 'error', 'reconnecting']);
  await flush();
  const call = client.last();
  call.push({ response: 'subscribed', subscribed: { queue: 'q' } });
  call.push({ response: 'delivery', delivery: { deliveryId: '1' } });
  call.push({ response: 'delivery', delivery: { deliveryId: '2' } });
  await flush();
  const stopping = sub.stop(); // waits for the running handler...
  const reason = new Error('shutting down');
  controller.abort(reason); // ...until the abort
  await assert.rejects(sub.closed, abortedBy(reason));
  await stopping; // clean-up resolves, however the subscriber ended
  assert.equal(call.cancelled, true);
  assert.deepEqual(call.writes.filter((w) => w.nack), [{ nack: { deliveryIds: ['2'], requeue: true } }]);
  gate.resolve(); // the handler that ran finishes: nothing is written for it any more
  await flush();
  assert.equal(call.writes.filter((w) => w.ack).length, 0);
  assert.deepEqual(log.map((e) => e.name), ['close']);
  await assertNoNewCall(client, 1);
});

test('Subscriber: an abort while waiting to resubscribe stops it there', async () => {
  const client = fakeStreamingClient();
  const controller = new AbortController();
  const sub = new Subscriber(client, { queue: 'q', signal: controller.signal, backoff: { initialMs: 50, maxMs: 50 } }, () => {});
  await flush();
  client.last().finish(Status.UNAVAILABLE, 'down');
  controller.abort();
  await assert.rejects(sub.closed, abortedBy(controller.signal.reason));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(client.calls.length, 1);
});

test('Subscriber, ConfigWatcher, Elector: an already aborted signal opens no stream', async () => {
  const client = fakeStreamingClient();
  const signal = AbortSignal.abort();
  const sub = new Subscriber(client, { queue: 'q', signal }, () => {});
  const watcher = new ConfigWatcher(client, 'k', { signal });
  const elector = new Elector(client, { election: 'e', signal });
  const closes = [sub, watcher, elector].map((it) => recordEvents(it, ['close']));
  await assert.rejects(sub.closed, abortedBy(signal.reason));
  await assert.rejects(watcher.closed, abortedBy(signal.reason));
  await assert.rejects(watcher.ready(), abortedBy(signal.reason));
  await assert.rejects(elector.closed, abortedBy(signal.reason));
  assert.equal(client.calls.length, 0);
  assert.deepEqual(closes.map((l) => l.length), [1, 1, 1]);
});

test('ConfigWatcher: abort before the first state rejects ready(); after it, closed; never re-watches', async () => {
  const client = fakeStreamingClient();
  const early = new AbortController();
  const waiting = new ConfigWatcher(client, 'k', { signal: early.signal, backoff: fast });
  await flush();
  const ready = waiting.ready();
  early.abort('early');
  await assert.rejects(ready, abortedBy('early'));
  await assert.rejects(waiting.closed, abortedBy('early'));
  assert.equal(client.last().cancelled, true);

  const late = new AbortController();
  const watcher = new ConfigWatcher(client, 'k', { signal: late.signal, backoff: fast });
  await flush();
  client.last().push({ events: [], initialState: true });
  await watcher.ready();
  late.abort('late');
  await assert.rejects(watcher.closed, abortedBy('late'));
  assert.equal(client.last().cancelled, true);
  await watcher.ready(); // still resolved: it had its state
  await assertNoNewCall(client, 2);
});

test('Elector: abort while leading reports lost at once, cancels, closes with an AbortError', async () => {
  const client = fakeStreamingClient();
  const controller = new AbortController();
  const elector = new Elector(client, { election: 'e', signal: controller.signal, backoff: fast });
  const log = recordEvents(elector, ['elected', 'lost', 'reconnecting', 'error', 'close']);
  await flush();
  const call = client.last();
  call.push({ event: 'elected', elected: { leader: { election: 'e', candidateId: 'me', fencingToken: '3' } } });
  assert.equal(elector.isLeader, true);
  controller.abort();
  // Synchronously: whoever runs the leader's work hears it before anything else happens.
  assert.equal(elector.isLeader, false);
  assert.deepEqual(log.map((e) => e.name), ['elected', 'lost', 'close']);
  assert.deepEqual(log.of('lost')[0].args[0], { reason: 'aborted' });
  assert.equal(call.cancelled, true);
  await assert.rejects(elector.closed, abortedBy(controller.signal.reason));
  await elector.close(); // clean-up resolves, however the elector ended
  await assertNoNewCall(client, 1);
});

test('observeLeader: abort rejects the pending next() and a later one; an abort during the backoff too', async () => {
  const client = fakeStreamingClient();
  const warren = new Warren('127.0.0.1:1');
  warren.raw.election = client;
  try {
    const controller = new AbortController();
    const observed = warren.observeLeader('e', { signal: controller.signal, backoff: fast });
    const first = observed.next();
    await flush();
    client.last().push({ leader: null });
    assert.equal((await first).value, null);
    const pending = observed.next();
    controller.abort('stop');
    await assert.rejects(pending, abortedBy('stop'));
    assert.equal(client.last().cancelled, true);
    assert.deepEqual(await observed.next(), { value: undefined, done: true });
    await assertNoNewCall(client, 1);

    const during = new AbortController();
    const slow = warren.observeLeader('e', { signal: during.signal, backoff: { initialMs: 10_000, maxMs: 10_000 } });
    const next = slow.next();
    await flush();
    client.last().finish(Status.UNAVAILABLE, 'down'); // now it waits 5-10 s to reopen
    await flush();
    during.abort('now');
    await assert.rejects(next, abortedBy('now'));
    assert.equal(client.calls.length, 2);

    const already = warren.observeLeader('e', { signal: AbortSignal.abort('before') });
    await assert.rejects(already.next(), abortedBy('before'));
    assert.equal(client.calls.length, 2);
  } finally {
    warren.close();
  }
});

test('unary calls: an abort cancels the call in flight and rejects with the same AbortError', async () => {
  const warren = new Warren('127.0.0.1:1');
  try {
    // An attempt that never answers until cancelled.
    let cancelled = 0;
    warren.raw.config = {
      getConfig(request, metadata, options, callback) {
        return { cancel() { cancelled++; callback(Object.assign(new Error('Cancelled on client'), { code: Status.CANCELLED })); } };
      },
    };
    const controller = new AbortController();
    const reading = warren.getConfig('k', { signal: controller.signal });
    controller.abort('enough');
    await assert.rejects(reading, abortedBy('enough'));
    assert.equal(cancelled, 1, 'cancelled once, not retried');

    await assert.rejects(warren.getConfig('k', { signal: AbortSignal.abort('before') }), abortedBy('before'));
    assert.equal(cancelled, 1, 'no call made');

    // A publish aborted while waiting between attempts.
    const unavailable = scriptedUnaryClient(Array(100).fill(Status.UNAVAILABLE));
    const publisher = new Publisher(unavailable, { backoff: { initialMs: 10_000, maxMs: 10_000 } });
    const between = new AbortController();
    const publishing = publisher.publish({ queue: 'q', messageId: 'm' }, { signal: between.signal });
    await waitFor(() => unavailable.requests.length === 1);
    await flush();
    between.abort('bye');
    await assert.rejects(publishing, (err) => abortedBy('bye')(err) && err.messageId === 'm' && err.attempts === 1);
  } finally {
    warren.close();
  }
});
