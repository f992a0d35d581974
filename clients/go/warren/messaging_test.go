package warren_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func queueStart(q string) *warrenv1.SubscribeStart {
	return &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: q}}
}

// receiving runs a Subscriber in the background until the test ends (or
// stop is called) and waits until its first stream is subscribed.
type receiving struct {
	subscribed int64
	cancel     context.CancelFunc
	done       chan struct{}
	err        error // Receive's result, once done is closed
}

func startReceiving(t *testing.T, client *warren.Client, opts warren.SubscriberOptions, h warren.Handler) *receiving {
	t.Helper()
	r := &receiving{done: make(chan struct{})}
	opts.OnSubscribed = func(string) { atomic.AddInt64(&r.subscribed, 1) }
	if opts.Backoff == (warren.Backoff{}) {
		opts.Backoff = fast
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.err = client.NewSubscriber(opts).Receive(ctx, h)
		close(r.done)
	}()
	t.Cleanup(func() { r.stop(t) })
	waitFor(t, 15*time.Second, "the subscription", func() bool { return r.subscriptions() > 0 })
	return r
}

func (r *receiving) subscriptions() int64 { return atomic.LoadInt64(&r.subscribed) }

// stop cancels Receive and checks that it returns nil in time.
func (r *receiving) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Receive returned %v", r.err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("Receive did not return within 20s of its cancellation")
	}
}

// collector records deliveries by message id.
type collector struct {
	mu   sync.Mutex
	got  map[string][]*warrenv1.Delivery
	errs int
}

func newCollector() *collector { return &collector{got: map[string][]*warrenv1.Delivery{}} }

func (c *collector) add(d *warrenv1.Delivery) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[d.MessageId] = append(c.got[d.MessageId], d)
}

func (c *collector) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got[id])
}

func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

func TestPublishSubscribeRoundTrip(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-roundtrip")
	var running, maxRunning int64
	got := newCollector()
	const inFlight = 4
	startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q), MaxInFlight: inFlight},
		func(ctx context.Context, d *warrenv1.Delivery) error {
			n := atomic.AddInt64(&running, 1)
			defer atomic.AddInt64(&running, -1)
			for {
				m := atomic.LoadInt64(&maxRunning)
				if n <= m || atomic.CompareAndSwapInt64(&maxRunning, m, n) {
					break
				}
			}
			got.add(d)
			return nil
		})

	pub := client.NewPublisher(warren.PublisherOptions{Backoff: fast})
	sent := map[string]string{}
	for i := 0; i < 40; i++ {
		payload := fmt.Sprintf("message %d", i)
		id, err := pub.Publish(context.Background(), &warrenv1.PublishRequest{
			RoutingKey: q, Payload: []byte(payload), Headers: map[string]string{"n": fmt.Sprint(i)}})
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		sent[id] = payload
	}
	waitFor(t, 20*time.Second, "all 40 messages", func() bool { return got.distinct() >= len(sent) })
	got.mu.Lock()
	defer got.mu.Unlock()
	for id, payload := range sent {
		ds := got.got[id]
		if len(ds) != 1 || string(ds[0].Payload) != payload || ds[0].RoutingKey != q {
			t.Errorf("message %s (%q): got %v", id, payload, ds)
		}
	}
	if len(got.got) != len(sent) {
		t.Errorf("received %d distinct messages, sent %d", len(got.got), len(sent))
	}
	if m := atomic.LoadInt64(&maxRunning); m > inFlight {
		t.Errorf("%d handlers ran at once; MaxInFlight is %d", m, inFlight)
	}
}

func TestSubscriberNacksAndTheMessageComesBack(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-nack")
	got := newCollector()
	var failures int64
	startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q), MaxInFlight: 1},
		func(ctx context.Context, d *warrenv1.Delivery) error {
			got.add(d)
			switch atomic.AddInt64(&failures, 1) {
			case 1:
				return errors.New("first attempt fails")
			case 2:
				panic("second attempt panics")
			}
			return nil
		})
	id, err := client.NewPublisher(warren.PublisherOptions{}).Publish(context.Background(),
		&warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("retry me")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "three deliveries", func() bool { return got.count(id) >= 3 })
	got.mu.Lock()
	ds := got.got[id]
	got.mu.Unlock()
	if ds[0].Redelivered || !ds[1].Redelivered || !ds[2].Redelivered {
		t.Errorf("redelivered flags %v %v %v, want false true true",
			ds[0].Redelivered, ds[1].Redelivered, ds[2].Redelivered)
	}
}

func TestSubscriberStopWaitsForRunningHandlersAndAcksThem(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-stop")
	pub := client.NewPublisher(warren.PublisherOptions{})
	started := make(chan string, 1)
	release := make(chan struct{})
	var finished int64
	r := startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q), MaxInFlight: 1},
		func(ctx context.Context, d *warrenv1.Delivery) error {
			started <- d.MessageId
			<-release
			atomic.StoreInt64(&finished, 1)
			return nil
		})
	first, err := pub.Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("slow")})
	if err != nil {
		t.Fatal(err)
	}
	if id := <-started; id != first {
		t.Fatalf("handler got %s, want %s", id, first)
	}
	r.cancel() // stop while the handler runs
	select {
	case <-r.done:
		t.Fatal("Receive returned while a handler was still running")
	case <-time.After(200 * time.Millisecond): // a negative check: nothing to await
	}
	close(release)
	r.stop(t)
	if atomic.LoadInt64(&finished) != 1 {
		t.Fatal("Receive returned before the handler finished")
	}

	// The first message was acked on the way out: a new subscriber sees
	// only the marker published after it.
	marker, err := pub.Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("marker")})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q)},
		func(ctx context.Context, d *warrenv1.Delivery) error { got <- d.MessageId; return nil })
	select {
	case id := <-got:
		if id != marker {
			t.Fatalf("the next subscriber got %s first, want the marker %s (the stopped handler's message was not acked)", id, marker)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the marker never arrived")
	}
}

// lossyMessaging delivers the first Publish to the server but reports
// UNAVAILABLE, like a connection lost before the confirm came back.
type lossyMessaging struct {
	warrenv1.MessagingServiceClient
	mu  sync.Mutex
	ids []string
}

func (l *lossyMessaging) Publish(ctx context.Context, in *warrenv1.PublishRequest, opts ...grpc.CallOption) (*warrenv1.PublishResponse, error) {
	l.mu.Lock()
	l.ids = append(l.ids, in.MessageId)
	first := len(l.ids) == 1
	l.mu.Unlock()
	resp, err := l.MessagingServiceClient.Publish(ctx, in, opts...)
	if first && err == nil {
		return nil, status.Error(codes.Unavailable, "confirm lost (simulated)")
	}
	return resp, err
}

func TestPublisherRetryAfterLostConfirmKeepsTheMessageID(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-dedup")
	got := newCollector()
	startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q)},
		func(ctx context.Context, d *warrenv1.Delivery) error { got.add(d); return nil })
	lossy := &lossyMessaging{MessagingServiceClient: client.Messaging}
	id, err := warren.NewPublisher(lossy, warren.PublisherOptions{Backoff: fast}).Publish(
		context.Background(), &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("twice")})
	if err != nil {
		t.Fatal(err)
	}
	if len(lossy.ids) != 2 || lossy.ids[0] != id || lossy.ids[1] != id {
		t.Fatalf("attempts used ids %v, want [%s %s]", lossy.ids, id, id)
	}
	// The broker got it twice; both copies carry the same id, which is how
	// a consumer de-duplicates.
	waitFor(t, 20*time.Second, "both copies", func() bool { return got.count(id) == 2 })
}

func TestPublishToAMissingExchangeFailsAtOnce(t *testing.T) {
	t.Parallel()
	client := shared(t)
	counting := &lossyMessaging{MessagingServiceClient: client.Messaging}
	counting.ids = []string{"-"} // no simulated loss
	_, err := warren.NewPublisher(counting, warren.PublisherOptions{Backoff: fast}).Publish(
		context.Background(), &warrenv1.PublishRequest{Exchange: unique("go-no-such-exchange"), RoutingKey: "x"})
	if status.Code(err) != codes.NotFound || len(counting.ids) != 2 {
		t.Fatalf("got %v after %d attempts, want NOT_FOUND after 1", err, len(counting.ids)-1)
	}
}

func TestSubscriberResubscribesAfterServerRestart(t *testing.T) {
	t.Parallel()
	srv := startWarrend(t, ownRoot("go-resub"))
	client := dial(t, srv.Addr())
	q := unique("go-resub")
	got := newCollector()
	var streamErrors int64
	r := startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q),
		OnError: func(err error) { atomic.AddInt64(&streamErrors, 1) }},
		func(ctx context.Context, d *warrenv1.Delivery) error { got.add(d); return nil })
	pub := client.NewPublisher(warren.PublisherOptions{Backoff: fast, MaxAttempts: 100})
	before, err := pub.Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("before")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the first message", func() bool { return got.count(before) == 1 })

	srv.Stop()
	waitFor(t, 10*time.Second, "the subscriber to notice", func() bool { return atomic.LoadInt64(&streamErrors) > 0 })
	// Published while the server is down: the Publisher retries UNAVAILABLE
	// with the same id until the server is back.
	afterID := warren.NewMessageID()
	published := make(chan error, 1)
	go func() {
		id, err := pub.Publish(context.Background(), &warrenv1.PublishRequest{
			RoutingKey: q, Payload: []byte("after"), MessageId: afterID})
		if err == nil && id != afterID {
			err = fmt.Errorf("published as %s, want %s", id, afterID)
		}
		published <- err
	}()
	srv.Restart()
	if err := <-published; err != nil {
		t.Fatalf("publish across the restart: %v", err)
	}
	waitFor(t, 20*time.Second, "the message published across the restart", func() bool { return got.count(afterID) == 1 })
	if n := r.subscriptions(); n < 2 {
		t.Fatalf("subscribed %d times, want a resubscription", n)
	}
}
