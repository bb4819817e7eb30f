//go:build faultinject

package broker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

func TestAutoAckLosesAMessageWhoseHandlerCouldNotApplyIt(t *testing.T) {
	t.Parallel()
	r := outage(t, func(c *broker.ConsumerConfig) { c.AutoAck = true })
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
