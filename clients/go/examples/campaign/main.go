// campaign campaigns in an election and prints the leader and every event
// until interrupted (or, with -lead-for, resigns after leading that long).
//
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/campaign -election demo
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warren/warren/clients/go/warren"
)

func main() {
	hostname, _ := os.Hostname()
	election := flag.String("election", envOr("WARREN_ELECTION", "demo-election"), "the election's name")
	id := flag.String("id", "", "candidate id (empty: the server generates one)")
	value := flag.String("value", fmt.Sprintf("%s:%d", hostname, os.Getpid()), "value published while leading")
	leadFor := flag.Duration("lead-for", 0, "resign and exit after leading this long (0: run until interrupted)")
	timeout := flag.Duration("timeout", 0, "give up after this long (0: never)")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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

	elector := client.Campaign(ctx, warren.ElectorOptions{
		Election: *election, CandidateID: *id, Value: []byte(*value)})
	fmt.Printf("campaigning in %q as %q\n", *election, *value)

	var resignAt <-chan time.Time
	for {
		select {
		case ev, ok := <-elector.Events():
			if !ok {
				if err := elector.Err(); err != nil {
					log.Fatalf("election ended: %v", err)
				}
				fmt.Println("resigned")
				return
			}
			fmt.Printf("%s %v\n", time.Now().Format("15:04:05.000"), ev)
			switch ev.Kind {
			case warren.Elected:
				fmt.Printf("leader: me (%s), fencing token %d\n", *value, ev.Leader.FencingToken)
				if *leadFor > 0 {
					resignAt = time.After(*leadFor)
				}
			case warren.Following:
				if ev.Leader != nil {
					fmt.Printf("leader: %s\n", ev.Leader.Value)
				} else {
					fmt.Println("leader: nobody right now")
				}
			}
		case <-resignAt:
			resignAt = nil
			go elector.Close() // the Lost (resigned) event and the end follow
		case <-ctx.Done():
			resignAt = nil
			go elector.Close()
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
