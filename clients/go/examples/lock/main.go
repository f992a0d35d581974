// lock takes a lock (or a place of a semaphore with -limit), holds it for
// -hold while a fenced config write records the holder, and releases it.
//
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/lock -lock demo -hold 5s
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
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func main() {
	hostname, _ := os.Hostname()
	name := flag.String("lock", envOr("WARREN_LOCK", "demo-lock"), "the lock's name")
	limit := flag.Uint("limit", 1, "holders at once (1: a mutex)")
	timeout := flag.Duration("timeout", 0, "give up waiting after this long (0: wait until interrupted)")
	tryOnce := flag.Bool("try-once", false, "take the lock only if it is free now")
	hold := flag.Duration("hold", 3*time.Second, "how long to hold it")
	value := flag.String("value", fmt.Sprintf("%s:%d", hostname, os.Getpid()), "shown to others while holding")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	address := envOr("WARREN_ADDRESS", "127.0.0.1:50051")
	client, err := warren.Dial(ctx, address)
	if err != nil {
		log.Fatalf("dial %s: %v", address, err)
	}
	defer client.Close()

	lock, err := client.NewLocker(warren.LockerOptions{}).Acquire(ctx, *name, warren.AcquireOptions{
		Limit: uint32(*limit), Timeout: *timeout, TryOnce: *tryOnce, Value: []byte(*value),
		OnQueued: func(position uint32, holders []*warrenv1.LockHolder) {
			fmt.Printf("waiting: %d ahead, %d holding\n", position, len(holders))
		}})
	if status.Code(err) == codes.DeadlineExceeded && ctx.Err() == nil {
		log.Fatalf("not acquired: %v", status.Convert(err).Message())
	}
	if err != nil {
		log.Fatalf("acquire %s: %v", *name, err)
	}
	defer lock.Release()
	fmt.Printf("acquired %s as %s, fencing token %d\n", *name, *value, lock.FencingToken())

	// The lock's fence makes this write happen only while the lock holds.
	if _, err := client.PutConfig(lock.Context(), *name+"/holder", []byte(*value),
		warren.WithFence(lock.Fence())); err != nil {
		log.Fatalf("fenced write: %v", err)
	}
	select {
	case <-time.After(*hold):
		lock.Release()
		fmt.Println("released")
	case <-lock.Lost():
		log.Fatalf("lost the lock: %v (%v)", lock.Reason(), lock.Err())
	case <-ctx.Done():
		fmt.Println("interrupted: releasing")
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
