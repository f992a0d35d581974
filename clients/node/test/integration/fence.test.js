// Fenced publishes and config writes, and transactions, against the live
// warrend.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Warren, fenceFromElector, fenceFromLock } from '../../src/index.js';
import { nextEvent, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

/** A predicate for assert.rejects: FAILED_PRECONDITION naming the fence `owner` (e.g. 'election:x'). */
const refusedFence = (owner) => (e) => {
  assert.equal(e.code, grpc.status.FAILED_PRECONDITION, e.message);
  assert.ok(e.details.startsWith(`fence: ${owner}`), e.details);
  return true;
};

test('a leader\'s fenced publish and config writes go through; after it resigned they are refused', async () => {
  const election = `node/${uniq('fenced')}`;
  const key = `node/${uniq('fenced')}/state`;
  const queue = uniq('node_fenced');
  const received = [];
  const sub = warren.subscribe({ queue }, (m) => { received.push(m); });
  const elector = warren.elect({ election });
  try {
    await Promise.all([nextEvent(sub, 'subscribed'), nextEvent(elector, 'elected')]);
    const fence = fenceFromElector(elector);
    assert.deepEqual(fence, { election, fencingToken: elector.fencingToken });
    assert.deepEqual(elector.fence, fence);

    await warren.putConfig(key, 'by the leader', { fence });
    await warren.publish({ queue, payload: 'by the leader' }, { fence });
    const first = await waitFor(() => received.find((m) => m.text === 'by the leader'), { what: 'the fenced message' });
    assert.equal(first.headers['warren-fence'], `election:${election}`);
    assert.equal(first.headers['warren-fencing-token'], String(fence.fencingToken));

    await elector.close(); // resigns: the token no longer holds
    assert.equal(elector.fence, null);
    await assert.rejects(warren.putConfig(key, 'by a deposed leader', { fence }), refusedFence(`election:${election}`));
    await assert.rejects(warren.deleteConfig(key, { fence }), refusedFence(`election:${election}`));
    await assert.rejects(warren.publish({ queue, payload: 'by a deposed leader' }, { fence }),
      (e) => refusedFence(`election:${election}`)(e) && e.attempts === 1);
    assert.equal((await warren.getConfig(key, { consistent: true })).value.toString(), 'by the leader', 'unchanged');
    // Messages arrive in order: once the marker is in, the refused one is known not to be.
    await warren.publish({ queue, payload: 'marker' });
    await waitFor(() => received.some((m) => m.text === 'marker'), { what: 'the marker' });
    assert.deepEqual(received.map((m) => m.text), ['by the leader', 'marker']);
    // Headers a client sets cannot forge a fence.
    await assert.rejects(warren.publish({ queue, payload: 'forged', headers: { 'warren-fencing-token': '999999999999' } }),
      (e) => e.code === grpc.status.INVALID_ARGUMENT);
  } finally {
    await Promise.all([sub.stop(), elector.close()]);
    await warren.deleteConfig(key).catch(() => {});
  }
});

test('a lock\'s fence holds while the lock is held, not after release', async () => {
  const name = `node/${uniq('fenced')}`;
  const key = `node/${uniq('fenced')}/k`;
  const lock = await warren.lock(name);
  const fence = fenceFromLock(lock);
  assert.deepEqual(lock.fence, { lock: name, fencingToken: lock.fencingToken });
  await warren.putConfig(key, 'v1', { fence });
  await lock.release();
  await assert.rejects(warren.putConfig(key, 'v2', { fence }), refusedFence(`lock:${name}`));
  // A fence of a lock or election nobody holds does not hold either.
  await assert.rejects(warren.putConfig(key, 'v3', { fence: { election: `node/${uniq('nobody')}`, fencingToken: 1n } }),
    (e) => e.code === grpc.status.FAILED_PRECONDITION);
  assert.equal((await warren.getConfig(key, { consistent: true })).value.toString(), 'v1');
  await warren.deleteConfig(key);
});

test('txn: checks and ops applied all or nothing; the first failing one is named', async () => {
  const base = `node/${uniq('txn')}`;
  await warren.putConfig(`${base}/a`, 'a0');
  await warren.putConfig(`${base}/b`, 'b0');
  const snapshot = async () => {
    const all = {};
    for await (const e of warren.listConfig(base)) all[e.key] = `${e.value}@${e.version}`;
    return all;
  };
  const before = await snapshot();

  // A failing check at either position, a failing op: nothing changes.
  const ops = [{ put: { key: `${base}/a`, value: 'a1' } }, { delete: { key: `${base}/b` } }, { put: { key: `${base}/c/d`, value: 'new' } }];
  await assert.rejects(warren.txn([{ key: `${base}/a`, version: 7 }, { key: `${base}/b`, exists: true }], ops),
    (e) => e.code === grpc.status.FAILED_PRECONDITION && e.details.startsWith('checks[0]'));
  await assert.rejects(warren.txn([{ key: `${base}/a`, version: 0 }, { key: `${base}/b`, exists: false }], ops),
    (e) => e.code === grpc.status.FAILED_PRECONDITION && e.details.startsWith('checks[1]'));
  await assert.rejects(warren.txn([], [ops[0], { put: { key: `${base}/b`, value: 'x', createOnly: true } }]),
    (e) => e.code === grpc.status.FAILED_PRECONDITION && e.details.startsWith('ops[1]'));
  assert.deepEqual(await snapshot(), before, 'nothing changed');
  await assert.rejects(warren.txn([], []), (e) => e.code === grpc.status.INVALID_ARGUMENT);

  // All pass: every op applied, the puts' entries in op order.
  const entries = await warren.txn([{ key: `${base}/a`, version: 0 }, { key: `${base}/b`, exists: true }], ops);
  assert.deepEqual(entries.map((e) => [e.key, e.value.toString(), e.version]), [[`${base}/a`, 'a1', 1], [`${base}/c/d`, 'new', 0]]);
  assert.equal(await warren.getConfig(`${base}/b`, { consistent: true }), null);
  assert.equal((await warren.getConfig(`${base}/c/d`, { consistent: true })).value.toString(), 'new');
  await warren.deleteConfig(base, { recursive: true }).catch(() => {});
});

test('a fenced txn applies while the lock is held, and is refused with nothing changed after', async () => {
  const name = `node/${uniq('fenced')}`;
  const base = `node/${uniq('txn')}`;
  const lock = await warren.lock(name);
  const fence = lock.fence;
  await warren.txn([], [{ put: { key: `${base}/x`, value: '1' } }, { put: { key: `${base}/y`, value: '1' } }], { fence });
  await lock.release();
  await assert.rejects(warren.txn([], [{ put: { key: `${base}/x`, value: '2' } }, { delete: { key: `${base}/y` } }], { fence }),
    refusedFence(`lock:${name}`));
  assert.equal((await warren.getConfig(`${base}/x`, { consistent: true })).value.toString(), '1');
  assert.ok(await warren.getConfig(`${base}/y`, { consistent: true }));
  await warren.deleteConfig(base, { recursive: true }).catch(() => {});
});
