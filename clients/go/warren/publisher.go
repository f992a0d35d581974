package warren

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/protobuf/proto"
)

// PublisherOptions configure a Publisher. The zero value is usable.
type PublisherOptions struct {
	// Backoff between attempts (zero: clients/retry-policy.json's).
	Backoff Backoff
	// MaxAttempts, when set, bounds the attempts of one Publish (the first
	// one included). 0 means no bound but the caller's context, as
	// clients/retry-policy.json says: give Publish a deadline.
	MaxAttempts int
	// AttemptTimeout, when set, bounds each attempt; an attempt that runs
	// out of it is retried (see Publish). 0 means only the caller's context
	// bounds the attempts.
	AttemptTimeout time.Duration
	// AllowUnroutable publishes with mandatory off, so that a message no
	// queue is bound for is dropped by the broker while Publish succeeds.
	// By default (false) every request is sent with Mandatory set, and such
	// a message fails with FAILED_PRECONDITION.
	AllowUnroutable bool
}

// Publisher publishes messages with at-least-once semantics: every message
// gets a client-generated id before the first attempt, and every retry
// reuses it, so a consumer that sees the same id twice knows it is a
// duplicate (the broker may have stored a message whose confirm was lost).
type Publisher struct {
	client    warrenv1.MessagingServiceClient
	opts      PublisherOptions
	reconnect func() // resets the connection's reconnect backoff; may be nil
}

// NewPublisher returns a Publisher over a MessagingService stub.
func NewPublisher(client warrenv1.MessagingServiceClient, opts PublisherOptions) *Publisher {
	return &Publisher{client: client, opts: opts}
}

// Publish sends msg and returns its message id once the broker confirmed it.
// msg is not modified; when its MessageId is empty a UUID is generated, and
// unless AllowUnroutable is set (or the message is delayed: WithDelay) it is
// sent with Mandatory on.
//
// A failure is retried, with the same message id, after the backoff, when
// clients/retry-policy.json says "retry" for its code (UNAVAILABLE,
// RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNKNOWN, DEADLINE_EXCEEDED of an
// attempt's own AttemptTimeout, ...): the publish may or may not have
// reached the broker, and the id lets consumers de-duplicate. The other
// codes (NOT_FOUND exchange, FAILED_PRECONDITION for an unroutable message,
// INVALID_ARGUMENT, PERMISSION_DENIED, ...) are returned at once, and so is
// the end of ctx: the caller has given up.
//
// WithFence(fence) publishes only while the fence holds (checked by the
// server just before the publish): a fence that no longer holds fails with
// FAILED_PRECONDITION, nothing published, and is not retried. The message
// carries the fence in its headers `warren-fence` and
// `warren-fencing-token`, so that consumers can drop a deposed holder's
// messages.
func (p *Publisher) Publish(ctx context.Context, msg *warrenv1.PublishRequest, opts ...PublishOption) (string, error) {
	req := proto.Clone(msg).(*warrenv1.PublishRequest)
	for _, o := range opts {
		o.applyPublish(req)
	}
	if req.MessageId == "" {
		req.MessageId = NewMessageID()
	}
	// A delayed message is routed later: the server refuses mandatory.
	if !p.opts.AllowUnroutable && !delayed(req) {
		req.Mandatory = true
	}
	var err error
	for attempt := 0; p.opts.MaxAttempts <= 0 || attempt < p.opts.MaxAttempts; attempt++ {
		if attempt > 0 {
			if serr := sleep(ctx, p.opts.Backoff.Delay(attempt-1)); serr != nil {
				return req.MessageId, err // the last real failure says more
			}
			if p.reconnect != nil {
				p.reconnect()
			}
		}
		var resp *warrenv1.PublishResponse
		resp, err = p.attempt(ctx, req)
		if err == nil {
			return resp.MessageId, nil
		}
		if !retryUnary(ctx, err) {
			return req.MessageId, err
		}
	}
	return req.MessageId, err
}

// PublishOption changes one Publish: WithFence, WithDelay, WithReplyTo,
// WithCorrelationID.
type PublishOption interface {
	applyPublish(*warrenv1.PublishRequest)
}

func (p *Publisher) attempt(ctx context.Context, req *warrenv1.PublishRequest) (*warrenv1.PublishResponse, error) {
	if p.opts.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.AttemptTimeout)
		defer cancel()
	}
	return p.client.Publish(ctx, req)
}

// NewMessageID returns a random (version 4) UUID, the same shape as the ids
// the server generates.
func NewMessageID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("warren: no randomness for a message id: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
