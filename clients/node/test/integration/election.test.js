// ElectionService through the Elector, against the live warrend (and private
// warrends for the fault tests).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Warren } from '../../src/index.js';
import { PrivateWarrend, nextEvent, recordEvents, requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

test('exactly one of three electors is elected; the others follow it; a resign hands over', async () => {
  const election = `node/${uniq('el')}`;
  const electors = ['a', 'b', 'c'].map((id) => warren.elect({ election, candidateId: id, value: `addr-${id}` }));
  const logs = electors.map((e) => recordEvents(e, ['elected', 'following', 'lost']));
  // Settled: one leads and the two others follow it.
  const settled = () => {
    const leaders = electors.filter((e) => e.isLeader);
    return leaders.length === 1 && electors.every((e) => e.leader?.candidateId === leaders[0].candidateId) && leaders[0];
  };
  const leader = await waitFor(settled, { what: 'one leader, two followers' });
  assert.equal(electors.filter((e) => e.isLeader).length, 1);
  assert.equal(logs.reduce((n, l) => n + l.of('elected').length, 0), 1, 'exactly one elected event');
  const token = leader.fencingToken;
  assert.equal(typeof token, 'bigint');

  const current = await warren.getLeader(election);
  assert.equal(current.candidateId, leader.candidateId);
  assert.equal(current.value.toString(), `addr-${leader.candidateId}`);
  assert.equal(current.fencingToken, token);
  const observer = new AbortController();
  const observed = warren.observeLeader(election, { signal: observer.signal });
  assert.equal((await observed.next()).value.candidateId, leader.candidateId);

  // The leader resigns: exactly one of the two others takes over, with a larger token.
  const lost = nextEvent(leader, 'lost');
  await leader.close();
  assert.deepEqual(await lost, { reason: 'resigned' });
  const rest = electors.filter((e) => e !== leader);
  const next = await waitFor(() => {
    const leaders = rest.filter((e) => e.isLeader);
    return leaders.length === 1 && rest.every((e) => e.leader?.candidateId === leaders[0].candidateId) && leaders[0];
  }, { what: 'a successor' });
  assert.ok(next.fencingToken > token, `token ${next.fencingToken} > ${token}`);
  const change = await waitFor(async () => {
    const { value } = await observed.next();
    return value?.candidateId === next.candidateId && value;
  }, { what: 'the observer to see the successor' });
  assert.equal(change.fencingToken, next.fencingToken);
  observer.abort();
  await observed.return();
  await Promise.all(rest.map((e) => e.close()));
  assert.equal(await warren.getLeader(election), null);
});

test('proclaim updates the leader\'s value', async () => {
  const election = `node/${uniq('el')}`;
  const elector = warren.elect({ election, value: 'v1' });
  await nextEvent(elector, 'elected');
  elector.proclaim('v2');
  await waitFor(async () => (await warren.getLeader(election))?.value.toString() === 'v2', { what: 'the new value' });
  await elector.close();
});

test('the elector reports lost at once when the stream breaks, then campaigns again', async () => {
  const server = await new PrivateWarrend().start();
  const client = new Warren(server.address);
  const election = `node/${uniq('el')}`;
  const elector = client.elect({ election, backoff: { initialMs: 50, maxMs: 500 } });
  try {
    const { fencingToken: first } = await nextEvent(elector, 'elected');
    const lost = nextEvent(elector, 'lost');
    const stoppedAt = Date.now();
    const stopping = server.stop(); // SIGTERM: the server ends the stream with UNAVAILABLE
    const { reason, error } = await lost;
    const after = Date.now() - stoppedAt;
    assert.equal(reason, 'stream_broken');
    assert.match(error.message, /UNAVAILABLE/);
    assert.ok(after < 3000, `lost ${after} ms after SIGTERM`);
    assert.equal(elector.isLeader, false);
    await stopping;
    await server.start(); // same port, same root: campaigns again and wins
    const { fencingToken: second } = await nextEvent(elector, 'elected', { timeoutMs: 20_000 });
    assert.ok(second > first);
    await elector.close();
  } finally {
    client.close();
    await server.stop();
  }
});

test('the lease: a frozen server costs leadership after 2 heartbeat intervals', async () => {
  const server = await new PrivateWarrend().start();
  const client = new Warren(server.address);
  const election = `node/${uniq('el')}`;
  // 1 s heartbeats: the lease is 2 s, below the private server's 4 s session timeout.
  const elector = client.elect({ election, heartbeatIntervalMs: 1000, recampaign: false });
  try {
    await nextEvent(elector, 'elected');
    await nextEvent(elector, 'lost', { timeoutMs: 2500 }).then(
      () => assert.fail('lost while the server was running'),
      () => {}, // no loss for 2.5 s: heartbeats renew the lease
    );
    assert.equal(elector.isLeader, true);
    const frozenAt = Date.now();
    server.freeze(); // SIGSTOP: no heartbeat, no lost event, the TCP connection stays up
    const { reason } = await nextEvent(elector, 'lost', { timeoutMs: 5000 });
    const after = Date.now() - frozenAt;
    assert.equal(reason, 'lease_expired');
    // The last heartbeat came at most 1 s before the freeze, so the 2 s lease
    // ends 1-2 s after it (plus timer slack on a busy machine): before the
    // 4 s session could expire and a successor be elected.
    assert.ok(after < 3500, `stepped down ${after} ms after the freeze`);
    await elector.closed;
  } finally {
    server.thaw();
    client.close();
    await server.stop('SIGKILL');
  }
});
