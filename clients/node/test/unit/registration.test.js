// The Registration against a fake HoldKey stream: what is sent, updates, the
// lease, re-holds after a broken stream, and close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { Registration } from '../../src/index.js';
import { fakeStreamingClient, flush } from '../fakes.js';
import { nextEvent, recordEvents, waitFor } from '../helpers.js';

const fast = { initialMs: 1, maxMs: 1 };
const held = (value, version = 0) => ({
  event: 'held', held: { key: 'svc/a', value: Buffer.from(value), version: String(version), modifyTime: null, held: true },
});
const heartbeat = { event: 'heartbeat', heartbeat: { serverTime: null } };
const ms = (d) => Number(d.seconds) * 1000 + d.nanos / 1e6;

test('holds the key, updates its value, deletes it on close', async () => {
  const client = fakeStreamingClient();
  const reg = new Registration(client, 'svc/a', 'host-a:80', { heartbeatIntervalMs: 500 });
  const log = recordEvents(reg, ['held', 'lost', 'close']);
  await flush();
  const call = client.last();
  assert.equal(call.writes[0].key, 'svc/a');
  assert.equal(call.writes[0].value.toString(), 'host-a:80');
  assert.equal(ms(call.writes[0].heartbeatInterval), 500);
  assert.equal(reg.isHeld, false);
  call.push(held('host-a:80'));
  const entry = await reg.ready();
  assert.equal(entry.held, true);
  assert.equal(reg.isHeld, true);

  const updated = reg.update('host-a:81');
  assert.deepEqual(call.writes[1], { key: '', value: Buffer.from('host-a:81') });
  call.push(held('host-a:81', 1));
  assert.equal((await updated).version, 1);
  assert.equal(reg.entry.value.toString(), 'host-a:81');

  call.on('ended', () => call.finish(Status.OK)); // the server deletes the key, then ends the stream
  await reg.close();
  assert.equal(call.ended, true, 'half-closed, not cancelled');
  assert.equal(call.cancelled, false);
  assert.equal(reg.isHeld, false);
  assert.deepEqual(log.map((e) => e.name), ['held', 'held', 'close']);
  await assert.rejects(reg.update('x'), /closed/);
});

test('a broken stream is lost, then the key is held again with the latest value', async () => {
  const client = fakeStreamingClient();
  const reg = new Registration(client, 'svc/a', 'v1', { backoff: fast });
  const log = recordEvents(reg, ['held', 'lost', 'reconnecting']);
  await flush();
  client.last().push(held('v1'));
  await reg.ready();
  client.last().finish(Status.UNAVAILABLE, 'server is shutting down');
  assert.equal(reg.isHeld, false);
  assert.equal(log.of('lost')[0].args[0].reason, 'stream_broken');
  const updated = reg.update('v2'); // while away: sent with the re-hold
  await waitFor(() => client.calls.length === 2, { what: 'the re-hold' });
  assert.equal(client.last().writes[0].key, 'svc/a');
  assert.equal(client.last().writes[0].value.toString(), 'v2');
  client.last().push(held('v2'));
  assert.equal((await updated).value.toString(), 'v2');
  assert.equal(reg.isHeld, true);
  assert.deepEqual(log.map((e) => e.name), ['held', 'lost', 'reconnecting', 'held']);
  client.last().on('ended', () => client.last().finish(Status.OK));
  await reg.close();
});

test('server losses: suspension and expiry keep the stream; held again after', async () => {
  const client = fakeStreamingClient();
  const reg = new Registration(client, 'svc/a', 'v');
  const log = recordEvents(reg, ['held', 'lost']);
  await flush();
  const call = client.last();
  call.push(held('v'));
  call.push({ event: 'lost', lost: { reason: 'LOSS_REASON_CONNECTION_SUSPENDED' } });
  assert.equal(reg.isHeld, false);
  call.push(held('v'));
  call.push({ event: 'lost', lost: { reason: 'LOSS_REASON_SESSION_EXPIRED' } });
  call.push(held('v')); // recreated by the server on its new session
  assert.equal(reg.isHeld, true);
  assert.deepEqual(log.map((e) => e.args[0]?.reason ?? e.name),
    ['held', 'connection_suspended', 'held', 'session_expired', 'held']);
  assert.equal(client.calls.length, 1);
  call.on('ended', () => call.finish(Status.OK));
  await reg.close();
});

test('the lease: silence for 2 intervals is lost; the stream is dropped and the key held again', async () => {
  const client = fakeStreamingClient();
  const reg = new Registration(client, 'svc/a', 'v', { heartbeatIntervalMs: 100, backoff: fast });
  await flush();
  const call = client.last();
  call.push(held('v'));
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 50));
    call.push(heartbeat);
    assert.equal(reg.isHeld, true, 'heartbeats renew the lease');
  }
  const lost = await nextEvent(reg, 'lost', { timeoutMs: 2000 });
  assert.equal(lost.reason, 'lease_expired');
  assert.equal(call.cancelled, true);
  await waitFor(() => client.calls.length === 2, { what: 'the re-hold' });
  client.last().push(held('v'));
  assert.equal(reg.isHeld, true);
  client.last().on('ended', () => client.last().finish(Status.OK));
  await reg.close();
});

test('ALREADY_EXISTS (someone else\'s key) is fatal: ready() rejects, nothing reopened', async () => {
  const client = fakeStreamingClient();
  const reg = new Registration(client, 'svc/a', 'v', { backoff: fast });
  await flush();
  client.last().finish(Status.ALREADY_EXISTS, 'key: svc/a exists');
  await assert.rejects(reg.ready(), (e) => e.code === Status.ALREADY_EXISTS);
  await reg.closed;
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.calls.length, 1);
});
