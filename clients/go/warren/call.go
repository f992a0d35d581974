package warren

import (
	"context"
	"fmt"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Call sends msg as a request (MessagingService.Call: the server publishes
// it with a reply address of its own and a fresh correlation id) and
// returns the first reply, a Delivery (its DeliveryId is 0: a reply needs
// no ack).
//
// timeout, when positive, bounds the wait (and so does ctx); with neither,
// the server's call_timeout (30 s by default) does. No reply in time is a
// *TimeoutError (errors.Is(err, context.DeadlineExceeded), status code
// DEADLINE_EXCEEDED). msg is not modified; it is sent with a generated
// MessageId when it has none and with Mandatory on, so that a request no
// queue receives fails at once with FAILED_PRECONDITION rather than waiting
// out the timeout. Its ReplyTo and CorrelationId must be empty and it
// cannot be delayed (INVALID_ARGUMENT).
//
// A Call is never retried: the request may have been handled even when the
// reply is lost (UNAVAILABLE: the server lost its reply channel), and only
// the caller knows whether doing it twice is harmless.
func Call(ctx context.Context, client warrenv1.MessagingServiceClient, msg *warrenv1.PublishRequest,
	timeout time.Duration) (*warrenv1.Delivery, error) {
	req := proto.Clone(msg).(*warrenv1.PublishRequest)
	if req.MessageId == "" {
		req.MessageId = NewMessageID()
	}
	req.Mandatory = true
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	resp, err := client.Call(ctx, &warrenv1.CallRequest{Message: req})
	if err != nil {
		if status.Code(err) == codes.DeadlineExceeded {
			return nil, &TimeoutError{err: err}
		}
		return nil, err
	}
	return resp.Reply, nil
}

// Call sends a request and returns its reply (see the package-level Call).
func (c *Client) Call(ctx context.Context, msg *warrenv1.PublishRequest, timeout time.Duration) (*warrenv1.Delivery, error) {
	return Call(ctx, c.Messaging, msg, timeout)
}

// TimeoutError is Call's error when no reply came in time. It is a
// context.DeadlineExceeded for errors.Is, a net.Error-style Timeout(), and
// keeps its gRPC status (status.Code is DEADLINE_EXCEEDED).
type TimeoutError struct{ err error }

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("warren: no reply in time: %v", status.Convert(e.err).Message())
}

// Timeout is true.
func (e *TimeoutError) Timeout() bool { return true }

// Is matches context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Unwrap returns the gRPC status error.
func (e *TimeoutError) Unwrap() error { return e.err }

// GRPCStatus is the call's DEADLINE_EXCEEDED status.
func (e *TimeoutError) GRPCStatus() *status.Status { return status.Convert(e.err) }
