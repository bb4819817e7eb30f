package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// topology is a test's own exchange and queue, bound with key.
type topology struct {
	url      string
	exchange string
	queue    string
	key      string
	declares atomic.Int64
}

// newTopology names a topic exchange and a durable queue bound to it for
// this test, and removes them when it ends. Nothing is declared until a
// supervisor calls declare.
func newTopology(tb testing.TB) *topology {
	tb.Helper()
	t := &topology{
		url:      testenv.AMQPURL(tb),
		exchange: testenv.Name(tb, "ex"),
		queue:    testenv.Name(tb, "q"),
		key:      "pay.success",
	}
	testenv.DeleteOnCleanup(tb, t.url, []string{t.exchange}, []string{t.queue})
	return t
}

// declare is the supervisor's declare function; it counts its calls.
func (t *topology) declare(ch *amqp.Channel) error {
	t.declares.Add(1)
	if err := ch.ExchangeDeclare(t.exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange: %w", err)
	}
	if _, err := ch.QueueDeclare(t.queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.QueueBind(t.queue, t.key, t.exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue: %w", err)
	}
	return nil
}

// remove deletes the exchange and queue behind the supervisor's back, as a
// broker that lost its state would.
func (t *topology) remove(tb testing.TB) {
	tb.Helper()
	withChannel(tb, t.url, func(ch *amqp.Channel) {
		if _, err := ch.QueueDelete(t.queue, false, false, false); err != nil {
			tb.Fatalf("delete queue: %v", err)
		}
		if err := ch.ExchangeDelete(t.exchange, false, false); err != nil {
			tb.Fatalf("delete exchange: %v", err)
		}
	})
}

// queued returns how many messages wait in the queue.
func (t *topology) queued(tb testing.TB) int {
	tb.Helper()
	var n int
	withChannel(tb, t.url, func(ch *amqp.Channel) {
		q, err := ch.QueueDeclarePassive(t.queue, true, false, false, false, nil)
		if err != nil {
			tb.Fatalf("inspect queue: %v", err)
		}
		n = q.Messages
	})
	return n
}

// consume takes n messages off the queue and returns them by MessageId.
func (t *topology) consume(tb testing.TB, n int) map[string]amqp.Delivery {
	tb.Helper()
	got := make(map[string]amqp.Delivery, n)
	withChannel(tb, t.url, func(ch *amqp.Channel) {
		deliveries, err := ch.Consume(t.queue, "", true, false, false, false, nil)
		if err != nil {
			tb.Fatalf("consume: %v", err)
		}
		timeout := time.After(10 * time.Second)
		for len(got) < n {
			select {
			case d, ok := <-deliveries:
				if !ok {
					tb.Fatalf("consumer closed after %d of %d messages", len(got), n)
				}
				got[d.MessageId] = d
			case <-timeout:
				tb.Fatalf("consumed %d of %d messages before the timeout", len(got), n)
			}
		}
	})
	return got
}

func withChannel(tb testing.TB, amqpURL string, fn func(ch *amqp.Channel)) {
	tb.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		tb.Fatalf("dial broker: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		tb.Fatalf("open channel: %v", err)
	}
	defer ch.Close()
	fn(ch)
}

func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startSupervisor runs a supervisor until the test ends. If wait, it
// returns once the supervisor is connected.
func startSupervisor(tb testing.TB, cfg broker.Config, declare func(*amqp.Channel) error, wait bool) *broker.Supervisor {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	if cfg.Backoff == (broker.Backoff{}) {
		// Keeps reconnect tests to a fraction of a second.
		cfg.Backoff = broker.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	}
	cfg.ConnectionName = tb.Name()
	s := broker.NewSupervisor(cfg, declare)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			tb.Errorf("Run did not return within 10s of cancel")
		}
	})
	if wait {
		waitCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.Connection(waitCtx); err != nil {
			tb.Fatalf("supervisor never connected: %v", err)
		}
	}
	return s
}

func newPublisher(tb testing.TB, s *broker.Supervisor, cfg broker.PublisherConfig) *broker.Publisher {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	p := broker.NewPublisher(s, cfg)
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("close publisher: %v", err)
		}
	})
	return p
}

// messages returns n persistent pay.success-like messages with ids
// prefix-0, prefix-1, ….
func messages(n int, exchange, key, prefix string, bodySize int) []broker.Message {
	msgs := make([]broker.Message, n)
	stamp := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i := range msgs {
		body := fmt.Appendf(nil, `{"bizOrderNo":%d}`, i)
		if bodySize > len(body) {
			body = append(body, make([]byte, bodySize-len(body))...)
		}
		msgs[i] = broker.Message{
			Exchange:   exchange,
			RoutingKey: key,
			Publishing: amqp.Publishing{
				ContentType:  "application/json",
				DeliveryMode: amqp.Persistent,
				MessageId:    fmt.Sprintf("%s-%d", prefix, i),
				Type:         "pay.success",
				AppId:        "pay",
				Timestamp:    stamp.Add(time.Duration(i) * time.Second),
				Body:         body,
			},
		}
	}
	return msgs
}

// publish runs one batch with a bounded context.
func publish(tb testing.TB, p *broker.Publisher, msgs []broker.Message) ([]broker.Outcome, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.PublishBatch(ctx, msgs)
}

// wantOutcomes fails the test unless every message has the outcome in want.
func wantOutcomes(tb testing.TB, got []broker.Outcome, want func(i int) broker.Outcome) {
	tb.Helper()
	bad := 0
	for i, o := range got {
		if w := want(i); o != w {
			if bad < 5 {
				tb.Errorf("message %d: outcome %v, want %v", i, o, w)
			}
			bad++
		}
	}
	if bad > 0 {
		tb.Errorf("%d of %d messages with the wrong outcome", bad, len(got))
	}
}

func all(o broker.Outcome) func(int) broker.Outcome {
	return func(int) broker.Outcome { return o }
}
