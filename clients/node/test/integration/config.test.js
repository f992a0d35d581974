// ConfigService through the wrapper and the ConfigWatcher.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Warren } from '../../src/index.js';
import { PrivateWarrend, nextEvent, recordEvents, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

test('get, put (any version, compare-and-set, create-only), list, delete', async () => {
  const base = `node/${uniq('cfg')}`;
  assert.equal(await warren.getConfig(`${base}/a`), null);
  const v0 = await warren.putConfig(`${base}/a`, 'one');
  assert.equal(v0.version, 0);
  assert.ok(v0.modifyTime instanceof Date);
  const v1 = await warren.putConfig(`${base}/a`, 'two', { expectedVersion: 0 });
  assert.equal(v1.version, 1);
  await assert.rejects(warren.putConfig(`${base}/a`, 'three', { expectedVersion: 0 }), (e) => e.code === grpc.status.FAILED_PRECONDITION);
  await assert.rejects(warren.putConfig(`${base}/a`, 'x', { createOnly: true }), (e) => e.code === grpc.status.ALREADY_EXISTS);
  await warren.putConfig(`${base}/b/c`, Buffer.from([0, 255]));
  const got = await warren.getConfig(`${base}/a`, { consistent: true });
  assert.equal(got.value.toString(), 'two');
  const keys = [];
  for await (const e of warren.listConfig(base, { pageSize: 1 })) keys.push(e.key); // paging
  // Keys are what was put: the parents created on the way are not keys.
  assert.deepEqual(keys, [`${base}/a`, `${base}/b/c`]);
  assert.equal(await warren.getConfig(`${base}/b`, { consistent: true }), null);
  await assert.rejects(warren.getConfig('bad//key'), (e) => e.code === grpc.status.INVALID_ARGUMENT);
  await warren.deleteConfig(base, { recursive: true });
  assert.equal(await warren.getConfig(`${base}/b/c`), null);
});

test('the watcher sees the change', async () => {
  const key = `node/${uniq('cfg')}/greeting`;
  await warren.putConfig(key, 'hello');
  const watcher = warren.watchConfig(key);
  await watcher.ready({ timeoutMs: 10_000 });
  assert.equal(watcher.value.toString(), 'hello');
  const changed = nextEvent(watcher, 'change');
  await warren.putConfig(key, 'bonjour');
  const change = await changed;
  assert.equal(change.type, 'put');
  assert.equal(change.entry.value.toString(), 'bonjour');
  assert.equal(change.previous.value.toString(), 'hello');
  assert.equal(watcher.value.toString(), 'bonjour');
  const deleted = nextEvent(watcher, 'change');
  await warren.deleteConfig(key);
  assert.equal((await deleted).type, 'delete');
  assert.equal(watcher.value, undefined);
  await watcher.close();
});

test('a prefix watcher sees keys created later at any depth', async () => {
  const base = `node/${uniq('cfg')}`;
  await warren.putConfig(`${base}/x`, '1');
  const watcher = warren.watchConfig(base, { prefix: true });
  await watcher.ready();
  assert.deepEqual([...watcher.entries.keys()].sort(), [`${base}/x`]);
  await warren.putConfig(`${base}/deep/er/key`, 'v');
  await waitFor(() => watcher.get(`${base}/deep/er/key`)?.value.toString() === 'v', { what: 'the new deep key' });
  await watcher.close();
  await warren.deleteConfig(base, { recursive: true });
});

test('after its server restarts, the watcher re-watches and reports what changed meanwhile', async () => {
  // Same root as the main server: one cluster, so changes made through the
  // main server while this one is down are what the watcher must catch up on.
  const server = await new PrivateWarrend({ root: requireEnv('WARREN_ROOT').WARREN_ROOT }).start();
  const client = new Warren(server.address);
  const base = `node/${uniq('cfg')}`;
  await warren.putConfig(`${base}/same`, 's');
  await warren.putConfig(`${base}/changed`, 'old');
  await warren.putConfig(`${base}/gone`, 'g');
  const watcher = client.watchConfig(base, { prefix: true, backoff: { initialMs: 50, maxMs: 500 } });
  try {
    await watcher.ready();
    const log = recordEvents(watcher, ['change', 'reconnecting']);
    await server.stop();
    await waitFor(() => log.of('reconnecting').length > 0, { what: 'reconnecting' });
    await warren.putConfig(`${base}/changed`, 'new');
    await warren.deleteConfig(`${base}/gone`);
    await warren.putConfig(`${base}/new`, 'n');
    await server.start();
    await waitFor(() => log.of('change').length >= 3, { timeoutMs: 20_000, what: 'the differences' });
    const changes = log.of('change').map((e) => e.args[0]).map((c) => `${c.type} ${c.key} ${c.entry?.value ?? ''}`).sort();
    assert.deepEqual(changes, [`delete ${base}/gone `, `put ${base}/changed new`, `put ${base}/new n`]);
    assert.deepEqual([...watcher.entries.keys()].sort(), [`${base}/changed`, `${base}/new`, `${base}/same`]);
    await watcher.close();
  } finally {
    client.close();
    await server.stop();
    // Nothing is left to delete when the test failed before its put: keep
    // that failure, not NOT_FOUND, as the test's error.
    await warren.deleteConfig(base, { recursive: true }).catch((e) => {
      if (e.code !== grpc.status.NOT_FOUND) throw e;
    });
  }
});

test('at the server\'s watch limit (RESOURCE_EXHAUSTED) a watcher retries until a slot frees; a fatal code stops it', async () => {
  const server = await new PrivateWarrend({ root: requireEnv('WARREN_ROOT').WARREN_ROOT, flags: ['--max_watches_per_client=1'] }).start();
  const client = new Warren(server.address);
  const base = `node/${uniq('limit')}`;
  const first = client.watchConfig(`${base}/a`);
  let second = null;
  try {
    // The first holds the one slot before the second asks for it.
    await first.ready({ timeoutMs: 10_000 });
    second = client.watchConfig(`${base}/b`, { backoff: { initialMs: 50, maxMs: 200 } });
    const refused = [];
    second.on('reconnecting', ({ error }) => refused.push(error.code));
    second.on('error', (e) => assert.fail(`fatal: ${e.message}`));
    await waitFor(() => refused.length >= 3, { what: 'the second watcher to be refused and retry' });
    assert.deepEqual([...new Set(refused)], [grpc.status.RESOURCE_EXHAUSTED]);
    await first.close(); // frees the slot
    await second.ready({ timeoutMs: 10_000 });
    const changed = nextEvent(second, 'change');
    await warren.putConfig(`${base}/b`, 'seen');
    assert.equal((await changed).entry.value.toString(), 'seen');
    await second.close();

    const bad = client.watchConfig('bad//key');
    const reconnects = recordEvents(bad, ['reconnecting']);
    await assert.rejects(bad.ready(), (e) => e.code === grpc.status.INVALID_ARGUMENT);
    await bad.closed;
    assert.equal(reconnects.length, 0, 'INVALID_ARGUMENT is not retried');
  } finally {
    await Promise.all([first.close(), second?.close()]);
    client.close();
    await server.stop();
    // Nothing is left to delete when the test failed before its put: keep
    // that failure, not NOT_FOUND, as the test's error.
    await warren.deleteConfig(base, { recursive: true }).catch((e) => {
      if (e.code !== grpc.status.NOT_FOUND) throw e;
    });
  }
});
