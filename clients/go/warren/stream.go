package warren

import (
	"context"
	"sync"
	"time"
)

// What the streaming wrappers (Elector, Locker, Registration) share.

// runStreams runs one stream after another (runStream) until ctx is done,
// closing says the wrapper is closing, or again refuses how a stream ended:
// then it returns that stream's error (nil after ctx or closing). Between
// streams it waits the backoff, counted from the start again after a
// stream that progressed (got an answer), and resets the connection's
// reconnect backoff (reconnect may be nil).
func runStreams(ctx context.Context, backoff Backoff, reconnect func(), closing func() bool,
	runStream func(context.Context) (progressed bool, err error), again func(error) bool) error {
	for attempt := 0; ; attempt++ {
		progressed, err := runStream(ctx)
		if ctx.Err() != nil || closing() {
			return nil
		}
		if progressed {
			attempt = 0
		}
		if !again(err) {
			return err
		}
		if sleep(ctx, backoff.Delay(attempt)) != nil {
			return nil
		}
		if reconnect != nil {
			reconnect()
		}
	}
}

// received is one result of a stream's Recv.
type received[T any] struct {
	resp T
	err  error
}

// receive calls recv in a goroutine until it fails, handing each result
// over, so that a wrapper's lease timer and its caller's cancellation can
// act while Recv blocks (a frozen server or a silent network is exactly the
// case). It gives up a result only once ctx, the stream's context, is done.
func receive[T any](ctx context.Context, recv func() (T, error)) <-chan received[T] {
	out := make(chan received[T], 1)
	go func() {
		for {
			resp, err := recv()
			select {
			case out <- received[T]{resp, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return out
}

type sendStream[Req any] interface {
	Send(Req) error
	CloseSend() error
}

// serialSender serializes a stream's sends (gRPC allows one sender at a
// time) and refuses them, with closedErr, after the half-close.
type serialSender[Req any] struct {
	mu        sync.Mutex
	stream    sendStream[Req]
	closed    bool
	closedErr error
}

func (s *serialSender[Req]) send(req Req) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.closedErr
	}
	return s.stream.Send(req)
}

func (s *serialSender[Req]) closeSend() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		_ = s.stream.CloseSend()
	}
}

// waitAtMost waits until done is closed or d has passed.
func waitAtMost(done <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}
