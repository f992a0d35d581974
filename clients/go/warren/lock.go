package warren

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// LockerOptions configure a Locker. The zero value is usable.
type LockerOptions struct {
	// HolderID names this holder to others (GetLock, Queued); empty lets
	// the server generate one per acquisition.
	HolderID string
	// HeartbeatInterval is the lease heartbeat asked of the server while
	// holding; a Lock is lost when two intervals pass without a message.
	// 0 means DefaultHeartbeatInterval. Keep it at or below a third of the
	// server's ZooKeeper session timeout, as for the Elector.
	HeartbeatInterval time.Duration
	// Backoff between attempts after a broken stream while waiting (zero:
	// clients/retry-policy.json's).
	Backoff Backoff
	// ReleaseTimeout bounds how long Release waits for the server to
	// confirm. 0 means 5s.
	ReleaseTimeout time.Duration
}

// AcquireOptions say what to acquire and how long to wait.
type AcquireOptions struct {
	// Limit is the most holders at once: 0 or 1 makes a mutex, N a
	// semaphore of N. Everyone using a lock must give the same limit; a
	// different one fails with FAILED_PRECONDITION.
	Limit uint32
	// Timeout bounds the wait: Acquire fails with DEADLINE_EXCEEDED when it
	// passes without the lock, and nothing is left behind. 0 waits until
	// ctx ends (unless TryOnce).
	Timeout time.Duration
	// TryOnce takes the lock only if it is free now (Timeout is ignored):
	// otherwise Acquire fails at once with DEADLINE_EXCEEDED.
	TryOnce bool
	// Value is shown to others with this holder (e.g. what it works on).
	Value []byte
	// OnQueued, if set, is called while waiting, each time the server
	// reports this client's place: how many wait ahead of it, and the
	// holders. It runs on Acquire's goroutine and must not block for long.
	OnQueued func(position uint32, holders []*warrenv1.LockHolder)
}

// Locker acquires locks and semaphores (LockService). It is safe for
// concurrent use; every Acquire is a lock of its own.
type Locker struct {
	client    warrenv1.LockServiceClient
	opts      LockerOptions
	reconnect func() // resets the connection's reconnect backoff; may be nil
}

// NewLocker returns a Locker over a LockService stub.
func NewLocker(client warrenv1.LockServiceClient, opts LockerOptions) *Locker {
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.ReleaseTimeout <= 0 {
		opts.ReleaseTimeout = 5 * time.Second
	}
	return &Locker{client: client, opts: opts}
}

// Acquire waits for the lock name and returns it held; release it with
// Release (`defer lock.Release()`). ctx bounds the wait only: once
// acquired, the lock lives until Release or its loss (Lock.Lost).
//
// While waiting, a stream that ends with a code clients/retry-policy.json
// marks "resubscribe" (UNAVAILABLE, ABORTED after a session expiry, ...) is
// opened again after a backoff, within what remains of Timeout; the other
// codes are returned (INVALID_ARGUMENT, PERMISSION_DENIED,
// FAILED_PRECONDITION for a limit that differs from the lock's, ...). The
// end of Timeout is DEADLINE_EXCEEDED; the end of ctx is its status
// (CANCELLED or DEADLINE_EXCEEDED). Either way the server deletes this
// waiter's node at once.
func (l *Locker) Acquire(ctx context.Context, name string, opts AcquireOptions) (*Lock, error) {
	var deadline time.Time
	if opts.Timeout > 0 && !opts.TryOnce {
		deadline = time.Now().Add(opts.Timeout)
	}
	notAcquired := func(last error) error {
		return status.Errorf(codes.DeadlineExceeded, "acquire.wait_timeout: lock %s not acquired within %v (last attempt: %v)",
			name, opts.Timeout, last)
	}
	for attempt := 0; ; attempt++ {
		var wait *durationpb.Duration
		switch {
		case opts.TryOnce:
			wait = durationpb.New(0)
		case !deadline.IsZero():
			wait = durationpb.New(time.Until(deadline))
		}
		lock, progressed, err := l.try(ctx, name, opts, wait)
		if err == nil {
			return lock, nil
		}
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		// With a wait_timeout, DEADLINE_EXCEEDED is the server's answer
		// (not acquired in time), not a failure to retry.
		if wait != nil && status.Code(err) == codes.DeadlineExceeded {
			return nil, err
		}
		if !resubscribe(err) {
			return nil, err
		}
		if progressed {
			attempt = 0
		}
		delay := l.opts.Backoff.Delay(attempt)
		if !deadline.IsZero() && time.Until(deadline) <= delay {
			return nil, notAcquired(err)
		}
		if sleep(ctx, delay) != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if l.reconnect != nil {
			l.reconnect()
		}
	}
}

// lockStream is one Lock stream: its results, and its sending side.
type lockStream struct {
	serialSender[*warrenv1.LockRequest]
	ctx    context.Context
	cancel context.CancelFunc
	recv   <-chan received[*warrenv1.LockResponse]
}

// try runs one Lock stream until the lock is acquired or the stream ends.
// progressed says whether the server answered at all.
func (l *Locker) try(ctx context.Context, name string, opts AcquireOptions,
	wait *durationpb.Duration) (lock *Lock, progressed bool, err error) {
	// The stream outlives Acquire's ctx once the lock is held: it keeps
	// ctx's values (credentials) but not its cancellation.
	streamCtx, cancel := context.WithCancel(detached{ctx})
	stream, err := l.client.Lock(streamCtx, streamCallOptions()...)
	if err != nil {
		cancel()
		return nil, false, err
	}
	ls := &lockStream{serialSender: serialSender[*warrenv1.LockRequest]{stream: stream, closedErr: io.EOF},
		ctx: streamCtx, cancel: cancel}
	if err := ls.send(&warrenv1.LockRequest{Request: &warrenv1.LockRequest_Acquire{Acquire: &warrenv1.Acquire{
		Name: name, HolderId: l.opts.HolderID, Value: opts.Value, Limit: opts.Limit,
		WaitTimeout: wait, HeartbeatInterval: durationpb.New(l.opts.HeartbeatInterval)}}}); err != nil {
		_, err = stream.Recv() // the stream's own status says more than Send's io.EOF
		cancel()
		return nil, false, err
	}
	ls.recv = receive(streamCtx, stream.Recv)
	for {
		select {
		case <-ctx.Done():
			cancel() // the server deletes the waiter's node
			return nil, progressed, ctx.Err()
		case r := <-ls.recv:
			if r.err != nil {
				cancel()
				if r.err == io.EOF {
					r.err = errStreamEnded
				}
				return nil, progressed, r.err
			}
			progressed = true
			switch x := r.resp.Event.(type) {
			case *warrenv1.LockResponse_Queued:
				if opts.OnQueued != nil {
					opts.OnQueued(x.Queued.Position, x.Queued.Holders)
				}
			case *warrenv1.LockResponse_Acquired:
				if ctx.Err() != nil {
					cancel()
					return nil, progressed, ctx.Err()
				}
				return l.held(ls, x.Acquired), true, nil
			}
		}
	}
}

// Lock is a held lock (or one of a semaphore's places). It stays held
// until Release or a loss: a loss is final (the stream is ended and the
// server deletes the node), so work done under the lock can rely on one
// fencing token for the lock's whole life. Acquire again for a new one.
type Lock struct {
	name           string
	holder         *warrenv1.LockHolder
	lease          time.Duration
	releaseTimeout time.Duration
	stream         *lockStream
	ctx            context.Context
	end            context.CancelFunc
	done           chan struct{} // closed when the receiving goroutine is done
	releaseOnce    sync.Once
	releaseErr     error

	mu        sync.Mutex
	lastProof time.Time
	reason    LossReason // 0 while held
	err       error
	streamErr error // how the stream ended, once it has
}

func (l *Locker) held(ls *lockStream, acquired *warrenv1.Acquired) *Lock {
	interval := acquired.GetHeartbeatInterval().AsDuration()
	if interval <= 0 {
		interval = l.opts.HeartbeatInterval
	}
	ctx, end := context.WithCancel(context.Background())
	lock := &Lock{name: acquired.GetHolder().GetName(), holder: acquired.Holder, lease: 2 * interval,
		releaseTimeout: l.opts.ReleaseTimeout, stream: ls, ctx: ctx, end: end,
		done: make(chan struct{}), lastProof: time.Now()}
	go lock.run()
	return lock
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Holder is this holder as the server reported it on acquisition.
func (l *Lock) Holder() *warrenv1.LockHolder { return l.holder }

// FencingToken is this holder's token: it grows with every acquisition of
// the lock and is never reused.
func (l *Lock) FencingToken() uint64 { return l.holder.GetFencingToken() }

// Fence is the fence of this holder (LockFence), for WithFence and Txn.
func (l *Lock) Fence() *warrenv1.Fence { return LockFence(l.name, l.FencingToken()) }

// Held reports whether the lock is still held by the lease rule: not
// released, not lost, and a message from the server (a heartbeat) arrived
// within the last two heartbeat intervals. Check it before each step of
// work that must not run outside the lock; for writes and publishes that
// must not outlive it, use its Fence instead (the server checks that).
func (l *Lock) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reason == 0 && time.Since(l.lastProof) < l.lease
}

// Lost is closed when the lock ends: lost (Reason says why) or released.
func (l *Lock) Lost() <-chan struct{} { return l.ctx.Done() }

// Context is cancelled when the lock ends (the moment Lost is closed): run
// work that must stop with the lock under it.
func (l *Lock) Context() context.Context { return l.ctx }

// Reason says why the lock ended: 0 while held; LostReleased after
// Release; LostConnectionSuspended or LostSessionExpired when the server
// could no longer vouch for it; LostLeaseExpired when no heartbeat came
// for two intervals; LostStreamBroken when the stream failed (Err).
func (l *Lock) Reason() LossReason {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reason
}

// Err is the stream's error when the lock was lost with LostStreamBroken.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release gives the lock up: it is no longer Held at once, the server
// deletes the node, and Release waits (up to LockerOptions.ReleaseTimeout)
// for the server's confirmation. Safe to call more than once and after a
// loss (then there is nothing to give up). It returns the stream's error
// when the server did not confirm cleanly; the node goes anyway, with the
// stream.
func (l *Lock) Release() error {
	l.releaseOnce.Do(func() {
		if l.finish(LostReleased, nil) {
			_ = l.stream.send(&warrenv1.LockRequest{Request: &warrenv1.LockRequest_Release{Release: &warrenv1.Release{}}})
			l.stream.closeSend()
			waitAtMost(l.done, l.releaseTimeout)
			l.mu.Lock()
			switch err := l.streamErr; {
			case err == nil:
				l.releaseErr = status.Errorf(codes.DeadlineExceeded, "warren: release of lock %s not confirmed within %v", l.name, l.releaseTimeout)
			case err != io.EOF:
				l.releaseErr = err
			}
			l.mu.Unlock()
		}
		l.stream.cancel()
		<-l.done
	})
	return l.releaseErr
}

// finish ends the lock with reason, once; it reports whether it did.
func (l *Lock) finish(reason LossReason, err error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reason != 0 {
		return false
	}
	l.reason, l.err = reason, err
	l.end()
	return true
}

// run follows the held lock: heartbeats renew the lease; a loss, a broken
// stream or an expired lease end it, and then the stream too (the server
// deletes the node at once).
func (l *Lock) run() {
	defer close(l.done)
	timer := time.NewTimer(l.lease)
	defer timer.Stop()
	for {
		select {
		case r := <-l.stream.recv:
			if r.err != nil {
				l.ended(r.err)
				if r.err == io.EOF {
					r.err = errStreamEnded
				}
				l.lose(LostStreamBroken, r.err)
				return
			}
			l.mu.Lock()
			l.lastProof = time.Now()
			l.mu.Unlock()
			resetTimer(timer, l.lease)
			switch x := r.resp.Event.(type) {
			case *warrenv1.LockResponse_Lost:
				l.lose(fromProtoReason(x.Lost.Reason), nil)
			case *warrenv1.LockResponse_Queued:
				l.lose(LostStreamBroken, errors.New("warren: told to wait while holding"))
			case *warrenv1.LockResponse_Acquired:
				if x.Acquired.GetHolder().GetFencingToken() != l.FencingToken() {
					l.lose(LostStreamBroken, fmt.Errorf("warren: acquired again with token %d, not %d",
						x.Acquired.GetHolder().GetFencingToken(), l.FencingToken()))
				}
			}
		case <-timer.C:
			l.lose(LostLeaseExpired, nil)
		case <-l.ctx.Done():
			// Released (or lost): drain until the stream ends, which Release
			// bounds by cancelling it.
			for {
				select {
				case r := <-l.stream.recv:
					if r.err != nil {
						l.ended(r.err)
						return
					}
				case <-l.stream.ctx.Done():
					return
				}
			}
		}
	}
}

// ended records how the stream ended, for Release.
func (l *Lock) ended(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.streamErr = err
}

// lose ends the lock after a loss and ends the stream with it.
func (l *Lock) lose(reason LossReason, err error) {
	if l.finish(reason, err) {
		l.stream.cancel()
	}
}
