package warren

import (
	"context"
	"fmt"
	"log"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Reply is what a RequestHandler answers.
type Reply struct {
	Payload     []byte
	Headers     map[string]string
	ContentType string
}

// RequestHandler answers one request. Returning a reply publishes it to the
// requester; returning an error nacks the request like a Handler's error
// (requeued, dead-lettered with DeadLetterOnError, or retried later with
// RetryAfter) and sends no reply. A nil reply is an empty one.
type RequestHandler func(ctx context.Context, req *warrenv1.Delivery) (*Reply, error)

// ResponderOptions configure a Responder.
type ResponderOptions struct {
	// What to consume (a queue, or a topic binding with a group) and how;
	// see SubscriberOptions. OnError also receives the requests skipped for
	// having no reply address and the replies that found no requester.
	SubscriberOptions
	// How replies are published (retries, attempt timeout).
	Publisher PublisherOptions
}

// Responder serves requests (Call, or any message with a reply address):
// it runs a RequestHandler per request, publishes the reply on the default
// exchange to the request's ReplyTo with its CorrelationId, and acks the
// request once the broker confirmed the reply.
//
// A request without a reply address is acked and skipped (reported to
// OnError, or logged). A reply that no queue receives (the requester gave up
// or is gone; FAILED_PRECONDITION) is dropped and the request acked: a
// requeued request would find no requester either.
type Responder struct {
	sub *Subscriber
	pub *Publisher
}

// NewResponder returns a Responder over a MessagingService stub.
func NewResponder(client warrenv1.MessagingServiceClient, opts ResponderOptions) *Responder {
	return &Responder{sub: NewSubscriber(client, opts.SubscriberOptions), pub: NewPublisher(client, opts.Publisher)}
}

// NewResponder returns a Responder on this client's connection.
func (c *Client) NewResponder(opts ResponderOptions) *Responder {
	r := NewResponder(c.Messaging, opts)
	r.sub.reconnect = c.Conn.ResetConnectBackoff
	r.pub.reconnect = c.Conn.ResetConnectBackoff
	return r
}

// Serve answers requests until ctx is done, like Subscriber.Receive (which
// it is): it stops cleanly and returns nil, or returns a fatal error.
func (r *Responder) Serve(ctx context.Context, h RequestHandler) error {
	return r.sub.Receive(ctx, func(ctx context.Context, d *warrenv1.Delivery) error {
		if d.ReplyTo == "" {
			r.report(fmt.Errorf("warren: request %q has no reply address: acked without an answer", d.MessageId))
			return nil
		}
		reply, err := h(ctx, d)
		if err != nil {
			return err
		}
		if reply == nil {
			reply = &Reply{}
		}
		_, err = r.pub.Publish(ctx, &warrenv1.PublishRequest{RoutingKey: d.ReplyTo,
			CorrelationId: d.CorrelationId, Payload: reply.Payload, Headers: reply.Headers,
			ContentType: reply.ContentType})
		if status.Code(err) == codes.FailedPrecondition {
			r.report(fmt.Errorf("warren: the requester of %q is gone, its reply dropped: %w", d.MessageId, err))
			return nil
		}
		return err
	})
}

func (r *Responder) report(err error) {
	if r.sub.opts.OnError != nil {
		r.sub.opts.OnError(err)
		return
	}
	log.Print(err)
}
