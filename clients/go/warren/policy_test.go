package warren

import (
	"context"
	"encoding/json"
	"io"
	"io/ioutil"
	"path/filepath"
	"sync"
	"testing"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// These tests read clients/retry-policy.json and clients/defaults.json, the
// files all five clients follow: a change there that this package does not
// follow fails here. The test runs in this package's directory
// (clients/go/warren; ".." resolves physically through the GOPATH link).

type policyFile struct {
	Codes map[string]struct {
		Number int    `json:"number"`
		Unary  string `json:"unary"`
		Stream string `json:"stream"`
	} `json:"codes"`
	Backoff struct {
		InitialMs  float64 `json:"initial_ms"`
		Multiplier float64 `json:"multiplier"`
		MaxMs      float64 `json:"max_ms"`
	} `json:"backoff"`
	Channel struct {
		InitialReconnectBackoffMs float64 `json:"initial_reconnect_backoff_ms"`
		MaxReconnectBackoffMs     float64 `json:"max_reconnect_backoff_ms"`
		StreamsWaitForReady       bool    `json:"streams_wait_for_ready"`
	} `json:"channel"`
}

type defaultsFile struct {
	Publisher struct {
		Mandatory bool `json:"mandatory"`
	} `json:"publisher"`
	Subscriber struct {
		MaxInFlight int `json:"max_in_flight"`
	} `json:"subscriber"`
	Elector struct {
		HeartbeatIntervalMs int  `json:"heartbeat_interval_ms"`
		RejoinAfterExpiry   bool `json:"rejoin_after_expiry"`
	} `json:"elector"`
}

func readJSON(t *testing.T, name string, v interface{}) {
	t.Helper()
	data, err := ioutil.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatalf("the shared policy file: %v", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func readPolicy(t *testing.T) policyFile {
	t.Helper()
	var p policyFile
	readJSON(t, "retry-policy.json", &p)
	if len(p.Codes) != 17 {
		t.Fatalf("retry-policy.json has %d codes, want the 17 gRPC codes", len(p.Codes))
	}
	return p
}

// codeNamed maps the file's names (gRPC's canonical ones) to Go's codes.
func codeNamed(t *testing.T, name string, number int) codes.Code {
	t.Helper()
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(`"` + name + `"`)); err != nil {
		t.Fatalf("retry-policy.json names an unknown code %s: %v", name, err)
	}
	if int(c) != number {
		t.Fatalf("%s is number %d in retry-policy.json, %d in gRPC", name, number, c)
	}
	return c
}

func ms(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func TestRetryPolicyTableMatchesTheSharedFile(t *testing.T) {
	p := readPolicy(t)
	for name, row := range p.Codes {
		code := codeNamed(t, name, row.Number)
		err := status.Error(code, "from the server")
		live := context.Background()
		// Unary: what the classification says and what retryUnary does.
		var wantUnary unaryAction
		switch row.Unary {
		case "done":
			wantUnary = unaryDone
		case "retry":
			wantUnary = unaryRetry
		case "fatal":
			wantUnary = unaryFatal
		default:
			t.Fatalf("%s: unknown unary decision %q", name, row.Unary)
		}
		if got := unaryRuleOf(code); got != wantUnary {
			t.Errorf("%s: unary rule %v, the file says %s", name, got, row.Unary)
		}
		if code != codes.OK {
			if got := retryUnary(live, err); got != (row.Unary == "retry") {
				t.Errorf("%s: retryUnary = %v, the file says %s", name, got, row.Unary)
			}
		}
		// A call the caller cancelled is never retried, whatever its code.
		cancelled, cancel := context.WithCancel(live)
		cancel()
		if retryUnary(cancelled, err) {
			t.Errorf("%s: a call whose context was cancelled is retried", name)
		}
		// Streams.
		var wantStream streamAction
		switch row.Stream {
		case "resubscribe":
			wantStream = streamResubscribe
		case "fatal":
			wantStream = streamFatal
		default:
			t.Fatalf("%s: unknown stream decision %q", name, row.Stream)
		}
		if got := streamRuleOf(code); got != wantStream {
			t.Errorf("%s: stream rule %v, the file says %s", name, got, row.Stream)
		}
		streamErr := err
		if code == codes.OK {
			streamErr = io.EOF // how gRPC reports a stream the server ended with OK
		}
		if got := resubscribe(streamErr); got != (row.Stream == "resubscribe") {
			t.Errorf("%s: resubscribe = %v, the file says %s", name, got, row.Stream)
		}
	}
	if len(retryPolicy) != len(p.Codes) {
		t.Errorf("the Go table has %d codes, the file %d", len(retryPolicy), len(p.Codes))
	}
}

func TestBackoffAndChannelMatchTheSharedFile(t *testing.T) {
	p := readPolicy(t)
	if defaultBackoffInitial != ms(p.Backoff.InitialMs) || defaultBackoffMax != ms(p.Backoff.MaxMs) ||
		defaultBackoffMultiplier != p.Backoff.Multiplier {
		t.Fatalf("backoff %v ×%v max %v; the file says %v ms ×%v max %v ms", defaultBackoffInitial,
			defaultBackoffMultiplier, defaultBackoffMax, p.Backoff.InitialMs, p.Backoff.Multiplier, p.Backoff.MaxMs)
	}
	// The zero Backoff waits d = min(max, initial × multiplier^n), jittered
	// into [d/2, d].
	for n := 0; n < 12; n++ {
		full := p.Backoff.InitialMs
		for i := 0; i < n; i++ {
			full *= p.Backoff.Multiplier
		}
		if full > p.Backoff.MaxMs {
			full = p.Backoff.MaxMs
		}
		lo, hi := ms(full/2), ms(full)
		for i := 0; i < 200; i++ {
			if d := (Backoff{}).Delay(n); d < lo || d > hi {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, lo, hi)
			}
		}
	}
	if reconnectBackoffInitial != ms(p.Channel.InitialReconnectBackoffMs) ||
		reconnectBackoffMax != ms(p.Channel.MaxReconnectBackoffMs) ||
		streamsWaitForReady != p.Channel.StreamsWaitForReady {
		t.Fatalf("channel: reconnect %v to %v, wait-for-ready %v; the file says %+v",
			reconnectBackoffInitial, reconnectBackoffMax, streamsWaitForReady, p.Channel)
	}
	// gRPC jitters its capped delay by ±reconnectJitter: the cap it gets
	// keeps the longest wait within the file's maximum.
	if longest := time.Duration(float64(reconnectBackoffMax) / (1 + reconnectJitter) * (1 + reconnectJitter)); longest > ms(p.Channel.MaxReconnectBackoffMs)+time.Millisecond {
		t.Fatalf("the longest reconnect wait is %v", longest)
	}
	opts := streamCallOptions()
	if len(opts) != 1 || opts[0] != grpc.CallOption(grpc.FailFastCallOption{FailFast: !p.Channel.StreamsWaitForReady}) {
		t.Fatalf("streams are opened with %v", opts)
	}
}

// --- the wrappers' decisions, behaviourally, through fake stubs ---

// fakeStream is a client stream that ends with end (io.EOF for OK) at its
// first Recv, or, when end is nil, answers first (if any) and then waits
// for its context or the client's half-close (which it answers with the
// end of the stream, like warrend).
type fakeStream struct {
	grpc.ClientStream
	ctx       context.Context
	end       error
	first     interface{}
	halfClose chan struct{}
	closeOnce sync.Once
	mu        sync.Mutex
	sent      []interface{}
	recvs     int
}

func (s *fakeStream) Context() context.Context { return s.ctx }
func (s *fakeStream) CloseSend() error {
	s.closeOnce.Do(func() { close(s.halfClose) })
	return nil
}

func (s *fakeStream) sentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

func (s *fakeStream) send(m interface{}) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, m)
	return nil
}

func (s *fakeStream) recv() (interface{}, error) {
	s.mu.Lock()
	s.recvs++
	n := s.recvs
	s.mu.Unlock()
	if s.end != nil {
		return nil, s.end
	}
	if n == 1 && s.first != nil {
		return s.first, nil
	}
	select {
	case <-s.ctx.Done():
		return nil, status.FromContextError(s.ctx.Err()).Err()
	case <-s.halfClose:
		return nil, io.EOF
	}
}

// opener hands out fakeStreams: the first ends with firstEnd, the later
// ones stay open. It records each open's call options.
type opener struct {
	firstEnd error
	first    interface{} // the later streams' first response
	mu       sync.Mutex
	streams  []*fakeStream
	opts     [][]grpc.CallOption
	opened   chan struct{}
}

func newOpener(firstEnd error, first interface{}) *opener {
	return &opener{firstEnd: firstEnd, first: first, opened: make(chan struct{}, 100)}
}

func (o *opener) open(ctx context.Context, opts []grpc.CallOption) *fakeStream {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &fakeStream{ctx: ctx, halfClose: make(chan struct{})}
	if len(o.streams) == 0 {
		s.end = o.firstEnd
	} else {
		s.first = o.first
	}
	o.streams = append(o.streams, s)
	o.opts = append(o.opts, opts)
	o.opened <- struct{}{}
	return s
}

func (o *opener) stream(i int) *fakeStream {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.streams[i]
}

func (o *opener) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.streams)
}

func (o *opener) waitForReady(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, opts := range o.opts {
		found := false
		for _, opt := range opts {
			if ff, ok := opt.(grpc.FailFastCallOption); ok && !ff.FailFast {
				found = true
			}
		}
		if !found {
			t.Errorf("stream %d was opened without wait-for-ready (%v)", i, opts)
		}
	}
}

type fakeSubscribeStream struct{ *fakeStream }

func (s fakeSubscribeStream) Send(m *warrenv1.SubscribeRequest) error { return s.send(m) }
func (s fakeSubscribeStream) Recv() (*warrenv1.SubscribeResponse, error) {
	m, err := s.recv()
	if err != nil {
		return nil, err
	}
	return m.(*warrenv1.SubscribeResponse), nil
}

type fakeElectStream struct{ *fakeStream }

func (s fakeElectStream) Send(m *warrenv1.ElectRequest) error { return s.send(m) }
func (s fakeElectStream) Recv() (*warrenv1.ElectResponse, error) {
	m, err := s.recv()
	if err != nil {
		return nil, err
	}
	return m.(*warrenv1.ElectResponse), nil
}

type fakeWatchStream struct{ *fakeStream }

func (s fakeWatchStream) Recv() (*warrenv1.WatchConfigResponse, error) {
	m, err := s.recv()
	if err != nil {
		return nil, err
	}
	return m.(*warrenv1.WatchConfigResponse), nil
}

type fakeLockStream struct{ *fakeStream }

func (s fakeLockStream) Send(m *warrenv1.LockRequest) error { return s.send(m) }
func (s fakeLockStream) Recv() (*warrenv1.LockResponse, error) {
	m, err := s.recv()
	if err != nil {
		return nil, err
	}
	return m.(*warrenv1.LockResponse), nil
}

type fakeHoldStream struct{ *fakeStream }

func (s fakeHoldStream) Send(m *warrenv1.HoldKeyRequest) error { return s.send(m) }
func (s fakeHoldStream) Recv() (*warrenv1.HoldKeyResponse, error) {
	m, err := s.recv()
	if err != nil {
		return nil, err
	}
	return m.(*warrenv1.HoldKeyResponse), nil
}

type fakeStubs struct {
	warrenv1.MessagingServiceClient
	warrenv1.ElectionServiceClient
	warrenv1.ConfigServiceClient
	warrenv1.LockServiceClient
	o *opener
}

func (f fakeStubs) Lock(ctx context.Context, opts ...grpc.CallOption) (warrenv1.LockService_LockClient, error) {
	return fakeLockStream{f.o.open(ctx, opts)}, nil
}

func (f fakeStubs) HoldKey(ctx context.Context, opts ...grpc.CallOption) (warrenv1.ConfigService_HoldKeyClient, error) {
	return fakeHoldStream{f.o.open(ctx, opts)}, nil
}

func (f fakeStubs) Subscribe(ctx context.Context, opts ...grpc.CallOption) (warrenv1.MessagingService_SubscribeClient, error) {
	return fakeSubscribeStream{f.o.open(ctx, opts)}, nil
}

func (f fakeStubs) Elect(ctx context.Context, opts ...grpc.CallOption) (warrenv1.ElectionService_ElectClient, error) {
	return fakeElectStream{f.o.open(ctx, opts)}, nil
}

func (f fakeStubs) WatchConfig(ctx context.Context, _ *warrenv1.WatchConfigRequest, opts ...grpc.CallOption) (warrenv1.ConfigService_WatchConfigClient, error) {
	return fakeWatchStream{f.o.open(ctx, opts)}, nil
}

var quick = Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}

// streamWrapper runs one wrapper over fake stubs until stop; ended is
// closed (with err set) when the wrapper ends by itself.
type streamWrapper struct {
	name  string
	first interface{} // what a resubscribed stream answers first
	run   func(ctx context.Context, o *opener) (ended <-chan struct{}, err func() error, stop func())
}

var streamWrappers = []streamWrapper{
	{"Subscriber", &warrenv1.SubscribeResponse{Response: &warrenv1.SubscribeResponse_Subscribed{
		Subscribed: &warrenv1.Subscribed{Queue: "q"}}},
		func(ctx context.Context, o *opener) (<-chan struct{}, func() error, func()) {
			ctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			var err error
			s := NewSubscriber(fakeStubs{o: o}, SubscriberOptions{Backoff: quick,
				Start: &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: "q"}}})
			go func() {
				err = s.Receive(ctx, func(context.Context, *warrenv1.Delivery) error { return nil })
				close(done)
			}()
			return done, func() error { return err }, func() { cancel(); <-done }
		}},
	{"ConfigWatcher", &warrenv1.WatchConfigResponse{InitialState: true},
		func(ctx context.Context, o *opener) (<-chan struct{}, func() error, func()) {
			w := WatchConfig(ctx, fakeStubs{o: o}, ConfigWatcherOptions{Key: "k", Backoff: quick})
			return w.Done(), w.Err, func() { w.Close() }
		}},
	{"Elector", &warrenv1.ElectResponse{Event: &warrenv1.ElectResponse_Following{
		Following: &warrenv1.Following{}}},
		func(ctx context.Context, o *opener) (<-chan struct{}, func() error, func()) {
			e := Campaign(ctx, fakeStubs{o: o}, ElectorOptions{Election: "e", Backoff: quick})
			go func() { // Events must be read for the Elector to end cleanly
				for range e.Events() {
				}
			}()
			return e.Done(), e.Err, func() { e.cancel(); <-e.Done() }
		}},
	// A Locker while it waits (a resubscribed stream is queued): a broken
	// stream while holding is a loss, never a new attempt (lock_test.go).
	{"Locker", &warrenv1.LockResponse{Event: &warrenv1.LockResponse_Queued{Queued: &warrenv1.Queued{Position: 1}}},
		func(ctx context.Context, o *opener) (<-chan struct{}, func() error, func()) {
			ctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			var err error
			go func() {
				_, err = NewLocker(fakeStubs{o: o}, LockerOptions{Backoff: quick}).Acquire(ctx, "l", AcquireOptions{})
				// Acquire returns the caller's cancellation as its result;
				// what matters here is whether it opened the stream again.
				if ctx.Err() != nil && status.Code(err) == codes.Canceled {
					err = nil
				}
				close(done)
			}()
			return done, func() error { return err }, func() { cancel(); <-done }
		}},
	{"Registration", &warrenv1.HoldKeyResponse{Event: &warrenv1.HoldKeyResponse_Held{Held: &warrenv1.ConfigEntry{Key: "k", Held: true}}},
		func(ctx context.Context, o *opener) (<-chan struct{}, func() error, func()) {
			r := HoldKey(ctx, fakeStubs{o: o}, RegistrationOptions{Key: "k", Backoff: quick})
			return r.Done(), r.Err, func() { r.Close() }
		}},
}

// For every code of the file, each streaming wrapper whose stream ends with
// it either opens the stream again or stops and reports the code.
func TestStreamWrappersFollowTheSharedFile(t *testing.T) {
	p := readPolicy(t)
	for _, w := range streamWrappers {
		for name, row := range p.Codes {
			code := codeNamed(t, name, row.Number)
			var end error = io.EOF
			if code != codes.OK {
				end = status.Error(code, "ended by the fake server")
			}
			o := newOpener(end, w.first)
			ended, errOf, stop := w.run(context.Background(), o)
			<-o.opened
			switch row.Stream {
			case "resubscribe":
				select {
				case <-o.opened:
				case <-ended:
					t.Fatalf("%s: a stream ending with %s ended the wrapper (%v); the file says resubscribe", w.name, name, errOf())
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: a stream ending with %s was not opened again within 5s", w.name, name)
				}
			case "fatal":
				select {
				case <-ended:
					if status.Code(errOf()) != code {
						t.Fatalf("%s: ended with %v after %s", w.name, errOf(), name)
					}
					if n := o.count(); n != 1 {
						t.Fatalf("%s: %d streams after a fatal %s", w.name, n, name)
					}
				case <-o.opened:
					t.Fatalf("%s: a stream ending with %s was opened again; the file says fatal", w.name, name)
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: did not end within 5s of a fatal %s", w.name, name)
				}
			}
			stop()
			o.waitForReady(t)
		}
	}
}

// A stream the caller cancelled is never reopened, whatever it ended with.
func TestStreamWrappersDoNotReopenACancelledStream(t *testing.T) {
	for _, w := range streamWrappers {
		o := newOpener(nil, w.first) // the first stream stays open
		ctx, cancel := context.WithCancel(context.Background())
		ended, errOf, stop := w.run(ctx, o)
		<-o.opened
		cancel()
		select {
		case <-ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: did not end within 5s of its context's cancellation", w.name)
		}
		if err := errOf(); err != nil {
			t.Errorf("%s: a cancelled wrapper reports %v", w.name, err)
		}
		if n := o.count(); n != 1 {
			t.Errorf("%s: %d streams opened, want the cancelled one only", w.name, n)
		}
		stop()
	}
}

// fakePublish answers Publish with one error, then OK.
type fakePublish struct {
	warrenv1.MessagingServiceClient
	mu       sync.Mutex
	first    error
	requests []*warrenv1.PublishRequest
}

func (f *fakePublish) Publish(_ context.Context, in *warrenv1.PublishRequest, _ ...grpc.CallOption) (*warrenv1.PublishResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, in)
	if len(f.requests) == 1 && f.first != nil {
		return nil, f.first
	}
	return &warrenv1.PublishResponse{MessageId: in.MessageId}, nil
}

func TestPublisherFollowsTheSharedFile(t *testing.T) {
	p := readPolicy(t)
	for name, row := range p.Codes {
		code := codeNamed(t, name, row.Number)
		f := &fakePublish{}
		if code != codes.OK {
			f.first = status.Error(code, "from the fake server")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := NewPublisher(f, PublisherOptions{Backoff: quick}).Publish(ctx, &warrenv1.PublishRequest{RoutingKey: "q"})
		cancel()
		want := map[string]int{"done": 1, "retry": 2, "fatal": 1}[row.Unary]
		if len(f.requests) != want {
			t.Errorf("%s: %d attempts, want %d (%s)", name, len(f.requests), want, row.Unary)
		}
		if row.Unary == "fatal" && status.Code(err) != code || row.Unary != "fatal" && err != nil {
			t.Errorf("%s: Publish returned %v (%s)", name, err, row.Unary)
		}
		if len(f.requests) == 2 && f.requests[0].MessageId != f.requests[1].MessageId {
			t.Errorf("%s: the retry changed the message id", name)
		}
	}
}

// --- defaults ---

func TestDefaultsMatchTheSharedFile(t *testing.T) {
	var d defaultsFile
	readJSON(t, "defaults.json", &d)

	// Publisher: the request goes out with mandatory as the file says, and
	// AllowUnroutable turns it off.
	f := &fakePublish{}
	if _, err := NewPublisher(f, PublisherOptions{}).Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: "q"}); err != nil {
		t.Fatal(err)
	}
	if f.requests[0].Mandatory != d.Publisher.Mandatory {
		t.Errorf("Publisher sends mandatory=%v by default, the file says %v", f.requests[0].Mandatory, d.Publisher.Mandatory)
	}
	f = &fakePublish{}
	if _, err := NewPublisher(f, PublisherOptions{AllowUnroutable: true}).Publish(context.Background(), &warrenv1.PublishRequest{RoutingKey: "q"}); err != nil || f.requests[0].Mandatory {
		t.Errorf("AllowUnroutable: err %v, mandatory %v", err, f.requests[0].Mandatory)
	}

	// Subscriber: the prefetch asked of the server.
	o := newOpener(nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = NewSubscriber(fakeStubs{o: o}, SubscriberOptions{
			Start: &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: "q"}}}).Receive(
			ctx, func(context.Context, *warrenv1.Delivery) error { return nil })
		close(done)
	}()
	<-o.opened
	waitUntil(t, func() bool { return o.stream(0).sentCount() > 0 })
	start := o.stream(0).sent[0].(*warrenv1.SubscribeRequest).GetStart()
	if int(start.GetMaxInFlight()) != d.Subscriber.MaxInFlight || DefaultMaxInFlight != d.Subscriber.MaxInFlight {
		t.Errorf("Subscriber asks for max_in_flight %d (DefaultMaxInFlight %d), the file says %d",
			start.GetMaxInFlight(), DefaultMaxInFlight, d.Subscriber.MaxInFlight)
	}
	cancel()
	<-done

	// Elector: the Campaign message.
	o = newOpener(nil, nil)
	e := Campaign(context.Background(), fakeStubs{o: o}, ElectorOptions{Election: "e"})
	<-o.opened
	waitUntil(t, func() bool { return o.stream(0).sentCount() > 0 })
	c := o.stream(0).sent[0].(*warrenv1.ElectRequest).GetCampaign()
	want := durationpb.New(time.Duration(d.Elector.HeartbeatIntervalMs) * time.Millisecond)
	if c.GetHeartbeatInterval().AsDuration() != want.AsDuration() || DefaultHeartbeatInterval != want.AsDuration() {
		t.Errorf("Elector asks for heartbeats every %v (DefaultHeartbeatInterval %v), the file says %v",
			c.GetHeartbeatInterval().AsDuration(), DefaultHeartbeatInterval, want.AsDuration())
	}
	if c.GetRejoinAfterExpiry() != d.Elector.RejoinAfterExpiry {
		t.Errorf("Elector campaigns with rejoin_after_expiry=%v, the file says %v", c.GetRejoinAfterExpiry(), d.Elector.RejoinAfterExpiry)
	}
	go func() {
		for range e.Events() {
		}
	}()
	e.Close()

	// Locker and Registration ask for the Elector's lease heartbeat (the
	// same lease rule).
	o = newOpener(nil, nil)
	ctx, cancel = context.WithCancel(context.Background())
	acquired := make(chan struct{})
	go func() {
		_, _ = NewLocker(fakeStubs{o: o}, LockerOptions{}).Acquire(ctx, "l", AcquireOptions{})
		close(acquired)
	}()
	<-o.opened
	waitUntil(t, func() bool { return o.stream(0).sentCount() > 0 })
	if got := o.stream(0).sent[0].(*warrenv1.LockRequest).GetAcquire().GetHeartbeatInterval().AsDuration(); got != want.AsDuration() {
		t.Errorf("Locker asks for heartbeats every %v, the file says %v", got, want.AsDuration())
	}
	cancel()
	<-acquired
	o = newOpener(nil, nil)
	r := HoldKey(context.Background(), fakeStubs{o: o}, RegistrationOptions{Key: "k"})
	<-o.opened
	waitUntil(t, func() bool { return o.stream(0).sentCount() > 0 })
	if got := o.stream(0).sent[0].(*warrenv1.HoldKeyRequest).GetHeartbeatInterval().AsDuration(); got != want.AsDuration() {
		t.Errorf("Registration asks for heartbeats every %v, the file says %v", got, want.AsDuration())
	}
	r.Close()
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
