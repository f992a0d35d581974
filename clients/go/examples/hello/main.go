// hello publishes "Hello, Zookeeper & RabbitMQ!" to a durable queue and
// receives it back through a Subscriber.
//
//	WARREN_ADDRESS=127.0.0.1:50051 go run ./examples/hello -queue test_queue
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
	queue := flag.String("queue", envOr("WARREN_QUEUE", "test_queue"), "the queue (declared durable when missing)")
	message := flag.String("message", "Hello, Zookeeper & RabbitMQ!", "the message to send")
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
	fmt.Printf("connected to %s\n", address)

	// Subscribe first: with a bare queue name the server declares the queue
	// durable when it is missing, so the message has somewhere to go.
	subscribed := make(chan string, 1)
	received := make(chan *warrenv1.Delivery, 1)
	id := warren.NewMessageID()
	sub := client.NewSubscriber(warren.SubscriberOptions{
		Start:       &warrenv1.SubscribeStart{Source: &warrenv1.SubscribeStart_Queue{Queue: *queue}},
		MaxInFlight: 1,
		// Called again after a resubscription, when nobody waits any more.
		OnSubscribed: func(q string) {
			select {
			case subscribed <- q:
			default:
			}
		},
		OnError: func(err error) { log.Printf("subscriber: %v", err) },
	})
	recvCtx, stopReceiving := context.WithCancel(ctx)
	receiveDone := make(chan error, 1)
	go func() {
		receiveDone <- sub.Receive(recvCtx, func(_ context.Context, d *warrenv1.Delivery) error {
			fmt.Printf("received: %s (message id %s)\n", d.Payload, d.MessageId)
			if d.MessageId == id {
				received <- d
			}
			return nil // ack
		})
	}()
	select {
	case q := <-subscribed:
		fmt.Printf("subscribed to queue %s\n", q)
	case err := <-receiveDone:
		log.Fatalf("subscribe: %v", err)
	case <-ctx.Done():
		log.Fatalf("subscribe: %v", ctx.Err())
	}

	pub := client.NewPublisher(warren.PublisherOptions{})
	if _, err := pub.Publish(ctx, &warrenv1.PublishRequest{
		RoutingKey: *queue, // the default exchange routes by queue name
		Payload:    []byte(*message), ContentType: "text/plain", MessageId: id,
	}); err != nil {
		log.Fatalf("publish: %v", err)
	}
	fmt.Printf("published: %s (message id %s)\n", *message, id)

	select {
	case <-received:
	case <-ctx.Done():
		log.Fatalf("no message received: %v", ctx.Err())
	}
	stopReceiving()
	if err := <-receiveDone; err != nil {
		log.Fatalf("subscriber: %v", err)
	}
	fmt.Println("done: the message made the round trip")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
