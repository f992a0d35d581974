package warren_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Delays, retries, stream queues, single active consumer, headers routing
// and request/reply against the warrend in WARREN_ADDRESS.

func streamQueueStart(q string, offset *warrenv1.StreamOffset) *warrenv1.SubscribeStart {
	return &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: q},
		QueueOptions: &warrenv1.QueueOptions{QueueType: warrenv1.QueueType_QUEUE_TYPE_STREAM},
		Offset:       offset}
}

// declareStream creates stream queue q (a subscription declares it) and
// leaves it without consumers.
func declareStream(t *testing.T, client *warren.Client, q string) {
	t.Helper()
	r := startReceiving(t, client, warren.SubscriberOptions{Start: streamQueueStart(q, nil)},
		func(context.Context, *warrenv1.Delivery) error { return nil })
	r.stop(t)
}

// numberedStream declares a stream queue named after prefix on the shared
// warrend and publishes "0".."n-1" to it.
func numberedStream(t *testing.T, prefix string, n int) (*warren.Client, string) {
	t.Helper()
	client := shared(t)
	q := unique(prefix)
	declareStream(t, client, q)
	publishNumbered(t, client, q, 0, n)
	return client, q
}

// publishNumbered publishes payloads "<from>".."<to-1>" to queue q in order.
func publishNumbered(t *testing.T, client *warren.Client, q string, from, to int) {
	t.Helper()
	pub := client.NewPublisher(warren.PublisherOptions{Backoff: fast})
	for i := from; i < to; i++ {
		if _, err := pub.Publish(context.Background(), &warrenv1.PublishRequest{
			RoutingKey: q, Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

// sequence records payloads (numbers) and offsets in arrival order.
type sequence struct {
	mu       sync.Mutex
	payloads []int
	offsets  []uint64
}

func (s *sequence) add(d *warrenv1.Delivery) {
	n, _ := strconv.Atoi(string(d.Payload))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.payloads = append(s.payloads, n)
	s.offsets = append(s.offsets, d.StreamOffset)
}

// receive runs a Subscriber that records every delivery in s and acks it.
func (s *sequence) receive(t *testing.T, client *warren.Client, opts warren.SubscriberOptions) *receiving {
	t.Helper()
	return startReceiving(t, client, opts, func(ctx context.Context, d *warrenv1.Delivery) error { s.add(d); return nil })
}

func (s *sequence) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.payloads)
}

// check says what is wrong unless the payloads are exactly 0..n-1 in order
// with strictly increasing offsets.
func (s *sequence) check(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.payloads) != n {
		return fmt.Errorf("got %d messages %v, want %d", len(s.payloads), s.payloads, n)
	}
	for i, p := range s.payloads {
		if p != i {
			return fmt.Errorf("message %d is %d: %v", i, p, s.payloads)
		}
		if i > 0 && s.offsets[i] <= s.offsets[i-1] {
			return fmt.Errorf("offsets not increasing: %v", s.offsets)
		}
	}
	return nil
}

func TestDelayedPublishArrivesAfterItsDelay(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-delay")
	arrived := make(chan time.Time, 10)
	startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q)},
		func(ctx context.Context, d *warrenv1.Delivery) error { arrived <- time.Now(); return nil })
	const delay = 1500 * time.Millisecond
	sent := time.Now()
	if _, err := client.NewPublisher(warren.PublisherOptions{}).Publish(context.Background(),
		&warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("later")}, warren.WithDelay(delay)); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-arrived:
		// Rounded up to two significant digits (1500 ms stays), never early.
		t.Logf("a %v delay arrived after %v", delay, at.Sub(sent))
		if early := at.Sub(sent); early < delay {
			t.Errorf("arrived %v after the publish, before its %v delay", early, delay)
		} else if early > delay+5*time.Second {
			t.Errorf("arrived %v after the publish, long after its %v delay", early, delay)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the delayed message never arrived")
	}
}

func TestRetryAfterRedeliversWithADeliveryCount(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-retry")
	type seen struct {
		at    time.Time
		count uint32
		hdrs  map[string]string
	}
	got := make(chan seen, 10)
	startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q)},
		func(ctx context.Context, d *warrenv1.Delivery) error {
			got <- seen{time.Now(), d.DeliveryCount, d.Headers}
			if d.DeliveryCount == 0 {
				return warren.RetryAfter(500*time.Millisecond, errors.New("not yet"))
			}
			return nil
		})
	if _, err := client.NewPublisher(warren.PublisherOptions{}).Publish(context.Background(),
		&warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("retry me"),
			Headers: map[string]string{"app": "kept"}}); err != nil {
		t.Fatal(err)
	}
	var first, second seen
	for i, s := range []*seen{&first, &second} {
		select {
		case *s = <-got:
		case <-time.After(20 * time.Second):
			t.Fatalf("delivery %d never came", i+1)
		}
	}
	if first.count != 0 || second.count != 1 {
		t.Errorf("delivery counts %d, %d; want 0 then 1", first.count, second.count)
	}
	t.Logf("retry_after 500ms came back after %v", second.at.Sub(first.at))
	if d := second.at.Sub(first.at); d < 500*time.Millisecond {
		t.Errorf("retried after %v, before its 500ms", d)
	}
	if second.hdrs["app"] != "kept" || second.hdrs["warren-retries"] != "" {
		t.Errorf("retried headers %v: want the application's only", second.hdrs)
	}
	select {
	case s := <-got:
		t.Errorf("a third delivery (count %d) after the ack", s.count)
	case <-time.After(1500 * time.Millisecond):
	}
}

func TestTwoSubscribersReplayAStreamFromTheFirstMessage(t *testing.T) {
	t.Parallel()
	const n = 20
	client, q := numberedStream(t, "go-replay", n)
	var a, b sequence
	for _, s := range []*sequence{&a, &b} {
		s.receive(t, client, warren.SubscriberOptions{Start: streamQueueStart(q, warren.OffsetFirst()), MaxInFlight: 1})
	}
	waitFor(t, 20*time.Second, "both replays", func() bool { return a.len() >= n && b.len() >= n })
	time.Sleep(300 * time.Millisecond) // nothing more may come: no repeats
	for name, s := range map[string]*sequence{"first": &a, "second": &b} {
		if err := s.check(n); err != nil {
			t.Errorf("%s subscriber: %v", name, err)
		}
	}
}

func TestAStreamResumesFromAStoredOffset(t *testing.T) {
	t.Parallel()
	const n = 10
	client, q := numberedStream(t, "go-stored", n)
	// The first reader handles four messages, stores the offset of the
	// last, and stops: the application's own store, across processes.
	var stored uint64
	var handled sequence
	ctx, cancel := context.WithCancel(context.Background())
	err := client.NewSubscriber(warren.SubscriberOptions{Start: streamQueueStart(q, warren.OffsetFirst()),
		MaxInFlight: 1}).Receive(ctx, func(ctx context.Context, d *warrenv1.Delivery) error {
		if handled.len() == 4 {
			cancel()
			return errors.New("stopping: not handled")
		}
		handled.add(d)
		stored = d.StreamOffset
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	publishNumbered(t, client, q, n, 2*n)
	handled.receive(t, client, warren.SubscriberOptions{Start: streamQueueStart(q, warren.OffsetAt(stored+1)), MaxInFlight: 4})
	waitFor(t, 20*time.Second, "the rest", func() bool { return handled.len() >= 2*n })
	time.Sleep(300 * time.Millisecond)
	handled.sortByPayload() // MaxInFlight 4: handlers finish in any order
	if err := handled.check(2 * n); err != nil {
		t.Error(err)
	}
}

// sortByPayload orders the payloads (and their offsets) by number.
func (s *sequence) sortByPayload() {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := make([]int, len(s.payloads))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(i, j int) bool { return s.payloads[idx[i]] < s.payloads[idx[j]] })
	payloads, offsets := make([]int, len(idx)), make([]uint64, len(idx))
	for i, k := range idx {
		payloads[i], offsets[i] = s.payloads[k], s.offsets[k]
	}
	s.payloads, s.offsets = payloads, offsets
}

func TestAStreamSubscriptionResumesAfterAKilledServerWithNoGapAndNoRepeat(t *testing.T) {
	t.Parallel()
	srv := startWarrend(t, ownRoot("go-stream-resume"))
	client := dial(t, srv.Addr())
	publisher := shared(t) // publishes while srv is down
	q := unique("go-resume")
	declareStream(t, publisher, q)
	const n = 30
	publishNumbered(t, publisher, q, 0, n/2)
	var got sequence
	r := got.receive(t, client, warren.SubscriberOptions{Start: streamQueueStart(q, warren.OffsetFirst()), MaxInFlight: 1})
	waitFor(t, 20*time.Second, "the first half", func() bool { return got.len() >= n/2 })
	srv.Kill()
	publishNumbered(t, publisher, q, n/2, n)
	srv.Restart()
	waitFor(t, 30*time.Second, "the second half", func() bool { return got.len() >= n })
	time.Sleep(500 * time.Millisecond)
	if err := got.check(n); err != nil {
		t.Error(err)
	}
	if r.subscriptions() < 2 {
		t.Errorf("subscribed %d times, want a resubscription", r.subscriptions())
	}
}

func TestSingleActiveConsumerHandsOverWithNothingLost(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-sac")
	start := &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: q},
		QueueOptions: &warrenv1.QueueOptions{SingleActiveConsumer: true}}
	var a, b sequence
	ra := a.receive(t, client, warren.SubscriberOptions{Start: start, MaxInFlight: 1})
	b.receive(t, client, warren.SubscriberOptions{Start: start, MaxInFlight: 1})
	const n = 10
	publishNumbered(t, client, q, 0, n)
	waitFor(t, 20*time.Second, "the first batch", func() bool { return a.len()+b.len() >= n })
	active, standby := &a, &b
	if b.len() > 0 {
		active, standby = &b, &a
	}
	if active.len() != n || standby.len() != 0 {
		t.Fatalf("both received: %d and %d messages", a.len(), b.len())
	}
	if active == &a {
		ra.stop(t)
	} else {
		t.Skip("the second subscriber became active first; the hand-over is checked when the first is")
	}
	publishNumbered(t, client, q, n, 2*n)
	waitFor(t, 20*time.Second, "the standby to take over", func() bool { return standby.len() >= n })
	standby.mu.Lock()
	defer standby.mu.Unlock()
	for i, p := range standby.payloads {
		if p != n+i {
			t.Fatalf("the standby got %v, want %d..%d in order", standby.payloads, n, 2*n-1)
		}
	}
}

func TestHeadersRoutingMatchesAllOrAny(t *testing.T) {
	t.Parallel()
	client := shared(t)
	exchange := unique("go-headers")
	bind := func(any bool) *warrenv1.SubscribeStart {
		return &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Topic{Topic: &warrenv1.TopicBinding{
			Exchange: exchange, ExchangeType: warrenv1.ExchangeType_EXCHANGE_TYPE_HEADERS,
			MatchHeaders: map[string]string{"kind": "order", "region": "eu"}, MatchAny: any}}}
	}
	all, anyOne := newCollector(), newCollector()
	startReceiving(t, client, warren.SubscriberOptions{Start: bind(false)},
		func(ctx context.Context, d *warrenv1.Delivery) error { all.add(d); return nil })
	startReceiving(t, client, warren.SubscriberOptions{Start: bind(true)},
		func(ctx context.Context, d *warrenv1.Delivery) error { anyOne.add(d); return nil })
	pub := client.NewPublisher(warren.PublisherOptions{AllowUnroutable: true})
	send := func(headers map[string]string) string {
		id, err := pub.Publish(context.Background(), &warrenv1.PublishRequest{Exchange: exchange, Headers: headers})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	both := send(map[string]string{"kind": "order", "region": "eu"})
	one := send(map[string]string{"kind": "order", "region": "us"})
	none := send(map[string]string{"kind": "invoice"})
	last := send(map[string]string{"kind": "order", "region": "eu", "extra": "x"})
	waitFor(t, 20*time.Second, "the matching messages", func() bool {
		return all.count(last) == 1 && anyOne.count(last) == 1
	})
	if all.count(both) != 1 || all.count(one) != 0 || all.count(none) != 0 {
		t.Errorf("x-match all received both=%d one=%d none=%d; want 1 0 0",
			all.count(both), all.count(one), all.count(none))
	}
	if anyOne.count(both) != 1 || anyOne.count(one) != 1 || anyOne.count(none) != 0 {
		t.Errorf("x-match any received both=%d one=%d none=%d; want 1 1 0",
			anyOne.count(both), anyOne.count(one), anyOne.count(none))
	}
}

// serving runs a Responder on queue q until the test ends and waits until
// it is subscribed.
func serving(t *testing.T, client *warren.Client, q string, onError func(error), h warren.RequestHandler) {
	t.Helper()
	subscribed := make(chan struct{}, 1)
	responder := client.NewResponder(warren.ResponderOptions{SubscriberOptions: warren.SubscriberOptions{
		Start: queueStart(q), Backoff: fast, OnError: onError,
		OnSubscribed: func(string) {
			select {
			case subscribed <- struct{}{}:
			default:
			}
		}}})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- responder.Serve(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case <-subscribed:
	case err := <-served:
		t.Fatalf("Serve: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the responder did not subscribe within 15s")
	}
}

func TestCallGetsItsReplyFromAResponder(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-rpc")
	serving(t, client, q, nil, func(ctx context.Context, req *warrenv1.Delivery) (*warren.Reply, error) {
		return &warren.Reply{Payload: append([]byte("echo: "), req.Payload...),
			Headers: map[string]string{"served-by": "go"}, ContentType: "text/plain"}, nil
	})
	var wg sync.WaitGroup
	var failures int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			payload := fmt.Sprintf("request %d", i)
			reply, err := client.Call(context.Background(), &warrenv1.PublishRequest{RoutingKey: q,
				Payload: []byte(payload)}, 10*time.Second)
			if err != nil {
				atomic.AddInt64(&failures, 1)
				t.Errorf("call %d: %v", i, err)
				return
			}
			if string(reply.Payload) != "echo: "+payload || reply.Headers["served-by"] != "go" ||
				reply.ContentType != "text/plain" {
				t.Errorf("call %d got %q %v %q", i, reply.Payload, reply.Headers, reply.ContentType)
			}
		}(i)
	}
	wg.Wait()
}

func TestCallWithoutAResponderTimesOut(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-rpc-nobody")
	r := startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q)},
		func(context.Context, *warrenv1.Delivery) error { return nil })
	r.stop(t) // the queue exists, nobody consumes it
	start := time.Now()
	_, err := client.Call(context.Background(), &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("hello?")},
		time.Second)
	if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Call without a responder: %v, want a timeout", err)
	}
	// The server gets the deadline as a timeout and may answer a hair
	// before the client's own clock reaches it.
	if d := time.Since(start); d < 900*time.Millisecond || d > 6*time.Second {
		t.Errorf("timed out after %v, want about 1s", d)
	}
	// Nobody bound at all: refused at once rather than waiting out the timeout.
	_, err = client.Call(context.Background(), &warrenv1.PublishRequest{RoutingKey: unique("go-rpc-missing")},
		10*time.Second)
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Call to a missing queue: %v, want FAILED_PRECONDITION", err)
	}
}

func TestAReplyForACallerThatGaveUpIsDroppedAndItsRequestAcked(t *testing.T) {
	t.Parallel()
	client := shared(t)
	q := unique("go-rpc-late")
	reported := make(chan error, 10)
	var requests int64
	callerGone := make(chan struct{})
	var goneOnce sync.Once
	leave := func() { goneOnce.Do(func() { close(callerGone) }) }
	defer leave() // the responder's stop waits for the handler
	serving(t, client, q, func(err error) { reported <- err },
		func(ctx context.Context, req *warrenv1.Delivery) (*warren.Reply, error) {
			atomic.AddInt64(&requests, 1)
			<-callerGone
			return &warren.Reply{Payload: []byte("too late")}, nil
		})
	_, err := client.Call(context.Background(), &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("slow")},
		300*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call: %v, want a timeout", err)
	}
	leave()
	select {
	case err := <-reported:
		if status.Code(errors.Unwrap(err)) != codes.FailedPrecondition {
			t.Errorf("reported %v, want the dropped reply", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the late reply was not reported")
	}
	time.Sleep(500 * time.Millisecond) // a requeued request would run again
	if n := atomic.LoadInt64(&requests); n != 1 {
		t.Errorf("the request ran %d times, want once (acked after its reply was dropped)", n)
	}
}
