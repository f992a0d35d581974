// HoldKey through the Registration, against the live warrend (and a private
// warrend of the same cluster for the broken stream).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { Warren } from '../../src/index.js';
import { PrivateWarrend, nextEvent, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

const valueOf = async (key) => (await warren.getConfig(key, { consistent: true }))?.value.toString() ?? null;

test('a held key is visible to readers while held, follows updates, and is gone after close', async () => {
  const base = `node/${uniq('svc')}`;
  const key = `${base}/instance-1`;
  const watcher = warren.watchConfig(base, { prefix: true });
  await watcher.ready();
  const reg = warren.holdKey(key, 'host-a:8080');
  try {
    const entry = await reg.ready({ timeoutMs: 10_000 });
    assert.equal(entry.held, true);
    assert.equal(reg.isHeld, true);
    const got = await warren.getConfig(key, { consistent: true });
    assert.equal(got.value.toString(), 'host-a:8080');
    assert.equal(got.held, true);
    const listed = [];
    for await (const e of warren.listConfig(base)) listed.push([e.key, e.held]);
    assert.deepEqual(listed, [[key, true]]);
    await waitFor(() => watcher.get(key)?.value.toString() === 'host-a:8080', { what: 'the watcher to see the key' });

    const updated = await reg.update('host-a:9090');
    assert.equal(updated.value.toString(), 'host-a:9090');
    assert.equal(await valueOf(key), 'host-a:9090');

    // Someone else's key: a second holder is refused.
    const rival = warren.holdKey(key, 'host-b:8080');
    await assert.rejects(rival.ready(), (e) => e.code === grpc.status.ALREADY_EXISTS);
    await rival.closed;
    assert.equal(await valueOf(key), 'host-a:9090', 'the rival changed nothing');

    const deleted = nextEvent(watcher, 'change', { filter: (c) => c.type === 'delete' && c.key === key });
    await reg.close();
    assert.equal(reg.isHeld, false);
    assert.equal(await valueOf(key), null, 'gone once close() resolved');
    await deleted;
  } finally {
    await reg.close();
    await watcher.close();
  }
});

test('a put key cannot be held', async () => {
  const key = `node/${uniq('svc')}/k`;
  await warren.putConfig(key, 'persistent');
  const reg = warren.holdKey(key, 'held');
  await assert.rejects(reg.ready(), (e) => e.code === grpc.status.ALREADY_EXISTS);
  assert.equal(await valueOf(key), 'persistent');
  await warren.deleteConfig(key);
});

test('after a broken stream the key is gone, then held again once the server is back', async () => {
  // Same root as the main warrend: readers there see the key come and go.
  const server = await new PrivateWarrend({ root: requireEnv('WARREN_ROOT').WARREN_ROOT }).start();
  const client = new Warren(server.address);
  const key = `node/${uniq('svc')}/instance`;
  const reg = client.holdKey(key, 'v1', { backoff: { initialMs: 50, maxMs: 500 } });
  try {
    await reg.ready({ timeoutMs: 10_000 });
    assert.equal(await valueOf(key), 'v1');
    const lost = nextEvent(reg, 'lost');
    await server.stop(); // SIGTERM: the stream ends UNAVAILABLE, the server's session (and the key) go
    assert.equal((await lost).reason, 'stream_broken');
    assert.equal(reg.isHeld, false);
    await waitFor(async () => (await valueOf(key)) === null, { what: 'the key to go with its holder' });
    const updated = reg.update('v2'); // while away: held with it when back
    const heldAgain = nextEvent(reg, 'held', { timeoutMs: 20_000 });
    await server.start();
    await heldAgain;
    assert.equal((await updated).value.toString(), 'v2');
    assert.equal(reg.isHeld, true);
    assert.equal(await valueOf(key), 'v2');
    await reg.close();
    assert.equal(await valueOf(key), null);
  } finally {
    await reg.close();
    client.close();
    await server.stop();
  }
});
