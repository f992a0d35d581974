package warren

import (
	"errors"
	"fmt"
	"time"
)

// RetryError is a handler's error that asks for the delivery to come back
// after Delay (Nack.retry_after); see RetryAfter.
type RetryError struct {
	Delay time.Duration
	Err   error
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("retry after %v: %v", e.Delay, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfter wraps a handler's error so that the delivery is nacked with
// Nack.retry_after = delay: the message comes back to its queue after the
// delay (rounded up to two significant digits in milliseconds: up to 10 %
// late, never early), counted in Delivery.DeliveryCount, while the other
// messages flow. At most the server's max_retry_delay (1 h by default);
// not on a stream queue (the server ends the subscription with
// INVALID_ARGUMENT).
//
//	return warren.RetryAfter(30*time.Second, err)
func RetryAfter(delay time.Duration, err error) error {
	return &RetryError{Delay: delay, Err: err}
}

// retryDelay is the retry delay for a handler's error: its RetryError's, or
// the Subscriber's RetryAfter.
func retryDelay(err error, fallback time.Duration) time.Duration {
	var r *RetryError
	if errors.As(err, &r) {
		return r.Delay
	}
	return fallback
}
