#!/usr/bin/env node
// rpc: request/reply over the broker. `serve` answers requests from a queue
// until Ctrl-C / SIGTERM; `call` sends one request and prints the reply.
//
//   node examples/rpc.js serve [--queue=rpc_demo]
//   node examples/rpc.js call [--queue=rpc_demo] [--message=TEXT] [--timeout=5]
//   env: WARREN_ADDRESS (default 127.0.0.1:50051)
import { parseArgs } from 'node:util';
import { TimeoutError, Warren } from '@warren/client';

const { values: args, positionals: [mode] } = parseArgs({
  allowPositionals: true,
  options: {
    queue: { type: 'string', default: 'rpc_demo' },
    message: { type: 'string', default: 'hello' },
    timeout: { type: 'string', default: '5' },
  },
});

const warren = new Warren();

if (mode === 'serve') {
  // The reply is published to the request's replyTo with its correlation
  // id; the request is acked once the broker has the reply.
  const responder = warren.respond({ queue: args.queue }, (request) => {
    console.log(`request: ${JSON.stringify(request.text)}`);
    return { payload: request.text.toUpperCase(), contentType: 'text/plain' };
  });
  responder.on('error', (err) => { console.error(`serve: ${err.message}`); process.exitCode = 1; });
  responder.on('subscribed', ({ queue }) => console.log(`serving requests from ${queue}`));
  const stop = async () => {
    await responder.stop();
    warren.close();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
} else if (mode === 'call') {
  try {
    // Not retried: a request may have been handled even when its reply was lost.
    const reply = await warren.call({ queue: args.queue, payload: args.message }, { timeoutMs: Number(args.timeout) * 1000 });
    console.log(`reply: ${JSON.stringify(reply.text)}`);
  } catch (err) {
    console.error(err instanceof TimeoutError ? `no reply within ${args.timeout}s (is a server running?)` : `call: ${err.message}`);
    process.exitCode = 2;
  } finally {
    warren.close();
  }
} else {
  console.error('usage: rpc.js serve|call [--queue=NAME] [--message=TEXT] [--timeout=SECONDS]');
  process.exitCode = 2;
}
