// @warren/client: the Node.js client of Warren (ESM).
//
//   import { Warren } from '@warren/client';
//   const warren = new Warren(); // WARREN_ADDRESS or 127.0.0.1:50051
//
// See README.md and index.d.ts for the API.
export { Warren, DEFAULT_ADDRESS, DEFAULT_CHANNEL_OPTIONS, tlsCredentials, bearerInterceptor, optionsFromEnv } from './client.js';
export { Publisher } from './publisher.js';
export { Subscriber, Message, RetryLater } from './subscriber.js';
export { TimeoutError, DEFAULT_CALL_TIMEOUT_MS } from './rpc.js';
export { streamOffsetToProto } from './stream-offset.js';
export { Elector } from './elector.js';
export { ConfigWatcher } from './config-watcher.js';
export { Locker, Lock } from './lock.js';
export { Registration } from './registration.js';
export { fenceFromElector, fenceFromLock } from './fence.js';
export { AbortError, Backoff } from './util.js';
export { BACKOFF, CHANNEL, DEFAULTS, RETRY_POLICY, streamDecision, unaryDecision } from './policy.js';
export { loadWarrenProtos, LOADER_OPTIONS } from './proto.js';
export { status, Metadata, credentials } from '@grpc/grpc-js';
