package warren

import (
	"context"
	"math/rand"
	"sync"
	"time"
)

// Backoff says how long to wait between retries: Initial, then times
// Multiplier per attempt, capped at Max, each delay jittered. Zero fields
// take clients/retry-policy.json's values: 100ms, ×2, capped at 3s.
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
}

// Delay returns the wait before retry number attempt (0 for the first).
// "Equal jitter": a uniform pick in [d/2, d], so that clients that lost the
// same server at the same moment do not come back in lockstep, yet no retry
// is immediate.
func (b Backoff) Delay(attempt int) time.Duration {
	initial, max, mult := b.Initial, b.Max, b.Multiplier
	if initial <= 0 {
		initial = defaultBackoffInitial
	}
	if max <= 0 {
		max = defaultBackoffMax
	}
	if max < initial {
		max = initial
	}
	if mult < 1 {
		mult = defaultBackoffMultiplier
	}
	d := float64(initial)
	for i := 0; i < attempt && d < float64(max); i++ {
		d *= mult
	}
	if d > float64(max) {
		d = float64(max)
	}
	half := d / 2
	return time.Duration(half + jitter()*half)
}

var (
	rngMu sync.Mutex
	rng   = rand.New(rand.NewSource(time.Now().UnixNano()))
)

func jitter() float64 {
	rngMu.Lock()
	defer rngMu.Unlock()
	return rng.Float64()
}

// sleep waits for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// detached is a context that keeps ctx's values (e.g. outgoing metadata
// with credentials) but not its cancellation: the wrappers stop their
// streams in an orderly way (ack, half-close, drain) after the caller's
// context is done, which a cancelled context would cut short.
// (context.WithoutCancel does this from Go 1.21 on.)
type detached struct{ parent context.Context }

func (d detached) Deadline() (time.Time, bool)       { return time.Time{}, false }
func (d detached) Done() <-chan struct{}             { return nil }
func (d detached) Err() error                        { return nil }
func (d detached) Value(key interface{}) interface{} { return d.parent.Value(key) }
