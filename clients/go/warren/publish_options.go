package warren

import (
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

type publishOptionFunc func(*warrenv1.PublishRequest)

func (f publishOptionFunc) applyPublish(req *warrenv1.PublishRequest) { f(req) }

// WithDelay publishes the message so that it reaches its exchange only after
// delay (PublishRequest.delay): it waits in a delay queue of the broker,
// then is routed with its routing key as if published then. The delay is
// rounded up to two significant digits in milliseconds (up to 10 % late,
// never early); at most the server's max_publish_delay (24 h by default).
// Publish answers once the delay queue has the message. A delayed message
// is published without mandatory (whether a queue receives it is only
// known later), and cannot have a TTL.
func WithDelay(delay time.Duration) PublishOption {
	return publishOptionFunc(func(req *warrenv1.PublishRequest) { req.Delay = durationpb.New(delay) })
}

// WithReplyTo sets the message's reply address (AMQP reply_to), for a
// requester that reads replies from a queue of its own; Call does this for
// you with the broker's direct reply-to.
func WithReplyTo(address string) PublishOption {
	return publishOptionFunc(func(req *warrenv1.PublishRequest) { req.ReplyTo = address })
}

// WithCorrelationID sets the message's correlation id: a reply copies the
// request's Delivery.CorrelationId (Responder does this for you).
func WithCorrelationID(id string) PublishOption {
	return publishOptionFunc(func(req *warrenv1.PublishRequest) { req.CorrelationId = id })
}

func delayed(req *warrenv1.PublishRequest) bool {
	return req.Delay.AsDuration() > 0
}
