package warren

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The Subscriber's stream offsets and retries, Call and Responder over a
// scripted MessagingService.

type scriptedSubStream = scriptedStream[*warrenv1.SubscribeRequest, *warrenv1.SubscribeResponse]

type scriptedMessaging struct {
	warrenv1.MessagingServiceClient
	opened     chan *scriptedSubStream
	mu         sync.Mutex
	publishes  []*warrenv1.PublishRequest
	publishErr error
	calls      []*warrenv1.CallRequest
	callReply  *warrenv1.Delivery
	callErr    error
}

func newScriptedMessaging() *scriptedMessaging {
	return &scriptedMessaging{opened: make(chan *scriptedSubStream, 100)}
}

func (f *scriptedMessaging) Subscribe(ctx context.Context, _ ...grpc.CallOption) (warrenv1.MessagingService_SubscribeClient, error) {
	s := newScriptedStream[*warrenv1.SubscribeRequest, *warrenv1.SubscribeResponse](ctx)
	f.opened <- s
	return s, nil
}

func (f *scriptedMessaging) Publish(_ context.Context, in *warrenv1.PublishRequest, _ ...grpc.CallOption) (*warrenv1.PublishResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.publishes = append(f.publishes, in)
	if f.publishErr != nil {
		return nil, f.publishErr
	}
	return &warrenv1.PublishResponse{MessageId: in.MessageId}, nil
}

func (f *scriptedMessaging) Call(ctx context.Context, in *warrenv1.CallRequest, _ ...grpc.CallOption) (*warrenv1.CallResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, in)
	reply, err := f.callReply, f.callErr
	f.mu.Unlock()
	if reply == nil && err == nil {
		<-ctx.Done() // no responder
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if err != nil {
		return nil, err
	}
	return &warrenv1.CallResponse{Reply: reply}, nil
}

func (f *scriptedMessaging) next(t *testing.T) *scriptedSubStream {
	t.Helper()
	select {
	case s := <-f.opened:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no stream was opened")
		return nil
	}
}

func subscribed() *warrenv1.SubscribeResponse {
	return &warrenv1.SubscribeResponse{Response: &warrenv1.SubscribeResponse_Subscribed{
		Subscribed: &warrenv1.Subscribed{Queue: "q"}}}
}

func delivery(id, offset uint64) *warrenv1.SubscribeResponse {
	return &warrenv1.SubscribeResponse{Response: &warrenv1.SubscribeResponse_Delivery{
		Delivery: &warrenv1.Delivery{DeliveryId: id, StreamOffset: offset, MessageId: "m"}}}
}

func startOf(t *testing.T, s *scriptedSubStream) *warrenv1.SubscribeStart {
	t.Helper()
	waitUntil(t, func() bool { return len(s.requests()) > 0 })
	return s.requests()[0].GetStart()
}

// settled waits until the stream carries n settles after its start and
// returns them.
func settled(t *testing.T, s *scriptedSubStream, n int) []*warrenv1.SubscribeRequest {
	t.Helper()
	waitUntil(t, func() bool { return len(s.requests()) >= n+1 })
	return s.requests()[1:]
}

func streamStart(offset *warrenv1.StreamOffset) *warrenv1.SubscribeStart {
	return &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: "log"},
		QueueOptions: &warrenv1.QueueOptions{QueueType: warrenv1.QueueType_QUEUE_TYPE_STREAM},
		Offset:       offset}
}

func receiveInBackground(t *testing.T, s *Subscriber, h Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Receive(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Receive: %v", err)
		}
	})
}

func TestOffsetTrackerResumesAtTheLowestUnhandledOffset(t *testing.T) {
	tr := newOffsetTracker(OffsetFirst())
	if o := tr.resume(); o != nil {
		t.Fatalf("resume before any delivery = %v, want the first start again", o)
	}
	for o := uint64(5); o <= 9; o++ {
		tr.received(o)
	}
	tr.handled(5)
	tr.handled(7) // out of order: 6 still runs
	tr.handled(8)
	if next := tr.resume().GetOffset(); next != 6 {
		t.Fatalf("resume = %d, want 6 (the lowest unhandled)", next)
	}
	// A stream that broke before delivering anything resumes at the same
	// place, and deliveries below it (the broker's earlier chunk) are not
	// handed out.
	if next := tr.resume().GetOffset(); next != 6 {
		t.Fatalf("second resume = %d, want 6", next)
	}
	if tr.received(5) {
		t.Error("offset 5 is below the resume point and must be skipped")
	}
	for o := uint64(6); o <= 12; o++ {
		tr.received(o)
		tr.handled(o)
	}
	if next := tr.resume().GetOffset(); next != 13 {
		t.Fatalf("resume = %d, want 13", next)
	}
}

func TestOffsetTrackerResumesANextStartAtItsSubscriptionTime(t *testing.T) {
	tr := newOffsetTracker(nil) // unset: next
	if o := tr.resume(); o != nil {
		t.Fatalf("resume before the first Subscribed = %v, want next again", o)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.UTC)
	tr.subscribed(at)
	tr.subscribed(at.Add(time.Minute)) // a later stream: the first one counts
	if got := tr.resume().GetTimestamp().AsTime(); !got.Equal(at.Truncate(time.Second)) {
		t.Errorf("resume at %v, want %v", got, at.Truncate(time.Second))
	}
	tr.received(40)
	tr.handled(40)
	if next := tr.resume().GetOffset(); next != 41 {
		t.Errorf("resume = %d after offset 40, want 41", next)
	}
	if o := newOffsetTracker(OffsetFirst()); o.relative {
		t.Error("a start at first is not relative")
	}
}

func TestSubscriberResumesAStreamAfterTheLastHandledOffset(t *testing.T) {
	f := newScriptedMessaging()
	release := make(chan struct{})
	var mu sync.Mutex
	var handled []uint64
	sub := NewSubscriber(f, SubscriberOptions{Start: streamStart(OffsetFirst()), MaxInFlight: 4, Backoff: quick})
	receiveInBackground(t, sub, func(ctx context.Context, d *warrenv1.Delivery) error {
		if d.StreamOffset == 12 {
			select { // the stream breaks while this one runs
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		handled = append(handled, d.StreamOffset)
		mu.Unlock()
		return nil
	})
	first := f.next(t)
	if off := startOf(t, first).Offset; off.GetFirst() != true {
		t.Fatalf("first stream starts at %v, want first", off)
	}
	first.in <- subscribed()
	first.in <- delivery(1, 10)
	first.in <- delivery(2, 11)
	first.in <- delivery(3, 12)
	settled(t, first, 2)
	first.in <- status.Error(codes.Unavailable, "connection lost")

	second := f.next(t)
	if off := startOf(t, second).Offset; off.GetOffset() != 12 {
		t.Fatalf("resubscribed at %v, want offset 12 (10 and 11 were handled, 12 was cut short)", off)
	}
	second.in <- subscribed()
	second.in <- delivery(1, 11) // from the broker's chunk: already handled
	second.in <- delivery(2, 12)
	close(release)
	reqs := settled(t, second, 2)
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 3 || handled[2] != 12 {
		t.Errorf("handled %v, want 10 and 11 (any order) then 12, once each", handled)
	}
	if reqs[0].GetAck().GetDeliveryIds()[0] != 1 {
		t.Errorf("the skipped delivery was not acked: %v", reqs)
	}
}

func TestRetryAfterNacksWithADelay(t *testing.T) {
	f := newScriptedMessaging()
	sub := NewSubscriber(f, SubscriberOptions{Start: &warrenv1.SubscribeStart{
		Source: &warrenv1.SubscribeStart_Queue{Queue: "jobs"}}, RetryAfter: time.Minute, Backoff: quick})
	receiveInBackground(t, sub, func(ctx context.Context, d *warrenv1.Delivery) error {
		if d.DeliveryId == 1 {
			return RetryAfter(500*time.Millisecond, errors.New("busy"))
		}
		return errors.New("broken")
	})
	s := f.next(t)
	s.in <- subscribed()
	s.in <- delivery(1, 0)
	reqs := settled(t, s, 1)
	if d := reqs[0].GetNack().GetRetryAfter().AsDuration(); d != 500*time.Millisecond {
		t.Errorf("retry_after %v, want 500ms", d)
	}
	s.in <- delivery(2, 0)
	reqs = settled(t, s, 2)
	if d := reqs[1].GetNack().GetRetryAfter().AsDuration(); d != time.Minute {
		t.Errorf("retry_after %v, want the Subscriber's 1m", d)
	}
	if !errors.Is(RetryAfter(time.Second, context.Canceled), context.Canceled) {
		t.Error("RetryAfter hides the error it wraps")
	}
}

func TestRetryAfterIsRefusedOnAStream(t *testing.T) {
	err := NewSubscriber(newScriptedMessaging(), SubscriberOptions{Start: streamStart(nil),
		RetryAfter: time.Second}).Receive(context.Background(), nil)
	if err == nil {
		t.Fatal("RetryAfter on a stream queue was accepted")
	}
}

func TestDelayedPublishIsNotMandatory(t *testing.T) {
	f := newScriptedMessaging()
	p := NewPublisher(f, PublisherOptions{})
	if _, err := p.Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: "q"},
		WithDelay(2*time.Second), WithReplyTo("replies"), WithCorrelationID("c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: "q"}); err != nil {
		t.Fatal(err)
	}
	got := f.publishes
	if got[0].Mandatory || got[0].Delay.AsDuration() != 2*time.Second || got[0].ReplyTo != "replies" ||
		got[0].CorrelationId != "c1" {
		t.Errorf("delayed publish sent as %v", got[0])
	}
	if !got[1].Mandatory {
		t.Error("an undelayed publish lost its mandatory default")
	}
}

func TestCallTimeoutIsATimeoutError(t *testing.T) {
	f := newScriptedMessaging()
	start := time.Now()
	_, err := Call(context.Background(), f, &warrenv1.PublishRequest{RoutingKey: "rpc"}, 50*time.Millisecond)
	if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Call with no responder: %v", err)
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Errorf("%v is not a timeout error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("the timeout did not bound the call")
	}
	if req := f.calls[0].Message; !req.Mandatory || req.MessageId == "" {
		t.Errorf("request sent as %v, want mandatory with a message id", req)
	}
	if len(f.calls) != 1 {
		t.Errorf("a Call was sent %d times; it is never retried", len(f.calls))
	}
}

func TestCallReturnsTheReplyAndOtherErrorsAsTheyAre(t *testing.T) {
	f := newScriptedMessaging()
	f.callReply = &warrenv1.Delivery{Payload: []byte("pong")}
	d, err := Call(context.Background(), f, &warrenv1.PublishRequest{RoutingKey: "rpc"}, 0)
	if err != nil || string(d.Payload) != "pong" {
		t.Fatalf("Call = %v, %v", d, err)
	}
	f.callReply, f.callErr = nil, status.Error(codes.Unavailable, "the request may have been handled")
	_, err = Call(context.Background(), f, &warrenv1.PublishRequest{RoutingKey: "rpc"}, 0)
	if status.Code(err) != codes.Unavailable || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call = %v, want UNAVAILABLE as is", err)
	}
	if len(f.calls) != 2 {
		t.Errorf("%d calls sent, want 2 (never retried)", len(f.calls))
	}
}

func TestResponderRepliesThenAcks(t *testing.T) {
	f := newScriptedMessaging()
	var reported []error
	var mu sync.Mutex
	r := NewResponder(f, ResponderOptions{SubscriberOptions: SubscriberOptions{
		Start: &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: "rpc"}}, Backoff: quick,
		OnError: func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Serve(ctx, func(ctx context.Context, req *warrenv1.Delivery) (*Reply, error) {
			if string(req.Payload) == "fail" {
				return nil, errors.New("cannot")
			}
			return &Reply{Payload: append([]byte("re: "), req.Payload...), ContentType: "text/plain",
				Headers: map[string]string{"h": "v"}}, nil
		})
	}()
	s := f.next(t)
	s.in <- subscribed()
	request := func(id uint64, payload, replyTo string) {
		s.in <- &warrenv1.SubscribeResponse{Response: &warrenv1.SubscribeResponse_Delivery{
			Delivery: &warrenv1.Delivery{DeliveryId: id, Payload: []byte(payload), ReplyTo: replyTo,
				CorrelationId: "corr-" + payload}}}
	}
	request(1, "ping", "amq.rabbitmq.reply-to.abc")
	reqs := settled(t, s, 1)
	if reqs[0].GetAck().GetDeliveryIds()[0] != 1 {
		t.Fatalf("request 1 settled with %v", reqs[0])
	}
	f.mu.Lock()
	p := f.publishes[0]
	f.mu.Unlock()
	if p.Exchange != "" || p.RoutingKey != "amq.rabbitmq.reply-to.abc" || p.CorrelationId != "corr-ping" ||
		string(p.Payload) != "re: ping" || p.ContentType != "text/plain" || p.Headers["h"] != "v" {
		t.Errorf("reply published as %v", p)
	}

	request(2, "no address", "")
	request(3, "fail", "amq.rabbitmq.reply-to.abc")
	reqs = settled(t, s, 3)
	if settleOf(reqs, 2).GetAck() == nil || settleOf(reqs, 3).GetNack() == nil {
		t.Errorf("want an ack for the request without reply_to and a nack for the failure: %v", reqs)
	}
	f.mu.Lock()
	f.publishErr = status.Error(codes.FailedPrecondition, "unroutable")
	f.mu.Unlock()
	request(4, "late", "amq.rabbitmq.reply-to.gone")
	reqs = settled(t, s, 4)
	if settleOf(reqs, 4).GetAck() == nil {
		t.Errorf("a request whose requester is gone was not acked: %v", reqs[3])
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 2 {
		t.Errorf("reported %v, want the missing reply address and the gone requester", reported)
	}
}

// settleOf finds the ack or nack of delivery id among a stream's requests.
func settleOf(reqs []*warrenv1.SubscribeRequest, id uint64) *warrenv1.SubscribeRequest {
	for _, r := range reqs {
		ids := append(r.GetAck().GetDeliveryIds(), r.GetNack().GetDeliveryIds()...)
		for _, i := range ids {
			if i == id {
				return r
			}
		}
	}
	return nil
}
