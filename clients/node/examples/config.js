#!/usr/bin/env node
// config: reads a config value, prints it, and prints it again each time it
// changes, until Ctrl-C / SIGTERM or --duration passes.
//
//   node examples/config.js [--key=demo/greeting] [--duration=SECONDS]
//   env: WARREN_ADDRESS, WARREN_CONFIG_KEY
import { parseArgs } from 'node:util';
import { Warren } from '@warren/client';

const { values: args } = parseArgs({
  options: {
    key: { type: 'string', default: process.env.WARREN_CONFIG_KEY || 'demo/greeting' },
    duration: { type: 'string' },
  },
});

const warren = new Warren();
const show = (entry) => (entry ? `${JSON.stringify(entry.value.toString())} (version ${entry.version})` : '(not set)');

const entry = await warren.getConfig(args.key);
console.log(`${args.key} = ${show(entry)}`);

const watcher = warren.watchConfig(args.key);
watcher.on('change', ({ type, entry: changed }) =>
  console.log(`${args.key} ${type === 'delete' ? 'deleted' : 'changed'}: ${show(changed)}`));
watcher.on('reconnecting', ({ error, delayMs }) => console.log(`watch broken (${error.message}); watching again in ${delayMs} ms`));
watcher.on('error', (err) => { console.error(err.message); process.exitCode = 1; });
await watcher.ready();
// The watch may have started after a change that the read missed.
if (watcher.get()?.version !== entry?.version) console.log(`${args.key} = ${show(watcher.get())}`);
console.log(`watching ${args.key}`);

async function stop() {
  await watcher.close();
  warren.close();
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (args.duration) setTimeout(stop, Number(args.duration) * 1000);
