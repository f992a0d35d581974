package warren

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// PublisherOptions configure a Publisher. The zero value is usable.
type PublisherOptions struct {
	// Backoff between attempts.
	Backoff Backoff
	// MaxAttempts bounds the attempts of one Publish (the first one
	// included); 0 means 10. The caller's context bounds them too.
	MaxAttempts int
	// AttemptTimeout, when set, bounds each attempt; an attempt that runs
	// out of it is retried (see Publish). 0 means only the caller's context
	// bounds the attempts.
	AttemptTimeout time.Duration
}

// Publisher publishes messages with at-least-once semantics: every message
// gets a client-generated id before the first attempt, and every retry
// reuses it, so a consumer that sees the same id twice knows it is a
// duplicate (the broker may have stored a message whose confirm was lost).
type Publisher struct {
	client warrenv1.MessagingServiceClient
	opts   PublisherOptions
}

// NewPublisher returns a Publisher over a MessagingService stub.
func NewPublisher(client warrenv1.MessagingServiceClient, opts PublisherOptions) *Publisher {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 10
	}
	return &Publisher{client: client, opts: opts}
}

// Publish sends msg and returns its message id once the broker confirmed it.
// msg is not modified; when its MessageId is empty a UUID is generated.
//
// Retried, with the same message id:
//   - UNAVAILABLE: the server or its broker connection is down; the publish
//     may or may not have reached the broker, so retrying is safe only
//     because the id lets consumers de-duplicate.
//   - DEADLINE_EXCEEDED, but only when the per-attempt AttemptTimeout ran
//     out while the caller's context is still alive: the outcome is unknown,
//     exactly like a lost confirm. A deadline of the caller's own context is
//     returned at once (the caller has given up).
//
// Everything else (NOT_FOUND exchange, FAILED_PRECONDITION unroutable
// mandatory message, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...) is returned
// at once: repeating the same request cannot succeed.
func (p *Publisher) Publish(ctx context.Context, msg *warrenv1.PublishRequest) (string, error) {
	req := proto.Clone(msg).(*warrenv1.PublishRequest)
	if req.MessageId == "" {
		req.MessageId = NewMessageID()
	}
	var err error
	for attempt := 0; attempt < p.opts.MaxAttempts; attempt++ {
		if attempt > 0 {
			if serr := sleep(ctx, p.opts.Backoff.Delay(attempt-1)); serr != nil {
				return req.MessageId, err // the last real failure says more
			}
		}
		var resp *warrenv1.PublishResponse
		resp, err = p.attempt(ctx, req)
		if err == nil {
			return resp.MessageId, nil
		}
		if ctx.Err() != nil || !p.retryable(err) {
			return req.MessageId, err
		}
	}
	return req.MessageId, err
}

func (p *Publisher) attempt(ctx context.Context, req *warrenv1.PublishRequest) (*warrenv1.PublishResponse, error) {
	if p.opts.AttemptTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.AttemptTimeout)
		defer cancel()
	}
	return p.client.Publish(ctx, req)
}

func (p *Publisher) retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.DeadlineExceeded:
		// Publish checked the caller's context before: this was ours.
		return p.opts.AttemptTimeout > 0
	}
	return false
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
