package warren

import (
	"bytes"
	"context"
	"io"
	"sync"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// RegistrationOptions configure a Registration.
type RegistrationOptions struct {
	// Key is the config key to hold (e.g. "services/api/host-1").
	Key string
	// Value is its value (e.g. the service's address); SetValue changes it.
	Value []byte
	// HeartbeatInterval is the lease heartbeat asked of the server while
	// the key is held; Held turns false when two intervals pass without a
	// message, and the Registration holds the key again on a new stream.
	// 0 means DefaultHeartbeatInterval.
	HeartbeatInterval time.Duration
	// OnHeld, if set, is called each time the server reports the key held:
	// created, its value changed, or created again after a loss. OnLost, if
	// set, is called each time it may be gone. Both run on the
	// Registration's goroutine and must not block for long.
	OnHeld func(*warrenv1.ConfigEntry)
	OnLost func(reason LossReason, err error)
	// Backoff between streams (zero: clients/retry-policy.json's).
	Backoff Backoff
	// CloseTimeout bounds how long Close waits for the server to confirm
	// the delete. 0 means 5s.
	CloseTimeout time.Duration
}

// Registration holds a config key while it is open (HoldKey): the key
// exists, as an ephemeral node of the server's ZooKeeper session, for as
// long as this client lives, and goes when it closes or dies — service
// registration. Readers find held keys with GetConfig, ListConfig and
// WatchConfig (ConfigEntry.Held).
//
// A stream that ends with a code clients/retry-policy.json marks
// "resubscribe" (UNAVAILABLE, ...), or goes silent past the lease, is
// opened again after a backoff and holds the key again; the other codes end
// the Registration (Err): ALREADY_EXISTS when the key is someone else's,
// INVALID_ARGUMENT, PERMISSION_DENIED, ... One exception: after a broken
// stream, ALREADY_EXISTS for a held key with this Registration's value is
// its own node of the previous stream, which lingers until that server's
// session expires (a crashed warrend): it is retried until the node goes.
type Registration struct {
	client    warrenv1.ConfigServiceClient
	opts      RegistrationOptions
	reconnect func() // resets the connection's reconnect backoff; may be nil
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	mu        sync.Mutex
	value     []byte
	stream    *holdStream // the current stream, nil between streams
	held      bool
	everHeld  bool
	entry     *warrenv1.ConfigEntry
	lastProof time.Time
	lease     time.Duration
	changed   chan struct{} // closed and replaced on every change of held
	closing   bool
	err       error
}

// HoldKey starts holding opts.Key in the background and returns at once;
// WaitHeld waits until the key is held. Cancelling ctx, or Close, ends the
// Registration and the server deletes the key.
func HoldKey(ctx context.Context, client warrenv1.ConfigServiceClient, opts RegistrationOptions) *Registration {
	return holdKey(ctx, client, opts, nil)
}

func holdKey(ctx context.Context, client warrenv1.ConfigServiceClient, opts RegistrationOptions, reconnect func()) *Registration {
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.CloseTimeout <= 0 {
		opts.CloseTimeout = 5 * time.Second
	}
	r := &Registration{client: client, opts: opts, reconnect: reconnect, done: make(chan struct{}),
		value: opts.Value, lease: 2 * opts.HeartbeatInterval, changed: make(chan struct{})}
	ctx, r.cancel = context.WithCancel(ctx)
	go r.run(ctx)
	return r
}

// Held reports whether the key is held now: the server said so, nothing
// since said it may be gone, and a message arrived within the lease (two
// heartbeat intervals).
func (r *Registration) Held() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held && time.Since(r.lastProof) < r.lease
}

// Entry is the key as last reported held (nil before the first time).
func (r *Registration) Entry() *warrenv1.ConfigEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entry
}

// WaitHeld waits until the key is held, or the Registration ended (its Err,
// or CANCELLED after Close), or ctx is done.
func (r *Registration) WaitHeld(ctx context.Context) error {
	for {
		r.mu.Lock()
		held, changed := r.held, r.changed
		r.mu.Unlock()
		if held {
			return nil
		}
		select {
		case <-changed:
		case <-r.done:
			if err := r.Err(); err != nil {
				return err
			}
			return status.Error(codes.Canceled, "warren: the registration has ended")
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// SetValue changes the key's value (OnHeld reports it applied); it is kept
// for later streams too. It fails only after Close.
func (r *Registration) SetValue(value []byte) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return status.Error(codes.FailedPrecondition, "warren: the registration is closed")
	}
	r.value = value
	st := r.stream
	r.mu.Unlock()
	if st != nil {
		// A failed send means a breaking stream: the next one sends the
		// new value.
		_ = st.send(&warrenv1.HoldKeyRequest{Key: r.opts.Key, Value: value})
	}
	return nil
}

// Done is closed when the Registration has ended.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Err returns why the Registration ended: nil after Close or cancellation.
func (r *Registration) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Close ends the stream (the server deletes the key, then confirms), waits
// up to CloseTimeout for the confirmation, and ends the Registration.
func (r *Registration) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closing = true
		st := r.stream
		r.mu.Unlock()
		if st != nil {
			st.closeSend()
			waitAtMost(r.done, r.opts.CloseTimeout)
		}
		r.cancel()
		<-r.done
	})
	return nil
}

func (r *Registration) run(ctx context.Context) {
	defer close(r.done)
	defer r.setHeld(false, nil)
	err := runStreams(ctx, r.opts.Backoff, r.reconnect, r.isClosing, r.runStream, func(err error) bool {
		r.mu.Lock()
		everHeld := r.everHeld
		r.mu.Unlock()
		return resubscribe(err) || everHeld && r.ownNodeLingers(ctx, err)
	})
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func (r *Registration) isClosing() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closing
}

// ownNodeLingers says whether err is ALREADY_EXISTS for a held key with
// this Registration's value: its own node of a stream whose server died,
// until that server's session expires.
func (r *Registration) ownNodeLingers(ctx context.Context, err error) bool {
	if status.Code(err) != codes.AlreadyExists {
		return false
	}
	resp, gerr := r.client.GetConfig(ctx, &warrenv1.GetConfigRequest{Key: r.opts.Key, Consistent: true})
	if gerr != nil {
		return status.Code(gerr) == codes.NotFound || retryUnary(ctx, gerr) // gone meanwhile, or ask again
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return resp.GetEntry().GetHeld() && bytes.Equal(resp.GetEntry().GetValue(), r.value)
}

// holdStream is one HoldKey stream's sending side.
type holdStream = serialSender[*warrenv1.HoldKeyRequest]

// runStream holds the key on one stream until it ends. progressed says
// whether the server answered at all (which resets the backoff).
func (r *Registration) runStream(ctx context.Context) (progressed bool, err error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := r.client.HoldKey(streamCtx, streamCallOptions()...)
	if err != nil {
		return false, err
	}
	st := &holdStream{stream: stream, closedErr: io.EOF}
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return false, nil
	}
	value := r.value
	r.mu.Unlock()
	if err := st.send(&warrenv1.HoldKeyRequest{Key: r.opts.Key, Value: value,
		HeartbeatInterval: durationpb.New(r.opts.HeartbeatInterval)}); err != nil {
		_, err = stream.Recv()
		return false, err
	}
	// Published only after the first request went out, so that SetValue
	// cannot overtake it; a value set meanwhile follows at once.
	r.mu.Lock()
	r.stream = st
	latest := r.value
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.stream = nil
		r.mu.Unlock()
		r.setHeld(false, nil)
	}()
	if !bytes.Equal(latest, value) {
		_ = st.send(&warrenv1.HoldKeyRequest{Key: r.opts.Key, Value: latest})
	}

	recv := receive(streamCtx, stream.Recv)
	timer := time.NewTimer(r.lease)
	timer.Stop()
	defer timer.Stop()
	var leaseC <-chan time.Time // nil (never fires) unless held
	for {
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case m := <-recv:
			if m.err != nil {
				if m.err == io.EOF {
					m.err = errStreamEnded
				}
				if !r.isClosing() {
					r.lose(LostStreamBroken, m.err)
				}
				return progressed, m.err
			}
			progressed = true
			r.mu.Lock()
			r.lastProof = time.Now()
			r.mu.Unlock()
			resetTimer(timer, r.lease)
			switch x := m.resp.Event.(type) {
			case *warrenv1.HoldKeyResponse_Held:
				r.setHeld(true, x.Held)
				leaseC = timer.C
				if r.opts.OnHeld != nil {
					r.opts.OnHeld(x.Held)
				}
			case *warrenv1.HoldKeyResponse_Lost:
				r.lose(fromProtoReason(x.Lost.Reason), nil)
				leaseC = nil
			}
		case <-leaseC:
			r.lose(LostLeaseExpired, nil)
			// Ending the stream makes the server delete the key; the next
			// stream holds it again once the server can vouch for it.
			return progressed, errLeaseExpired
		}
	}
}

// setHeld records the held state (and the entry, when held) and wakes
// WaitHeld.
func (r *Registration) setHeld(held bool, entry *warrenv1.ConfigEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if held {
		r.entry, r.everHeld = entry, true
	}
	if r.held != held {
		r.held = held
		close(r.changed)
		r.changed = make(chan struct{})
	}
}

// lose reports a loss of a held key (once per loss).
func (r *Registration) lose(reason LossReason, err error) {
	r.mu.Lock()
	wasHeld := r.held
	r.mu.Unlock()
	r.setHeld(false, nil)
	if wasHeld && r.opts.OnLost != nil {
		r.opts.OnLost(reason, err)
	}
}
