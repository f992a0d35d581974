package warren_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// changeLog records a watcher's changes as "put k=v", "delete k".
type changeLog struct {
	mu  sync.Mutex
	all []string
}

func (l *changeLog) record(c warren.Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := fmt.Sprintf("%v %s", c.Type, c.Key)
	if c.Type == warren.Put {
		s += "=" + string(c.Entry.Value)
	}
	if c.Initial {
		s += " (initial)"
	}
	l.all = append(l.all, s)
}

func (l *changeLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.all[n:]...)
}

func (l *changeLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func put(t *testing.T, c warrenv1.ConfigServiceClient, key, value string) {
	t.Helper()
	if _, err := c.PutConfig(context.Background(), &warrenv1.PutConfigRequest{Key: key, Value: []byte(value)}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func del(t *testing.T, c warrenv1.ConfigServiceClient, key string) {
	t.Helper()
	if _, err := c.DeleteConfig(context.Background(), &warrenv1.DeleteConfigRequest{Key: key}); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

func TestConfigWatcherFollowsAKeyAndAPrefix(t *testing.T) {
	t.Parallel()
	client := shared(t)
	prefix := unique("go-config")
	put(t, client.Config, prefix+"/a", "1")

	var log changeLog
	w := client.WatchConfig(context.Background(), warren.ConfigWatcherOptions{
		Key: prefix, Prefix: true, OnChange: log.record})
	defer w.Close()
	single := client.WatchConfig(context.Background(), warren.ConfigWatcherOptions{Key: prefix + "/b"})
	defer single.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := single.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := single.Value(); ok {
		t.Fatal("the single key exists before it was written")
	}
	// Only what was put: the parent PutConfig created for prefix/a is a
	// namespace node, not a key, and no watch reports it.
	waitFor(t, 5*time.Second, "the initial state", func() bool { return log.len() == 1 })
	if got := log.since(0); got[0] != "put "+prefix+"/a=1 (initial)" {
		t.Fatalf("initial state reported as %v", got)
	}

	put(t, client.Config, prefix+"/b", "2")
	put(t, client.Config, prefix+"/a", "3")
	del(t, client.Config, prefix+"/a")
	want := []string{"put " + prefix + "/b=2", "put " + prefix + "/a=3", "delete " + prefix + "/a"}
	waitFor(t, 20*time.Second, "three changes", func() bool { return log.len() >= 4 })
	if got := log.since(1); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("changes %v, want %v", got, want)
	}
	waitFor(t, 20*time.Second, "the single-key watcher", func() bool {
		v, ok := single.Value()
		return ok && string(v) == "2"
	})
	snap := w.Snapshot()
	if len(snap) != 1 || string(snap[prefix+"/b"].GetValue()) != "2" {
		t.Fatalf("snapshot %v", snap)
	}
}

func TestConfigWatcherReconcilesAfterServerRestart(t *testing.T) {
	t.Parallel()
	// Two servers of one cluster (same root): the watched one restarts
	// while the other changes the configuration.
	root := ownRoot("go-config-restart")
	watched := startWarrend(t, root)
	other := startWarrend(t, root)
	wc, oc := dial(t, watched.Addr()), dial(t, other.Addr())
	prefix := "app"
	put(t, oc.Config, prefix+"/keep", "same")
	put(t, oc.Config, prefix+"/change", "old")
	put(t, oc.Config, prefix+"/gone", "bye")

	var log changeLog
	w := wc.WatchConfig(context.Background(), warren.ConfigWatcherOptions{
		Key: prefix, Prefix: true, OnChange: log.record, Backoff: fast})
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the initial state", func() bool { return log.len() == 3 }) // "app" is no key

	watched.Stop()
	put(t, oc.Config, prefix+"/change", "new")
	del(t, oc.Config, prefix+"/gone")
	put(t, oc.Config, prefix+"/added", "hi")
	watched.Restart()

	waitFor(t, 30*time.Second, "the re-watch", func() bool { return w.Watches() == 2 && log.len() >= 6 })
	got := log.since(3)
	sort.Strings(got)
	want := []string{"delete " + prefix + "/gone", "put " + prefix + "/added=hi", "put " + prefix + "/change=new"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("changes reported after the re-watch: %v, want %v", got, want)
	}
	snap := w.Snapshot()
	if len(snap) != 3 || string(snap[prefix+"/keep"].GetValue()) != "same" ||
		string(snap[prefix+"/change"].GetValue()) != "new" || string(snap[prefix+"/added"].GetValue()) != "hi" {
		t.Fatalf("snapshot after the re-watch: %v", snap)
	}
}

// At the server's watch limit a watch ends with RESOURCE_EXHAUSTED, which
// clients/retry-policy.json says to retry: the second watcher keeps trying
// and gets its watch once the first one's slot is free. A fatal code
// (INVALID_ARGUMENT for a malformed key) ends a watcher at once instead.
func TestConfigWatcherRetriesAtTheWatchLimitAndStopsOnAFatalCode(t *testing.T) {
	t.Parallel()
	srv := startWarrend(t, ownRoot("go-watch-limit"), "--max_watches_per_client=1")
	client := dial(t, srv.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	first := client.WatchConfig(context.Background(), warren.ConfigWatcherOptions{Key: "limit/first"})
	defer first.Close()
	if err := first.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	second := client.WatchConfig(context.Background(), warren.ConfigWatcherOptions{Key: "limit/second"})
	defer second.Close()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := second.WaitReady(short); err != context.DeadlineExceeded {
		t.Fatalf("a second watch over the limit of one: %v, want it still waiting", err)
	}
	first.Close()
	if err := second.WaitReady(ctx); err != nil {
		t.Fatalf("the second watcher once the first closed: %v", err)
	}

	bad := client.WatchConfig(context.Background(), warren.ConfigWatcherOptions{Key: "a//b"})
	defer bad.Close()
	select {
	case <-bad.Done():
		if status.Code(bad.Err()) != codes.InvalidArgument {
			t.Fatalf("a malformed key ended the watcher with %v, want INVALID_ARGUMENT", bad.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a watcher of a malformed key still runs after 10s")
	}
}
