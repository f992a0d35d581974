package warren

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// EventKind says what an Elector event reports.
type EventKind int

const (
	// Elected: this candidate leads; Event.Leader holds the fencing token
	// and Event.Term is cancelled the moment the leadership ends.
	Elected EventKind = iota + 1
	// Following: another candidate leads (Event.Leader), or nobody does
	// for now (Event.Leader is nil). Sent again whenever the leader changes.
	Following
	// Lost: this candidate no longer leads (Event.Reason, Event.Err).
	Lost
)

func (k EventKind) String() string {
	switch k {
	case Elected:
		return "elected"
	case Following:
		return "following"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// LossReason says why leadership, a Lock or a held key (Registration) was
// lost: the first three come from the server, the others are the client's
// own conclusions.
type LossReason int

const (
	// LostResigned: the candidate resigned (Close).
	LostResigned LossReason = iota + 1
	// LostConnectionSuspended: the server's ZooKeeper connection was
	// suspended; an Elected with the same token may follow.
	LostConnectionSuspended
	// LostSessionExpired: the server's ZooKeeper session expired.
	LostSessionExpired
	// LostLeaseExpired: no message (heartbeat or other) arrived within two
	// heartbeat intervals, so the server may no longer be able to vouch for
	// this leadership; the Elector stepped down by itself.
	LostLeaseExpired
	// LostStreamBroken: the Elect stream failed or ended (Event.Err says
	// how); without the stream the server resigns the candidate.
	LostStreamBroken
	// LostCancelled: the context given to Campaign ended (Event.Err is its
	// error); the stream ends with it, and the server resigns the candidate.
	LostCancelled
	// LostReleased: the holder released its Lock (Lock.Release).
	LostReleased
)

func (r LossReason) String() string {
	switch r {
	case LostResigned:
		return "resigned"
	case LostConnectionSuspended:
		return "connection suspended"
	case LostSessionExpired:
		return "session expired"
	case LostLeaseExpired:
		return "lease expired"
	case LostStreamBroken:
		return "stream broken"
	case LostCancelled:
		return "cancelled"
	case LostReleased:
		return "released"
	}
	return fmt.Sprintf("LossReason(%d)", int(r))
}

// Event is one change of an Elector's state.
type Event struct {
	Kind   EventKind
	Leader *warrenv1.Leader // Elected: this candidate; Following: the leader or nil
	Reason LossReason       // Lost only
	Err    error            // Lost with LostStreamBroken or LostCancelled: why
	// Term, on Elected, is cancelled when this leadership ends, at the same
	// moment the Lost event is queued (even if nobody reads the events):
	// run leader-only work under it.
	Term context.Context
}

func (e Event) String() string {
	switch e.Kind {
	case Elected:
		return fmt.Sprintf("elected (candidate %s, fencing token %d)",
			e.Leader.GetCandidateId(), e.Leader.GetFencingToken())
	case Following:
		if e.Leader == nil {
			return "following (no leader right now)"
		}
		return fmt.Sprintf("following %s (fencing token %d, value %q)",
			e.Leader.CandidateId, e.Leader.FencingToken, e.Leader.Value)
	case Lost:
		if e.Err != nil {
			return fmt.Sprintf("lost (%v: %v)", e.Reason, e.Err)
		}
		return fmt.Sprintf("lost (%v)", e.Reason)
	}
	return e.Kind.String()
}

// ElectorOptions configure an Elector.
type ElectorOptions struct {
	// Election is the election's name (`/`-separated [A-Za-z0-9._-]; no
	// segment may start with "c_": see docs/elections.md).
	Election string
	// CandidateID names this candidate; empty lets the server generate one
	// per campaign.
	CandidateID string
	// Value is published while this candidate leads (e.g. its address).
	Value []byte
	// HeartbeatInterval is the lease heartbeat asked of the server; the
	// Elector declares the leadership lost when two intervals pass without
	// a message. 0 means DefaultHeartbeatInterval. It must not exceed the
	// server's cap (a third
	// of its ZooKeeper session timeout): the server lowers a larger value
	// without telling the client, whose lease would then be too long.
	HeartbeatInterval time.Duration
	// Once ends the Elector after the first loss or broken stream. By
	// default (false) it campaigns again after a backoff, like Curator's
	// LeaderLatch: a service usually wants to stay a candidate for its
	// whole life.
	Once bool
	// DisableRejoinAfterExpiry turns Campaign.rejoin_after_expiry off. By
	// default the server campaigns again by itself on a new ZooKeeper
	// session after an expiry (clients/defaults.json); with this set the
	// stream ends instead, and the Elector campaigns again unless Once.
	DisableRejoinAfterExpiry bool
	// Backoff between campaigns (zero: clients/retry-policy.json's).
	Backoff Backoff
	// ResignTimeout bounds how long Close waits for the server to confirm
	// the resignation. 0 means 5s.
	ResignTimeout time.Duration
}

// DefaultHeartbeatInterval is ElectorOptions.HeartbeatInterval's default
// (clients/defaults.json).
const DefaultHeartbeatInterval = time.Second

// Elector campaigns in an election and reports leadership as events.
type Elector struct {
	client    warrenv1.ElectionServiceClient
	opts      ElectorOptions
	reconnect func() // resets the connection's reconnect backoff; may be nil
	queue     *eventQueue
	cancel    context.CancelFunc
	done      chan struct{}

	mu        sync.Mutex
	stream    *electStream // the current stream, nil between campaigns
	leading   bool
	token     uint64
	endTerm   context.CancelFunc
	closing   bool
	err       error
	closeOnce sync.Once
}

// Campaign starts campaigning in the background and returns at once. Read
// Events until it is closed: events queue up until read, and a goroutine
// holds the unread ones. Cancelling ctx ends the candidacy at once: a
// leader gets Lost with LostCancelled, Done is closed, and the server
// resigns the candidate when the stream ends. Close resigns politely first.
//
// A stream that ends with a code clients/retry-policy.json marks
// "resubscribe" (UNAVAILABLE, RESOURCE_EXHAUSTED at the server's candidate
// limit, ...) or an expired lease campaigns again after a backoff (unless
// Once); the other codes end the Elector (Err).
func Campaign(ctx context.Context, client warrenv1.ElectionServiceClient, opts ElectorOptions) *Elector {
	return campaign(ctx, client, opts, nil)
}

func campaign(ctx context.Context, client warrenv1.ElectionServiceClient, opts ElectorOptions, reconnect func()) *Elector {
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if opts.ResignTimeout <= 0 {
		opts.ResignTimeout = 5 * time.Second
	}
	e := &Elector{client: client, opts: opts, reconnect: reconnect, queue: newEventQueue(),
		done: make(chan struct{})}
	ctx, e.cancel = context.WithCancel(ctx)
	go e.run(ctx)
	return e
}

// Events delivers the events in order; it is closed when the Elector ends.
func (e *Elector) Events() <-chan Event { return e.queue.out }

// Done is closed when the Elector has ended (Close, ctx, Once, or an error
// that retrying cannot fix; see Err).
func (e *Elector) Done() <-chan struct{} { return e.done }

// Err returns why the Elector ended: nil after Close or cancellation, else
// the stream's error. Valid after Done is closed.
func (e *Elector) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Leading reports whether this candidate leads right now (by the lease),
// with its fencing token.
func (e *Elector) Leading() (token uint64, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.token, e.leading
}

// Proclaim publishes a new value while leading (and keeps it for later
// campaigns). It returns FAILED_PRECONDITION when this candidate does not
// lead: the server would end the stream for it.
func (e *Elector) Proclaim(value []byte) error {
	e.mu.Lock()
	st, leading := e.stream, e.leading
	if leading {
		e.opts.Value = value
	}
	e.mu.Unlock()
	if !leading || st == nil {
		return status.Error(codes.FailedPrecondition, "warren: proclaim while not leading")
	}
	return st.send(&warrenv1.ElectRequest{Request: &warrenv1.ElectRequest_Proclaim{
		Proclaim: &warrenv1.Proclaim{Value: value}}})
}

// Close resigns (a leader gets Lost with LostResigned), waits up to
// ResignTimeout for the server to end the stream, and ends the Elector.
// Events is closed once its last event has been read.
func (e *Elector) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closing = true
		st := e.stream
		e.mu.Unlock()
		if st != nil {
			_ = st.send(&warrenv1.ElectRequest{Request: &warrenv1.ElectRequest_Resign{
				Resign: &warrenv1.Resign{}}})
			st.closeSend()
			waitAtMost(e.done, e.opts.ResignTimeout)
		}
		e.cancel()
		<-e.done
	})
	return nil
}

var errLeaseExpired = errors.New("warren: lease expired: no heartbeat within two intervals")

func (e *Elector) run(ctx context.Context) {
	defer close(e.done)
	defer e.queue.close()
	err := runStreams(ctx, e.opts.Backoff, e.reconnect, e.isClosing, e.runStream, func(err error) bool {
		return !e.opts.Once && resubscribe(err)
	})
	e.mu.Lock()
	e.err = err
	e.mu.Unlock()
}

func (e *Elector) isClosing() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closing
}

// electStream is one Elect stream's sending side.
type electStream = serialSender[*warrenv1.ElectRequest]

func newElectStream(stream warrenv1.ElectionService_ElectClient) *electStream {
	return &electStream{stream: stream, closedErr: status.Error(codes.FailedPrecondition, "warren: the candidacy is closing")}
}

// runStream runs one campaign. progressed says whether the server answered
// at all (which resets the backoff).
func (e *Elector) runStream(ctx context.Context) (progressed bool, err error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.client.Elect(streamCtx, streamCallOptions()...)
	if err != nil {
		return false, err
	}
	st := newElectStream(stream)
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return false, nil
	}
	e.stream = st
	campaign := &warrenv1.Campaign{
		Election:          e.opts.Election,
		CandidateId:       e.opts.CandidateID,
		Value:             e.opts.Value,
		RejoinAfterExpiry: !e.opts.DisableRejoinAfterExpiry,
		HeartbeatInterval: durationpb.New(e.opts.HeartbeatInterval),
	}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.stream = nil
		e.mu.Unlock()
	}()
	if err := st.send(&warrenv1.ElectRequest{Request: &warrenv1.ElectRequest_Campaign{
		Campaign: campaign}}); err != nil {
		_, err = stream.Recv()
		return false, err
	}

	recv := receive(streamCtx, stream.Recv)
	// The caller's cancellation (or Close, when the server did not confirm
	// the resignation in time) ends the campaign here, whatever the stream
	// is doing: a leader hears it as a cancel, at once.
	cancelled := func() (bool, error) {
		e.mu.Lock()
		closing := e.closing
		e.mu.Unlock()
		if closing {
			e.lose(LostResigned, nil)
		} else {
			e.lose(LostCancelled, ctx.Err())
		}
		return progressed, ctx.Err()
	}

	lease := 2 * e.opts.HeartbeatInterval
	timer := time.NewTimer(lease)
	timer.Stop()
	defer timer.Stop()
	var leaseC <-chan time.Time // nil (never fires) unless leading
	var following bool
	var lastFollowed *warrenv1.Leader
	for {
		if ctx.Err() != nil {
			return cancelled()
		}
		select {
		case <-ctx.Done():
			return cancelled()
		case r := <-recv:
			if ctx.Err() != nil {
				return cancelled() // the stream's CANCELLED, or a late message
			}
			if r.err != nil {
				if r.err == io.EOF {
					r.err = errStreamEnded
				}
				e.lose(LostStreamBroken, r.err)
				return progressed, r.err
			}
			progressed = true
			e.mu.Lock()
			leading := e.leading
			e.mu.Unlock()
			if leading {
				// Any message proves that the server is alive and still
				// serves this stream: the lease runs from now.
				resetTimer(timer, lease)
			}
			switch x := r.resp.Event.(type) {
			case *warrenv1.ElectResponse_Elected:
				following = false
				e.elect(ctx, x.Elected.Leader)
				resetTimer(timer, lease)
				leaseC = timer.C
			case *warrenv1.ElectResponse_Following:
				e.lose(LostStreamBroken, errors.New("warren: told to follow while leading"))
				leaseC = nil
				// The server may repeat a Following for the same leader
				// (first without, then with its elected_time): report a
				// leader once.
				if !following || !sameLeader(lastFollowed, x.Following.Leader) {
					e.queue.push(Event{Kind: Following, Leader: x.Following.Leader})
				}
				following, lastFollowed = true, x.Following.Leader
			case *warrenv1.ElectResponse_Lost:
				following = false
				e.lose(fromProtoReason(x.Lost.Reason), nil)
				leaseC = nil
			}
		case <-leaseC:
			if ctx.Err() != nil {
				return cancelled()
			}
			e.lose(LostLeaseExpired, nil)
			// Leadership is given up: ending the stream makes the server
			// resign the candidate too, so both sides agree.
			return progressed, errLeaseExpired
		}
	}
}

// sameLeader compares who leads and with what, not when it was reported.
func sameLeader(a, b *warrenv1.Leader) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.CandidateId == b.CandidateId && a.FencingToken == b.FencingToken &&
		bytes.Equal(a.Value, b.Value)
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

func (e *Elector) elect(ctx context.Context, leader *warrenv1.Leader) {
	term, endTerm := context.WithCancel(ctx)
	e.mu.Lock()
	if e.endTerm != nil {
		e.endTerm() // elected again without a loss in between: a new term
	}
	e.leading, e.token, e.endTerm = true, leader.GetFencingToken(), endTerm
	e.mu.Unlock()
	e.queue.push(Event{Kind: Elected, Leader: leader, Term: term})
}

// lose ends the current term, if any, and reports it.
func (e *Elector) lose(reason LossReason, err error) {
	e.mu.Lock()
	if !e.leading {
		e.mu.Unlock()
		return
	}
	e.leading = false
	e.endTerm()
	e.endTerm = nil
	e.mu.Unlock()
	e.queue.push(Event{Kind: Lost, Reason: reason, Err: err})
}

func fromProtoReason(r warrenv1.LossReason) LossReason {
	switch r {
	case warrenv1.LossReason_LOSS_REASON_RESIGNED:
		return LostResigned
	case warrenv1.LossReason_LOSS_REASON_CONNECTION_SUSPENDED:
		return LostConnectionSuspended
	case warrenv1.LossReason_LOSS_REASON_SESSION_EXPIRED:
		return LostSessionExpired
	}
	return LostStreamBroken
}

// eventQueue hands events to a channel without ever blocking the Elector:
// its lease must keep working while the application is busy.
type eventQueue struct {
	out    chan Event
	wake   chan struct{}
	mu     sync.Mutex
	items  []Event
	closed bool
}

func newEventQueue() *eventQueue {
	q := &eventQueue{out: make(chan Event), wake: make(chan struct{}, 1)}
	go q.forward()
	return q
}

func (q *eventQueue) push(ev Event) {
	q.mu.Lock()
	q.items = append(q.items, ev)
	q.mu.Unlock()
	q.poke()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.poke()
}

func (q *eventQueue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) forward() {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				close(q.out)
				return
			}
			<-q.wake
			continue
		}
		ev := q.items[0]
		q.items = q.items[1:]
		q.mu.Unlock()
		q.out <- ev
	}
}
