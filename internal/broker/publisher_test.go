package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

func TestPublishBatchAcksPersistentMessagesOnBoundQueue(t *testing.T) {
	topo := newTopology(t)
	sup := startSupervisor(t, broker.Config{URL: topo.url}, topo.declare, true)
	pub := newPublisher(t, sup, broker.PublisherConfig{})

	msgs := messages(100, topo.exchange, topo.key, "acked", 0)
	outcomes, err := publish(t, pub, msgs)
	if err != nil {
		t.Fatalf("PublishBatch: %v", err)
	}
	if len(outcomes) != len(msgs) {
		t.Fatalf("got %d outcomes for %d messages", len(outcomes), len(msgs))
	}
	wantOutcomes(t, outcomes, all(broker.Acked))

	got := topo.consume(t, len(msgs))
	for _, m := range msgs {
		want := m.Publishing
		d, ok := got[want.MessageId]
		if !ok {
			t.Errorf("message %s acked but not in the queue", want.MessageId)
			continue
		}
		if d.DeliveryMode != amqp.Persistent || d.ContentType != want.ContentType || d.Type != want.Type ||
			d.AppId != want.AppId || !d.Timestamp.Equal(want.Timestamp) || string(d.Body) != string(want.Body) {
			t.Errorf("message %s arrived as {mode %d, content type %q, type %q, app %q, time %v, body %q}, want {mode %d, %q, %q, %q, %v, %q}",
				want.MessageId, d.DeliveryMode, d.ContentType, d.Type, d.AppId, d.Timestamp, d.Body,
				amqp.Persistent, want.ContentType, want.Type, want.AppId, want.Timestamp, want.Body)
		}
	}
}

func TestUnroutableMessageIsReturnedNotAcked(t *testing.T) {
	topo := newTopology(t)
	sup := startSupervisor(t, broker.Config{URL: topo.url}, topo.declare, true)
	pub := newPublisher(t, sup, broker.PublisherConfig{})

	const unroutableKey = "nobody.listens"
	tests := []struct {
		name string
		// unroutable says which messages of a batch of 30 go to a key
		// no queue is bound to.
		unroutable func(i int) bool
	}{
		{"no binding for the key", func(int) bool { return true }},
		{"mixed batch", func(i int) bool { return i%3 == 1 }},
		{"routable batch after returns", func(int) bool { return false }},
	}
	acked := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := messages(30, topo.exchange, topo.key, testenv.Name(t, "m"), 0)
			for i := range msgs {
				if tt.unroutable(i) {
					msgs[i].RoutingKey = unroutableKey
				}
			}
			outcomes, err := publish(t, pub, msgs)
			if err != nil {
				t.Fatalf("PublishBatch: %v", err)
			}
			wantOutcomes(t, outcomes, func(i int) broker.Outcome {
				if tt.unroutable(i) {
					return broker.Returned
				}
				return broker.Acked
			})
			for _, o := range outcomes {
				if o == broker.Acked {
					acked++
				}
			}
		})
	}
	if got := topo.queued(t); got != acked {
		t.Errorf("queue holds %d messages, want exactly the %d acked ones", got, acked)
	}
}

func TestPublishWithoutConnectionFailsFast(t *testing.T) {
	topo := newTopology(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
	proxy.SetDown(true)
	sup := startSupervisor(t, broker.Config{URL: proxy.RewriteURL(t, topo.url)}, topo.declare, false)
	pub := newPublisher(t, sup, broker.PublisherConfig{ConfirmTimeout: 10 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	outcomes, err := pub.PublishBatch(ctx, messages(5, topo.exchange, topo.key, "down", 0))
	elapsed := time.Since(start)
	if !errors.Is(err, broker.ErrNotConnected) {
		t.Errorf("PublishBatch with the broker down: err %v, want ErrNotConnected", err)
	}
	if outcomes != nil {
		t.Errorf("outcomes %v, want nil: nothing was published", outcomes)
	}
	// The confirm timeout is 10 s: failing well inside it means PublishBatch
	// did not wait for a connection or a confirm, however loaded the machine.
	if elapsed > 2*time.Second {
		t.Errorf("PublishBatch took %v to fail, want it at once", elapsed)
	}
	if sup.Connected() || sup.Current() != nil {
		t.Errorf("supervisor reports a connection while the broker is down")
	}
}

// batchResult is what a PublishBatch running in the background returned.
type batchResult struct {
	outcomes []broker.Outcome
	err      error
}

func TestBatchCutMidFlightReportsUnconfirmed(t *testing.T) {
	tests := []struct {
		name     string
		batch    int
		bodySize int
		// cut cuts the connection while the batch is in flight.
		cut func(t *testing.T, proxy *testenv.Proxy, topo *topology, finished <-chan batchResult)
		// stalled stops the network before the batch, so that no confirm
		// can come before the cut.
		stalled bool
	}{
		{
			name: "while the broker takes the batch in",
			// Large enough that the broker is still taking it in when the cut comes.
			batch: 20000, bodySize: 1024,
			cut: func(t *testing.T, proxy *testenv.Proxy, topo *topology, finished <-chan batchResult) {
				// Cut as soon as messages reach the (empty) queue: confirms
				// are then in flight.
				for topo.queued(t) == 0 {
					select {
					case res := <-finished:
						t.Fatalf("batch finished before the cut (err %v); it must be larger to be cut mid-flight", res.err)
					default:
					}
				}
				proxy.CutAll()
			},
		},
		{
			name:  "while every confirm is pending",
			batch: 500,
			cut: func(t *testing.T, proxy *testenv.Proxy, _ *topology, _ <-chan batchResult) {
				// The batch is written but, stalled, the broker cannot
				// confirm any of it before the cut.
				time.Sleep(200 * time.Millisecond)
				proxy.CutAll()
				proxy.SetStalled(false)
			},
			stalled: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			topo := newTopology(t)
			proxy := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
			sup := startSupervisor(t, broker.Config{URL: proxy.RewriteURL(t, topo.url)}, topo.declare, true)
			// A long timeout, so the cut and not the clock ends the batch.
			pub := newPublisher(t, sup, broker.PublisherConfig{ConfirmTimeout: 30 * time.Second})
			if tt.stalled {
				// A batch as large before the stall leaves the publisher a
				// channel it can reuse, so the stalled batch gets as far as
				// publishing.
				if _, err := publish(t, pub, messages(tt.batch, topo.exchange, topo.key, "warm-up", 0)); err != nil {
					t.Fatalf("warm-up batch: %v", err)
				}
				proxy.SetStalled(true)
			}

			msgs := messages(tt.batch, topo.exchange, topo.key, "cut", tt.bodySize)
			finished := make(chan batchResult, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				outcomes, err := pub.PublishBatch(ctx, msgs)
				finished <- batchResult{outcomes, err}
			}()
			tt.cut(t, proxy, topo, finished)
			var res batchResult
			select {
			case res = <-finished:
			case <-time.After(30 * time.Second):
				t.Fatal("PublishBatch did not return after the connection was cut")
			}

			if res.err == nil {
				t.Fatal("PublishBatch returned no error though its connection was cut mid-batch")
			}
			t.Logf("PublishBatch after the cut: %v", res.err)
			if len(res.outcomes) != len(msgs) {
				t.Fatalf("got %d outcomes for %d messages", len(res.outcomes), len(msgs))
			}
			count := map[broker.Outcome]int{}
			for _, o := range res.outcomes {
				count[o]++
			}
			t.Logf("outcomes after the cut: %v", count)
			if count[broker.Unconfirmed] == 0 {
				t.Errorf("no message Unconfirmed after a cut mid-batch")
			}
			if tt.stalled && count[broker.Unconfirmed] != len(msgs) {
				t.Errorf("outcomes %v, want all unconfirmed: no confirm could pass before the cut", count)
			}
			if count[broker.Returned]+count[broker.Nacked] > 0 {
				t.Errorf("routable messages reported returned or nacked: %v", count)
			}

			// The next batch goes out on the supervisor's new connection.
			testenv.WaitFor(t, 10*time.Second, "supervisor reconnects", func() bool { return sup.Reconnects() == 1 && sup.Connected() })
			after := messages(10, topo.exchange, topo.key, "after-cut", 0)
			outcomes, err := publish(t, pub, after)
			if err != nil {
				t.Fatalf("publish after the reconnect: %v", err)
			}
			wantOutcomes(t, outcomes, all(broker.Acked))

			// Every message reported Acked must really be on the queue. Some
			// Unconfirmed ones may be there too: that is at-least-once.
			inQueue := topo.consume(t, topo.queued(t))
			for i, o := range res.outcomes {
				if id := msgs[i].Publishing.MessageId; o == broker.Acked {
					if _, ok := inQueue[id]; !ok {
						t.Errorf("message %s reported Acked but is not on the queue", id)
					}
				}
			}
			for _, m := range after {
				if _, ok := inQueue[m.Publishing.MessageId]; !ok {
					t.Errorf("message %s published after the reconnect is not on the queue", m.Publishing.MessageId)
				}
			}
		})
	}
}

func TestPublishBatchRejectsMissingOrDuplicateMessageID(t *testing.T) {
	topo := newTopology(t)
	sup := startSupervisor(t, broker.Config{URL: topo.url}, topo.declare, true)
	pub := newPublisher(t, sup, broker.PublisherConfig{})

	tests := []struct {
		name  string
		tweak func(msgs []broker.Message)
	}{
		{"missing id", func(msgs []broker.Message) { msgs[1].Publishing.MessageId = "" }},
		{"duplicate id", func(msgs []broker.Message) { msgs[2].Publishing.MessageId = msgs[0].Publishing.MessageId }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := messages(3, topo.exchange, topo.key, fmt.Sprintf("bad-%s", tt.name), 0)
			tt.tweak(msgs)
			outcomes, err := publish(t, pub, msgs)
			if err == nil || outcomes != nil {
				t.Fatalf("PublishBatch = %v, %v; want nil outcomes and an error", outcomes, err)
			}
		})
	}
	if got := topo.queued(t); got != 0 {
		t.Errorf("queue holds %d messages, want none: a rejected batch publishes nothing", got)
	}
}

func TestConfirmTimeoutLeavesBatchUnconfirmedAndNextBatchClean(t *testing.T) {
	topo := newTopology(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
	sup := startSupervisor(t, broker.Config{URL: proxy.RewriteURL(t, topo.url)}, topo.declare, true)
	const timeout = 300 * time.Millisecond
	pub := newPublisher(t, sup, broker.PublisherConfig{ConfirmTimeout: timeout})

	// A first batch leaves the publisher with an open channel, so the
	// stalled batch below gets as far as waiting for confirms.
	outcomes, err := publish(t, pub, messages(5, topo.exchange, topo.key, "warm-up", 0))
	if err != nil {
		t.Fatalf("warm-up batch: %v", err)
	}
	wantOutcomes(t, outcomes, all(broker.Acked))

	// Unroutable, so once the network resumes the broker sends returns
	// for these on the old channel. The relay re-publishes a timed-out
	// message with the same id, so a return leaking into the next batch
	// would mark that one Returned.
	proxy.SetStalled(true)
	start := time.Now()
	outcomes, err = publish(t, pub, messages(20, topo.exchange, "nobody.listens", "again", 0))
	if elapsed := time.Since(start); elapsed < timeout || elapsed > timeout+3*time.Second {
		t.Errorf("PublishBatch on a stalled network took %v, want about the confirm timeout %v", elapsed, timeout)
	}
	if err != nil {
		t.Fatalf("PublishBatch on a stalled network: %v; want no error, only Unconfirmed outcomes", err)
	}
	wantOutcomes(t, outcomes, all(broker.Unconfirmed))

	// The timed-out channel was discarded; opening another cannot get an
	// answer either, and must not wait longer than the timeout for one.
	start = time.Now()
	outcomes, err = publish(t, pub, messages(5, topo.exchange, topo.key, "still-stalled", 0))
	if elapsed := time.Since(start); elapsed > timeout+time.Second {
		t.Errorf("PublishBatch needing a new channel on a stalled network took %v, want about %v", elapsed, timeout)
	}
	if err == nil || outcomes != nil {
		t.Errorf("PublishBatch needing a new channel on a stalled network = %v, %v; want nil outcomes and an error", outcomes, err)
	}

	proxy.SetStalled(false)
	outcomes, err = publish(t, pub, messages(20, topo.exchange, topo.key, "again", 0))
	if err != nil {
		t.Fatalf("PublishBatch after the network resumed: %v", err)
	}
	wantOutcomes(t, outcomes, all(broker.Acked))
	if got := sup.Reconnects(); got != 0 {
		t.Errorf("Reconnects() = %d, want 0: a short stall is not a lost connection", got)
	}
}

func TestChannelErrorMidBatchReportsUnconfirmedAndNextBatchWorks(t *testing.T) {
	topo := newTopology(t)
	sup := startSupervisor(t, broker.Config{URL: topo.url}, topo.declare, true)
	pub := newPublisher(t, sup, broker.PublisherConfig{})

	// Publishing to a missing exchange makes the broker close the channel
	// (404) while the batch waits for its confirms.
	msgs := messages(50, topo.exchange, topo.key, "doomed", 0)
	msgs[len(msgs)-1].Exchange = testenv.Name(t, "missing")
	outcomes, err := publish(t, pub, msgs)
	var amqpErr *amqp.Error
	if !errors.As(err, &amqpErr) || amqpErr.Code != amqp.NotFound {
		t.Fatalf("PublishBatch err = %v, want the channel's 404 NOT_FOUND", err)
	}
	if len(outcomes) != len(msgs) {
		t.Fatalf("got %d outcomes for %d messages", len(outcomes), len(msgs))
	}
	if last := outcomes[len(outcomes)-1]; last != broker.Unconfirmed {
		t.Errorf("message to the missing exchange: %v, want unconfirmed", last)
	}
	acked := 0
	for i, o := range outcomes {
		switch o {
		case broker.Acked:
			acked++
		case broker.Unconfirmed:
		default:
			t.Errorf("message %d: %v, want acked or unconfirmed", i, o)
		}
	}
	if got := topo.queued(t); got < acked {
		t.Errorf("queue holds %d messages, fewer than the %d reported acked", got, acked)
	}

	outcomes, err = publish(t, pub, messages(10, topo.exchange, topo.key, "next", 0))
	if err != nil {
		t.Fatalf("PublishBatch after the channel error: %v", err)
	}
	wantOutcomes(t, outcomes, all(broker.Acked))
	if sup.Reconnects() != 0 {
		t.Errorf("a channel error cost the connection: Reconnects() = %d", sup.Reconnects())
	}
}
