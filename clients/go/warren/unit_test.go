package warren

import (
	"context"
	"regexp"
	"sync"
	"testing"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestBackoffDelayIsJitteredAndCapped(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2}
	for attempt, full := range []time.Duration{100, 200, 400, 800, 1000, 1000, 1000} {
		full *= time.Millisecond
		for i := 0; i < 50; i++ {
			d := b.Delay(attempt)
			if d < full/2 || d > full {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}

func TestNewMessageIDIsAUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := NewMessageID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

// fakeMessaging answers Publish with the errors in script, then OK, and
// records every request.
type fakeMessaging struct {
	warrenv1.MessagingServiceClient
	mu       sync.Mutex
	script   []error
	requests []*warrenv1.PublishRequest
}

func (f *fakeMessaging) Publish(ctx context.Context, in *warrenv1.PublishRequest, _ ...grpc.CallOption) (*warrenv1.PublishResponse, error) {
	f.mu.Lock()
	f.requests = append(f.requests, in)
	var err error
	if len(f.script) > 0 {
		err, f.script = f.script[0], f.script[1:]
	}
	f.mu.Unlock()
	if err == context.DeadlineExceeded {
		<-ctx.Done() // behave like a server that never answers
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		return nil, err
	}
	return &warrenv1.PublishResponse{MessageId: in.MessageId}, nil
}

var fastBackoff = Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}

func TestPublisherRetriesUnavailableWithTheSameID(t *testing.T) {
	f := &fakeMessaging{script: []error{
		status.Error(codes.Unavailable, "down"), status.Error(codes.Unavailable, "down")}}
	p := NewPublisher(f, PublisherOptions{Backoff: fastBackoff})
	msg := &warrenv1.PublishRequest{RoutingKey: "q", Payload: []byte("x")}
	id, err := p.Publish(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.requests) != 3 {
		t.Fatalf("%d attempts, want 3", len(f.requests))
	}
	for i, r := range f.requests {
		if r.MessageId != id || id == "" {
			t.Fatalf("attempt %d used message id %q, want %q", i, r.MessageId, id)
		}
	}
	if msg.MessageId != "" {
		t.Fatalf("Publish modified the caller's message")
	}
}

func TestPublisherKeepsTheCallersID(t *testing.T) {
	f := &fakeMessaging{script: []error{status.Error(codes.Unavailable, "down")}}
	id, err := NewPublisher(f, PublisherOptions{Backoff: fastBackoff}).Publish(
		context.Background(), &warrenv1.PublishRequest{RoutingKey: "q", MessageId: "mine"})
	if err != nil || id != "mine" || f.requests[0].MessageId != "mine" || f.requests[1].MessageId != "mine" {
		t.Fatalf("id %q, err %v, requests %v", id, err, f.requests)
	}
}

func TestPublisherSurfacesOtherErrorsAtOnce(t *testing.T) {
	for _, code := range []codes.Code{codes.NotFound, codes.FailedPrecondition,
		codes.InvalidArgument, codes.PermissionDenied} {
		f := &fakeMessaging{script: []error{status.Error(code, "no")}}
		_, err := NewPublisher(f, PublisherOptions{Backoff: fastBackoff}).Publish(
			context.Background(), &warrenv1.PublishRequest{RoutingKey: "q"})
		if status.Code(err) != code || len(f.requests) != 1 {
			t.Fatalf("%v: got %v after %d attempts, want it at once", code, err, len(f.requests))
		}
	}
}

func TestPublisherGivesUpAfterMaxAttempts(t *testing.T) {
	f := &fakeMessaging{script: []error{status.Error(codes.Unavailable, "1"),
		status.Error(codes.Unavailable, "2"), status.Error(codes.Unavailable, "3")}}
	_, err := NewPublisher(f, PublisherOptions{Backoff: fastBackoff, MaxAttempts: 2}).Publish(
		context.Background(), &warrenv1.PublishRequest{RoutingKey: "q"})
	if status.Code(err) != codes.Unavailable || len(f.requests) != 2 {
		t.Fatalf("got %v after %d attempts, want UNAVAILABLE after 2", err, len(f.requests))
	}
}

func TestPublisherRetriesItsOwnAttemptTimeoutOnly(t *testing.T) {
	// The attempt's own deadline: retried with the same id.
	f := &fakeMessaging{script: []error{context.DeadlineExceeded}}
	p := NewPublisher(f, PublisherOptions{Backoff: fastBackoff, AttemptTimeout: 20 * time.Millisecond})
	id, err := p.Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: "q"})
	if err != nil || len(f.requests) != 2 || f.requests[1].MessageId != id {
		t.Fatalf("err %v after %d attempts", err, len(f.requests))
	}
	// The caller's deadline: returned at once.
	f = &fakeMessaging{script: []error{context.DeadlineExceeded}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = NewPublisher(f, PublisherOptions{Backoff: fastBackoff}).Publish(
		ctx, &warrenv1.PublishRequest{RoutingKey: "q"})
	if status.Code(err) != codes.DeadlineExceeded || len(f.requests) != 1 {
		t.Fatalf("got %v after %d attempts, want DEADLINE_EXCEEDED at once", err, len(f.requests))
	}
}

func TestCodecEncodesGeneratedMessages(t *testing.T) {
	c := codecV2{}
	in := &warrenv1.SubscribeRequest{Request: &warrenv1.SubscribeRequest_Ack{
		Ack: &warrenv1.Ack{DeliveryIds: []uint64{1, 2}}}}
	data, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out warrenv1.SubscribeRequest
	if err := c.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if ids := out.GetAck().GetDeliveryIds(); len(ids) != 2 || ids[1] != 2 {
		t.Fatalf("round trip gave %v", &out)
	}
}
