package warren

import (
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
)

// ElectionFence is the fence of a leadership: a write or publish carrying it
// happens only while the election's leader still has token.
func ElectionFence(election string, token uint64) *warrenv1.Fence {
	return &warrenv1.Fence{Owner: &warrenv1.Fence_Election{Election: election}, FencingToken: token}
}

// LockFence is the fence of a lock holder: a write or publish carrying it
// happens only while one of the lock's holders still has token.
func LockFence(lock string, token uint64) *warrenv1.Fence {
	return &warrenv1.Fence{Owner: &warrenv1.Fence_Lock{Lock: lock}, FencingToken: token}
}

// Fence returns the fence of this candidate's current leadership, and false
// when it does not lead (by the lease). The server checks the fence itself:
// a leadership lost after this call makes the fenced write or publish fail
// with FAILED_PRECONDITION, whatever this Elector believed.
func (e *Elector) Fence() (*warrenv1.Fence, bool) {
	token, ok := e.Leading()
	if !ok {
		return nil, false
	}
	return ElectionFence(e.opts.Election, token), true
}

// Fence returns the fence of the leadership an Elected event reports, or
// nil for other events.
func (ev Event) Fence() *warrenv1.Fence {
	if ev.Kind != Elected || ev.Leader == nil {
		return nil
	}
	return ElectionFence(ev.Leader.Election, ev.Leader.FencingToken)
}

// FenceOption makes a publish (Publisher.Publish) or a config write
// (PutConfig, DeleteConfig) conditional on a fence; see WithFence.
type FenceOption struct{ fence *warrenv1.Fence }

// WithFence makes a Publish, PutConfig or DeleteConfig happen only if fence
// still holds when the server applies it (ElectionFence, LockFence,
// Elector.Fence, Lock.Fence); otherwise it fails with FAILED_PRECONDITION
// and nothing is written or published. A nil fence is no condition.
func WithFence(fence *warrenv1.Fence) FenceOption { return FenceOption{fence} }

func (o FenceOption) applyPublish(req *warrenv1.PublishRequest) { req.Fence = o.fence }
func (o FenceOption) applyConfig(w *configWrite)                { w.fence = o.fence }
