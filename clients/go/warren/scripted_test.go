package warren

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// scriptedStream is a client stream whose responses a test feeds itself
// (a Resp, or an error that ends the stream); it records what was sent,
// and answers the client's half-close with the end of the stream, like
// warrend.
type scriptedStream[Req, Resp any] struct {
	grpc.ClientStream
	ctx        context.Context
	in         chan interface{}
	halfClosed chan struct{}
	closeOnce  sync.Once
	mu         sync.Mutex
	sent       []Req
}

func newScriptedStream[Req, Resp any](ctx context.Context) *scriptedStream[Req, Resp] {
	return &scriptedStream[Req, Resp]{ctx: ctx, in: make(chan interface{}, 100), halfClosed: make(chan struct{})}
}

func (s *scriptedStream[Req, Resp]) Context() context.Context { return s.ctx }

func (s *scriptedStream[Req, Resp]) CloseSend() error {
	s.closeOnce.Do(func() { close(s.halfClosed) })
	return nil
}

func (s *scriptedStream[Req, Resp]) Send(m Req) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

func (s *scriptedStream[Req, Resp]) Recv() (Resp, error) {
	var none Resp
	select {
	case m := <-s.in:
		if err, ok := m.(error); ok {
			return none, err
		}
		return m.(Resp), nil
	case <-s.ctx.Done():
		return none, status.FromContextError(s.ctx.Err()).Err()
	case <-s.halfClosed:
		return none, io.EOF
	}
}

func (s *scriptedStream[Req, Resp]) requests() []Req {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Req(nil), s.sent...)
}
