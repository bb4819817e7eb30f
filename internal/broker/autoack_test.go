package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// outageResult is what became of a message whose handler found its
// database down, in outage.
type outageResult struct {
	queuedWhilePaused int  // messages in the source queue while the consumer waited
	parked            int  // messages in the error queue at the end
	attempts          int  // handler calls for the message
	applied           bool // a handler call succeeded once the database was back
	queuedAtEnd       int  // messages in the source queue at the end
	stats             broker.ConsumerStats
}

// outage sends one message to a consumer (auto-acked or not) whose handler
// reports its database unavailable, waits until the consumer has paused
// and given up its channel, brings the database back, and then sends a
// second message and waits for it: the queue is first in, first out, so by
// then the first message has been handled again if it still existed.
func outage(t *testing.T, autoAck bool) outageResult {
	t.Helper()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	errDown := errors.New("database down")
	var up atomic.Bool
	var probes atomic.Int64
	var mu sync.Mutex
	attempts := make(map[string]int)
	applied := make(map[string]bool)

	cfg := env.config(t)
	cfg.AutoAck = autoAck
	cfg.Unavailable = func(err error) bool { return errors.Is(err, errDown) }
	cfg.ProbeBackoff = broker.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	cfg.Probe = func(ctx context.Context) error {
		probes.Add(1)
		if up.Load() {
			return nil
		}
		return errDown
	}
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[d.MessageId]++
		if !up.Load() {
			return fmt.Errorf("mark order paid: %w", errDown)
		}
		applied[d.MessageId] = true
		return nil
	})
	isApplied := func(id string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return applied[id]
		}
	}

	first := messages(1, topo.exchange, topo.key, testenv.Name(t, "first"), 0)
	env.sendMessages(t, first)
	// The consumer probes only once its session has ended and its
	// channel is closed, which gives back what it had not acked.
	testenv.WaitFor(t, 10*time.Second, "the consumer to pause and probe", func() bool { return probes.Load() >= 2 })
	var r outageResult
	r.queuedWhilePaused = depth(t, topo.url, topo.queue)

	up.Store(true)
	second := messages(1, topo.exchange, topo.key, testenv.Name(t, "second"), 0)
	env.sendMessages(t, second)
	testenv.WaitFor(t, 10*time.Second, "the message sent after the outage to be handled", isApplied(second[0].Publishing.MessageId))
	firstID := first[0].Publishing.MessageId
	if !autoAck {
		testenv.WaitFor(t, 10*time.Second, "the message kept through the outage to be handled", isApplied(firstID))
	}
	c.stop(t)

	mu.Lock()
	r.attempts, r.applied = attempts[firstID], applied[firstID]
	mu.Unlock()
	r.parked = depth(t, topo.url, topo.errorQueue)
	r.queuedAtEnd = depth(t, topo.url, topo.queue)
	r.stats = c.Stats()
	return r
}

func TestAutoAckLosesAMessageWhoseHandlerCouldNotApplyIt(t *testing.T) {
	t.Parallel()
	r := outage(t, true)
	if r.queuedWhilePaused != 0 {
		t.Errorf("source queue held %d messages while the consumer waited for its database, want 0: the broker forgot it when it sent it", r.queuedWhilePaused)
	}
	if r.applied || r.attempts != 1 {
		t.Errorf("handler called %d times for the message (applied %v), want once and never applied: it is lost", r.attempts, r.applied)
	}
	if r.parked != 0 || r.queuedAtEnd != 0 {
		t.Errorf("error queue holds %d, source queue %d messages at the end, want 0 and 0: nothing kept it", r.parked, r.queuedAtEnd)
	}
	if st := r.stats; st.Pauses != 1 || st.Requeued != 0 || st.Parked != 0 {
		t.Errorf("stats %+v, want 1 pause and nothing requeued or parked", st)
	}
}

func TestManualAckKeepsAMessageWhoseHandlerCouldNotApplyIt(t *testing.T) {
	t.Parallel()
	r := outage(t, false)
	if r.queuedWhilePaused != 1 {
		t.Errorf("source queue held %d messages while the consumer waited for its database, want the 1 it could not apply", r.queuedWhilePaused)
	}
	if !r.applied || r.attempts != 2 {
		t.Errorf("handler called %d times for the message (applied %v), want twice and applied once the database was back", r.attempts, r.applied)
	}
	if r.parked != 0 || r.queuedAtEnd != 0 {
		t.Errorf("error queue holds %d, source queue %d messages at the end, want 0 and 0", r.parked, r.queuedAtEnd)
	}
	if st := r.stats; st.Pauses != 1 || st.Requeued != 1 || st.Parked != 0 {
		t.Errorf("stats %+v, want 1 pause, 1 requeued, nothing parked", st)
	}
}

// An ack of an auto-acked delivery is a protocol error (PRECONDITION_FAILED,
// unknown delivery tag) that closes the channel: the consumer would then
// subscribe again, under a new consumer tag.
func TestAutoAckConsumerSendsNoAckAndKeepsConsumingOnItsChannel(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.AutoAck = true
	var mu sync.Mutex
	tags := make(map[string]string) // consumer tag by message id
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		tags[d.MessageId] = d.ConsumerTag
		return nil
	})

	// One at a time, so that each comes after the previous one's ack
	// would have reached the broker.
	msgs := messages(3, topo.exchange, topo.key, testenv.Name(t, "m"), 0)
	for _, m := range msgs {
		env.sendMessages(t, []broker.Message{m})
		id := m.Publishing.MessageId
		testenv.WaitFor(t, 10*time.Second, "message "+id+" to be handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return tags[id] != ""
		})
	}
	c.stop(t)

	first := tags[msgs[0].Publishing.MessageId]
	for _, m := range msgs[1:] {
		if got := tags[m.Publishing.MessageId]; got != first {
			t.Errorf("message %s came under consumer tag %s, the first under %s: the channel was lost in between",
				m.Publishing.MessageId, got, first)
		}
	}
	if got := depth(t, topo.url, topo.queue); got != 0 {
		t.Errorf("source queue holds %d messages after they were handled, want 0", got)
	}
	if got := depth(t, topo.url, topo.errorQueue); got != 0 {
		t.Errorf("error queue holds %d messages, want 0", got)
	}
	if st := c.Stats(); st.Delivered != 3 || st.Acked != 3 || st.Requeued != 0 || st.Parked != 0 {
		t.Errorf("stats %+v, want 3 delivered and handled, nothing requeued or parked", st)
	}
	if got := env.sup.Reconnects(); got != 0 {
		t.Errorf("Reconnects() = %d, want 0", got)
	}
}
