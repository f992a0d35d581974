// LockService through the Locker, against the live warrend (and private
// warrends for the fault tests).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Warren } from '../../src/index.js';
import { PrivateWarrend, nextEvent, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

test('acquire and release: the holder is visible with its token, and gone after release', async () => {
  const name = `node/${uniq('lock')}`;
  assert.deepEqual(await warren.getLock(name), { holders: [], waiting: 0, limit: 0 });
  const lock = await warren.lock(name, { holderId: 'me', value: 'doing x' });
  assert.equal(lock.isHeld, true);
  assert.equal(typeof lock.fencingToken, 'bigint');
  assert.ok(lock.fencingToken > 0n);
  const state = await warren.getLock(name);
  assert.equal(state.limit, 1);
  assert.equal(state.waiting, 0);
  assert.deepEqual(state.holders.map((h) => [h.holderId, h.value.toString(), h.fencingToken]),
    [['me', 'doing x', lock.fencingToken]]);
  await lock.release();
  assert.equal(lock.isHeld, false);
  assert.deepEqual((await warren.getLock(name)).holders, []);

  // The next holder gets a larger token.
  const next = await warren.lock(name);
  assert.ok(next.fencingToken > lock.fencingToken);
  await next.release();
});

test('mutual exclusion: 8 clients incrementing a counter without compare-and-set under the lock', async () => {
  const name = `node/${uniq('mutex')}`;
  const counter = `node/${uniq('counter')}/n`;
  const clients = Array.from({ length: 8 }, () => new Warren(WARREN_ADDRESS));
  const rounds = 3;
  let inside = 0;
  let most = 0;
  const tokens = [];
  try {
    await Promise.all(clients.map(async (client) => {
      for (let i = 0; i < rounds; i++) {
        await client.withLock(name, {}, async (lock) => {
          inside++;
          most = Math.max(most, inside);
          tokens.push(lock.fencingToken);
          // Read, then write: only exclusion keeps an increment from being lost.
          const entry = await client.getConfig(counter, { consistent: true });
          const n = entry ? Number(entry.value.toString()) : 0;
          await client.putConfig(counter, String(n + 1));
          inside--;
        });
      }
    }));
    assert.equal(most, 1, 'never two holders at once');
    assert.equal((await warren.getConfig(counter, { consistent: true })).value.toString(), String(clients.length * rounds));
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], 'each holder\'s token is larger');
    assert.deepEqual(await warren.getLock(name), { holders: [], waiting: 0, limit: 0 });
  } finally {
    for (const client of clients) client.close();
    await warren.deleteConfig(counter).catch(() => {});
  }
});

test('a semaphore of 3: three hold, the others queue, a release lets the next in; a different limit is refused', async () => {
  const name = `node/${uniq('sem')}`;
  const locks = [];
  const queued = new Map();
  const acquires = Array.from({ length: 5 }, (_, i) => warren.lock(name, {
    limit: 3, holderId: `h${i}`, onQueued: ({ position }) => queued.set(i, position),
  }).then((lock) => { locks.push(lock); return lock; }));
  await waitFor(() => locks.length === 3 && queued.size >= 2, { what: '3 holders and 2 waiters' });
  const state = await waitFor(async () => {
    const s = await warren.getLock(name);
    return s.waiting === 2 && s;
  }, { what: 'GetLock to count the waiters' });
  assert.equal(state.limit, 3);
  assert.equal(state.holders.length, 3);
  assert.equal(locks.length, 3, 'never more than 3');

  await assert.rejects(warren.lock(name, { limit: 2, timeoutMs: 0 }),
    (e) => e.code === grpc.status.FAILED_PRECONDITION && /limit/.test(e.details));

  await locks[0].release();
  await waitFor(() => locks.length === 4, { what: 'the fourth holder' });
  assert.equal(locks.filter((l) => l.isHeld).length, 3);
  await locks[1].release();
  await Promise.all(acquires);
  assert.equal(locks.filter((l) => l.isHeld).length, 3);
  await Promise.all(locks.map((l) => l.release()));
  assert.deepEqual(await warren.getLock(name), { holders: [], waiting: 0, limit: 0 });
});

test('try once and a bounded wait end with DEADLINE_EXCEEDED and leave nothing behind', async () => {
  const name = `node/${uniq('busy')}`;
  const holder = await warren.lock(name);
  try {
    const tryAt = Date.now();
    await assert.rejects(warren.lock(name, { timeoutMs: 0 }), (e) => e.code === grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - tryAt < 3000, 'try-once does not wait');
    const waitAt = Date.now();
    await assert.rejects(warren.lock(name, { timeoutMs: 1000 }),
      (e) => e.code === grpc.status.DEADLINE_EXCEEDED && /not acquired within/.test(e.details));
    const waited = Date.now() - waitAt;
    assert.ok(waited >= 950 && waited < 5000, `waited ${waited} ms`);
    const state = await warren.getLock(name);
    assert.equal(state.waiting, 0, 'the waiters\' nodes are gone');
    assert.equal(state.holders.length, 1);
  } finally {
    await holder.release();
  }
  const free = await warren.lock(name, { timeoutMs: 0 }); // a free lock is acquired at once
  await free.release();
});

test('lost at once when the stream breaks; the lock is free for the next holder', async () => {
  // Same root as the main warrend: one cluster, one lock.
  const server = await new PrivateWarrend({ root: requireEnv('WARREN_ROOT').WARREN_ROOT }).start();
  const client = new Warren(server.address);
  const name = `node/${uniq('lock')}`;
  try {
    const lock = await client.lock(name);
    const waiting = warren.lock(name);
    const lost = nextEvent(lock, 'lost');
    const stoppedAt = Date.now();
    const stopping = server.stop(); // SIGTERM: the server ends the stream with UNAVAILABLE
    const { reason, error } = await lost;
    assert.equal(reason, 'stream_broken');
    assert.match(error.message, /UNAVAILABLE/);
    assert.ok(Date.now() - stoppedAt < 3000);
    assert.equal(lock.isHeld, false);
    assert.equal(lock.signal.aborted, true);
    await stopping;
    const next = await waiting;
    assert.ok(next.fencingToken > lock.fencingToken);
    await next.release();
  } finally {
    client.close();
    await server.stop();
  }
});

test('the lease: a frozen server costs the lock after 2 heartbeat intervals', async () => {
  const server = await new PrivateWarrend().start();
  const client = new Warren(server.address);
  try {
    // 1 s heartbeats: the lease is 2 s, below the private server's 4 s session timeout.
    const lock = await client.lock(`node/${uniq('lock')}`, { heartbeatIntervalMs: 1000 });
    assert.equal(lock.heartbeatIntervalMs, 1000);
    await nextEvent(lock, 'lost', { timeoutMs: 2500 }).then(
      () => assert.fail('lost while the server was running'),
      () => {}, // no loss for 2.5 s: heartbeats renew the lease
    );
    const frozenAt = Date.now();
    server.freeze();
    const { reason } = await nextEvent(lock, 'lost', { timeoutMs: 5000 });
    const after = Date.now() - frozenAt;
    assert.equal(reason, 'lease_expired');
    assert.ok(after < 3500, `lost ${after} ms after the freeze`);
    await lock.closed;
  } finally {
    server.thaw();
    client.close();
    await server.stop('SIGKILL');
  }
});
