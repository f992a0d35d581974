package warren_test

import (
	"context"
	"fmt"
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
