package warren

import (
	"bytes"
	"context"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ChangeType says what happened to a key.
type ChangeType int

const (
	// Put: the key was created or written.
	Put ChangeType = iota + 1
	// Delete: the key was deleted.
	Delete
)

func (t ChangeType) String() string {
	if t == Delete {
		return "delete"
	}
	return "put"
}

// Change is one change of one key, as the ConfigWatcher saw it.
type Change struct {
	Type ChangeType
	Key  string
	// Entry is the new state (Put) or the last known state (Delete).
	Entry *warrenv1.ConfigEntry
	// Previous is the state before the change; nil when the key is new.
	Previous *warrenv1.ConfigEntry
	// Initial is true for the Puts that report the first initial state
	// (the keys as they were when watching started), false for changes.
	Initial bool
}

// ConfigWatcherOptions configure a ConfigWatcher.
type ConfigWatcherOptions struct {
	// Key is the key to watch, or with Prefix the root of the watched
	// subtree (empty with Prefix: every key).
	Key    string
	Prefix bool
	// OnChange, if set, is called for every change, in order, from the
	// watcher's goroutine: first for each key of the initial state, then
	// for each change. It must not block for long.
	OnChange func(Change)
	// HeartbeatInterval is asked of the server; a stream silent for three
	// intervals is treated as broken and watched again. 0 means 30s.
	HeartbeatInterval time.Duration
	// Backoff between re-watches.
	Backoff Backoff
}

// ConfigWatcher keeps the latest state of a key or a prefix. After a broken
// stream it watches again and reconciles: the new initial state replaces
// the old one, and the differences are reported as changes, so OnChange
// sees every key that changed meanwhile (intermediate versions may be
// coalesced, as ZooKeeper itself does).
type ConfigWatcher struct {
	client    warrenv1.ConfigServiceClient
	opts      ConfigWatcherOptions
	reconnect func() // resets the connection's reconnect backoff; may be nil
	cancel    context.CancelFunc
	ready     chan struct{}
	done      chan struct{}

	mu      sync.Mutex
	entries map[string]*warrenv1.ConfigEntry
	err     error
	watches int
}

// WatchConfig starts watching in the background and returns at once; use
// WaitReady to wait for the initial state. It runs until ctx is done, Close
// is called, or the watch ends with a code clients/retry-policy.json marks
// fatal (Err: INVALID_ARGUMENT, PERMISSION_DENIED, ...); after any other
// end (UNAVAILABLE, RESOURCE_EXHAUSTED at the server's watch limit, ...)
// it watches again after a backoff.
func WatchConfig(ctx context.Context, client warrenv1.ConfigServiceClient, opts ConfigWatcherOptions) *ConfigWatcher {
	return watchConfig(ctx, client, opts, nil)
}

func watchConfig(ctx context.Context, client warrenv1.ConfigServiceClient, opts ConfigWatcherOptions, reconnect func()) *ConfigWatcher {
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 30 * time.Second
	}
	w := &ConfigWatcher{client: client, opts: opts, reconnect: reconnect, ready: make(chan struct{}),
		done: make(chan struct{}), entries: map[string]*warrenv1.ConfigEntry{}}
	ctx, w.cancel = context.WithCancel(ctx)
	go w.run(ctx)
	return w
}

// WaitReady waits until the first initial state arrived, or the watcher
// ended (returns Err()), or ctx is done.
func (w *ConfigWatcher) WaitReady(ctx context.Context) error {
	select {
	case <-w.ready:
		return nil
	case <-w.done:
		if err := w.Err(); err != nil {
			return err
		}
		return context.Canceled
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Get returns the latest entry of key, if it exists.
func (w *ConfigWatcher) Get(key string) (*warrenv1.ConfigEntry, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.entries[key]
	return e, ok
}

// Value returns the latest value of the watched key (Prefix false).
func (w *ConfigWatcher) Value() ([]byte, bool) {
	e, ok := w.Get(w.opts.Key)
	return e.GetValue(), ok
}

// Snapshot returns a copy of every watched key's latest entry.
func (w *ConfigWatcher) Snapshot() map[string]*warrenv1.ConfigEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]*warrenv1.ConfigEntry, len(w.entries))
	for k, v := range w.entries {
		out[k] = v
	}
	return out
}

// Watches returns how many times a watch stream delivered an initial state
// (1 + the number of re-watches).
func (w *ConfigWatcher) Watches() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watches
}

// Done is closed when the watcher has ended.
func (w *ConfigWatcher) Done() <-chan struct{} { return w.done }

// Err returns why the watcher ended: nil after Close or cancellation.
func (w *ConfigWatcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Close stops watching and waits for the watcher's goroutine to end.
func (w *ConfigWatcher) Close() error {
	w.cancel()
	<-w.done
	return nil
}

func (w *ConfigWatcher) run(ctx context.Context) {
	defer close(w.done)
	err := runStreams(ctx, w.opts.Backoff, w.reconnect, func() bool { return false }, w.runStream, resubscribe)
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *ConfigWatcher) runStream(ctx context.Context) (progressed bool, err error) {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := w.client.WatchConfig(streamCtx, &warrenv1.WatchConfigRequest{
		Key: w.opts.Key, Prefix: w.opts.Prefix,
		HeartbeatInterval: durationpb.New(w.opts.HeartbeatInterval)}, streamCallOptions()...)
	if err != nil {
		return false, err
	}
	// A watchdog, armed once the initial state is in (heartbeats only
	// start then): silence past three intervals means a dead stream that
	// TCP may take minutes to notice.
	var lastRecv, idle int64
	go func() {
		tick := time.NewTicker(w.opts.HeartbeatInterval / 2)
		defer tick.Stop()
		limit := 3 * w.opts.HeartbeatInterval
		for {
			select {
			case <-streamCtx.Done():
				return
			case <-tick.C:
				last := atomic.LoadInt64(&lastRecv)
				if last != 0 && time.Since(time.Unix(0, last)) > limit {
					atomic.StoreInt64(&idle, 1)
					cancel()
					return
				}
			}
		}
	}()
	// A large initial state arrives in several responses: the ones before
	// the one marked InitialState hold Puts of the same state
	// (docs/config-limits.md). They are gathered and reconciled as one.
	var initial []*warrenv1.ConfigEvent
	synced := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			if atomic.LoadInt64(&idle) == 1 {
				return progressed, errStreamIdle
			}
			if err == io.EOF {
				err = errStreamEnded
			}
			return progressed, err
		}
		atomic.StoreInt64(&lastRecv, time.Now().UnixNano())
		if !synced {
			initial = append(initial, resp.Events...)
			if !resp.InitialState {
				continue
			}
			progressed = true
			synced = true
			w.reconcile(initial)
			initial = nil
			continue
		}
		for _, ev := range resp.Events {
			w.apply(ev)
		}
	}
}

// reconcile replaces the known state with a fresh initial state and reports
// the differences (on the first watch: every key, as a Put).
func (w *ConfigWatcher) reconcile(events []*warrenv1.ConfigEvent) {
	fresh := make(map[string]*warrenv1.ConfigEntry, len(events))
	for _, ev := range events {
		if ev.Type == warrenv1.ConfigEventType_CONFIG_EVENT_TYPE_PUT && ev.Entry != nil {
			fresh[ev.Entry.Key] = ev.Entry
		}
	}
	w.mu.Lock()
	old := w.entries
	w.entries = fresh
	w.watches++
	first := w.watches == 1
	w.mu.Unlock()

	var changes []Change
	for key, entry := range fresh {
		prev, ok := old[key]
		if !ok {
			changes = append(changes, Change{Type: Put, Key: key, Entry: entry, Initial: first})
		} else if !sameEntry(prev, entry) {
			changes = append(changes, Change{Type: Put, Key: key, Entry: entry, Previous: prev})
		}
	}
	for key, prev := range old {
		if _, ok := fresh[key]; !ok {
			changes = append(changes, Change{Type: Delete, Key: key, Entry: prev, Previous: prev})
		}
	}
	// Path order, like the server's listings: a stable, readable order.
	sort.Slice(changes, func(i, j int) bool { return changes[i].Key < changes[j].Key })
	if first {
		close(w.ready)
	}
	for _, c := range changes {
		w.notify(c)
	}
}

func (w *ConfigWatcher) apply(ev *warrenv1.ConfigEvent) {
	if ev.Entry == nil {
		return
	}
	key := ev.Entry.Key
	w.mu.Lock()
	prev := w.entries[key]
	var c Change
	switch ev.Type {
	case warrenv1.ConfigEventType_CONFIG_EVENT_TYPE_PUT:
		w.entries[key] = ev.Entry
		c = Change{Type: Put, Key: key, Entry: ev.Entry, Previous: prev}
	case warrenv1.ConfigEventType_CONFIG_EVENT_TYPE_DELETE:
		delete(w.entries, key)
		c = Change{Type: Delete, Key: key, Entry: ev.Entry, Previous: prev}
	default:
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	w.notify(c)
}

func (w *ConfigWatcher) notify(c Change) {
	if w.opts.OnChange != nil {
		w.opts.OnChange(c)
	}
}

// sameEntry compares what a user can observe. The version alone is not
// enough: a key deleted and created again restarts at version 0.
func sameEntry(a, b *warrenv1.ConfigEntry) bool {
	return a.Version == b.Version && bytes.Equal(a.Value, b.Value) &&
		proto.Equal(a.ModifyTime, b.ModifyTime)
}
