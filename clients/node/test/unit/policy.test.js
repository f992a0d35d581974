// The shared retry rule and defaults, read from clients/retry-policy.json and
// clients/defaults.json: for every status code in the file, what each wrapper
// does when a unary call or a stream ends with it; the backoff numbers; the
// channel settings; the defaults. A change in those files that this client
// does not follow fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { status as Status } from '@grpc/grpc-js';
import {
  BACKOFF, Backoff, CHANNEL, ConfigWatcher, DEFAULTS, DEFAULT_CHANNEL_OPTIONS, Elector, Locker, Publisher,
  RETRY_POLICY, Registration, Subscriber, Warren, streamDecision, unaryDecision,
} from '../../src/index.js';
import { fakeStreamingClient, flush, scriptedUnaryClient } from '../fakes.js';
import { waitFor } from '../helpers.js';

const clientsDir = new URL('../../../', import.meta.url);
const policy = JSON.parse(readFileSync(new URL('retry-policy.json', clientsDir), 'utf8'));
const defaults = JSON.parse(readFileSync(new URL('defaults.json', clientsDir), 'utf8'));
const codes = Object.entries(policy.codes);
const fast = { initialMs: 1, maxMs: 1 };

test('the file and the client list the same codes with the same numbers and decisions', () => {
  assert.deepEqual(Object.keys(RETRY_POLICY).sort(), codes.map(([name]) => name).sort());
  for (const [name, row] of codes) {
    assert.equal(Status[name], row.number, `grpc-js numbers ${name} as the file does`);
    assert.deepEqual({ ...RETRY_POLICY[name] }, row, name);
    assert.equal(unaryDecision(row.number), row.unary, `unary ${name}`);
    assert.equal(streamDecision(row.number), row.stream, `stream ${name}`);
  }
  // Not from the server: an error without a code is not retried; an
  // unknown number is treated as UNKNOWN, as gRPC does.
  assert.equal(unaryDecision(undefined), 'fatal');
  assert.equal(unaryDecision(99), policy.codes.UNKNOWN.unary);
});

// --- unary: what the Publisher and the Warren helpers do with each code ---

for (const [name, row] of codes) {
  test(`unary ${name}: ${row.unary}`, async () => {
    const client = scriptedUnaryClient([row.number]);
    const publisher = new Publisher(client, { backoff: fast });
    const fence = { election: 'e', fencingToken: 5n };
    const published = publisher.publish({ queue: 'q', messageId: 'id' }, { fence });
    const config = scriptedUnaryClient([row.number], () => ({ entry: { key: 'k', version: '0' } }));
    const txnConfig = scriptedUnaryClient([row.number], () => ({ entries: [{ key: 'k', version: '0' }] }));
    const warren = new Warren('127.0.0.1:1');
    warren.raw.config = config;
    const put = warren.putConfig('k', 'v', { fence });
    warren.raw.config = txnConfig;
    const txn = warren.txn([{ key: 'c', exists: false }], [{ put: { key: 'k', value: 'v' } }], { fence });
    try {
      if (row.unary === 'fatal') {
        await assert.rejects(published, (e) => e.code === row.number && e.attempts === 1 && e.messageId === 'id');
        await assert.rejects(put, (e) => e.code === row.number);
        await assert.rejects(txn, (e) => e.code === row.number);
      } else {
        // done: answered at once; retry: answered by the second attempt.
        assert.deepEqual(await published, { messageId: 'id', attempts: row.unary === 'retry' ? 2 : 1 });
        assert.equal((await put).key, 'k');
        assert.equal((await txn)[0].key, 'k');
      }
    } finally {
      warren.close();
    }
    const expected = row.unary === 'retry' ? 2 : 1;
    assert.equal(client.requests.length, expected, 'publish attempts');
    assert.equal(config.requests.length, expected, 'putConfig attempts');
    assert.equal(txnConfig.requests.length, expected, 'txn attempts');
    // Every attempt carries the same fence: a retry is checked again.
    for (const { request } of [...client.requests, ...config.requests, ...txnConfig.requests]) {
      assert.deepEqual(request.fence, { election: 'e', fencingToken: '5' });
    }
  });
}

// --- streams: what each long-lived wrapper does when its stream ends ---

// Each: start it on a fake client with the given backoff options; stop it.
const streamWrappers = {
  Subscriber: {
    start: (client, backoff) => new Subscriber(client, { queue: 'q', backoff }, () => {}),
    stop: (sub) => sub.stop(),
  },
  ConfigWatcher: {
    start: (client, backoff) => new ConfigWatcher(client, 'k', { backoff }),
    stop: (watcher) => watcher.close(),
  },
  Elector: {
    start: (client, backoff) => new Elector(client, { election: 'e', backoff }),
    stop: (elector) => elector.close(),
  },
  Registration: {
    start: (client, backoff) => new Registration(client, 'k', 'v', { backoff }),
    stop: (registration) => registration.close(),
  },
};

for (const [name, row] of codes) {
  for (const [wrapper, { start, stop }] of Object.entries(streamWrappers)) {
    test(`stream ${name}: ${wrapper} ${row.stream === 'fatal' ? 'stops' : 'resubscribes'}`, async () => {
      const client = fakeStreamingClient();
      const it = start(client, fast);
      const errors = [];
      it.on('error', (e) => errors.push(e));
      let closed = false;
      it.closed.then(() => { closed = true; }, () => { closed = true; });
      await flush();
      client.last().finish(row.number, `ended with ${name}`);
      if (row.stream === 'fatal') {
        await it.closed;
        assert.equal(errors[0]?.code, row.number);
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(client.calls.length, 1, 'not reopened');
      } else {
        await waitFor(() => client.calls.length === 2, { what: 'the second stream' });
        assert.equal(closed, false);
        assert.equal(errors.length, 0);
        client.last().on('ended', () => client.last().finish(Status.OK));
        await stop(it);
      }
    });
  }

  test(`stream ${name}: observeLeader ${row.stream === 'fatal' ? 'throws' : 'resubscribes'}`, async () => {
    const client = fakeStreamingClient();
    const warren = new Warren('127.0.0.1:1');
    warren.raw.election = client;
    const leader = { leader: { election: 'e', candidateId: 'a', fencingToken: '1' } };
    const observed = warren.observeLeader('e', { backoff: fast });
    try {
      const first = observed.next();
      await flush();
      client.last().push(leader);
      assert.equal((await first).value.candidateId, 'a');
      const second = observed.next();
      client.last().finish(row.number, `ended with ${name}`);
      if (row.stream === 'fatal') {
        await assert.rejects(second, (e) => e.code === row.number);
        assert.equal(client.calls.length, 1, 'not reopened');
      } else {
        await waitFor(() => client.calls.length === 2, { what: 'the second stream' });
        client.last().push({ leader: null });
        assert.equal((await second).value, null);
      }
    } finally {
      await observed.return();
      warren.close();
    }
  });
}

// A Lock waiting for the lock reopens its stream (within its timeout) when
// the policy resubscribes; a Lock that holds never does: a broken stream
// while holding is a loss, whatever the code.
const acquiredResponse = {
  event: 'acquired',
  acquired: { holder: { name: 'l', holderId: 'h', fencingToken: '9' }, heartbeatInterval: { seconds: '1', nanos: 0 } },
};
for (const [name, row] of codes) {
  test(`stream ${name}: Locker.acquire while waiting ${row.stream === 'fatal' ? 'rejects' : 'retries'}`, async () => {
    const client = fakeStreamingClient();
    const pending = new Locker(client, { backoff: fast }).acquire('l', { timeoutMs: 10_000 });
    await flush();
    client.last().push({ event: 'queued', queued: { position: 0, holders: [] } });
    client.last().finish(row.number, `ended with ${name}`);
    if (row.stream === 'fatal') {
      await assert.rejects(pending, (e) => e.code === row.number);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(client.calls.length, 1, 'not reopened');
    } else {
      await waitFor(() => client.calls.length === 2, { what: 'the second stream' });
      client.last().push(acquiredResponse);
      const lock = await pending;
      client.last().on('ended', () => client.last().finish(Status.OK));
      await lock.release();
    }
  });

  test(`stream ${name}: a held Lock is lost and never re-acquired`, async () => {
    const client = fakeStreamingClient();
    const pending = new Locker(client, { backoff: fast }).acquire('l');
    await flush();
    client.last().push(acquiredResponse);
    const lock = await pending;
    const lost = [];
    lock.on('lost', (e) => lost.push(e));
    client.last().finish(row.number, `ended with ${name}`);
    await lock.closed;
    assert.deepEqual(lost.map((e) => [e.reason, e.error.code]), [['stream_broken', row.number]]);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(client.calls.length, 1, 'not reopened');
  });
}

// --- backoff ---

test('the backoff numbers are the file\'s: d = min(max, initial * multiplier^n), picked in [d/2, d]', () => {
  const { initial_ms: initialMs, multiplier, max_ms: maxMs } = policy.backoff;
  assert.deepEqual({ ...BACKOFF }, { initialMs, multiplier, maxMs });
  const expected = Array.from({ length: 12 }, (_, n) => Math.min(maxMs, initialMs * multiplier ** n));
  const top = new Backoff({ random: () => 0 });
  const bottom = new Backoff({ random: () => 1 });
  assert.deepEqual(expected.map(() => top.next()), expected.map(Math.round));
  assert.deepEqual(expected.map(() => bottom.next()), expected.map((d) => Math.round(d / 2)));
  const real = new Backoff();
  for (const d of expected) {
    const got = real.next();
    assert.ok(got >= Math.floor(d / 2) && got <= d, `${got} in [${d / 2}, ${d}]`);
  }
});

// With the jitter pinned to the top of the range, the waits a wrapper
// announces are the policy's: n grows while streams fail without an answer,
// and a stream's first response resets it.
const firstResponse = {
  Subscriber: { response: 'subscribed', subscribed: { queue: 'q' } },
  ConfigWatcher: { events: [], initialState: true },
  Elector: { event: 'following', following: { leader: null } },
  Registration: { event: 'held', held: { key: 'k', value: Buffer.from('v'), version: '0' } },
};
for (const [wrapper, { start, stop }] of Object.entries(streamWrappers)) {
  test(`${wrapper} waits the policy's backoff, reset by a stream's first response`, async () => {
    const client = fakeStreamingClient();
    const it = start(client, { random: () => 0 }); // the policy's numbers, the jitter pinned
    const delays = [];
    it.on('reconnecting', ({ delayMs }) => delays.push(delayMs));
    await flush();
    client.last().finish(Status.UNAVAILABLE);
    await waitFor(() => client.calls.length === 2, { what: 'the second stream' });
    client.last().finish(Status.UNAVAILABLE);
    await waitFor(() => client.calls.length === 3, { what: 'the third stream' });
    client.last().push(firstResponse[wrapper]);
    client.last().finish(Status.UNAVAILABLE);
    await waitFor(() => client.calls.length === 4, { what: 'the fourth stream' });
    const { initial_ms: initialMs, multiplier } = policy.backoff;
    assert.deepEqual(delays, [initialMs, initialMs * multiplier, initialMs]);
    client.last().on('ended', () => client.last().finish(Status.OK));
    await stop(it);
  });
}

// --- channel ---

test('the channel caps the reconnect backoff as the file says; every stream opens wait-for-ready without a deadline', async () => {
  assert.equal(DEFAULT_CHANNEL_OPTIONS['grpc.initial_reconnect_backoff_ms'], policy.channel.initial_reconnect_backoff_ms);
  assert.equal(DEFAULT_CHANNEL_OPTIONS['grpc.max_reconnect_backoff_ms'], policy.channel.max_reconnect_backoff_ms);
  assert.deepEqual({ ...CHANNEL }, {
    initialReconnectBackoffMs: policy.channel.initial_reconnect_backoff_ms,
    maxReconnectBackoffMs: policy.channel.max_reconnect_backoff_ms,
    streamsWaitForReady: policy.channel.streams_wait_for_ready,
  });
  const client = fakeStreamingClient();
  const opened = [
    new Subscriber(client, { queue: 'q' }, () => {}),
    new ConfigWatcher(client, 'k'),
    new Elector(client, { election: 'e' }),
    new Registration(client, 'k', 'v'),
  ];
  const controller = new AbortController();
  const acquiring = new Locker(client).acquire('l', { signal: controller.signal }).catch((e) => e);
  const warren = new Warren('127.0.0.1:1');
  warren.raw.election = client;
  const observed = warren.observeLeader('e');
  const next = observed.next();
  await flush();
  assert.equal(client.calls.length, 6);
  for (const call of client.calls) {
    assert.equal(call.metadata.getOptions().waitForReady, policy.channel.streams_wait_for_ready);
    assert.equal(call.options?.deadline, undefined, 'a stream has no deadline');
  }
  // A stream not answered yet is cancelled on close, not waited for.
  await Promise.all([opened[0].stop(), opened[1].close(), opened[2].close(), opened[3].close()]);
  controller.abort();
  assert.equal((await acquiring).name, 'AbortError');
  const observing = client.calls.find((c) => c.request?.election === 'e');
  observing.push({ leader: null });
  await next;
  await observed.return();
  warren.close();
  const others = client.calls.filter((c) => c !== observing);
  assert.ok(others.every((c) => c.cancelled), 'unanswered streams cancelled on close');
});

// --- defaults ---

const camel = (s) => s.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
function withoutAbout(section) {
  return Object.fromEntries(Object.entries(section).filter(([k]) => !k.startsWith('about')).map(([k, v]) => [camel(k), v]));
}

test('the defaults are the file\'s, and the wrappers use them', async () => {
  const want = Object.fromEntries(Object.entries(defaults).filter(([k]) => k !== 'about').map(([k, v]) => [k, withoutAbout(v)]));
  assert.deepEqual(JSON.parse(JSON.stringify(DEFAULTS)), want);

  const unary = scriptedUnaryClient();
  await new Publisher(unary).publish({ queue: 'q' });
  assert.equal(unary.requests[0].request.mandatory, want.publisher.mandatory);

  const client = fakeStreamingClient();
  const sub = new Subscriber(client, { queue: 'q' }, () => {});
  const elector = new Elector(client, { election: 'e' });
  await flush();
  assert.equal(client.calls[0].writes[0].start.maxInFlight, want.subscriber.maxInFlight);
  const { campaign } = client.calls[1].writes[0];
  const ms = Number(campaign.heartbeatInterval.seconds) * 1000 + campaign.heartbeatInterval.nanos / 1e6;
  assert.equal(ms, want.elector.heartbeatIntervalMs);
  assert.equal(campaign.rejoinAfterExpiry, want.elector.rejoinAfterExpiry);
  await Promise.all([sub.stop(), elector.close()]);
});
