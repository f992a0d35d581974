import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { ConfigWatcher } from '../../src/index.js';
import { fakeStreamingClient, flush } from '../fakes.js';
import { recordEvents, waitFor } from '../helpers.js';

const entry = (key, value, version) => ({ key, value: Buffer.from(value), version: String(version), modifyTime: null });
const put = (key, value, version) => ({ type: 'CONFIG_EVENT_TYPE_PUT', entry: entry(key, value, version) });
const del = (key, version) => ({ type: 'CONFIG_EVENT_TYPE_DELETE', entry: entry(key, '', version) });
const initial = (...events) => ({ events, initialState: true, heartbeat: null });
const changes = (...events) => ({ events, initialState: false, heartbeat: null });

test('keeps the latest state and reports changes', async () => {
  const client = fakeStreamingClient();
  const watcher = new ConfigWatcher(client, 'app', { prefix: true, heartbeatIntervalMs: 1000 });
  const log = recordEvents(watcher, ['change', 'ready']);
  await flush();
  const call = client.last();
  assert.deepEqual(call.request, { key: 'app', prefix: true, heartbeatInterval: { seconds: '1', nanos: 0 } });
  call.push(initial(put('app/a', '1', 0), put('app/b', '1', 0)));
  await watcher.ready();
  assert.equal(log.of('change').length, 0, 'the first state is not reported as changes');
  assert.equal(watcher.get('app/a').value.toString(), '1');
  call.push(changes(put('app/a', '2', 1), del('app/b', 0)));
  assert.deepEqual(log.of('change').map((e) => [e.args[0].type, e.args[0].key, e.args[0].previous?.version]), [
    ['put', 'app/a', 0], ['delete', 'app/b', 0],
  ]);
  assert.equal(watcher.get('app/a').version, 1);
  assert.equal(watcher.get('app/b'), undefined);
  await watcher.close();
  assert.equal(call.cancelled, true);
});

test('an initial state split over several responses is gathered before ready, on every stream', async () => {
  const client = fakeStreamingClient();
  const watcher = new ConfigWatcher(client, 'app', { prefix: true, backoff: { initialMs: 1, maxMs: 1 } });
  const log = recordEvents(watcher, ['change', 'ready']);
  await flush();
  // Only the last part says initialState (docs/config-limits.md).
  client.last().push(changes(put('app/a', '1', 0)));
  client.last().push(changes(put('app/b', '1', 0)));
  assert.equal(log.of('ready').length, 0, 'not ready before the state is complete');
  client.last().push(initial(put('app/c', '1', 0)));
  await watcher.ready();
  assert.deepEqual([...watcher.entries.keys()].sort(), ['app/a', 'app/b', 'app/c']);
  assert.equal(log.of('change').length, 0, 'the first state is not reported as changes');
  // A new stream: its parts together replace the state.
  client.last().finish(Status.UNAVAILABLE, 'server is shutting down');
  await waitFor(() => client.calls.length === 2);
  client.last().push(changes(put('app/a', '1', 0)));
  client.last().push(initial(put('app/d', '1', 0)));
  const seen = log.of('change').map((e) => e.args[0]).map((c) => `${c.type} ${c.key}`).sort();
  assert.deepEqual(seen, ['delete app/b', 'delete app/c', 'put app/d']);
  assert.deepEqual([...watcher.entries.keys()].sort(), ['app/a', 'app/d']);
  await watcher.close();
});

test('re-watches after a broken stream and reports the differences', async () => {
  const client = fakeStreamingClient();
  const watcher = new ConfigWatcher(client, 'app', { prefix: true, backoff: { initialMs: 1, maxMs: 1 } });
  await flush();
  client.last().push(initial(put('app/same', 's', 3), put('app/changed', 'old', 0), put('app/gone', 'g', 0)));
  await watcher.ready();
  const log = recordEvents(watcher, ['change', 'reconnecting']);
  client.last().finish(Status.UNAVAILABLE, 'server is shutting down');
  await waitFor(() => client.calls.length === 2);
  client.last().push(initial(put('app/same', 's', 3), put('app/changed', 'new', 1), put('app/new', 'n', 0)));
  const seen = log.of('change').map((e) => e.args[0]).map((c) => `${c.type} ${c.key} ${c.entry?.value ?? ''}`).sort();
  assert.deepEqual(seen, ['delete app/gone ', 'put app/changed new', 'put app/new n']);
  assert.deepEqual([...watcher.entries.keys()].sort(), ['app/changed', 'app/new', 'app/same']);
  assert.equal(log.of('reconnecting').length, 1);
  await watcher.close();
});

test('a single key: value is the key\'s value; a fatal error rejects ready()', async () => {
  const client = fakeStreamingClient();
  const watcher = new ConfigWatcher(client, 'app/x');
  await flush();
  client.last().push(initial());
  await watcher.ready();
  assert.equal(watcher.value, undefined);
  client.last().push(changes(put('app/x', 'v', 0)));
  assert.equal(watcher.value.toString(), 'v');
  await watcher.close();

  const bad = new ConfigWatcher(client, '../x');
  await flush();
  client.last().finish(Status.INVALID_ARGUMENT, 'key is invalid');
  await assert.rejects(bad.ready(), (err) => err.code === Status.INVALID_ARGUMENT);
  await bad.closed;
});
