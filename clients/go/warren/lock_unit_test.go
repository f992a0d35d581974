package warren

import (
	"context"
	"sync"
	"testing"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The Lock's client side (lease, losses, release, timeouts) over a
// scripted LockService: each test feeds the stream's responses itself.

type scriptedLockStream = scriptedStream[*warrenv1.LockRequest, *warrenv1.LockResponse]

type scriptedLocks struct {
	warrenv1.LockServiceClient
	mu      sync.Mutex
	streams []*scriptedLockStream
	opened  chan *scriptedLockStream
}

func newScriptedLocks() *scriptedLocks {
	return &scriptedLocks{opened: make(chan *scriptedLockStream, 100)}
}

func (f *scriptedLocks) Lock(ctx context.Context, _ ...grpc.CallOption) (warrenv1.LockService_LockClient, error) {
	s := newScriptedStream[*warrenv1.LockRequest, *warrenv1.LockResponse](ctx)
	f.mu.Lock()
	f.streams = append(f.streams, s)
	f.mu.Unlock()
	f.opened <- s
	return s, nil
}

func (f *scriptedLocks) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.streams)
}

func acquiredResponse(token uint64, interval time.Duration) *warrenv1.LockResponse {
	return &warrenv1.LockResponse{Event: &warrenv1.LockResponse_Acquired{Acquired: &warrenv1.Acquired{
		Holder:            &warrenv1.LockHolder{Name: "l", HolderId: "me", FencingToken: token},
		HeartbeatInterval: durationpb.New(interval)}}}
}

var heartbeatResponse = &warrenv1.LockResponse{Event: &warrenv1.LockResponse_Heartbeat{Heartbeat: &warrenv1.Heartbeat{}}}

// acquireScripted acquires "l" on a stream that answers acquired at once.
func acquireScripted(t *testing.T, f *scriptedLocks, interval time.Duration) (*Lock, *scriptedLockStream) {
	t.Helper()
	type result struct {
		lock *Lock
		err  error
	}
	res := make(chan result, 1)
	go func() {
		l, err := NewLocker(f, LockerOptions{Backoff: quick}).Acquire(context.Background(), "l", AcquireOptions{})
		res <- result{l, err}
	}()
	s := <-f.opened
	s.in <- acquiredResponse(42, interval)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.lock, s
}

func awaitLost(t *testing.T, l *Lock) {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the lock was not lost within 5s")
	}
}

func TestLockWithoutHeartbeatsIsLostAfterTwoIntervals(t *testing.T) {
	f := newScriptedLocks()
	start := time.Now()
	l, s := acquireScripted(t, f, 100*time.Millisecond)
	if !l.Held() || l.FencingToken() != 42 || l.Name() != "l" {
		t.Fatalf("fresh lock: held %v, token %d, name %q", l.Held(), l.FencingToken(), l.Name())
	}
	awaitLost(t, l)
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("lost after %v, before two heartbeat intervals", d)
	}
	if l.Held() || l.Reason() != LostLeaseExpired {
		t.Fatalf("after the lease: held %v, reason %v", l.Held(), l.Reason())
	}
	// The stream is ended with the loss: the server deletes the node.
	select {
	case <-s.ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the stream of an expired lease is still open")
	}
	if err := l.Release(); err != nil {
		t.Fatalf("Release after a loss: %v", err)
	}
}

func TestLockHeartbeatsKeepItHeldAndReleaseConfirms(t *testing.T) {
	f := newScriptedLocks()
	l, s := acquireScripted(t, f, 100*time.Millisecond)
	for i := 0; i < 10; i++ { // 500 ms: more than two intervals
		time.Sleep(50 * time.Millisecond)
		s.in <- heartbeatResponse
		if !l.Held() {
			t.Fatalf("not held after %d heartbeats", i)
		}
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if l.Held() || l.Reason() != LostReleased {
		t.Fatalf("after Release: held %v, reason %v", l.Held(), l.Reason())
	}
	reqs := s.requests()
	if len(reqs) != 2 || reqs[0].GetAcquire() == nil || reqs[1].GetRelease() == nil {
		t.Fatalf("requests %v, want acquire then release", reqs)
	}
	select {
	case <-l.Lost():
	default:
		t.Fatal("Lost is open after Release")
	}
}

func TestLockLossesAreFinal(t *testing.T) {
	for _, c := range []struct {
		name   string
		event  interface{}
		reason LossReason
	}{
		{"suspension", &warrenv1.LockResponse{Event: &warrenv1.LockResponse_Lost{Lost: &warrenv1.LockLost{
			Reason: warrenv1.LossReason_LOSS_REASON_CONNECTION_SUSPENDED}}}, LostConnectionSuspended},
		{"expiry", &warrenv1.LockResponse{Event: &warrenv1.LockResponse_Lost{Lost: &warrenv1.LockLost{
			Reason: warrenv1.LossReason_LOSS_REASON_SESSION_EXPIRED}}}, LostSessionExpired},
		{"broken stream", status.Error(codes.Unavailable, "gone"), LostStreamBroken},
	} {
		f := newScriptedLocks()
		l, s := acquireScripted(t, f, time.Second)
		s.in <- c.event
		awaitLost(t, l)
		if l.Held() || l.Reason() != c.reason {
			t.Fatalf("%s: held %v, reason %v", c.name, l.Held(), l.Reason())
		}
		if c.reason == LostStreamBroken && status.Code(l.Err()) != codes.Unavailable {
			t.Fatalf("%s: Err %v", c.name, l.Err())
		}
		// Never acquired again behind the caller's back: no new stream, and
		// the old one is ended (the server deletes the node).
		select {
		case <-s.ctx.Done():
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the stream is still open", c.name)
		}
		if f.count() != 1 {
			t.Fatalf("%s: %d streams opened", c.name, f.count())
		}
		l.Release()
	}
}

func TestAcquireTimeoutIsTheServersAnswer(t *testing.T) {
	f := newScriptedLocks()
	done := make(chan error, 1)
	go func() {
		_, err := NewLocker(f, LockerOptions{Backoff: quick}).Acquire(context.Background(), "l",
			AcquireOptions{Timeout: time.Minute, Limit: 3})
		done <- err
	}()
	s := <-f.opened
	s.in <- status.Error(codes.DeadlineExceeded, "acquire.wait_timeout: lock l not acquired within 60s")
	if err := <-done; status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Acquire: %v", err)
	}
	a := s.requests()[0].GetAcquire()
	if w := a.GetWaitTimeout().AsDuration(); w <= 50*time.Second || w > time.Minute || a.Limit != 3 {
		t.Fatalf("sent wait_timeout %v, limit %d", w, a.Limit)
	}
	if f.count() != 1 {
		t.Fatalf("%d streams: the timeout was retried", f.count())
	}

	// Try-once sends a zero wait_timeout.
	go func() {
		_, err := NewLocker(f, LockerOptions{}).Acquire(context.Background(), "l", AcquireOptions{TryOnce: true})
		done <- err
	}()
	s = <-f.opened
	s.in <- status.Error(codes.DeadlineExceeded, "not free")
	if err := <-done; status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("try-once: %v", err)
	}
	if w := s.requests()[0].GetAcquire().GetWaitTimeout(); w == nil || w.AsDuration() != 0 {
		t.Fatalf("try-once sent wait_timeout %v", w)
	}
}

func TestAcquireRetriesABrokenWaitWithinWhatRemains(t *testing.T) {
	f := newScriptedLocks()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := NewLocker(f, LockerOptions{Backoff: Backoff{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond}}).Acquire(
			context.Background(), "l", AcquireOptions{Timeout: 400 * time.Millisecond})
		done <- err
	}()
	var waits []time.Duration
	for {
		select {
		case s := <-f.opened:
			for len(s.requests()) == 0 {
				time.Sleep(time.Millisecond)
			}
			waits = append(waits, s.requests()[0].GetAcquire().GetWaitTimeout().AsDuration())
			s.in <- status.Error(codes.Unavailable, "the server went away")
			continue
		case err := <-done:
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("Acquire: %v", err)
			}
		}
		break
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("gave up after %v, the timeout was 400ms", d)
	}
	if len(waits) < 2 {
		t.Fatalf("%d attempts, want retries", len(waits))
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] >= waits[i-1] {
			t.Fatalf("wait_timeouts %v: a retry did not ask for what remains", waits)
		}
	}
}
