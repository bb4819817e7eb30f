package outbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
)

// TestRelayBatchTakesTwoRoundTripsAndThePublish counts a batch's round
// trips to PostgreSQL on the wire: the claim, which is also the barrier
// for the synchronous standby, and the bookkeeping, whatever the broker
// said of each event; one when nothing is due.
func TestRelayBatchTakesTwoRoundTripsAndThePublish(t *testing.T) {
	t.Parallel()
	pool, proxy := testenv.NewCountingPool(t, migrations.FS, migrations.Pay)
	f := newFixtureWith(t, testenv.AMQPURL(t), pool)
	f.bindQueue(t)
	sup := broker.NewSupervisor(broker.Config{URL: f.amqpURL}, func(*amqp.Channel) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sup.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if _, err := sup.Connection(ctx); err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(sup, broker.PublisherConfig{ConfirmTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = pub.Close() })
	// A returned event waits past the test for its next attempt.
	relay := outbox.NewRelay(f.pool, pub, outbox.RelayConfig{AppID: "pay", BatchSize: 50, Retry: broker.Backoff{Initial: time.Hour, Max: time.Hour}})
	batch := func(want int) int64 {
		t.Helper()
		var n int
		var err error
		trips := proxy.CountRoundTrips(func() { n, err = relay.RelayBatch(ctx) })
		if err != nil || n != want {
			t.Fatalf("relay batch: %d events, %v; want %d events", n, err, want)
		}
		return trips
	}
	unroutable := func() {
		ev, err := outbox.NewEvent(f.exchange, "nobody.listens", "pay.success", map[string]int{"n": 0}, "corr")
		if err != nil {
			t.Fatal(err)
		}
		if err := database.InTx(ctx, f.pool, func(tx pgx.Tx) error { return outbox.Insert(ctx, tx, ev) }); err != nil {
			t.Fatal(err)
		}
	}
	// A batch with an event the broker returns warms every statement up.
	unroutable()
	f.insert(t, 2)
	batch(3)

	for _, tc := range []struct {
		name       string
		setUp      func()
		events     int
		roundTrips int64
	}{
		{"nothing due", func() {}, 0, 1},
		{"every event confirmed", func() { f.insert(t, 10) }, 10, 2},
		{"one event returned, the rest confirmed", func() {
			unroutable()
			f.insert(t, 10)
		}, 11, 2},
	} {
		tc.setUp()
		if got := batch(tc.events); got != tc.roundTrips {
			t.Errorf("%s: %d round trips, want %d and the publish", tc.name, got, tc.roundTrips)
		}
	}
}
