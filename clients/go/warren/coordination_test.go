package warren_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func getEntry(t *testing.T, client *warren.Client, key string) (*warrenv1.ConfigEntry, error) {
	t.Helper()
	resp, err := client.Config.GetConfig(context.Background(), &warrenv1.GetConfigRequest{Key: key, Consistent: true})
	return resp.GetEntry(), err
}

func value(t *testing.T, client *warren.Client, key string) string {
	t.Helper()
	e, err := getEntry(t, client, key)
	if status.Code(err) == codes.NotFound {
		return "<missing>"
	}
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return string(e.Value)
}

// refusedFence checks a write refused because its fence no longer holds.
func refusedFence(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.FailedPrecondition || !strings.HasPrefix(status.Convert(err).Message(), "fence: ") {
		t.Fatalf("%s with a stale fence: %v, want FAILED_PRECONDITION \"fence: ...\"", what, err)
	}
}

func TestFencedPublishAndConfigAreRefusedAfterTheLeaderResigns(t *testing.T) {
	t.Parallel()
	client := shared(t)
	election, key, q := unique("go-fence"), unique("go-fence-key"), unique("go-fence-q")
	got := newCollector()
	startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q)},
		func(_ context.Context, d *warrenv1.Delivery) error { got.add(d); return nil })

	e := client.Campaign(context.Background(), warren.ElectorOptions{Election: election, Once: true})
	elected := awaitEvent(t, e, warren.Elected, 20*time.Second)
	fence, ok := e.Fence()
	if !ok || fence.GetElection() != election || fence.FencingToken != elected.Leader.FencingToken ||
		elected.Fence().FencingToken != fence.FencingToken {
		t.Fatalf("the leader's fence: %v (%v), elected with %v", fence, ok, elected.Leader)
	}

	// While leading, fenced writes and publishes go through; the message
	// carries the fence.
	ctx := context.Background()
	if _, err := client.PutConfig(ctx, key, []byte("by the leader"), warren.WithFence(fence)); err != nil {
		t.Fatalf("fenced put while leading: %v", err)
	}
	pub := client.NewPublisher(warren.PublisherOptions{Backoff: fast})
	id, err := pub.Publish(ctx, &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("task")}, warren.WithFence(fence))
	if err != nil {
		t.Fatalf("fenced publish while leading: %v", err)
	}
	waitFor(t, 20*time.Second, "the fenced message", func() bool { return got.count(id) == 1 })
	got.mu.Lock()
	headers := got.got[id][0].Headers
	got.mu.Unlock()
	if headers["warren-fence"] != "election:"+election || headers["warren-fencing-token"] != fmt.Sprint(fence.FencingToken) {
		t.Fatalf("the fenced message's headers: %v", headers)
	}

	// After resigning, the same fence is refused and nothing changes.
	go func() {
		for range e.Events() {
		}
	}()
	e.Close()
	if _, ok := e.Fence(); ok {
		t.Fatal("a fence after resigning")
	}
	_, err = pub.Publish(ctx, &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("late task")}, warren.WithFence(fence))
	refusedFence(t, "publish", err)
	// Unfenced, the same publish goes through (the queue was reachable).
	late, err := pub.Publish(ctx, &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte("unfenced")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the unfenced message", func() bool { return got.count(late) == 1 })
	if got.distinct() != 2 {
		t.Fatalf("%d messages delivered, want the two accepted ones", got.distinct())
	}
	_, err = client.PutConfig(ctx, key, []byte("by a deposed leader"), warren.WithFence(fence))
	refusedFence(t, "put", err)
	refusedFence(t, "delete", client.DeleteConfig(ctx, key, warren.WithFence(fence)))
	if v := value(t, client, key); v != "by the leader" {
		t.Fatalf("value after refused writes: %q", v)
	}
}

func TestLockFenceHoldsUntilRelease(t *testing.T) {
	t.Parallel()
	client := shared(t)
	name, key := unique("go-lock-fence"), unique("go-lock-fence-key")
	lock := acquire(t, client.NewLocker(warren.LockerOptions{}), name, warren.AcquireOptions{})
	fence := lock.Fence()
	if fence.GetLock() != name || fence.FencingToken != lock.FencingToken() {
		t.Fatalf("the lock's fence: %v", fence)
	}
	ctx := context.Background()
	if _, err := client.PutConfig(ctx, key, []byte("1"), warren.WithFence(fence)); err != nil {
		t.Fatal(err)
	}
	lock.Release()
	_, err := client.PutConfig(ctx, key, []byte("2"), warren.WithFence(fence))
	refusedFence(t, "put after release", err)
	_, err = client.Txn(ctx, nil, []*warrenv1.TxnOp{warren.PutOp(key, []byte("3"))}, fence)
	refusedFence(t, "txn after release", err)
	if v := value(t, client, key); v != "1" {
		t.Fatalf("value %q after refused writes", v)
	}
}

func TestTxnIsAllOrNothing(t *testing.T) {
	t.Parallel()
	client := shared(t)
	p := unique("go-txn")
	a, b, c := p+"/a", p+"/b", p+"/c"
	ctx := context.Background()
	entryA, err := client.PutConfig(ctx, a, []byte("a0"))
	if err != nil {
		t.Fatal(err)
	}
	put(t, client.Config, c, "c0")
	ops := []*warrenv1.TxnOp{warren.PutOp(a, []byte("a1")), warren.PutOp(b, []byte("b1")), warren.DeleteOp(c)}

	// A failing check at each position, or a failing op: nothing changes,
	// and the error names the first failure.
	for _, bad := range []struct {
		checks []*warrenv1.TxnCheck
		ops    []*warrenv1.TxnOp
		want   string
	}{
		{[]*warrenv1.TxnCheck{warren.CheckVersion(a, entryA.Version+1), warren.CheckMissing(b)}, ops, "checks[0]"},
		{[]*warrenv1.TxnCheck{warren.CheckVersion(a, entryA.Version), warren.CheckExists(b)}, ops, "checks[1]"},
		{nil, append(append([]*warrenv1.TxnOp(nil), ops...), warren.PutOp(p+"/d", nil, warren.ExpectVersion(3))), "ops[3]"},
		{nil, []*warrenv1.TxnOp{warren.PutOp(b, []byte("b1")), warren.PutOp(a, nil, warren.CreateOnly())}, "ops[1]"},
	} {
		_, err := client.Txn(ctx, bad.checks, bad.ops, nil)
		if status.Code(err) != codes.FailedPrecondition || !strings.HasPrefix(status.Convert(err).Message(), bad.want) {
			t.Fatalf("txn failing at %s: %v", bad.want, err)
		}
		if va, vb, vc := value(t, client, a), value(t, client, b), value(t, client, c); va != "a0" || vb != "<missing>" || vc != "c0" {
			t.Fatalf("after a txn failing at %s: a=%s b=%s c=%s", bad.want, va, vb, vc)
		}
	}

	entries, err := client.Txn(ctx, []*warrenv1.TxnCheck{warren.CheckVersion(a, entryA.Version), warren.CheckMissing(b),
		warren.CheckExists(c)}, ops, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Key != a || string(entries[0].Value) != "a1" || entries[0].Version != entryA.Version+1 ||
		entries[1].Key != b || string(entries[1].Value) != "b1" {
		t.Fatalf("txn entries: %v", entries)
	}
	if va, vb, vc := value(t, client, a), value(t, client, b), value(t, client, c); va != "a1" || vb != "b1" || vc != "<missing>" {
		t.Fatalf("after the txn: a=%s b=%s c=%s", va, vb, vc)
	}
	if _, err := client.Txn(ctx, nil, nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an empty txn: %v", err)
	}
}

// heldLog records a Registration's callbacks.
type heldLog struct {
	mu     sync.Mutex
	held   []string
	losses []warren.LossReason
}

func (l *heldLog) onHeld(e *warrenv1.ConfigEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = append(l.held, string(e.Value))
}

func (l *heldLog) onLost(r warren.LossReason, _ error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.losses = append(l.losses, r)
}

func (l *heldLog) counts() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.held), len(l.losses)
}

func waitHeld(t *testing.T, r *warren.Registration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitHeld(ctx); err != nil {
		t.Fatalf("WaitHeld: %v", err)
	}
}

func TestRegistrationHoldsAKeyWhileOpen(t *testing.T) {
	t.Parallel()
	client := shared(t)
	key := unique("go-services") + "/api/host-1"
	var log heldLog
	r := client.HoldKey(context.Background(), warren.RegistrationOptions{Key: key, Value: []byte("10.0.0.1:80"),
		OnHeld: log.onHeld, OnLost: log.onLost})
	defer r.Close()
	waitHeld(t, r)
	e, err := getEntry(t, client, key)
	if err != nil || !e.Held || string(e.Value) != "10.0.0.1:80" || !r.Held() || !r.Entry().Held {
		t.Fatalf("a held key: %v (%v); Held %v", e, err, r.Held())
	}
	// Readers see a value change.
	if err := r.SetValue([]byte("10.0.0.1:81")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the new value", func() bool { return value(t, client, key) == "10.0.0.1:81" })
	waitFor(t, 10*time.Second, "OnHeld for the new value", func() bool { n, _ := log.counts(); return n == 2 })

	// Another holder of the same key is refused, and leaves nothing.
	other := client.HoldKey(context.Background(), warren.RegistrationOptions{Key: key, Value: []byte("x")})
	select {
	case <-other.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("a second holder of a held key did not end")
	}
	if status.Code(other.Err()) != codes.AlreadyExists || other.Held() {
		t.Fatalf("a second holder: %v", other.Err())
	}
	if v := value(t, client, key); v != "10.0.0.1:81" || !r.Held() {
		t.Fatalf("after the refused holder: %q, held %v", v, r.Held())
	}

	// Close deletes it at once.
	r.Close()
	if _, err := getEntry(t, client, key); status.Code(err) != codes.NotFound {
		t.Fatalf("after Close: %v", err)
	}
	if r.Held() || r.Err() != nil {
		t.Fatalf("after Close: held %v, err %v", r.Held(), r.Err())
	}
	if _, losses := log.counts(); losses != 0 {
		t.Fatalf("%d losses reported for a registration that was closed", losses)
	}
}

func TestRegistrationIsHeldAgainAfterABrokenStream(t *testing.T) {
	t.Parallel()
	srv := startWarrend(t, ownRoot("go-hold-break"))
	client := dial(t, srv.Addr())
	key := unique("go-hold-break") + "/instance"
	var log heldLog
	r := client.HoldKey(context.Background(), warren.RegistrationOptions{Key: key, Value: []byte("me"),
		Backoff: fast, OnHeld: log.onHeld, OnLost: log.onLost})
	defer r.Close()
	waitHeld(t, r)

	// A graceful stop: the stream breaks, the key goes with the server's
	// session, and the Registration holds it again once the server is back.
	srv.Stop()
	waitFor(t, 10*time.Second, "the loss", func() bool { return !r.Held() })
	srv.Restart()
	waitHeld(t, r)
	if e, err := getEntry(t, client, key); err != nil || !e.Held || string(e.Value) != "me" {
		t.Fatalf("after the restart: %v (%v)", e, err)
	}

	// A crash: the old node lingers until the dead server's session
	// expires; the Registration waits that out and holds the key again.
	srv.Kill()
	waitFor(t, 10*time.Second, "the loss", func() bool { return !r.Held() })
	srv.Restart()
	waitHeld(t, r)
	if e, err := getEntry(t, client, key); err != nil || !e.Held || string(e.Value) != "me" {
		t.Fatalf("after the crash: %v (%v)", e, err)
	}
	if r.Err() != nil {
		t.Fatalf("the registration ended: %v", r.Err())
	}
	if held, losses := log.counts(); held != 3 || losses != 2 {
		t.Fatalf("%d helds and %d losses, want 3 and 2", held, losses)
	}
}
