package warren

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Handler processes one delivery. Returning nil acks it; returning an error
// (or panicking) nacks it; an error made by RetryAfter brings the message
// back after a delay. ctx is cancelled when the delivery can no longer
// be settled because its stream broke: the broker will redeliver it, so the
// handler may stop early. It is NOT cancelled when Receive's context is:
// stopping waits for running handlers and settles them.
type Handler func(ctx context.Context, d *warrenv1.Delivery) error

// SubscriberOptions configure a Subscriber.
type SubscriberOptions struct {
	// Start says what to consume: a queue, or a topic binding with an
	// optional group, and queue options (see messaging.proto). Required.
	// Its MaxInFlight and HeartbeatInterval are overridden by the fields
	// below.
	Start *warrenv1.SubscribeStart
	// MaxInFlight is both the most handlers running at once and the most
	// unacked deliveries the server sends (the AMQP prefetch), so a
	// delivery never waits in the client while the broker could give it to
	// another consumer. 0 means Start.MaxInFlight, or DefaultMaxInFlight if
	// that is 0 too.
	MaxInFlight int
	// DeadLetterOnError nacks failed deliveries without requeue (they go to
	// the queue's dead-letter exchange, or are dropped). By default they are
	// requeued (at-least-once: nothing is lost, but a poison message comes
	// back forever; use a dead-letter exchange and this flag against that,
	// or RetryAfter, or QueueOptions.DeliveryLimit on a quorum queue).
	DeadLetterOnError bool
	// RetryAfter, when set, brings every failed delivery back after this
	// delay (Nack.retry_after: through a delay queue of the broker, so a
	// failing message does not loop hot while others flow) instead of
	// requeueing it at once; the error of the RetryAfter function overrides
	// it per delivery. Not for stream queues (Receive refuses it).
	RetryAfter time.Duration
	// HeartbeatInterval is asked of the server; a stream silent for three
	// intervals is treated as broken and opened again. 0 means 30s.
	HeartbeatInterval time.Duration
	// Backoff between resubscriptions; it starts over once a stream has
	// been subscribed.
	Backoff Backoff
	// StopTimeout bounds how long a stop waits for the server to end the
	// stream after the last ack went out. 0 means 5s.
	StopTimeout time.Duration
	// OnSubscribed, if set, is called each time a stream is open, with the
	// name of the queue consumed (the server's name for an exclusive queue),
	// from the goroutine that receives the stream: it must not block.
	OnSubscribed func(queue string)
	// OnError, if set, is called with each error that the Subscriber
	// handles itself: a broken stream before it resubscribes, a handler
	// panic. It must not block.
	OnError func(err error)
}

// DefaultMaxInFlight is SubscriberOptions.MaxInFlight's default
// (clients/defaults.json).
const DefaultMaxInFlight = 16

// Subscriber consumes a queue through MessagingService.Subscribe.
type Subscriber struct {
	client    warrenv1.MessagingServiceClient
	opts      SubscriberOptions
	reconnect func() // resets the connection's reconnect backoff; may be nil
}

// NewSubscriber returns a Subscriber over a MessagingService stub.
func NewSubscriber(client warrenv1.MessagingServiceClient, opts SubscriberOptions) *Subscriber {
	if opts.MaxInFlight <= 0 && opts.Start != nil {
		opts.MaxInFlight = int(opts.Start.MaxInFlight)
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 30 * time.Second
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 5 * time.Second
	}
	return &Subscriber{client: client, opts: opts}
}

var (
	errStreamEnded = errors.New("warren: the server ended the subscription")
	errStreamIdle  = errors.New("warren: no message or heartbeat within three heartbeat intervals")
)

// Receive subscribes and runs h for each delivery until ctx is done, then
// stops cleanly: no new handler starts, running ones finish and are settled,
// the stream is half-closed (unstarted deliveries go back to the queue) and
// Receive returns nil. A stream that ends with a code
// clients/retry-policy.json marks "resubscribe" (UNAVAILABLE,
// RESOURCE_EXHAUSTED, ABORTED, INTERNAL, an end without error, silence past
// three heartbeat intervals, ...) is opened again after a backoff; the
// others (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION for mismatched
// queue options, PERMISSION_DENIED, ...) are returned after the running
// handlers finished. Call Receive once at a time per Subscriber.
//
// A stream queue (QueueOptions.QueueType QUEUE_TYPE_STREAM) starts at
// Start.Offset (OffsetFirst, OffsetAt, ...; unset: OffsetNext) and is
// resumed after a broken stream where it stopped: once the broken stream's
// handlers have returned, the next stream starts at the lowest offset
// received but not handled (a handler that returned nil, or an error while
// its stream was still open, handled its delivery), else just after the
// highest offset seen — no gap, no repeat (a subscription from "next" or
// "last" broken before its first delivery resumes at the time it first
// subscribed: a few earlier messages may come, none is lost). To survive a
// restart of the process, store each handled Delivery.StreamOffset and
// start the next Receive at OffsetAt(stored + 1).
func (s *Subscriber) Receive(ctx context.Context, h Handler) error {
	if s.opts.Start == nil {
		return errors.New("warren: SubscriberOptions.Start is required")
	}
	start := proto.Clone(s.opts.Start).(*warrenv1.SubscribeStart)
	start.MaxInFlight = uint32(s.opts.MaxInFlight)
	start.HeartbeatInterval = durationpb.New(s.opts.HeartbeatInterval)

	r := &receiver{s: s, h: h, slots: make(chan struct{}, s.opts.MaxInFlight)}
	if isStreamSubscription(start) {
		if s.opts.RetryAfter > 0 {
			return errors.New("warren: SubscriberOptions.RetryAfter does not apply to a stream queue " +
				"(a stream keeps every message: replay it by offset)")
		}
		r.offsets = newOffsetTracker(start.Offset)
	}
	// Handlers of a broken stream may still run; none outlives Receive.
	defer r.handlers.Wait()
	for attempt := 0; ; attempt++ {
		subscribed, err := r.runStream(ctx, start)
		if ctx.Err() != nil {
			return nil
		}
		if subscribed {
			attempt = 0
		}
		if !resubscribe(err) {
			return err
		}
		if r.offsets != nil {
			// Where to resume is known once the handlers are done.
			if r.lastStream != nil {
				r.lastStream.wg.Wait()
			}
			if offset := r.offsets.resume(); offset != nil {
				start.Offset = offset
			}
		}
		s.report(fmt.Errorf("warren: subscription broken, resubscribing: %w", err))
		if sleep(ctx, s.opts.Backoff.Delay(attempt)) != nil {
			return nil
		}
		if s.reconnect != nil {
			s.reconnect()
		}
	}
}

func (s *Subscriber) report(err error) {
	if s.opts.OnError != nil {
		s.opts.OnError(err)
	}
}

// receiver is the state of one Receive call, shared by its streams.
type receiver struct {
	s        *Subscriber
	h        Handler
	slots    chan struct{} // one token per running handler
	handlers sync.WaitGroup
	// Stream queues only: where a resubscription starts.
	offsets    *offsetTracker
	lastStream *subStream
}

// subStream is one Subscribe stream; sends are serialized (gRPC allows one
// sender at a time) and stop after the half-close.
type subStream struct {
	mu     sync.Mutex
	stream warrenv1.MessagingService_SubscribeClient
	closed bool
	wg     sync.WaitGroup // this stream's running handlers
}

func (st *subStream) send(req *warrenv1.SubscribeRequest) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return io.EOF
	}
	return st.stream.Send(req)
}

func (st *subStream) closeSend() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.closed {
		st.closed = true
		_ = st.stream.CloseSend()
	}
}

// runStream runs one stream until ctx is done (a clean stop: returns nil)
// or the stream fails. subscribed reports whether it got as far as
// Subscribed, which resets the backoff.
func (r *receiver) runStream(ctx context.Context, start *warrenv1.SubscribeStart) (subscribed bool, err error) {
	// The stream outlives ctx by the orderly stop below.
	streamCtx, cancel := context.WithCancel(detached{ctx})
	defer cancel()
	// Until the stream is open (wait-for-ready: while the connection is
	// down, that is until it is back), ctx's end does cut it short.
	opened := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-opened:
		}
	}()
	stream, err := r.s.client.Subscribe(streamCtx, streamCallOptions()...)
	close(opened)
	if err != nil {
		return false, err
	}
	st := &subStream{stream: stream}
	r.lastStream = st
	if err := st.send(&warrenv1.SubscribeRequest{
		Request: &warrenv1.SubscribeRequest_Start{Start: start}}); err != nil {
		// A failed Send reports io.EOF; the status comes from Recv.
		_, err = stream.Recv()
		return false, err
	}

	deliveries := make(chan *warrenv1.Delivery, r.s.opts.MaxInFlight)
	var recvErr error // set before deliveries is closed
	var lastRecv, gotSubscribed int64
	atomic.StoreInt64(&lastRecv, time.Now().UnixNano())
	go func() {
		defer close(deliveries)
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr = err
				// Handlers of this stream can no longer settle anything.
				cancel()
				return
			}
			atomic.StoreInt64(&lastRecv, time.Now().UnixNano())
			switch x := resp.Response.(type) {
			case *warrenv1.SubscribeResponse_Subscribed:
				atomic.StoreInt64(&gotSubscribed, 1)
				if r.offsets != nil {
					r.offsets.subscribed(time.Now())
				}
				if r.s.opts.OnSubscribed != nil {
					r.s.opts.OnSubscribed(x.Subscribed.Queue)
				}
			case *warrenv1.SubscribeResponse_Delivery:
				// The prefetch keeps this from blocking for long; the
				// buffer holds MaxInFlight.
				select {
				case deliveries <- x.Delivery:
				case <-streamCtx.Done():
				}
			}
		}
	}()
	isSubscribed := func() bool { return atomic.LoadInt64(&gotSubscribed) == 1 }

	idle := 3 * r.s.opts.HeartbeatInterval
	tick := time.NewTicker(r.s.opts.HeartbeatInterval / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.stop(st, deliveries)
			return isSubscribed(), nil
		case d, ok := <-deliveries:
			if !ok {
				if recvErr == io.EOF {
					recvErr = errStreamEnded
				}
				return isSubscribed(), recvErr
			}
			if streamCtx.Err() != nil {
				continue // the stream broke: d cannot be settled, the broker redelivers it
			}
			if r.offsets != nil && !r.offsets.received(d.StreamOffset) {
				_ = st.send(ackRequest(d.DeliveryId)) // before the start asked for
				continue
			}
			select {
			case r.slots <- struct{}{}:
			case <-ctx.Done():
				// d was not started: it goes back to the queue when the
				// stream ends.
				r.stop(st, deliveries)
				return isSubscribed(), nil
			}
			r.handlers.Add(1)
			st.wg.Add(1)
			go r.handle(streamCtx, st, d)
		case <-tick.C:
			if time.Since(time.Unix(0, atomic.LoadInt64(&lastRecv))) > idle {
				return isSubscribed(), errStreamIdle // the deferred cancel ends it
			}
		}
	}
}

// stop ends a stream in order: wait for its handlers (they ack or nack on
// it), half-close it so the server knows no more acks come, and wait for the
// server to end it (after settling what it read). Deliveries still arriving
// are left unacked: the broker requeues them when the stream ends.
func (r *receiver) stop(st *subStream, deliveries <-chan *warrenv1.Delivery) {
	st.wg.Wait()
	st.closeSend()
	deadline := time.NewTimer(r.s.opts.StopTimeout)
	defer deadline.Stop()
	for {
		select {
		case _, ok := <-deliveries:
			if !ok {
				return
			}
		case <-deadline.C:
			return
		}
	}
}

func (r *receiver) handle(ctx context.Context, st *subStream, d *warrenv1.Delivery) {
	defer func() {
		<-r.slots
		st.wg.Done()
		r.handlers.Done()
	}()
	req := ackRequest(d.DeliveryId)
	err := r.call(ctx, d)
	if err != nil {
		nack := &warrenv1.Nack{DeliveryIds: []uint64{d.DeliveryId}, Requeue: !r.s.opts.DeadLetterOnError}
		if delay := retryDelay(err, r.s.opts.RetryAfter); delay > 0 {
			nack.RetryAfter = durationpb.New(delay)
		}
		req = &warrenv1.SubscribeRequest{Request: &warrenv1.SubscribeRequest_Nack{Nack: nack}}
	}
	// A failure after the stream broke is not handled: like the broker's
	// redelivery of an unsettled message, the resumed stream starts there.
	if r.offsets != nil && (err == nil || ctx.Err() == nil) {
		r.offsets.handled(d.StreamOffset)
	}
	// A failed send means the stream broke: the broker redelivers d.
	_ = st.send(req)
}

func ackRequest(id uint64) *warrenv1.SubscribeRequest {
	return &warrenv1.SubscribeRequest{Request: &warrenv1.SubscribeRequest_Ack{
		Ack: &warrenv1.Ack{DeliveryIds: []uint64{id}}}}
}

// call runs the handler, turning a panic into an error so that one bad
// message nacks instead of killing the process.
func (r *receiver) call(ctx context.Context, d *warrenv1.Delivery) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("warren: handler panicked on message %q: %v", d.MessageId, p)
			r.s.report(err)
		}
	}()
	return r.h(ctx, d)
}
