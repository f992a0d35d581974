package warren_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nextEvent returns the elector's next event, failing after timeout.
func nextEvent(t *testing.T, e *warren.Elector, timeout time.Duration) warren.Event {
	t.Helper()
	select {
	case ev, ok := <-e.Events():
		if !ok {
			t.Fatalf("events closed (elector ended: %v)", e.Err())
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("no elector event within %v", timeout)
	}
	panic("unreachable")
}

// awaitEvent skips events until one of kind arrives.
func awaitEvent(t *testing.T, e *warren.Elector, kind warren.EventKind, timeout time.Duration) warren.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ev := nextEvent(t, e, time.Until(deadline))
		if ev.Kind == kind {
			return ev
		}
	}
}

func TestExactlyOneElectorLeads(t *testing.T) {
	t.Parallel()
	client := shared(t)
	election := unique("go-one-leader")
	const n = 3
	electors := make([]*warren.Elector, n)
	for i := range electors {
		electors[i] = client.Campaign(context.Background(), warren.ElectorOptions{
			Election: election, CandidateID: fmt.Sprintf("candidate-%d", i),
			Value: []byte(fmt.Sprint(i)), Backoff: fast})
		defer electors[i].Close()
	}
	// Each one's first event says where it stands.
	leader := -1
	var token uint64
	var followed []*warrenv1.Leader
	for i, e := range electors {
		ev := nextEvent(t, e, 20*time.Second)
		switch ev.Kind {
		case warren.Elected:
			if leader >= 0 {
				t.Fatalf("candidates %d and %d both elected", leader, i)
			}
			leader, token = i, ev.Leader.FencingToken
			if ev.Term.Err() != nil {
				t.Fatal("the term of a fresh leader is already over")
			}
		case warren.Following:
			followed = append(followed, ev.Leader)
		default:
			t.Fatalf("candidate %d: first event %v", i, ev)
		}
	}
	if leader < 0 {
		// Followers may have seen "nobody leads" before the leader's node
		// was found; the leader must still emerge.
		waitFor(t, 20*time.Second, "a leader", func() bool {
			for i, e := range electors {
				if tok, ok := e.Leading(); ok {
					leader, token = i, tok
					return true
				}
			}
			return false
		})
	}
	count := 0
	for _, e := range electors {
		if _, ok := e.Leading(); ok {
			count++
		}
	}
	if count != 1 {
		t.Fatalf("%d electors lead, want exactly 1", count)
	}
	for _, l := range followed {
		if l != nil && l.CandidateId != fmt.Sprintf("candidate-%d", leader) {
			t.Fatalf("a follower follows %s; the leader is candidate-%d", l.CandidateId, leader)
		}
	}
	got, err := client.Election.GetLeader(context.Background(), &warrenv1.GetLeaderRequest{Election: election})
	if err != nil || got.Leader.CandidateId != fmt.Sprintf("candidate-%d", leader) || got.Leader.FencingToken != token {
		t.Fatalf("GetLeader: %v, %v; want candidate-%d with token %d", got, err, leader, token)
	}

	// The leader resigns: it hears Lost (resigned), its term ends, and
	// exactly one other takes over with a larger fencing token.
	old := electors[leader]
	closed := make(chan struct{})
	go func() { old.Close(); close(closed) }()
	lost := awaitEvent(t, old, warren.Lost, 20*time.Second)
	if lost.Reason != warren.LostResigned {
		t.Fatalf("the old leader lost with %v, want resigned", lost)
	}
	<-closed
	if _, ok := <-old.Events(); ok {
		t.Fatal("events still open after Close")
	}
	var next int
	waitFor(t, 20*time.Second, "a new leader", func() bool {
		for i, e := range electors {
			if _, ok := e.Leading(); ok && i != leader {
				next = i
				return true
			}
		}
		return false
	})
	newToken, _ := electors[next].Leading()
	if newToken <= token {
		t.Fatalf("new fencing token %d is not above the old %d", newToken, token)
	}
	for i, e := range electors {
		if _, ok := e.Leading(); ok && i != next {
			t.Fatalf("candidates %d and %d both lead", next, i)
		}
	}
}

func TestElectorReportsLostWhenTheStreamBreaks(t *testing.T) {
	t.Parallel()
	srv := startWarrend(t, ownRoot("go-elect-break"))
	client := dial(t, srv.Addr())
	e := client.Campaign(context.Background(), warren.ElectorOptions{
		Election: unique("go-break"), Backoff: fast})
	defer e.Close()
	elected := awaitEvent(t, e, warren.Elected, 20*time.Second)

	srv.Stop() // SIGTERM: the server ends the stream with UNAVAILABLE
	lost := nextEvent(t, e, 10*time.Second)
	if lost.Kind != warren.Lost || lost.Reason != warren.LostStreamBroken || status.Code(lost.Err) != codes.Unavailable {
		t.Fatalf("after the server stopped: %v, want lost (stream broken, UNAVAILABLE)", lost)
	}
	if elected.Term.Err() == nil {
		t.Fatal("the term did not end with the loss")
	}
	if _, ok := e.Leading(); ok {
		t.Fatal("still leading after the loss")
	}

	// By default the Elector campaigns again once the server is back.
	srv.Restart()
	again := awaitEvent(t, e, warren.Elected, 30*time.Second)
	if again.Leader.FencingToken <= elected.Leader.FencingToken {
		t.Fatalf("re-elected with token %d, not above %d", again.Leader.FencingToken, elected.Leader.FencingToken)
	}
}

func TestElectorStepsDownWhenTheLeaseRunsOut(t *testing.T) {
	t.Parallel()
	srv := startWarrend(t, ownRoot("go-lease"))
	client := dial(t, srv.Addr())
	const interval = 500 * time.Millisecond
	e := client.Campaign(context.Background(), warren.ElectorOptions{
		Election: unique("go-lease"), HeartbeatInterval: interval, Once: true})
	defer e.Close()
	elected := awaitEvent(t, e, warren.Elected, 20*time.Second)
	// Heartbeats keep the lease: several intervals pass without a loss.
	select {
	case ev := <-e.Events():
		t.Fatalf("while heartbeats flow: %v", ev)
	case <-time.After(5 * interval): // a negative check: nothing to await
	}

	// A frozen server: the TCP connection stays up, nothing arrives.
	srv.Signal(syscall.SIGSTOP)
	frozen := time.Now()
	defer srv.Signal(syscall.SIGCONT)
	lost := nextEvent(t, e, 10*time.Second)
	took := time.Since(frozen)
	if lost.Kind != warren.Lost || lost.Reason != warren.LostLeaseExpired {
		t.Fatalf("with the server frozen: %v, want lost (lease expired)", lost)
	}
	if elected.Term.Err() == nil {
		t.Fatal("the term did not end with the lease")
	}
	// At most two intervals after the last heartbeat, which came at most
	// one interval before the freeze (plus scheduling slack).
	if took > 3*interval+time.Second {
		t.Fatalf("stepped down %v after the freeze; the lease is %v", took, 2*interval)
	}
	srv.Signal(syscall.SIGCONT)
	select {
	case <-e.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a Once elector did not end after its loss")
	}
}

// Not parallel: it counts the process's goroutines, which only this test
// may change while it runs (the parallel tests wait until it is over).
func TestCancelledFollowersEndPromptlyAndLeakNothing(t *testing.T) {
	client := shared(t)
	election := unique("go-cancel-followers")
	leader := client.Campaign(context.Background(), warren.ElectorOptions{
		Election: election, CandidateID: "leader"})
	defer leader.Close()
	awaitEvent(t, leader, warren.Elected, 20*time.Second) // the connection is up too
	before := runtime.NumGoroutine()

	const n = 20
	type follower struct {
		e      *warren.Elector
		cancel context.CancelFunc
		read   chan struct{} // closed when its Events channel is
	}
	followers := make([]follower, n)
	for i := range followers {
		ctx, cancel := context.WithCancel(context.Background())
		e := client.Campaign(ctx, warren.ElectorOptions{
			Election: election, CandidateID: fmt.Sprintf("follower-%d", i)})
		followers[i] = follower{e: e, cancel: cancel, read: make(chan struct{})}
		defer cancel()
	}
	for i, f := range followers {
		if ev := awaitEvent(t, f.e, warren.Following, 20*time.Second); ev.Leader != nil && ev.Leader.CandidateId != "leader" {
			t.Fatalf("follower %d follows %v", i, ev.Leader)
		}
		go func(f follower) { // a reader, as an application has one
			for range f.e.Events() {
			}
			close(f.read)
		}(f)
	}

	cancelled := time.Now()
	for _, f := range followers {
		f.cancel()
	}
	var slowest time.Duration
	ended := 0
	for i, f := range followers {
		select {
		case <-f.e.Done():
			ended++
		case <-time.After(time.Until(cancelled.Add(2 * time.Second))):
			t.Errorf("follower %d: Done still open 2s after its context was cancelled", i)
			continue
		}
		if took := time.Since(cancelled); took > slowest {
			slowest = took
		}
		if err := f.e.Err(); err != nil {
			t.Errorf("follower %d: Err() = %v after a cancel, want nil", i, err)
		}
	}
	t.Logf("%d of %d cancelled followers ended, the last %v after the cancel", ended, n, slowest)
	for i, f := range followers {
		closed := make(chan struct{})
		go func() { f.e.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(2 * time.Second):
			t.Fatalf("follower %d: Close blocked for 2s after the cancel", i)
		}
		select {
		case <-f.read:
		case <-time.After(2 * time.Second):
			t.Fatalf("follower %d: Events still open after Close", i)
		}
	}
	// Every goroutine the followers started (theirs, their streams' and
	// gRPC's for those streams) ends.
	waitFor(t, 5*time.Second, fmt.Sprintf("the goroutine count back to %d", before), func() bool {
		return runtime.NumGoroutine() <= before
	})
	if _, ok := leader.Leading(); !ok {
		t.Fatal("the leader lost its leadership while followers came and went")
	}
}

func TestLeadersCancelIsReportedAsACancelAtOnce(t *testing.T) {
	t.Parallel()
	client := shared(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := client.Campaign(ctx, warren.ElectorOptions{Election: unique("go-cancel-leader")})
	defer e.Close()
	elected := awaitEvent(t, e, warren.Elected, 20*time.Second)

	cancelled := time.Now()
	cancel()
	// Well below the lease (2 × the 1 s default heartbeat), which is what a
	// cancel used to be reported as.
	lost := nextEvent(t, e, 500*time.Millisecond)
	took := time.Since(cancelled)
	if lost.Kind != warren.Lost || lost.Reason != warren.LostCancelled || lost.Err != context.Canceled {
		t.Fatalf("after the cancel: %v, want lost (cancelled: context canceled)", lost)
	}
	if elected.Term.Err() == nil {
		t.Fatal("the term did not end with the cancel")
	}
	if _, ok := e.Leading(); ok {
		t.Fatal("still leading after the cancel")
	}
	select {
	case <-e.Done():
	case <-time.After(500 * time.Millisecond):
		t.Fatal("Done still open 500ms after the cancel")
	}
	if err := e.Err(); err != nil {
		t.Fatalf("Err() = %v after a cancel, want nil", err)
	}
	t.Logf("the leader's cancel was reported %v after it", took)
}
