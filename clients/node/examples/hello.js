#!/usr/bin/env node
// hello: publishes "Hello, Zookeeper & RabbitMQ!" to a durable queue and
// receives it back.
//
//   node examples/hello.js [--queue=test_queue] [--message=TEXT] [--timeout=20]
//   env: WARREN_ADDRESS (default 127.0.0.1:50051), WARREN_QUEUE
import { parseArgs } from 'node:util';
import { Warren } from '@warren/client';

const { values: args } = parseArgs({
  options: {
    queue: { type: 'string', default: process.env.WARREN_QUEUE || 'test_queue' },
    message: { type: 'string', default: 'Hello, Zookeeper & RabbitMQ!' },
    timeout: { type: 'string', default: '20' },
  },
});

const warren = new Warren();
console.log(`connecting to ${warren.address}`);

let received;
const done = new Promise((resolve) => { received = resolve; });
let expectedId = null;

// Subscribing to a queue by name declares it durable when it is missing, so
// subscribe first and publish only once 'subscribed' says the queue exists:
// a message published to a queue that does not exist yet is unroutable (the
// publish, mandatory by default, fails with FAILED_PRECONDITION; with
// mandatory: false the broker would drop it silently).
const subscriber = warren.subscribe({ queue: args.queue }, (message) => {
  // The queue may hold older messages (e.g. from an earlier run); they are
  // acked too, but we wait for ours.
  const mine = message.messageId === expectedId;
  console.log(`received: ${JSON.stringify(message.text)} (message id ${message.messageId}${mine ? '' : ', an older one'})`);
  if (mine) received(message);
});
subscriber.on('reconnecting', ({ error, delayMs }) => console.log(`subscription lost (${error.message}); retrying in ${delayMs} ms`));

const timer = setTimeout(() => {
  console.error(`no message within ${args.timeout}s`);
  process.exit(1);
}, Number(args.timeout) * 1000);

await new Promise((resolve, reject) => {
  subscriber.once('subscribed', ({ queue }) => { console.log(`subscribed to queue ${queue}`); resolve(); });
  subscriber.once('error', reject);
});

// Message id chosen before publishing, so the handler can tell ours apart
// even if the delivery overtakes the publish confirm.
expectedId = crypto.randomUUID();
const { messageId } = await warren.publish({ queue: args.queue, payload: args.message, messageId: expectedId, contentType: 'text/plain' });
console.log(`published: ${JSON.stringify(args.message)} (message id ${messageId})`);

await done;
clearTimeout(timer);
await subscriber.stop(); // acks it before closing
warren.close();
console.log('ok: the message came back');
