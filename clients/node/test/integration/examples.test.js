// Runs the example programs as a user would and checks what they print.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Warren } from '../../src/index.js';
import { requireEnv, uniq, waitFor } from '../helpers.js';

const { WARREN_ADDRESS } = requireEnv('WARREN_ADDRESS');
const examples = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples');
const warren = new Warren(WARREN_ADDRESS);
after(() => warren.close());

/** Starts an example; `out.lines` fills as it prints; `out.exit` resolves with its code. */
function run(name, args = []) {
  const child = spawn(process.execPath, [path.join(examples, name), ...args], {
    env: { ...process.env, WARREN_ADDRESS },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { child, lines: [], stderr: '' };
  let partial = '';
  child.stdout.on('data', (d) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop();
    out.lines.push(...parts);
  });
  child.stderr.on('data', (d) => { out.stderr += d; });
  out.exit = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  out.has = (re) => out.lines.find((l) => re.test(l));
  return out;
}

test('hello: publishes to a durable queue and receives the message', async () => {
  const queue = uniq('node_hello');
  const hello = run('hello.js', [`--queue=${queue}`]);
  const code = await hello.exit;
  assert.equal(code, 0, hello.stderr + hello.lines.join('\n'));
  const published = hello.has(/^published: "Hello, Zookeeper & RabbitMQ!" \(message id (.+)\)$/);
  const received = hello.has(/^received: "Hello, Zookeeper & RabbitMQ!" \(message id [^,]+\)$/);
  assert.ok(published && received, hello.lines.join('\n'));
  assert.equal(published.match(/message id ([^)]+)/)[1], received.match(/message id ([^)]+)/)[1]);
  assert.ok(hello.has(/^ok: the message came back$/));
});

test('campaign: two candidates, exactly one leads; it hands over on SIGTERM', async () => {
  const election = `node/${uniq('demo')}`;
  const a = run('campaign.js', [`--election=${election}`, '--id=alpha']);
  await waitFor(() => a.has(/^alpha: elected/), { what: 'alpha elected' });
  const b = run('campaign.js', [`--election=${election}`, '--id=beta']);
  try {
    await waitFor(() => b.has(/^beta: following, leader is alpha/), { what: 'beta following alpha' });
    assert.equal(b.has(/elected/), undefined);
    assert.equal((await warren.getLeader(election)).candidateId, 'alpha');
    a.child.kill('SIGTERM');
    assert.equal(await a.exit, 0);
    assert.ok(a.has(/^alpha: lost leadership \(resigned\)$/), a.lines.join('\n'));
    await waitFor(() => b.has(/^beta: elected, leader is beta \(fencing token \d+\)$/), { what: 'beta elected' });
    const tokenA = BigInt(a.has(/fencing token/).match(/fencing token (\d+)/)[1]);
    const tokenB = BigInt(b.has(/fencing token/).match(/fencing token (\d+)/)[1]);
    assert.ok(tokenB > tokenA);
  } finally {
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    assert.equal(await b.exit, 0, b.stderr);
  }
});

test('config: prints the value, then again on each change', async () => {
  const key = `node/${uniq('demo')}/greeting`;
  await warren.putConfig(key, 'hello');
  const cfg = run('config.js', [`--key=${key}`]);
  try {
    await waitFor(() => cfg.has(/^watching /), { what: 'the watch' });
    assert.ok(cfg.has(new RegExp(`^${key} = "hello" \\(version 0\\)$`)), cfg.lines.join('\n'));
    await warren.putConfig(key, 'bonjour');
    await waitFor(() => cfg.has(new RegExp(`^${key} changed: "bonjour" \\(version 1\\)$`)), { what: 'the change' });
    await warren.deleteConfig(key);
    await waitFor(() => cfg.has(new RegExp(`^${key} deleted: \\(not set\\)$`)), { what: 'the delete' });
  } finally {
    cfg.child.kill('SIGTERM');
    assert.equal(await cfg.exit, 0, cfg.stderr);
  }
});

test('lock: runs the command while holding the lock; a second one waits for it; try-once gives up', async () => {
  const name = `node/${uniq('demo')}`;
  const gate = `node/${uniq('demo')}/gate`;
  // The command holds the lock until the test opens the gate (a config key).
  const waitForGate = `import('@warren/client').then(async ({ Warren }) => {
    console.log('token ' + process.env.WARREN_FENCING_TOKEN);
    const w = new Warren(); const g = w.watchConfig('${gate}'); await g.ready();
    while (!g.value) await new Promise((r) => g.once('change', r));
    await g.close(); w.close(); })`;
  const a = run('lock.js', [`--name=${name}`, '--', process.execPath, '--input-type=module', '-e', waitForGate]);
  let b = null;
  try {
    await waitFor(() => a.has(/^token \d+$/), { what: 'the first command to run' });
    assert.ok(a.has(/^holding .* \(fencing token \d+\)$/), a.lines.join('\n'));
    const busy = run('lock.js', [`--name=${name}`, '--timeout=0', '--', 'true']);
    assert.equal(await busy.exit, 2, busy.stderr + busy.lines.join('\n'));
    assert.ok(busy.has(/^not acquired: /));
    b = run('lock.js', [`--name=${name}`, '--', process.execPath, '-e', 'console.log("token " + process.env.WARREN_FENCING_TOKEN)']);
    await waitFor(() => b.has(/^waiting for /), { what: 'the second to wait' });
    assert.equal(b.has(/^token/), undefined, 'the second command does not run while the first holds');
    await warren.putConfig(gate, 'open');
    assert.equal(await a.exit, 0, a.stderr);
    assert.ok(a.has(/^released /));
    assert.equal(await b.exit, 0, b.stderr);
    const token = (out) => BigInt(out.has(/^token/).split(' ')[1]);
    assert.ok(token(b) > token(a));
  } finally {
    a.child.kill('SIGTERM');
    b?.child.kill('SIGTERM');
    await warren.deleteConfig(gate).catch(() => {});
  }
});

test('rpc: serve answers what call asks', async () => {
  const queue = uniq('node_rpc_demo');
  const server = run('rpc.js', ['serve', `--queue=${queue}`]);
  try {
    await waitFor(() => server.has(/^serving requests from /), { what: 'the responder' });
    const client = run('rpc.js', ['call', `--queue=${queue}`, '--message=ping']);
    assert.equal(await client.exit, 0, client.stderr + client.lines.join('\n'));
    assert.ok(client.has(/^reply: "PING"$/), client.lines.join('\n'));
    assert.ok(server.has(/^request: "ping"$/), server.lines.join('\n'));
  } finally {
    server.child.kill('SIGTERM');
    assert.equal(await server.exit, 0, server.stderr);
  }
  const nobody = run('rpc.js', ['call', `--queue=${queue}`, '--timeout=1']);
  assert.equal(await nobody.exit, 2);
  assert.match(nobody.stderr, /no reply within 1s/);
});

test('replay: reads a stream from the first message, then resumes where it said', async () => {
  const stream = uniq('node_replay');
  const declare = warren.subscribe({ queue: stream, queueOptions: { queueType: 'QUEUE_TYPE_STREAM' } }, () => {});
  await new Promise((resolve) => declare.once('subscribed', resolve));
  await declare.stop();
  for (const text of ['a', 'b', 'c']) await warren.publish({ queue: stream, payload: text });
  const first = run('replay.js', [`--stream=${stream}`, '--from=first', '--count=2']);
  assert.equal(await first.exit, 0, first.stderr + first.lines.join('\n'));
  const printed = first.lines.filter((l) => l.startsWith('offset '));
  assert.deepEqual(printed.map((l) => l.replace(/^offset \d+: /, '')), ['"a"', '"b"'], first.lines.join('\n'));
  const resume = first.has(/^resume with --from=\d+$/).split('=')[1];
  const rest = run('replay.js', [`--stream=${stream}`, `--from=${resume}`, '--count=1']);
  assert.equal(await rest.exit, 0, rest.stderr);
  assert.ok(rest.has(new RegExp(`^offset ${resume}: "c"$`)), rest.lines.join('\n'));
});
