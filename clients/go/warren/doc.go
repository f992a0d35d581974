// Package warren is a thin, idiomatic Go wrapper over the generated warren.v1
// gRPC stubs (import path github.com/warren/warren/gen/go/warren/v1). It adds
// only what is easy to get wrong with the raw streams:
//
//   - Subscriber: runs a handler per delivery with bounded concurrency, acks
//     when it returns nil, nacks when it returns an error or panics (or
//     retries it later: RetryAfter), and resubscribes with capped, jittered
//     backoff when the stream breaks; a stream queue resumes where it
//     stopped (OffsetFirst, OffsetAt, ... say where it starts).
//   - Call and Responder: request/reply through the broker (the server's
//     direct reply-to); a Call is never retried.
//   - Elector: turns an Elect stream into events (elected with the fencing
//     token, following, lost), enforces the client side of the leader LEASE
//     and resigns on Close.
//   - ConfigWatcher: keeps the latest value of a key or a prefix, re-watches
//     after a broken stream and reports what changed meanwhile.
//   - Publisher: publishes with a client-generated message id (mandatory by
//     default) and retries transient failures with that SAME id, so
//     consumers can de-duplicate; WithFence publishes only while a
//     leadership or a lock still holds, WithDelay publishes later.
//   - Locker: acquires mutexes and semaphores (with a timeout, or trying
//     once) and returns a held Lock with its fencing token, the lease rule
//     of the Elector (Held), a Lost channel and Release (`defer
//     lock.Release()`); a loss is final, never silently re-acquired.
//   - Registration: holds a config key while open (service registration)
//     and holds it again after a broken stream.
//   - PutConfig, DeleteConfig (WithFence, ExpectVersion, CreateOnly,
//     Recursive) and Txn (checks and ops all or nothing, optionally fenced);
//     ElectionFence, LockFence, Elector.Fence and Lock.Fence make fences.
//
// Every wrapper retries and gives up by the one rule all Warren clients
// share, clients/retry-policy.json (see policy.go and docs/semantics.md),
// and Dial caps gRPC's reconnect backoff so that they come back within
// seconds of a long outage.
//
// Everything takes a context.Context; errors are gRPC status errors (use
// status.Code(err)). The raw stubs stay available on Client for everything
// else (GetConfig, ListConfig, GetLeader, GetLock, PublishStream, ...).
package warren
