#!/usr/bin/env node
// campaign: campaigns in an election and prints the leader and every event
// until Ctrl-C / SIGTERM (then resigns) or --duration passes.
//
//   node examples/campaign.js [--election=demo] [--id=NAME] [--value=TEXT] [--duration=SECONDS]
//   env: WARREN_ADDRESS, WARREN_ELECTION
import { parseArgs } from 'node:util';
import os from 'node:os';
import { Warren } from '@warren/client';

const { values: args } = parseArgs({
  options: {
    election: { type: 'string', default: process.env.WARREN_ELECTION || 'demo' },
    id: { type: 'string', default: `${os.hostname()}-${process.pid}` },
    value: { type: 'string', default: `pid ${process.pid}` },
    duration: { type: 'string' },
  },
});

const warren = new Warren();
const elector = warren.elect({ election: args.election, candidateId: args.id, value: args.value });
console.log(`${args.id}: campaigning in ${args.election} at ${warren.address}`);

elector.on('elected', ({ fencingToken }) => console.log(`${args.id}: elected, leader is ${args.id} (fencing token ${fencingToken})`));
elector.on('following', (leader) =>
  console.log(leader ? `${args.id}: following, leader is ${leader.candidateId} (value ${JSON.stringify(leader.value.toString())})` : `${args.id}: following, no leader right now`));
elector.on('lost', ({ reason }) => console.log(`${args.id}: lost leadership (${reason})`));
elector.on('reconnecting', ({ error, delayMs }) => console.log(`${args.id}: stream broken (${error.message}); campaigning again in ${delayMs} ms`));
elector.on('error', (err) => { console.error(`${args.id}: ${err.message}`); process.exitCode = 1; });

let stopping = false;
async function stop(why) {
  if (stopping) return;
  stopping = true;
  console.log(`${args.id}: ${why}, resigning`);
  await elector.close();
  warren.close();
  console.log(`${args.id}: done`);
}
process.on('SIGINT', () => stop('interrupted'));
process.on('SIGTERM', () => stop('terminated'));
if (args.duration) setTimeout(() => stop(`${args.duration}s passed`), Number(args.duration) * 1000);
elector.on('close', () => { if (!stopping) { stopping = true; warren.close(); } });
