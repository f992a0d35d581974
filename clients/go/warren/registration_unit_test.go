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
)

// The Registration's client side over a scripted HoldKey stream.

type scriptedHoldStream = scriptedStream[*warrenv1.HoldKeyRequest, *warrenv1.HoldKeyResponse]

type scriptedHolds struct {
	warrenv1.ConfigServiceClient
	opened  chan *scriptedHoldStream
	current func() (*warrenv1.ConfigEntry, error) // what GetConfig answers
}

func (f *scriptedHolds) HoldKey(ctx context.Context, _ ...grpc.CallOption) (warrenv1.ConfigService_HoldKeyClient, error) {
	s := newScriptedStream[*warrenv1.HoldKeyRequest, *warrenv1.HoldKeyResponse](ctx)
	f.opened <- s
	return s, nil
}

func (f *scriptedHolds) GetConfig(context.Context, *warrenv1.GetConfigRequest, ...grpc.CallOption) (*warrenv1.GetConfigResponse, error) {
	e, err := f.current()
	if err != nil {
		return nil, err
	}
	return &warrenv1.GetConfigResponse{Entry: e}, nil
}

func heldResponse(value string) *warrenv1.HoldKeyResponse {
	return &warrenv1.HoldKeyResponse{Event: &warrenv1.HoldKeyResponse_Held{Held: &warrenv1.ConfigEntry{
		Key: "k", Value: []byte(value), Held: true}}}
}

func nextStream(t *testing.T, f *scriptedHolds) *scriptedHoldStream {
	t.Helper()
	select {
	case s := <-f.opened:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no stream opened within 5s")
	}
	panic("unreachable")
}

func TestRegistrationFollowsLossesAndTheLease(t *testing.T) {
	f := &scriptedHolds{opened: make(chan *scriptedHoldStream, 10)}
	losses := make(chan LossReason, 10)
	r := HoldKey(context.Background(), f, RegistrationOptions{Key: "k", Value: []byte("v1"),
		HeartbeatInterval: 100 * time.Millisecond, Backoff: quick,
		OnLost: func(reason LossReason, _ error) { losses <- reason }})
	defer r.Close()
	s := nextStream(t, f)
	s.in <- heldResponse("v1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.WaitHeld(ctx); err != nil {
		t.Fatal(err)
	}
	first := s.requests()[0]
	if first.Key != "k" || string(first.Value) != "v1" || first.HeartbeatInterval.AsDuration() != 100*time.Millisecond {
		t.Fatalf("first request %v", first)
	}

	// A new value goes out on the stream.
	if err := r.SetValue([]byte("v2")); err != nil {
		t.Fatal(err)
	}
	if reqs := s.requests(); len(reqs) != 2 || string(reqs[1].Value) != "v2" {
		t.Fatalf("requests %v", reqs)
	}

	// Suspension: not held until the server holds it again, same stream.
	s.in <- &warrenv1.HoldKeyResponse{Event: &warrenv1.HoldKeyResponse_Lost{Lost: &warrenv1.HoldLost{
		Reason: warrenv1.LossReason_LOSS_REASON_CONNECTION_SUSPENDED}}}
	if reason := <-losses; reason != LostConnectionSuspended || r.Held() {
		t.Fatalf("suspended: %v, held %v", reason, r.Held())
	}
	s.in <- heldResponse("v2")
	if err := r.WaitHeld(ctx); err != nil {
		t.Fatal(err)
	}

	// No heartbeat for two intervals: not held, and a new stream holds the
	// key again with the latest value.
	if reason := <-losses; reason != LostLeaseExpired || r.Held() {
		t.Fatalf("silent: %v, held %v", reason, r.Held())
	}
	again := nextStream(t, f)
	waitUntil(t, func() bool { return len(again.requests()) > 0 })
	if v := string(again.requests()[0].Value); v != "v2" {
		t.Fatalf("held again with %q", v)
	}
	again.in <- heldResponse("v2")
	if err := r.WaitHeld(ctx); err != nil {
		t.Fatal(err)
	}
	again.in <- &warrenv1.HoldKeyResponse{Event: &warrenv1.HoldKeyResponse_Heartbeat{Heartbeat: &warrenv1.Heartbeat{}}}
	r.Close()
	if r.Held() || r.Err() != nil {
		t.Fatalf("closed: held %v, err %v", r.Held(), r.Err())
	}
	if err := r.SetValue(nil); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("SetValue after Close: %v", err)
	}
}

// After a broken stream, ALREADY_EXISTS is retried while the key is held
// with this Registration's value (its own node of the dead stream), and
// fatal once someone else's.
func TestRegistrationWaitsOutItsOwnLingeringNode(t *testing.T) {
	var mu sync.Mutex
	entry := &warrenv1.ConfigEntry{Key: "k", Value: []byte("mine"), Held: true}
	f := &scriptedHolds{opened: make(chan *scriptedHoldStream, 10), current: func() (*warrenv1.ConfigEntry, error) {
		mu.Lock()
		defer mu.Unlock()
		return entry, nil
	}}
	r := HoldKey(context.Background(), f, RegistrationOptions{Key: "k", Value: []byte("mine"), Backoff: quick})
	defer r.Close()
	s := nextStream(t, f)
	s.in <- heldResponse("mine")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.WaitHeld(ctx); err != nil {
		t.Fatal(err)
	}
	s.in <- status.Error(codes.Unavailable, "the server died")
	for i := 0; i < 3; i++ {
		nextStream(t, f).in <- status.Error(codes.AlreadyExists, "key: k exists")
	}
	last := nextStream(t, f) // the third ALREADY_EXISTS was retried too
	mu.Lock()
	entry = &warrenv1.ConfigEntry{Key: "k", Value: []byte("theirs"), Held: true}
	mu.Unlock()
	last.in <- status.Error(codes.AlreadyExists, "key: k exists")
	select {
	case <-r.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("someone else's key did not end the registration")
	}
	if status.Code(r.Err()) != codes.AlreadyExists {
		t.Fatalf("ended with %v", r.Err())
	}
}
