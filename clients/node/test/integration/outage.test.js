// Reconnect after a long outage: a warrend of the test's own is killed with
// SIGKILL, stays down for WARREN_OUTAGE_SECONDS (default 40: long past
// gRPC's default reconnect backoff, which grows to 120 s), and comes back on
// the same port. Every wrapper, with its defaults, must work again within 5 s
// of the server's return.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Warren } from '../../src/index.js';
import { PrivateWarrend, freeLoopbackPort, nextEvent, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS, WARREN_ROOT } = requireEnv('WARREN_ADDRESS', 'WARREN_ROOT');
const outageSeconds = Number(process.env.WARREN_OUTAGE_SECONDS || 40);
const RECOVERY_LIMIT_MS = 5000;
// The main warrend shares the private one's root (one cluster), so the
// messages and config changes that must reach the wrappers after the return
// are made through it, independent of the private client's own recovery.
const main = new Warren(WARREN_ADDRESS);
after(() => main.close());

test(`every wrapper works again within 5 s of warrend's return after ${outageSeconds} s down`,
  { timeout: (outageSeconds + 90) * 1000 }, async (t) => {
    const server = await new PrivateWarrend({ root: WARREN_ROOT, port: await freeLoopbackPort() }).start();
    const client = new Warren(server.address); // the defaults: reconnect backoff, wait-for-ready streams
    const queue = uniq('node_outage');
    const key = `node/${uniq('outage')}/k`;
    const election = `node/${uniq('outage')}`;
    const received = [];
    const sub = client.subscribe({ queue }, (m) => { received.push({ text: m.text, at: Date.now() }); });
    const watcher = client.watchConfig(key);
    const elector = client.elect({ election });
    for (const it of [sub, watcher, elector]) it.on('error', (e) => assert.fail(`fatal error: ${e.message}`));
    try {
      // Working before the outage.
      await Promise.all([nextEvent(sub, 'subscribed'), watcher.ready({ timeoutMs: 10_000 }), nextEvent(elector, 'elected')]);
      await client.publish({ queue, payload: 'before' });
      await waitFor(() => received.some((m) => m.text === 'before'), { what: 'the message before the outage' });
      const changedBefore = nextEvent(watcher, 'change');
      await main.putConfig(key, 'before');
      assert.equal((await changedBefore).entry.value.toString(), 'before');

      const lost = nextEvent(elector, 'lost');
      await server.stop('SIGKILL');
      assert.equal((await lost).reason, 'stream_broken');
      // The outage itself is what is tested: it is waited out, not a condition.
      await new Promise((resolve) => setTimeout(resolve, outageSeconds * 1000));
      assert.equal(elector.isLeader, false);

      await server.start(); // same port, serving again
      const back = Date.now();
      const since = () => Date.now() - back;
      const recovered = {};
      const elected = nextEvent(elector, 'elected', { timeoutMs: 30_000 }).then(() => { recovered.elector = since(); });
      const changed = nextEvent(watcher, 'change', { timeoutMs: 30_000, filter: (c) => c.entry?.value.toString() === 'after' })
        .then(() => { recovered.watcher = since(); });
      const published = client.publish({ queue, payload: 'published by the recovered client' })
        .then(() => { recovered.publisher = since(); });
      await main.publish({ queue, payload: 'after' });
      await main.putConfig(key, 'after');
      const delivered = waitFor(() => received.find((m) => m.text === 'after'), { timeoutMs: 30_000, what: 'the message after the return' })
        .then((m) => { recovered.subscriber = m.at - back; });
      await Promise.all([elected, changed, published, delivered]);
      t.diagnostic(`outage ${outageSeconds} s; back after: ${Object.entries(recovered).map(([w, ms]) => `${w} ${ms} ms`).join(', ')}`);
      for (const [wrapper, ms] of Object.entries(recovered)) {
        assert.ok(ms <= RECOVERY_LIMIT_MS, `${wrapper} back ${ms} ms after warrend (limit ${RECOVERY_LIMIT_MS} ms)`);
      }
      await waitFor(() => received.some((m) => m.text === 'published by the recovered client'), { what: 'the recovered client\'s message' });
    } finally {
      await Promise.all([sub.stop({ timeoutMs: 5000 }), watcher.close(), elector.close()]);
      client.close();
      await server.stop('SIGKILL');
      await main.deleteConfig(key).catch(() => {});
    }
  });
