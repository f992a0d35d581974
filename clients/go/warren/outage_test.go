package warren_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc"
)

// outage is how long TestWrappersAreBackWithinSecondsOfALongOutage keeps
// the server down: WARREN_OUTAGE_SECONDS, 40 by default, long enough for
// gRPC's default reconnect backoff (which grows to 120 s) to have grown
// past the 5 s the wrappers get to recover.
func outage(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("WARREN_OUTAGE_SECONDS")
	if s == "" {
		return 40 * time.Second
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		t.Fatalf("WARREN_OUTAGE_SECONDS=%q is not a number of seconds", s)
	}
	return time.Duration(n * float64(time.Second))
}

// stamped records when each awaited thing happened.
type stamped struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (s *stamped) mark(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[what]; !ok {
		s.seen[what] = time.Now()
	}
}

func (s *stamped) at(what string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.seen[what]
	return t, ok
}

func TestWrappersAreBackWithinSecondsOfALongOutage(t *testing.T) {
	t.Parallel()
	down := outage(t)
	srv := startWarrend(t, ownRoot("go-outage"))
	client := dial(t, srv.Addr()) // warren.Dial's own reconnect backoff
	seen := &stamped{seen: map[string]time.Time{}}

	// A subscriber, a config watcher and an elector, through the wrappers.
	q := unique("go-outage")
	sub := startReceiving(t, client, warren.SubscriberOptions{Start: queueStart(q)},
		func(_ context.Context, d *warrenv1.Delivery) error {
			seen.mark("delivery " + string(d.Payload))
			return nil
		})
	key := unique("go-outage") + "/setting"
	watcher := client.WatchConfig(context.Background(), warren.ConfigWatcherOptions{Key: key,
		OnChange: func(c warren.Change) {
			if c.Type == warren.Put {
				seen.mark("change " + string(c.Entry.Value))
			}
		}})
	defer watcher.Close()
	elector := client.Campaign(context.Background(), warren.ElectorOptions{Election: unique("go-outage")})
	defer elector.Close()
	var elections, losses int
	var electorMu sync.Mutex
	go func() {
		for ev := range elector.Events() {
			electorMu.Lock()
			switch ev.Kind {
			case warren.Elected:
				elections++
				seen.mark("elected " + strconv.Itoa(elections))
			case warren.Lost:
				losses++
				seen.mark("lost " + strconv.Itoa(losses))
			}
			electorMu.Unlock()
		}
	}()
	publisher := client.NewPublisher(warren.PublisherOptions{})
	put := func(value string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.Config.PutConfig(ctx, &warrenv1.PutConfigRequest{Key: key, Value: []byte(value)},
			grpc.WaitForReady(true))
		return err
	}
	publish := func(payload string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := publisher.Publish(ctx, &warrenv1.PublishRequest{RoutingKey: q, Payload: []byte(payload)})
		return err
	}

	// They work.
	if err := publish("before"); err != nil {
		t.Fatalf("publish before the outage: %v", err)
	}
	if err := put("before"); err != nil {
		t.Fatalf("put before the outage: %v", err)
	}
	for _, what := range []string{"delivery before", "change before", "elected 1"} {
		waitFor(t, 20*time.Second, what, func() bool { _, ok := seen.at(what); return ok })
	}

	// The server crashes and stays away.
	srv.Kill()
	waitFor(t, 10*time.Second, "the elector to lose", func() bool { _, ok := seen.at("lost 1"); return ok })
	time.Sleep(down) // the outage itself: nothing to await
	srv.Restart()
	back := time.Now()

	// Within 5 s of the server's return everything works again. First the
	// streams on their own: a publish or a put would retry and reset the
	// connection's backoff, and so hide a stream that waits for it.
	const within = 5 * time.Second
	streams := map[string]func() bool{
		"resubscribed": func() bool { return sub.subscriptions() >= 2 },
		"watching":     func() bool { return watcher.Watches() >= 2 },
		"leading":      func() bool { _, ok := seen.at("elected 2"); return ok },
	}
	// Longer than within, to measure how late a slow recovery is.
	waitFor(t, 30*time.Second, "the streams to be back", func() bool {
		all := true
		for what, ok := range streams {
			if ok() {
				seen.mark(what)
			} else {
				all = false
			}
		}
		return all
	})
	// Then a message published and a change put after the return arrive.
	if err := publish("after"); err != nil {
		t.Fatalf("publish after the outage: %v", err)
	}
	seen.mark("published")
	if err := put("after"); err != nil {
		t.Fatalf("put after the outage: %v", err)
	}
	steps := []string{"resubscribed", "watching", "leading", "published", "delivery after", "change after"}
	for _, what := range steps {
		waitFor(t, 30*time.Second, what, func() bool { _, ok := seen.at(what); return ok })
	}
	for _, what := range steps {
		at, _ := seen.at(what)
		took := at.Sub(back)
		t.Logf("after a %v outage: %-14s %v after the server's return", down, what, took.Round(time.Millisecond))
		if took > within {
			t.Errorf("%s %v after the server's return, want within %v", what, took, within)
		}
	}
}
