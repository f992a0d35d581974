// rpc is request/reply over the broker: with -serve it answers requests on
// a queue (a Responder: the reply is the request upper-cased); otherwise it
// sends one request with Call and prints the reply.
//
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/rpc -queue shout -serve
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/rpc -queue shout -call "hello"
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/warren/warren/clients/go/warren"
	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
)

func main() {
	queue := flag.String("queue", "shout", "the queue requests go to")
	serve := flag.Bool("serve", false, "answer requests until interrupted")
	request := flag.String("call", "hello", "the request to send (without -serve)")
	timeout := flag.Duration("timeout", 10*time.Second, "how long a call waits for its reply")
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

	if *serve {
		responder := client.NewResponder(warren.ResponderOptions{SubscriberOptions: warren.SubscriberOptions{
			Start:        &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: *queue}},
			OnSubscribed: func(q string) { fmt.Printf("serving requests on %s\n", q) },
			OnError:      func(err error) { log.Printf("responder: %v", err) },
		}})
		// Serve returns nil once interrupted, after the running requests
		// were answered.
		err := responder.Serve(ctx, func(_ context.Context, req *warrenv1.Delivery) (*warren.Reply, error) {
			fmt.Printf("request: %s\n", req.Payload)
			return &warren.Reply{Payload: bytes.ToUpper(req.Payload), ContentType: "text/plain"}, nil
		})
		if err != nil {
			log.Fatalf("serve: %v", err)
		}
		return
	}

	reply, err := client.Call(ctx, &warrenv1.PublishRequest{RoutingKey: *queue, Payload: []byte(*request),
		ContentType: "text/plain"}, *timeout)
	var timedOut *warren.TimeoutError
	switch {
	case errors.As(err, &timedOut):
		log.Fatalf("no reply within %v: is a responder serving %s?", *timeout, *queue)
	case err != nil:
		log.Fatalf("call: %v", err) // FAILED_PRECONDITION: no queue named so
	}
	fmt.Printf("reply: %s\n", reply.Payload)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
