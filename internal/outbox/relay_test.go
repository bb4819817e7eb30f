package outbox_test

import (
	"context"
	"maps"
	"runtime"
	"strings"
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
	return newFixtureOn(tb, testenv.AMQPURL(tb))
}

// newFixtureOn is newFixture on the broker at amqpURL.
func newFixtureOn(tb testing.TB, amqpURL string) *fixture {
	tb.Helper()
	return newFixtureAt(tb, amqpURL, testenv.NewDatabase(tb, migrations.FS, migrations.Pay))
}

// newFixtureAt is newFixtureOn with the outbox of the database at dbURL.
func newFixtureAt(tb testing.TB, amqpURL, dbURL string) *fixture {
	tb.Helper()
	pool, err := database.Open(context.Background(), dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return newFixtureWith(tb, amqpURL, pool)
}

// newFixtureWith is newFixtureOn with the outbox pool holds.
func newFixtureWith(tb testing.TB, amqpURL string, pool *pgxpool.Pool) *fixture {
	tb.Helper()
	f := &fixture{amqpURL: amqpURL, exchange: testenv.Name(tb, "pay.topic"), pool: pool}
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
	return f.runRelay(tb, sup, confirmTimeout)
}

// runRelay runs a relay publishing through sup until the test ends.
func (f *fixture) runRelay(tb testing.TB, sup *broker.Supervisor, confirmTimeout time.Duration) *outbox.Relay {
	tb.Helper()
	return f.runRelayRetrying(tb, sup, confirmTimeout, broker.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond})
}

// runRelayRetrying is runRelay with the given backoff between attempts.
func (f *fixture) runRelayRetrying(tb testing.TB, sup *broker.Supervisor, confirmTimeout time.Duration, retry broker.Backoff) *outbox.Relay {
	tb.Helper()
	pub := broker.NewPublisher(sup, broker.PublisherConfig{ConfirmTimeout: confirmTimeout})
	relay := outbox.NewRelay(f.pool, pub, outbox.RelayConfig{
		AppID: "pay", BatchSize: 50, Poll: 50 * time.Millisecond, Retry: retry,
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

// TestTwoRelaysOnOneDatabasePublishEveryEvent holds the oldest events
// locked, as a relay busy with its batch does, and wants the relays to
// publish every other event meanwhile and none of the locked ones, then
// every event exactly once: a relay that waits on another's lock, or
// claims rows another holds, fails it.
func TestTwoRelaysOnOneDatabasePublishEveryEvent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deliveries := f.bindQueue(t)
	held := f.insert(t, 50)
	ids := f.insert(t, 1_000)

	ctx := context.Background()
	busy, err := f.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = busy.Rollback(ctx) }()
	heldIDs := make([]string, 0, len(held))
	for id := range held {
		heldIDs = append(heldIDs, id)
	}
	if _, err := busy.Exec(ctx, `SELECT id FROM outbox_events WHERE id = ANY($1::uuid[]) FOR UPDATE`, heldIDs); err != nil {
		t.Fatal(err)
	}

	a := f.startRelay(t, f.amqpURL)
	b := f.startRelay(t, f.amqpURL)
	got := receive(t, deliveries, ids, 30*time.Second)
	for id := range held {
		if got[id] > 0 {
			t.Errorf("event %s was published while another relay held it", id)
		}
	}
	if err := busy.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for id, n := range receive(t, deliveries, held, 15*time.Second) {
		got[id] += n
	}
	testenv.WaitFor(t, 15*time.Second, "the outbox to empty", func() bool { return f.pending(t) == 0 })

	dup := 0
	for _, n := range got {
		dup += n - 1
	}
	t.Logf("relay A published %d, relay B %d, duplicates %d", a.Stats().Published, b.Stats().Published, dup)
	if dup != 0 {
		t.Errorf("%d events published more than once by two relays on a healthy broker, want none", dup)
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

// insertTo commits one event to exchange and returns its id.
func (f *fixture) insertTo(tb testing.TB, exchange string) string {
	tb.Helper()
	ev, err := outbox.NewEvent(exchange, "pay.success", "pay.success", map[string]int{"n": 0}, "corr")
	if err != nil {
		tb.Fatal(err)
	}
	err = database.InTx(context.Background(), f.pool, func(tx pgx.Tx) error { return outbox.Insert(context.Background(), tx, ev) })
	if err != nil {
		tb.Fatal(err)
	}
	return ev.ID.String()
}

func TestEventTheBrokerRefusesIsRecordedAndDoesNotHoldBackTheOthers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	deliveries := f.bindQueue(t)
	// Publishing to an exchange that does not exist makes the broker close
	// the channel (404): the one bad event comes first, in the same batch
	// as ten good ones.
	bad := f.insertTo(t, testenv.Name(t, "no.such.exchange"))
	good := f.insert(t, 10)
	sup := broker.NewSupervisor(broker.Config{URL: f.amqpURL}, nil)
	relay := f.runRelayRetrying(t, sup, 5*time.Second, broker.Backoff{Initial: time.Minute, Max: time.Hour})

	receive(t, deliveries, good, 5*time.Second)
	testenv.WaitFor(t, 5*time.Second, "only the refused event to stay", func() bool { return f.pending(t) == 1 })
	var (
		id        string
		attempts  int
		lastError string
		backedOff bool
	)
	if err := f.pool.QueryRow(context.Background(),
		`SELECT id::text, attempts, coalesce(last_error, ''), available_at > now() FROM outbox_events`).Scan(&id, &attempts, &lastError, &backedOff); err != nil {
		t.Fatal(err)
	}
	if id != bad || attempts < 1 || !strings.Contains(lastError, "404") || !backedOff {
		t.Errorf("kept event %s attempts=%d last_error=%q backed off=%v; want %s, its attempt, the broker's 404 and a backoff",
			id, attempts, lastError, backedOff, bad)
	}
	if relay.Stats().Refused < 1 {
		t.Errorf("relay counted %d refusals, want the refused event counted", relay.Stats().Refused)
	}
}

func TestRelayDeclaresItsExchangeAgainAfterTheBrokerLostIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	sup := broker.NewSupervisor(broker.Config{URL: f.amqpURL, Backoff: broker.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}},
		func(ch *amqp.Channel) error {
			return ch.ExchangeDeclare(f.exchange, amqp.ExchangeTopic, true, false, false, false, nil)
		})
	f.runRelay(t, sup, 5*time.Second)
	receive(t, f.bindQueue(t), f.insert(t, 1), 10*time.Second)

	// Someone deletes the exchange while the relay's connection stays up.
	if err := f.channel(t).ExchangeDelete(f.exchange, false, false); err != nil {
		t.Fatal(err)
	}
	ids := f.insert(t, 3)
	testenv.WaitFor(t, 10*time.Second, "the relay to declare the exchange again", func() bool {
		ch, err := f.conn.Channel()
		if err != nil {
			return false
		}
		defer ch.Close()
		return ch.ExchangeDeclarePassive(f.exchange, amqp.ExchangeTopic, true, false, false, false, nil) == nil
	})
	f.publishedAll(t, f.bindQueue(t), ids, 15*time.Second)
}

// TestRelayPausesWhileTheBrokerBlocksPublishingAndResumesAtOnce raises a
// memory alarm on a private broker node: while it blocks publishing the
// relay must hold no transaction open, charge no event an attempt and pile
// up no goroutines, and once it clears every event must go out at once,
// not after a retry backoff.
//
// It runs alone, not in parallel, so that the goroutines it counts are the
// relay's.
func TestRelayPausesWhileTheBrokerBlocksPublishingAndResumesAtOnce(t *testing.T) {
	node := testenv.StartRabbitNode(t)
	f := newFixtureOn(t, node.URL)
	deliveries := f.bindQueue(t)
	sup := broker.NewSupervisor(broker.Config{URL: node.URL}, nil)
	// The production backoff: an event charged an attempt would wait 1 s
	// and more after the alarm.
	f.runRelayRetrying(t, sup, 5*time.Second, broker.Backoff{Initial: time.Second, Max: 30 * time.Second})
	receive(t, deliveries, f.insert(t, 1), 10*time.Second)
	testenv.WaitFor(t, 5*time.Second, "the first event to be confirmed", func() bool { return f.pending(t) == 0 })

	node.Ctl(t, "set_vm_memory_high_watermark", "0")
	alarmOff := sync.OnceFunc(func() { node.Ctl(t, "set_vm_memory_high_watermark", "0.4") })
	t.Cleanup(alarmOff)
	// The broker blocks a connection when it next publishes.
	ids := f.insert(t, 1)
	testenv.WaitFor(t, 10*time.Second, "the broker to block the relay's connection", sup.Blocked)
	maps.Copy(ids, f.insert(t, 50))
	goroutines := runtime.NumGoroutine()
	ctx := context.Background()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		var open int
		if err := f.pool.QueryRow(ctx, `
			SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open != 0 {
			t.Fatalf("%d transactions open in the outbox's database while the broker blocks publishing, want none", open)
		}
		if n := runtime.NumGoroutine(); n > goroutines+5 {
			t.Fatalf("%d goroutines while blocked, %d when the block began: the relay piles them up", n, goroutines)
		}
	}
	var charged int
	if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM outbox_events WHERE attempts > 0`).Scan(&charged); err != nil {
		t.Fatal(err)
	}
	if charged != 0 {
		t.Errorf("%d events charged an attempt while the broker blocked publishing, want none", charged)
	}

	alarmOff()
	cleared := time.Now()
	receive(t, deliveries, ids, time.Second)
	testenv.WaitFor(t, time.Second, "the outbox to empty", func() bool { return f.pending(t) == 0 })
	t.Logf("all 51 events delivered and recorded %v after the alarm cleared", time.Since(cleared).Round(time.Millisecond))
}
