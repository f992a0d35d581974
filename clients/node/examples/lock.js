#!/usr/bin/env node
// lock: runs a command while holding a lock, passing the fencing token in
// WARREN_FENCING_TOKEN (and the lock's name in WARREN_LOCK), and releases it
// when the command ends. If the lock is lost meanwhile, the command gets
// SIGTERM at once. Exits with the command's status; 2 when the lock was not
// acquired within --timeout, 3 when it was lost.
//
//   node examples/lock.js [--name=demo] [--limit=N] [--timeout=SECONDS] -- COMMAND [ARG...]
//   env: WARREN_ADDRESS
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { Warren, status } from '@warren/client';

const { values: args, positionals: command } = parseArgs({
  options: {
    name: { type: 'string', default: 'demo' },
    limit: { type: 'string', default: '1' },
    timeout: { type: 'string' },
  },
  allowPositionals: true,
});
if (command.length === 0) {
  console.error('usage: lock.js [--name=NAME] [--limit=N] [--timeout=SECONDS] -- COMMAND [ARG...]');
  process.exit(64);
}

const warren = new Warren();
let lock;
try {
  lock = await warren.lock(args.name, {
    limit: Number(args.limit),
    timeoutMs: args.timeout == null ? undefined : Number(args.timeout) * 1000,
    onQueued: ({ position, holders }) =>
      console.log(`waiting for ${args.name} (position ${position}; held by ${holders.map((h) => h.holderId).join(', ')})`),
  });
} catch (err) {
  warren.close();
  if (err.code !== status.DEADLINE_EXCEEDED) throw err;
  console.log(`not acquired: ${err.details}`);
  process.exit(2);
}

console.log(`holding ${args.name} (fencing token ${lock.fencingToken})`);
let lost = false;
lock.on('lost', ({ reason }) => {
  lost = true;
  console.log(`lost ${args.name} (${reason}): stopping the command`);
  child.kill('SIGTERM');
});
const child = spawn(command[0], command.slice(1), {
  stdio: 'inherit',
  env: { ...process.env, WARREN_FENCING_TOKEN: String(lock.fencingToken), WARREN_LOCK: args.name },
});
// Ctrl-C / SIGTERM go to the command; the lock is released when it ends.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
const [code, signal] = await once(child, 'exit');
await lock.release();
warren.close();
console.log(`released ${args.name}`);
process.exitCode = lost ? 3 : code ?? (signal ? 128 : 1);
