#!/usr/bin/env node
// replay: reads a stream queue from where you say and prints each message
// with its offset; prints where to resume when it stops (after --count
// messages, or Ctrl-C / SIGTERM). A stream keeps its messages after they are
// read: run it twice from the same offset and you get the same messages.
//
//   node examples/replay.js [--stream=events] [--from=first|last|next|N|ISO-TIME] [--count=N]
//   env: WARREN_ADDRESS (default 127.0.0.1:50051)
import { parseArgs } from 'node:util';
import { Warren } from '@warren/client';

const { values: args } = parseArgs({
  options: {
    stream: { type: 'string', default: 'events' },
    from: { type: 'string', default: 'first' },
    count: { type: 'string' },
  },
});

function offsetOption(from) {
  if (['first', 'last', 'next'].includes(from)) return from;
  if (/^\d+$/.test(from)) return BigInt(from);
  const time = new Date(from);
  if (Number.isNaN(time.getTime())) throw new Error(`--from: not first, last, next, an offset or a time: ${from}`);
  return time;
}

const warren = new Warren();
const limit = args.count == null ? Infinity : Number(args.count);
let seen = 0;
let stopping = null;

// Declares the stream when missing (durable, kept until max_age or
// max_length_bytes trim it); a broken stream resumes after the last
// message handled, by itself.
const sub = warren.subscribe({ queue: args.stream, queueOptions: { queueType: 'QUEUE_TYPE_STREAM' }, offset: offsetOption(args.from), maxInFlight: 1 }, (m) => {
  seen++;
  console.log(`offset ${m.streamOffset}: ${JSON.stringify(m.text)}`);
  if (seen === limit) stop();
});
sub.on('subscribed', ({ queue }) => console.log(`reading stream ${queue} from ${args.from}`));
sub.on('error', (err) => { console.error(`replay: ${err.message}`); process.exitCode = 1; });

function stop() {
  stopping ??= (async () => {
    await sub.stop();
    warren.close();
    if (sub.lastOffset != null) console.log(`resume with --from=${sub.lastOffset + 1n}`);
  })();
  return stopping;
}
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
