// replay reads a RabbitMQ stream queue from where you say: -publish appends
// numbered messages to it; otherwise it prints -count messages from -from
// (first, last, next, an offset, or an RFC 3339 time) with their offsets,
// and the -from to continue with next time.
//
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/replay -stream events -publish 5
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/replay -stream events -from first -count 3
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/replay -stream events -from 3 -count 2
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

func main() {
	stream := flag.String("stream", "events", "the stream queue (declared when missing)")
	publish := flag.Int("publish", 0, "append this many numbered messages and exit")
	from := flag.String("from", "first", "where to start: first, last, next, an offset, or an RFC 3339 time")
	count := flag.Int("count", 10, "how many messages to print")
	timeout := flag.Duration("timeout", 30*time.Second, "give up after this long")
	flag.Parse()
	log.SetFlags(0)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	address := envOr("WARREN_ADDRESS", "127.0.0.1:50051")
	client, err := warren.Dial(ctx, address)
	if err != nil {
		log.Fatalf("dial %s: %v", address, err)
	}
	defer client.Close()

	offset, err := parseOffset(*from)
	if err != nil {
		log.Fatal(err)
	}
	start := &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: *stream},
		QueueOptions: &warrenv1.QueueOptions{QueueType: warrenv1.QueueType_QUEUE_TYPE_STREAM,
			MaxAge: durationpb.New(24 * time.Hour)},
		Offset: offset}
	if *publish > 0 {
		appendNumbered(ctx, client, start, *publish)
		return
	}

	// MaxInFlight 1: handled in offset order, so the last printed offset
	// + 1 is where the next run continues (with more in flight, store the
	// offsets as they are handled and continue after the lowest gap).
	recvCtx, done := context.WithCancel(ctx)
	printed, next := 0, uint64(0)
	err = client.NewSubscriber(warren.SubscriberOptions{Start: start, MaxInFlight: 1,
		OnError: func(err error) { log.Printf("subscriber: %v", err) }}).Receive(recvCtx,
		func(_ context.Context, d *warrenv1.Delivery) error {
			if printed == *count {
				return nil // past what was asked: read again next time
			}
			fmt.Printf("offset %d: %s\n", d.StreamOffset, d.Payload)
			printed, next = printed+1, d.StreamOffset+1
			if printed == *count {
				done()
			}
			return nil
		})
	if err != nil {
		log.Fatalf("subscribe: %v", err)
	}
	if printed < *count {
		log.Fatalf("only %d messages within %v", printed, *timeout)
	}
	fmt.Printf("continue with -from %d\n", next)
}

// appendNumbered declares the stream (by subscribing to it once) and
// publishes "message 0".."message n-1".
func appendNumbered(ctx context.Context, client *warren.Client, start *warrenv1.SubscribeStart, n int) {
	declared, declare := context.WithCancel(ctx)
	sub := client.NewSubscriber(warren.SubscriberOptions{Start: start,
		OnSubscribed: func(string) { declare() }})
	if err := sub.Receive(declared, func(context.Context, *warrenv1.Delivery) error { return nil }); err != nil {
		log.Fatalf("declare %s: %v", start.GetQueue(), err)
	}
	pub := client.NewPublisher(warren.PublisherOptions{})
	for i := 0; i < n; i++ {
		if _, err := pub.Publish(ctx, &warrenv1.PublishRequest{RoutingKey: start.GetQueue(),
			Payload: []byte(fmt.Sprintf("message %d", i))}); err != nil {
			log.Fatalf("publish: %v", err)
		}
	}
	fmt.Printf("published %d messages to %s\n", n, start.GetQueue())
}

func parseOffset(s string) (*warrenv1.StreamOffset, error) {
	switch s {
	case "first":
		return warren.OffsetFirst(), nil
	case "last":
		return warren.OffsetLast(), nil
	case "next":
		return warren.OffsetNext(), nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return warren.OffsetAt(n), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return warren.OffsetTime(t), nil
	}
	return nil, fmt.Errorf("-from %q: want first, last, next, an offset or an RFC 3339 time", s)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
