import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status as Status } from '@grpc/grpc-js';
import { Elector } from '../../src/index.js';
import { fakeStreamingClient, flush } from '../fakes.js';
import { nextEvent, recordEvents, waitFor } from '../helpers.js';

const leader = (id, token) => ({ election: 'e', candidateId: id, value: Buffer.from(id), fencingToken: String(token), electedTime: null });
const elected = (id, token) => ({ event: 'elected', elected: { leader: leader(id, token) } });
const heartbeat = { event: 'heartbeat', heartbeat: { serverTime: null } };

test('campaigns, reports elected/following with the fencing token, resigns on close', async () => {
  const client = fakeStreamingClient();
  const elector = new Elector(client, { election: 'e', candidateId: 'me', value: 'addr', heartbeatIntervalMs: 1000 });
  const log = recordEvents(elector, ['elected', 'following', 'lost', 'close']);
  await flush();
  const call = client.last();
  const campaign = call.writes[0].campaign;
  assert.equal(campaign.election, 'e');
  assert.equal(campaign.candidateId, 'me');
  assert.equal(campaign.value.toString(), 'addr');
  assert.deepEqual(campaign.heartbeatInterval, { seconds: '1', nanos: 0 });
  assert.equal(campaign.rejoinAfterExpiry, true);

  call.push({ event: 'following', following: { leader: leader('other', 7) } });
  assert.equal(log.of('following')[0].args[0].candidateId, 'other');
  assert.equal(elector.isLeader, false);
  // 2^63 + 1: a fencing token beyond Number's exact range stays exact.
  call.push(elected('me', '9223372036854775809'));
  assert.equal(elector.isLeader, true);
  assert.equal(elector.fencingToken, 9223372036854775809n);
  assert.equal(log.of('elected')[0].args[0].fencingToken, 9223372036854775809n);

  call.on('wrote', (m) => {
    if (m.resign) {
      call.push({ event: 'lost', lost: { reason: 'LOSS_REASON_RESIGNED' } });
      call.finish(Status.OK);
    }
  });
  await elector.close();
  assert.deepEqual(log.of('lost').map((e) => e.args[0]), [{ reason: 'resigned' }]);
  assert.equal(log.of('close').length, 1);
  assert.equal(elector.isLeader, false);
});

test('the lease: heartbeats keep leadership, silence for 2 intervals loses it', async () => {
  const client = fakeStreamingClient();
  const elector = new Elector(client, { election: 'e', heartbeatIntervalMs: 200, recampaign: false });
  await flush();
  const call = client.last();
  call.push(elected('me', 1));
  const until = Date.now() + 1000; // 5 intervals: heartbeats every 50 ms keep the 400 ms lease
  while (Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    call.push(heartbeat);
    assert.equal(elector.isLeader, true, 'heartbeats renew the lease');
  }
  const silentSince = Date.now();
  const lost = await nextEvent(elector, 'lost', { timeoutMs: 2000 });
  const after = Date.now() - silentSince;
  assert.equal(lost.reason, 'lease_expired');
  assert.ok(after >= 390 && after < 1500, `lost after ${after} ms (lease 400 ms)`);
  assert.equal(elector.isLeader, false);
  assert.equal(call.cancelled, true, 'the suspect stream is dropped');
  await elector.closed;
});

test('a broken stream while leading is lost at once; it campaigns again', async () => {
  const client = fakeStreamingClient();
  const elector = new Elector(client, { election: 'e', backoff: { initialMs: 1, maxMs: 1 } });
  const log = recordEvents(elector, ['lost', 'reconnecting']);
  await flush();
  client.last().push(elected('me', 1));
  client.last().finish(Status.UNAVAILABLE, 'server is shutting down');
  // Synchronously, before any reconnect.
  assert.equal(log.of('lost').length, 1);
  assert.equal(log.of('lost')[0].args[0].reason, 'stream_broken');
  assert.equal(log.of('lost')[0].args[0].error.code, Status.UNAVAILABLE);
  assert.equal(elector.isLeader, false);
  await waitFor(() => client.calls.length === 2);
  assert.ok(client.last().writes[0].campaign, 'campaigns again');
  assert.equal(client.last().writes[0].campaign.candidateId, client.calls[0].writes[0].campaign.candidateId);
  client.last().push(elected('me', 2));
  assert.equal(elector.fencingToken, 2n);
  client.last().on('ended', () => client.last().finish(Status.OK));
  await elector.close();
});

test('server-reported losses; recampaign=false ends the candidacy', async () => {
  const client = fakeStreamingClient();
  const keep = new Elector(client, { election: 'e' });
  const log = recordEvents(keep, ['lost', 'elected']);
  await flush();
  const call = client.last();
  call.push(elected('me', 5));
  call.push({ event: 'lost', lost: { reason: 'LOSS_REASON_CONNECTION_SUSPENDED' } });
  assert.equal(keep.isLeader, false);
  call.push(elected('me', 5)); // the session survived: leading again, same token
  assert.deepEqual(log.map((e) => e.name), ['elected', 'lost', 'elected']);
  assert.equal(log.of('lost')[0].args[0].reason, 'connection_suspended');
  assert.equal(call.cancelled, false, 'the stream is kept');
  call.on('ended', () => call.finish(Status.OK));
  await keep.close();

  const once = new Elector(client, { election: 'e', recampaign: false });
  await flush();
  const c2 = client.last();
  assert.equal(c2.writes[0].campaign.rejoinAfterExpiry, false);
  c2.push(elected('me', 6));
  c2.push({ event: 'lost', lost: { reason: 'LOSS_REASON_SESSION_EXPIRED' } });
  await once.closed;
  assert.equal(c2.cancelled, true);
});

test('INVALID_ARGUMENT is fatal; proclaim needs leadership', async () => {
  const client = fakeStreamingClient();
  const elector = new Elector(client, { election: 'bad name' });
  const errors = [];
  elector.on('error', (e) => errors.push(e));
  await flush();
  assert.throws(() => elector.proclaim('x'), /does not lead/);
  client.last().finish(Status.INVALID_ARGUMENT, 'campaign.election is invalid');
  await elector.closed;
  assert.equal(errors[0].code, Status.INVALID_ARGUMENT);
  assert.equal(client.calls.length, 1);
});
