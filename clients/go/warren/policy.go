package warren

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The retry rule every Warren client follows, mirrored from
// clients/retry-policy.json (docs/semantics.md explains each row).
// policy_test.go reads that file and fails when this table, the backoff
// below or the channel settings drift from it.

// unaryAction is what a wrapper does when a unary call ends with a code.
type unaryAction int

const (
	unaryDone unaryAction = iota + 1
	unaryRetry
	unaryFatal
)

// streamAction is what a wrapper does when a long-lived stream ends with a
// code without the caller having closed it.
type streamAction int

const (
	streamResubscribe streamAction = iota + 1
	streamFatal
)

type codeRule struct {
	unary  unaryAction
	stream streamAction
}

var retryPolicy = map[codes.Code]codeRule{
	codes.OK:                 {unaryDone, streamResubscribe},
	codes.Canceled:           {unaryRetry, streamResubscribe},
	codes.Unknown:            {unaryRetry, streamResubscribe},
	codes.InvalidArgument:    {unaryFatal, streamFatal},
	codes.DeadlineExceeded:   {unaryRetry, streamResubscribe},
	codes.NotFound:           {unaryFatal, streamFatal},
	codes.AlreadyExists:      {unaryFatal, streamFatal},
	codes.PermissionDenied:   {unaryFatal, streamFatal},
	codes.ResourceExhausted:  {unaryRetry, streamResubscribe},
	codes.FailedPrecondition: {unaryFatal, streamFatal},
	codes.Aborted:            {unaryRetry, streamResubscribe},
	codes.OutOfRange:         {unaryFatal, streamFatal},
	codes.Unimplemented:      {unaryFatal, streamFatal},
	codes.Internal:           {unaryRetry, streamResubscribe},
	codes.Unavailable:        {unaryRetry, streamResubscribe},
	codes.DataLoss:           {unaryFatal, streamFatal},
	codes.Unauthenticated:    {unaryFatal, streamFatal},
}

// The backoff between attempts (the zero Backoff) and gRPC's own reconnect
// backoff of the channels Dial creates.
const (
	defaultBackoffInitial    = 100 * time.Millisecond
	defaultBackoffMultiplier = 2.0
	defaultBackoffMax        = 3 * time.Second

	reconnectBackoffInitial = 100 * time.Millisecond
	reconnectBackoffMax     = 2 * time.Second
	// gRPC multiplies its capped delay by a factor in [1-jitter, 1+jitter]:
	// the cap it is given is lowered so that no wait exceeds
	// reconnectBackoffMax.
	reconnectJitter = 0.2
	// streamsWaitForReady: a stream opened while the channel reconnects
	// waits for it instead of failing at once with UNAVAILABLE.
	streamsWaitForReady = true
)

// retryUnary says whether a unary call that ended with err is tried again.
// The caller's own cancellation or deadline (ctx done) is never retried.
func retryUnary(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	return unaryRuleOf(status.Code(err)) == unaryRetry
}

func unaryRuleOf(code codes.Code) unaryAction {
	if r, ok := retryPolicy[code]; ok {
		return r.unary
	}
	return unaryFatal // a code newer than this table: let the caller decide
}

// resubscribe says whether a stream that ended with err is opened again.
// io.EOF and the wrappers' own endings (a silent stream, an expired lease)
// are an end without an error status: OK. A stream whose context the
// caller cancelled is never reopened; the wrappers check that first.
func resubscribe(err error) bool {
	return streamRuleOf(streamCode(err)) == streamResubscribe
}

func streamCode(err error) codes.Code {
	switch {
	case err == nil, err == io.EOF, errors.Is(err, errStreamEnded),
		errors.Is(err, errStreamIdle), errors.Is(err, errLeaseExpired):
		return codes.OK
	}
	return status.Code(err)
}

func streamRuleOf(code codes.Code) streamAction {
	if r, ok := retryPolicy[code]; ok {
		return r.stream
	}
	return streamFatal
}

// channelOptions are the dial options Dial puts before the caller's: gRPC's
// reconnect backoff grows to 120 s by default, so after a long outage a
// client could come back up to two minutes after the server did.
func channelOptions() []grpc.DialOption {
	jitteredMax := float64(reconnectBackoffMax) / (1 + reconnectJitter)
	return []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: backoff.Config{
			BaseDelay:  reconnectBackoffInitial,
			Multiplier: 1.6, // gRPC's own growth; only the bounds are Warren's
			Jitter:     reconnectJitter,
			MaxDelay:   time.Duration(jitteredMax),
		},
		// Each connection attempt may take this long (gRPC's default): left
		// at zero, grpc-go gives an attempt only the current backoff delay
		// (100 ms at first), too short for a TLS handshake on a slow link.
		MinConnectTimeout: 20 * time.Second,
	})}
}

// streamCallOptions are passed when a wrapper opens a stream.
func streamCallOptions() []grpc.CallOption {
	return []grpc.CallOption{grpc.WaitForReady(streamsWaitForReady)}
}
