package warren

import (
	"sync"
	"time"

	warrenv1 "github.com/warren/warren/gen/go/warren/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Where a subscription of a stream queue (QueueOptions.QueueType
// QUEUE_TYPE_STREAM) starts: put one in SubscribeStart.Offset.

// OffsetFirst starts at the oldest message the stream still keeps.
func OffsetFirst() *warrenv1.StreamOffset {
	return &warrenv1.StreamOffset{Start: &warrenv1.StreamOffset_First{First: true}}
}

// OffsetLast starts at the last chunk the broker wrote (a few messages
// before the newest one may come too).
func OffsetLast() *warrenv1.StreamOffset {
	return &warrenv1.StreamOffset{Start: &warrenv1.StreamOffset_Last{Last: true}}
}

// OffsetNext starts with the messages that arrive after the subscription
// does (the default).
func OffsetNext() *warrenv1.StreamOffset {
	return &warrenv1.StreamOffset{Start: &warrenv1.StreamOffset_Next{Next: true}}
}

// OffsetAt starts at the message with this offset (or the oldest kept, if it
// is gone); nothing before it is delivered. To resume from an offset you
// stored yourself (Delivery.StreamOffset of the last message you handled),
// start at OffsetAt(stored + 1).
func OffsetAt(offset uint64) *warrenv1.StreamOffset {
	return &warrenv1.StreamOffset{Start: &warrenv1.StreamOffset_Offset{Offset: offset}}
}

// OffsetTime starts at the first messages the broker stored at or after t
// (second precision, by chunk: a few earlier ones may come too).
func OffsetTime(t time.Time) *warrenv1.StreamOffset {
	return &warrenv1.StreamOffset{Start: &warrenv1.StreamOffset_Timestamp{Timestamp: timestamppb.New(t)}}
}

func isStreamSubscription(start *warrenv1.SubscribeStart) bool {
	return start.GetQueueOptions().GetQueueType() == warrenv1.QueueType_QUEUE_TYPE_STREAM
}

// offsetTracker remembers, across the streams of one Receive, where a stream
// subscription resumes so that a broken stream costs no gap and no repeat:
// at the lowest offset received but not handled, or else just after the
// highest one seen. Handlers finish out of order (MaxInFlight), so "the last
// handled + 1" alone could skip a message still running elsewhere.
type offsetTracker struct {
	mu      sync.Mutex
	pending map[uint64]struct{} // received on the current stream, not handled
	next    uint64              // just after the highest offset seen
	seen    bool
	floor   uint64 // nothing below it is handed to the handler
	// A subscription that starts at "next" or "last" and is broken before
	// its first delivery resumes at the time it was first subscribed:
	// "next" again would skip what arrived while it was away.
	relative     bool
	subscribedAt time.Time
}

func newOffsetTracker(start *warrenv1.StreamOffset) *offsetTracker {
	t := &offsetTracker{pending: map[uint64]struct{}{}}
	switch o := start.GetStart().(type) {
	case *warrenv1.StreamOffset_Offset:
		t.floor = o.Offset
	case nil, *warrenv1.StreamOffset_Next, *warrenv1.StreamOffset_Last:
		t.relative = true
	}
	return t
}

// subscribed records when a stream was open (the first time counts).
func (t *offsetTracker) subscribed(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subscribedAt.IsZero() {
		t.subscribedAt = now
	}
}

// received records a delivery's offset and says whether it is to be
// handled: false for one below where the subscription asked to start (the
// broker delivers whole chunks; the server skips those too, this is the
// client's own guarantee).
func (t *offsetTracker) received(offset uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset < t.floor {
		return false
	}
	t.pending[offset] = struct{}{}
	if !t.seen || offset >= t.next {
		t.next, t.seen = offset+1, true
	}
	return true
}

func (t *offsetTracker) handled(offset uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.pending, offset)
}

// resume returns where the next stream starts, nil to start as the first
// one did. Call it only once the broken stream's handlers have returned.
func (t *offsetTracker) resume() *warrenv1.StreamOffset {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.seen {
		if t.relative && !t.subscribedAt.IsZero() {
			// Second precision, by chunk: a few earlier messages may come,
			// none is lost.
			return OffsetTime(t.subscribedAt.Truncate(time.Second))
		}
		return nil
	}
	for o := range t.pending {
		if o < t.next {
			t.next = o
		}
	}
	t.pending = map[uint64]struct{}{}
	t.floor = t.next
	return OffsetAt(t.next)
}
