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

// outage sends one message to a consumer (auto-acked, if autoAck sets it up) whose handler
// reports its database unavailable, waits until the consumer has paused
// and given up its channel, brings the database back, and then sends a
// second message and waits for it: the queue is first in, first out, so by
// then the first message has been handled again if it still existed.
func outage(t *testing.T, autoAck func(*broker.ConsumerConfig)) outageResult {
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
	if autoAck != nil {
		autoAck(&cfg)
	}
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
	if autoAck == nil {
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

func TestManualAckKeepsAMessageWhoseHandlerCouldNotApplyIt(t *testing.T) {
	t.Parallel()
	r := outage(t, nil)
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
