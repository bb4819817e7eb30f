package outbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
)

// fixture is an outbox table, an exchange of this test's own and a
// connection to watch the broker with.
type fixture struct {
	pool     *pgxpool.Pool
	amqpURL  string
	exchange string
	conn     *amqp.Connection
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	f := &fixture{amqpURL: testenv.AMQPURL(tb), exchange: testenv.Name(tb, "pay.topic")}
	url := testenv.NewDatabase(tb, migrations.FS, migrations.Pay)
	pool, err := database.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	f.pool = pool
	conn, err := amqp.Dial(f.amqpURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	f.conn = conn
	testenv.DeleteOnCleanup(tb, f.amqpURL, []string{f.exchange}, nil)
	ch := f.channel(tb)
	if err := ch.ExchangeDeclare(f.exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		tb.Fatal(err)
	}
	return f
}

func (f *fixture) channel(tb testing.TB) *amqp.Channel {
	tb.Helper()
	ch, err := f.conn.Channel()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ch.Close() })
	return ch
}

// bindQueue declares a queue of this test bound to the exchange with
// pay.success and returns its deliveries.
func (f *fixture) bindQueue(tb testing.TB) <-chan amqp.Delivery {
	tb.Helper()
	return testenv.Watch(tb, f.amqpURL, f.exchange, "pay.success")
}

// insert commits n events to the outbox and returns their ids.
func (f *fixture) insert(tb testing.TB, n int) map[string]bool {
	tb.Helper()
	ids := map[string]bool{}
	err := database.InTx(context.Background(), f.pool, func(tx pgx.Tx) error {
		for i := range n {
			ev, err := outbox.NewEvent(f.exchange, "pay.success", "pay.success", map[string]int{"n": i}, "corr")
			if err != nil {
				return err
			}
			if err := outbox.Insert(context.Background(), tx, ev); err != nil {
				return err
			}
			ids[ev.ID.String()] = true
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return ids
}

func (f *fixture) pending(tb testing.TB) int {
	tb.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_events`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// startRelay runs a relay with its own broker connection until the test ends.
func (f *fixture) startRelay(tb testing.TB, amqpURL string) *outbox.Relay {
	tb.Helper()
	return f.startRelayConfirming(tb, amqpURL, 5*time.Second)
}

// startRelayConfirming is startRelay with the given confirm timeout.
func (f *fixture) startRelayConfirming(tb testing.TB, amqpURL string, confirmTimeout time.Duration) *outbox.Relay {
	tb.Helper()
	sup := broker.NewSupervisor(broker.Config{URL: amqpURL, Backoff: broker.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}},
		func(*amqp.Channel) error { return nil })
	pub := broker.NewPublisher(sup, broker.PublisherConfig{ConfirmTimeout: confirmTimeout})
	relay := outbox.NewRelay(f.pool, pub, outbox.RelayConfig{
		AppID: "pay", BatchSize: 50, Poll: 50 * time.Millisecond,
		Retry: broker.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sup.Run(ctx) })
	wg.Go(func() { _ = relay.Run(ctx) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = pub.Close()
	})
	return relay
}

// publishedAll waits until every id in want has been delivered and the
// relay has deleted every event, and returns how often each id arrived.
func (f *fixture) publishedAll(tb testing.TB, deliveries <-chan amqp.Delivery, want map[string]bool, within time.Duration) map[string]int {
	tb.Helper()
	got := receive(tb, deliveries, want, within)
	testenv.WaitFor(tb, 15*time.Second, "the outbox to empty", func() bool { return f.pending(tb) == 0 })
	return got
}

// receive collects deliveries until every id in want has arrived, and
// returns how often each message id arrived.
func receive(tb testing.TB, deliveries <-chan amqp.Delivery, want map[string]bool, within time.Duration) map[string]int {
	tb.Helper()
	got := map[string]int{}
	missing := len(want)
	timeout := time.After(within)
	for missing > 0 {
		select {
		case d := <-deliveries:
			if want[d.MessageId] && got[d.MessageId] == 0 {
				missing--
			}
			got[d.MessageId]++
		case <-timeout:
			tb.Fatalf("%d of %d events not delivered within %v", missing, len(want), within)
		}
	}
	return got
}

func TestRelayPublishesPersistentConfirmedEventsAndDeletesThem(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deliveries := f.bindQueue(t)
	ids := f.insert(t, 120)
	f.startRelay(t, f.amqpURL)

	f.publishedAll(t, deliveries, ids, 10*time.Second)
}

func TestUnroutableEventStaysPendingUntilABindingExists(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ids := f.insert(t, 3)
	relay := f.startRelay(t, f.amqpURL)

	testenv.WaitFor(t, 15*time.Second, "the broker to return the unroutable events", func() bool { return relay.Stats().Returned >= 3 })
	if n := f.pending(t); n != 3 {
		t.Fatalf("%d events pending after being returned, want all 3 kept", n)
	}
	var attempts int
	var lastError string
	if err := f.pool.QueryRow(context.Background(), `SELECT min(attempts), min(last_error) FROM outbox_events`).Scan(&attempts, &lastError); err != nil {
		t.Fatal(err)
	}
	if attempts < 1 || lastError == "" {
		t.Errorf("returned events have attempts=%d last_error=%q, want the failure recorded", attempts, lastError)
	}

	deliveries := f.bindQueue(t)
	f.publishedAll(t, deliveries, ids, 10*time.Second)
}

func TestTwoRelaysOnOneDatabasePublishEveryEvent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deliveries := f.bindQueue(t)
	ids := f.insert(t, 1_000)
	a := f.startRelay(t, f.amqpURL)
	b := f.startRelay(t, f.amqpURL)

	got := f.publishedAll(t, deliveries, ids, 30*time.Second)
	dup := 0
	for _, n := range got {
		dup += n - 1
	}
	t.Logf("relay A published %d, relay B %d, duplicates %d", a.Stats().Published, b.Stats().Published, dup)
	if a.Stats().Published == 0 || b.Stats().Published == 0 {
		t.Logf("one relay did all the work; SKIP LOCKED was not exercised this run")
	}
}

func TestEventsWaitInTheOutboxWhileTheBrokerIsDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deliveries := f.bindQueue(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, f.amqpURL))
	proxy.SetDown(true)
	f.startRelay(t, proxy.RewriteURL(t, f.amqpURL))
	ids := f.insert(t, 50)

	time.Sleep(300 * time.Millisecond) // several polls with no broker
	if n := f.pending(t); n != 50 {
		t.Fatalf("%d events pending while the broker is down, want 50", n)
	}
	proxy.SetDown(false)
	f.publishedAll(t, deliveries, ids, 15*time.Second)
}

func TestUnconfirmedEventStaysPendingAndIsRepublishedWithTheSameMessageID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deliveries := f.bindQueue(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, f.amqpURL))
	f.startRelayConfirming(t, proxy.RewriteURL(t, f.amqpURL), 300*time.Millisecond)
	// Connected, and the first event's confirm recorded, so only the next
	// batch meets the stalled broker.
	receive(t, deliveries, f.insert(t, 1), 10*time.Second)
	testenv.WaitFor(t, 10*time.Second, "the first event to be confirmed", func() bool { return f.pending(t) == 0 })

	// The broker never answers: no confirm arrives within the timeout.
	proxy.SetStalled(true)
	ids := f.insert(t, 5)
	testenv.WaitFor(t, 10*time.Second, "the relay to give up waiting for confirms", func() bool {
		var n int
		_ = f.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM outbox_events WHERE attempts >= 1 AND last_error LIKE 'no confirm%'`).Scan(&n)
		return n == 5
	})
	if n := f.pending(t); n != 5 {
		t.Fatalf("%d events pending after unconfirmed publishes, want all 5 kept", n)
	}

	proxy.SetStalled(false)
	got := f.publishedAll(t, deliveries, ids, 15*time.Second)
	for id, n := range got {
		if !ids[id] {
			t.Errorf("delivered message id %s is not one of the events' ids", id)
		}
		if n > 1 {
			t.Logf("event %s delivered %d times: the stalled publish arrived too (at-least-once)", id, n)
		}
	}
}
