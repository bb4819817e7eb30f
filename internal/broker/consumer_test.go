package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// consumerTopology is a test's source exchange and queue, and its error
// exchange with, unless unbound, an error queue.
type consumerTopology struct {
	url                                 string
	exchange, queue, key                string
	errorExchange, errorQueue, errorKey string
	errorQueueBound                     bool
	// queueType, when set, has declare go through broker.Declaration,
	// as the services declare their queues.
	queueType string
}

func newConsumerTopology(tb testing.TB, errorQueueBound bool) *consumerTopology {
	tb.Helper()
	t := &consumerTopology{
		url:             testenv.AMQPURL(tb),
		exchange:        testenv.Name(tb, "ex"),
		queue:           testenv.Name(tb, "q"),
		key:             "pay.success",
		errorExchange:   testenv.Name(tb, "errex"),
		errorQueue:      testenv.Name(tb, "errq"),
		errorKey:        "error",
		errorQueueBound: errorQueueBound,
	}
	testenv.DeleteOnCleanup(tb, t.url, []string{t.exchange, t.errorExchange}, []string{t.queue, t.errorQueue})
	return t
}

// declare is the supervisors' declare function.
func (t *consumerTopology) declare(ch *amqp.Channel) error {
	if t.queueType != "" {
		return t.declaration().Declare(ch)
	}
	if err := ch.ExchangeDeclare(t.exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange: %w", err)
	}
	if _, err := ch.QueueDeclare(t.queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare queue: %w", err)
	}
	if err := ch.QueueBind(t.queue, t.key, t.exchange, false, nil); err != nil {
		return fmt.Errorf("bind queue: %w", err)
	}
	if err := ch.ExchangeDeclare(t.errorExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare error exchange: %w", err)
	}
	if !t.errorQueueBound {
		return nil
	}
	if _, err := ch.QueueDeclare(t.errorQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare error queue: %w", err)
	}
	if err := ch.QueueBind(t.errorQueue, t.errorKey, t.errorExchange, false, nil); err != nil {
		return fmt.Errorf("bind error queue: %w", err)
	}
	return nil
}

// consumerEnv is what a consumer runs with in a service: a supervisor of
// its own, and a publisher on another connection to park messages. A
// third publisher sends the test's messages.
type consumerEnv struct {
	topo *consumerTopology
	sup  *broker.Supervisor
	park *broker.Publisher
	send *broker.Publisher
}

// newConsumerEnv connects the consumer's supervisor to consumerURL (the
// broker, or a proxy to it) and the publishers straight to the broker.
func newConsumerEnv(tb testing.TB, topo *consumerTopology, consumerURL string) *consumerEnv {
	tb.Helper()
	pubSup := startSupervisor(tb, broker.Config{URL: topo.url}, topo.declare, true)
	return &consumerEnv{
		topo: topo,
		sup:  startSupervisor(tb, broker.Config{URL: consumerURL}, topo.declare, true),
		park: newPublisher(tb, pubSup, broker.PublisherConfig{}),
		send: newPublisher(tb, pubSup, broker.PublisherConfig{}),
	}
}

// config is a consumer configuration with retry waits short enough for tests.
func (e *consumerEnv) config(tb testing.TB) broker.ConsumerConfig {
	tb.Helper()
	return broker.ConsumerConfig{
		Queue:           e.topo.queue,
		Prefetch:        10,
		Retry:           broker.Retry{MaxAttempts: 3, InitialInterval: 10 * time.Millisecond, Multiplier: 2, MaxInterval: 100 * time.Millisecond},
		ErrorExchange:   e.topo.errorExchange,
		ErrorRoutingKey: e.topo.errorKey,
		Publisher:       e.park,
		Logger:          testLogger(tb),
	}
}

// sendMessages publishes msgs and fails the test unless all are acked.
func (e *consumerEnv) sendMessages(tb testing.TB, msgs []broker.Message) {
	tb.Helper()
	outcomes, err := publish(tb, e.send, msgs)
	if err != nil {
		tb.Fatalf("publish test messages: %v", err)
	}
	wantOutcomes(tb, outcomes, all(broker.Acked))
}

// runningConsumer is a consumer whose Run goes on until stop or the end
// of the test.
type runningConsumer struct {
	*broker.Consumer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startConsumer(tb testing.TB, sup *broker.Supervisor, cfg broker.ConsumerConfig, h broker.Handler) *runningConsumer {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningConsumer{Consumer: broker.NewConsumer(sup, cfg, h), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- r.Run(ctx) }()
	tb.Cleanup(func() { r.stop(tb) })
	return r
}

// stop cancels Run and waits for it to return nil.
func (r *runningConsumer) stop(tb testing.TB) {
	tb.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				tb.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			tb.Errorf("Run did not return within 10s of cancel")
		}
	})
}

// depth returns how many messages are ready in queue.
func depth(tb testing.TB, amqpURL, queue string) int {
	tb.Helper()
	var n int
	withChannel(tb, amqpURL, func(ch *amqp.Channel) {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			tb.Fatalf("inspect queue %s: %v", queue, err)
		}
		n = q.Messages
	})
	return n
}

// takeOne waits for a message in queue and takes it off.
func takeOne(tb testing.TB, amqpURL, queue string) amqp.Delivery {
	tb.Helper()
	var got amqp.Delivery
	withChannel(tb, amqpURL, func(ch *amqp.Channel) {
		testenv.WaitFor(tb, 10*time.Second, "a message in "+queue, func() bool {
			d, ok, err := ch.Get(queue, true)
			if err != nil {
				tb.Fatalf("get from %s: %v", queue, err)
			}
			got = d
			return ok
		})
	})
	return got
}

// failures counts the calls of a handler and when they came.
type failures struct {
	mu    sync.Mutex
	times []time.Time
}

func (f *failures) record() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.times = append(f.times, time.Now())
	return len(f.times)
}

func (f *failures) calls() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

// wantParkedCopy fails the test unless parked is orig with the reason
// headers a parked message must carry.
func wantParkedCopy(tb testing.TB, parked amqp.Delivery, orig broker.Message, kind string, attempts int32, reason string, failedAfter time.Time) {
	tb.Helper()
	want := orig.Publishing
	if parked.MessageId != want.MessageId || string(parked.Body) != string(want.Body) || parked.Type != want.Type ||
		parked.ContentType != want.ContentType || parked.AppId != want.AppId || parked.DeliveryMode != want.DeliveryMode ||
		parked.CorrelationId != want.CorrelationId || !parked.Timestamp.Equal(want.Timestamp) {
		tb.Errorf("parked copy {id %q, body %q, type %q, content type %q, app %q, mode %d, correlation %q, time %v}, want {%q, %q, %q, %q, %q, %d, %q, %v}",
			parked.MessageId, parked.Body, parked.Type, parked.ContentType, parked.AppId, parked.DeliveryMode, parked.CorrelationId, parked.Timestamp,
			want.MessageId, want.Body, want.Type, want.ContentType, want.AppId, want.DeliveryMode, want.CorrelationId, want.Timestamp)
	}
	for k, v := range want.Headers {
		if parked.Headers[k] != v {
			tb.Errorf("parked copy header %s = %v, want the original's %v", k, parked.Headers[k], v)
		}
	}
	h := parked.Headers
	if msg, _ := h["x-exception-message"].(string); !strings.Contains(msg, reason) {
		tb.Errorf("x-exception-message = %q, want it to contain %q", msg, reason)
	}
	if got := h["x-exception-type"]; got != kind {
		tb.Errorf("x-exception-type = %v, want %q", got, kind)
	}
	if got := h["x-original-exchange"]; got != orig.Exchange {
		tb.Errorf("x-original-exchange = %v, want %q", got, orig.Exchange)
	}
	if got := h["x-original-routing-key"]; got != orig.RoutingKey {
		tb.Errorf("x-original-routing-key = %v, want %q", got, orig.RoutingKey)
	}
	if got := h["x-attempts"]; got != attempts {
		tb.Errorf("x-attempts = %v (%T), want int32 %d", got, got, attempts)
	}
	stamp, _ := h["x-failed-at"].(string)
	at, err := time.Parse(time.RFC3339, stamp)
	if err != nil || !strings.HasSuffix(stamp, "Z") || at.Before(failedAfter.Truncate(time.Second)) || at.After(time.Now()) {
		tb.Errorf("x-failed-at = %q, want an RFC 3339 UTC time from %v to now", stamp, failedAfter.UTC())
	}
}

func TestMalformedIsRecognisedThroughWrapping(t *testing.T) {
	cause := errors.New("invalid character 'x'")
	err := fmt.Errorf("decode pay.success: %w", broker.Malformed(cause))
	if !broker.IsMalformed(err) {
		t.Errorf("IsMalformed(%v) = false for a wrapped Malformed error", err)
	}
	if !errors.Is(err, cause) {
		t.Errorf("Malformed hides its cause from errors.Is")
	}
	if broker.IsMalformed(cause) {
		t.Errorf("IsMalformed(%v) = true for a plain error", cause)
	}
	if err := broker.Malformed(nil); err != nil {
		t.Errorf("Malformed(nil) = %v, want nil", err)
	}
}

func TestParseRecoverer(t *testing.T) {
	tests := []struct {
		in      string
		want    broker.Recoverer
		wantErr bool
	}{
		{"republish", broker.RecoverRepublish, false},
		{"reject", broker.RecoverReject, false},
		{"requeue", broker.RecoverRequeue, false},
		{"", "", true},
		{"Republish", "", true},
		{"drop", "", true},
	}
	for _, tt := range tests {
		got, err := broker.ParseRecoverer(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseRecoverer(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestConsumerParksMalformedMessageAtOnceWithReasonHeaders(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	var calls atomic.Int32
	c := startConsumer(t, env.sup, env.config(t), func(ctx context.Context, d amqp.Delivery) error {
		calls.Add(1)
		return fmt.Errorf("decode pay.success: %w", broker.Malformed(errors.New("invalid character 'x'")))
	})

	msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
	msg.Publishing.CorrelationId = "corr-1"
	msg.Publishing.Headers = amqp.Table{"x-trace": "trace-1"}
	sent := time.Now()
	env.sendMessages(t, []broker.Message{msg})

	parked := takeOne(t, topo.url, topo.errorQueue)
	c.stop(t)
	wantParkedCopy(t, parked, msg, "malformed", 1, "invalid character 'x'", sent)
	if got := calls.Load(); got != 1 {
		t.Errorf("handler called %d times, want once: a malformed message is not retried", got)
	}
	if got := depth(t, topo.url, topo.queue); got != 0 {
		t.Errorf("source queue holds %d messages after parking, want 0", got)
	}
	st := c.Stats()
	if st.Delivered != 1 || st.Malformed != 1 || st.Parked != 1 || st.Retried != 0 || st.Acked != 0 {
		t.Errorf("stats %+v, want 1 delivered, malformed and parked, no retry, no handler ack", st)
	}
}

func TestConsumerRetriesWithGrowingWaitsThenParksExhaustedMessage(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.Retry = broker.Retry{MaxAttempts: 4, InitialInterval: 30 * time.Millisecond, Multiplier: 2, MaxInterval: time.Second}
	var f failures
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		return fmt.Errorf("mark order paid: attempt %d failed", f.record())
	})

	msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
	sent := time.Now()
	env.sendMessages(t, []broker.Message{msg})

	parked := takeOne(t, topo.url, topo.errorQueue)
	c.stop(t)
	wantParkedCopy(t, parked, msg, "retries_exhausted", 4, "attempt 4 failed", sent)
	calls := f.calls()
	if len(calls) != 4 {
		t.Fatalf("handler called %d times, want MaxAttempts = 4", len(calls))
	}
	wait := cfg.Retry.InitialInterval
	for i := 1; i < len(calls); i++ {
		if gap := calls[i].Sub(calls[i-1]); gap < wait {
			t.Errorf("attempt %d came %v after attempt %d, want at least %v", i+1, gap, i, wait)
		}
		wait *= 2
	}
	st := c.Stats()
	if st.Delivered != 1 || st.Retried != 3 || st.Parked != 1 || st.Malformed != 0 {
		t.Errorf("stats %+v, want 1 delivered, 3 retried, 1 parked", st)
	}
}

func TestConsumerRejectRecovererDropsExhaustedMessage(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.Retry.MaxAttempts = 2
	cfg.Recoverer = broker.RecoverReject
	var calls atomic.Int32
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		calls.Add(1)
		return errors.New("order rules say no")
	})

	env.sendMessages(t, messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0))
	testenv.WaitFor(t, 10*time.Second, "the message to be rejected", func() bool { return c.Stats().Rejected == 1 })
	c.stop(t)

	if got := calls.Load(); got != 2 {
		t.Errorf("handler called %d times, want MaxAttempts = 2", got)
	}
	if got := depth(t, topo.url, topo.queue); got != 0 {
		t.Errorf("source queue holds %d messages after the reject, want 0", got)
	}
	if got := depth(t, topo.url, topo.errorQueue); got != 0 {
		t.Errorf("error queue holds %d messages, want 0: reject does not park", got)
	}
	if st := c.Stats(); st.Parked != 0 || st.Requeued != 0 {
		t.Errorf("stats %+v, want nothing parked or requeued", st)
	}
}

func TestConsumerRequeueRecovererRedeliversExhaustedMessage(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.Retry.MaxAttempts = 2
	cfg.Recoverer = broker.RecoverRequeue
	var mu sync.Mutex
	var redelivered []bool
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		mu.Lock()
		redelivered = append(redelivered, d.Redelivered)
		mu.Unlock()
		if !d.Redelivered {
			return errors.New("not yet")
		}
		return nil
	})

	env.sendMessages(t, messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0))
	testenv.WaitFor(t, 10*time.Second, "the redelivered message to be acked", func() bool { return c.Stats().Acked == 1 })
	c.stop(t)

	mu.Lock()
	got := fmt.Sprint(redelivered)
	mu.Unlock()
	if want := "[false false true]"; got != want {
		t.Errorf("handler saw Redelivered = %s, want %s: two attempts, then the redelivery", got, want)
	}
	if st := c.Stats(); st.Requeued != 1 || st.Parked != 0 || st.Delivered != 2 {
		t.Errorf("stats %+v, want 2 delivered, 1 requeued, nothing parked", st)
	}
	if got := depth(t, topo.url, topo.errorQueue); got != 0 {
		t.Errorf("error queue holds %d messages, want 0: requeue does not park", got)
	}
}

func TestConsumerAcksOnceAfterTransientFailure(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	var calls atomic.Int32
	c := startConsumer(t, env.sup, env.config(t), func(ctx context.Context, d amqp.Delivery) error {
		if calls.Add(1) == 1 {
			return errors.New("deadlock detected")
		}
		return nil
	})

	env.sendMessages(t, messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0))
	testenv.WaitFor(t, 10*time.Second, "the message to be acked", func() bool { return c.Stats().Acked == 1 })
	c.stop(t)

	if got := calls.Load(); got != 2 {
		t.Errorf("handler called %d times, want 2", got)
	}
	if st := c.Stats(); st.Acked != 1 || st.Retried != 1 || st.Parked != 0 || st.Delivered != 1 {
		t.Errorf("stats %+v, want 1 delivered, 1 retried, 1 acked, nothing parked", st)
	}
	if got := depth(t, topo.url, topo.queue); got != 0 {
		t.Errorf("source queue holds %d messages, want 0", got)
	}
	if got := depth(t, topo.url, topo.errorQueue); got != 0 {
		t.Errorf("error queue holds %d messages, want 0", got)
	}
}

func TestConsumerPausesWhileDependencyUnavailableAndParksNothing(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	errDown := errors.New("database down")
	var up atomic.Bool
	var calls atomic.Int64
	var mu sync.Mutex
	handled := make(map[string]int)
	var callsAtProbe []int64 // handler calls seen by each probe while down

	cfg := env.config(t)
	cfg.Unavailable = func(err error) bool { return errors.Is(err, errDown) }
	cfg.ProbeBackoff = broker.Backoff{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	cfg.Probe = func(ctx context.Context) error {
		if up.Load() {
			return nil
		}
		mu.Lock()
		callsAtProbe = append(callsAtProbe, calls.Load())
		mu.Unlock()
		return errDown
	}
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		calls.Add(1)
		if !up.Load() {
			return fmt.Errorf("mark order paid: %w", errDown)
		}
		mu.Lock()
		handled[d.MessageId]++
		mu.Unlock()
		return nil
	})

	msgs := messages(50, topo.exchange, topo.key, testenv.Name(t, "m"), 0)
	env.sendMessages(t, msgs)
	testenv.WaitFor(t, 10*time.Second, "the consumer to pause and probe a few times", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(callsAtProbe) >= 4
	})
	up.Store(true)
	testenv.WaitFor(t, 10*time.Second, "every message to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == len(msgs)
	})
	c.stop(t)

	mu.Lock()
	probes := callsAtProbe
	mu.Unlock()
	for i, n := range probes {
		if n != probes[0] {
			t.Errorf("probe %d saw %d handler calls, probe 1 saw %d: messages were consumed while paused", i+1, n, probes[0])
			break
		}
	}
	st := c.Stats()
	if st.Pauses != 1 || st.Parked != 0 || st.Rejected != 0 || st.Retried != 0 || st.Acked != int64(len(msgs)) {
		t.Errorf("stats %+v, want 1 pause, %d acked, nothing parked, rejected or retried", st, len(msgs))
	}
	if got := depth(t, topo.url, topo.errorQueue); got != 0 {
		t.Errorf("error queue holds %d messages, want 0: an outage parks nothing", got)
	}
	if got := depth(t, topo.url, topo.queue); got != 0 {
		t.Errorf("source queue holds %d messages, want 0", got)
	}
}

func TestConsumerRequeuesMessageWhenParkingIsReturned(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, false)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.Retry.MaxInterval = 20 * time.Millisecond // the wait before requeueing
	var calls atomic.Int32
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		calls.Add(1)
		return broker.Malformed(errors.New("invalid character 'x'"))
	})

	msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
	env.sendMessages(t, []broker.Message{msg})
	testenv.WaitFor(t, 10*time.Second, "the message to come back after a failed park", func() bool { return calls.Load() >= 2 })
	c.stop(t)

	testenv.WaitFor(t, 10*time.Second, "the message back in its queue", func() bool {
		return depth(t, topo.url, topo.queue) == 1
	})
	if got := takeOne(t, topo.url, topo.queue); got.MessageId != msg.Publishing.MessageId || string(got.Body) != string(msg.Publishing.Body) {
		t.Errorf("queue holds message %q %q, want the original %q %q", got.MessageId, got.Body, msg.Publishing.MessageId, msg.Publishing.Body)
	}
	if st := c.Stats(); st.Parked != 0 || st.Requeued < 1 || st.Acked != 0 {
		t.Errorf("stats %+v, want nothing parked or acked, at least 1 requeued", st)
	}
}

func TestConsumerHandlesEveryMessageAcrossConnectionCut(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
	env := newConsumerEnv(t, topo, proxy.RewriteURL(t, topo.url))
	msgs := messages(200, topo.exchange, topo.key, testenv.Name(t, "m"), 0)
	env.sendMessages(t, msgs)

	// From the 51st call on, handlers wait for the cut, so that it comes
	// mid-stream with handlers in flight whatever the machine's speed.
	cut := make(chan struct{})
	var cutOnce sync.Once
	release := func() { cutOnce.Do(func() { close(cut) }) }
	var calls, redelivered atomic.Int64
	var mu sync.Mutex
	handled := make(map[string]int)
	c := startConsumer(t, env.sup, env.config(t), func(ctx context.Context, d amqp.Delivery) error {
		if calls.Add(1) > 50 {
			<-cut
		}
		if d.Redelivered {
			redelivered.Add(1)
		}
		mu.Lock()
		handled[d.MessageId]++
		mu.Unlock()
		return nil
	})
	t.Cleanup(release) // runs before the consumer's stop, should the test fail early

	testenv.WaitFor(t, 10*time.Second, "a handler in flight past the 50th call", func() bool { return calls.Load() > 50 })
	proxy.CutAll()
	release()
	testenv.WaitFor(t, 20*time.Second, "every message to be handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == len(msgs)
	})
	testenv.WaitFor(t, 10*time.Second, "the queue to drain", func() bool { return depth(t, topo.url, topo.queue) == 0 })
	c.stop(t)
	// Stopping closes the consumer's channel, which puts back whatever it
	// held unacked: an ack lost across the cut would show here.
	if n := depth(t, topo.url, topo.queue); n != 0 {
		t.Errorf("%d messages back in the queue after the consumer stopped: handled but never acked", n)
	}

	if got := env.sup.Reconnects(); got < 1 {
		t.Errorf("Reconnects() = %d, want at least 1", got)
	}
	if redelivered.Load() == 0 {
		t.Errorf("no message redelivered, yet handlers were in flight when the connection was cut")
	}
	for _, m := range msgs {
		if handled[m.Publishing.MessageId] == 0 {
			t.Errorf("message %s never handled", m.Publishing.MessageId)
		}
	}
	if st := c.Stats(); st.Parked != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v, want nothing parked or rejected", st)
	}
}

func TestConsumerShutdownWaitsForInFlightHandlerAndAcksIt(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.Prefetch = 1
	started := make(chan struct{}, 2)
	release := make(chan struct{})
	var calls atomic.Int32
	var handlerCtxErr atomic.Value
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		calls.Add(1)
		started <- struct{}{}
		<-release
		handlerCtxErr.Store(fmt.Sprint(ctx.Err()))
		return nil
	})
	var releaseOnce sync.Once
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	msgs := messages(2, topo.exchange, topo.key, testenv.Name(t, "m"), 0)
	env.sendMessages(t, msgs)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never started")
	}
	c.cancel()
	select {
	case err := <-c.done:
		t.Fatalf("Run returned %v while a handler was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	releaseOnce.Do(func() { close(release) })
	c.stop(t)

	if got := calls.Load(); got != 1 {
		t.Errorf("handler called %d times, want once: no delivery starts after shutdown begins", got)
	}
	if got := handlerCtxErr.Load(); got != "<nil>" {
		t.Errorf("handler's ctx.Err() = %v after Run was cancelled, want nil: handlers may finish", got)
	}
	if st := c.Stats(); st.Acked != 1 {
		t.Errorf("stats %+v, want the in-flight message acked", st)
	}
	// A new consumer gets the second message only: the first was acked
	// before the channel closed, not requeued with it.
	withChannel(t, topo.url, func(ch *amqp.Channel) {
		deliveries, err := ch.Consume(topo.queue, "", true, false, false, false, nil)
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		var got []string
		timeout := time.After(10 * time.Second)
		for {
			select {
			case d := <-deliveries:
				got = append(got, d.MessageId)
				if len(got) == 1 {
					// Room for the first message to show up too, were it requeued.
					timeout = time.After(300 * time.Millisecond)
				}
				continue
			case <-timeout:
			}
			break
		}
		if want := []string{msgs[1].Publishing.MessageId}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("a new consumer got %v, want %v", got, want)
		}
	})
}

func TestConsumerShutdownCutsRetryWaitShortAndRequeues(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.Retry = broker.Retry{MaxAttempts: 3, InitialInterval: time.Minute, MaxInterval: time.Minute}
	var calls atomic.Int32
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		calls.Add(1)
		return errors.New("deadlock detected")
	})

	msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
	env.sendMessages(t, []broker.Message{msg})
	testenv.WaitFor(t, 10*time.Second, "the first attempt", func() bool { return calls.Load() == 1 })
	begun := time.Now()
	c.stop(t)
	if took := time.Since(begun); took > 5*time.Second {
		t.Errorf("Run took %v to return, want the minute's retry wait cut short", took)
	}

	testenv.WaitFor(t, 10*time.Second, "the message back in its queue", func() bool {
		return depth(t, topo.url, topo.queue) == 1
	})
	if st := c.Stats(); st.Requeued != 1 || st.Retried != 0 || st.Parked != 0 || calls.Load() != 1 {
		t.Errorf("stats %+v after %d calls, want 1 call, 1 requeued, no retry, nothing parked", st, calls.Load())
	}
}

func TestConsumerResumesAfterBrokerCancelsIt(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	var mu sync.Mutex
	handled := make(map[string]bool)
	c := startConsumer(t, env.sup, env.config(t), func(ctx context.Context, d amqp.Delivery) error {
		mu.Lock()
		handled[d.MessageId] = true
		mu.Unlock()
		return nil
	})
	isHandled := func(id string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return handled[id]
		}
	}

	first := messages(1, topo.exchange, topo.key, testenv.Name(t, "first"), 0)
	env.sendMessages(t, first)
	testenv.WaitFor(t, 10*time.Second, "the first message to be handled", isHandled(first[0].Publishing.MessageId))

	// Deleting the queue makes the broker cancel the consumer; the
	// supervisor's connection stays up, so only the consumer can notice.
	withChannel(t, topo.url, func(ch *amqp.Channel) {
		if _, err := ch.QueueDelete(topo.queue, false, false, false); err != nil {
			t.Fatalf("delete queue: %v", err)
		}
		if err := topo.declare(ch); err != nil {
			t.Fatalf("declare again: %v", err)
		}
	})
	second := messages(1, topo.exchange, topo.key, testenv.Name(t, "second"), 0)
	env.sendMessages(t, second)
	testenv.WaitFor(t, 10*time.Second, "the message sent after the cancel to be handled", isHandled(second[0].Publishing.MessageId))
	c.stop(t)
	if got := env.sup.Reconnects(); got != 0 {
		t.Errorf("Reconnects() = %d, want 0: the consumer resubscribed on the same connection", got)
	}
}

func TestConsumerParksMessageWhoseHandlerPanics(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	env := newConsumerEnv(t, topo, topo.url)
	cfg := env.config(t)
	cfg.Retry.MaxAttempts = 2
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		var orders map[string]int
		orders["boom"]++ // a nil map: the kind of bug a message can trigger
		return nil
	})

	msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
	sent := time.Now()
	env.sendMessages(t, []broker.Message{msg})
	parked := takeOne(t, topo.url, topo.errorQueue)
	c.stop(t)
	wantParkedCopy(t, parked, msg, "retries_exhausted", 2, "handler panicked", sent)
	if st := c.Stats(); st.Retried != 1 || st.Parked != 1 {
		t.Errorf("stats %+v, want 1 retried, 1 parked", st)
	}
}
