// config prints a config value and prints it again each time it changes;
// with -set it writes the value instead and exits.
//
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/config -key app/greeting
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/config -key app/greeting -set hi
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
)

func main() {
	key := flag.String("key", envOr("WARREN_CONFIG_KEY", "demo/greeting"), "the config key")
	set := flag.String("set", "", "write this value to the key and exit")
	changes := flag.Int("changes", 0, "exit after this many changes (0: run until interrupted)")
	timeout := flag.Duration("timeout", 0, "give up after this long (0: never)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	address := envOr("WARREN_ADDRESS", "127.0.0.1:50051")
	client, err := warren.Dial(ctx, address)
	if err != nil {
		log.Fatalf("dial %s: %v", address, err)
	}
	defer client.Close()

	if *set != "" {
		resp, err := client.Config.PutConfig(ctx, &warrenv1.PutConfigRequest{
			Key: *key, Value: []byte(*set)})
		if err != nil {
			log.Fatalf("put %s: %v", *key, err)
		}
		fmt.Printf("set %s = %q (version %d)\n", *key, resp.Entry.Value, resp.Entry.Version)
		return
	}

	changed := make(chan warren.Change, 16)
	watcher := client.WatchConfig(ctx, warren.ConfigWatcherOptions{
		Key: *key,
		OnChange: func(c warren.Change) {
			if !c.Initial {
				changed <- c
			}
		},
	})
	defer watcher.Close()
	if err := watcher.WaitReady(ctx); err != nil {
		log.Fatalf("watch %s: %v", *key, err)
	}
	if e, ok := watcher.Get(*key); ok {
		fmt.Printf("%s = %q (version %d)\n", *key, e.Value, e.Version)
	} else {
		fmt.Printf("%s is not set\n", *key)
	}
	for n := 0; *changes == 0 || n < *changes; n++ {
		select {
		case c := <-changed:
			ts := time.Now().Format("15:04:05.000")
			if c.Type == warren.Delete {
				fmt.Printf("%s changed: %s was deleted\n", ts, c.Key)
			} else {
				fmt.Printf("%s changed: %s = %q (version %d)\n", ts, c.Key, c.Entry.Value, c.Entry.Version)
			}
		case <-watcher.Done():
			log.Fatalf("watch ended: %v", watcher.Err())
		case <-ctx.Done():
			if *changes > 0 {
				log.Fatalf("saw %d of %d changes: %v", n, *changes, ctx.Err())
			}
			return
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
