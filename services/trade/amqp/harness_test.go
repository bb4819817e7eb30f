package amqp_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/trade"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// rig is trade's consumer on a topology of this test, over a trade database
// of its own, with a connection of the test's to publish and inspect.
type rig struct {
	pool     *pgxpool.Pool
	topo     tradeamqp.Topology
	store    *postgres.Store
	counts   *tradeamqp.Counts
	consumer *broker.Consumer
	ch       *amqp091.Channel
	// stop stops the consumer and its connections and waits for them.
	stop func()
}

type rigOptions struct {
	pool      *pgxpool.Pool // [a fresh trade database]
	retry     broker.Retry
	recoverer broker.Recoverer
	queueType string
	// attemptTimeout bounds each handler attempt [the consumer's default]
	attemptTimeout time.Duration
}

func newRig(t *testing.T, opt rigOptions) *rig {
	t.Helper()
	amqpURL := testenv.AMQPURL(t)
	if opt.pool == nil {
		opt.pool = tradetest.NewPool(t)
	}
	if opt.queueType == "" {
		opt.queueType = tradeamqp.QueueQuorum
	}
	if opt.retry.MaxAttempts == 0 {
		opt.retry = broker.Retry{MaxAttempts: 2, InitialInterval: 10 * time.Millisecond}
	}
	topo := tradeamqp.Topology{
		Exchange:      testenv.Name(t, "pay.topic"),
		PaySuccessKey: "pay.success",
		Queue:         testenv.Name(t, "mark.order.pay.queue"),
		QueueType:     opt.queueType,
		ErrorExchange: testenv.Name(t, "error.direct"),
		ErrorKey:      "error",
		ErrorQueue:    testenv.Name(t, "error.queue"),
	}
	testenv.DeleteOnCleanup(t, amqpURL, []string{topo.Exchange, topo.ErrorExchange}, []string{topo.Queue, topo.ErrorQueue})
	store := postgres.New(opt.pool)
	counts := &tradeamqp.Counts{}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	consumerSup := broker.NewSupervisor(broker.Config{URL: amqpURL, Backoff: broker.Backoff{Initial: 50 * time.Millisecond}}, topo.Declare)
	publisherSup := broker.NewSupervisor(broker.Config{URL: amqpURL, Backoff: broker.Backoff{Initial: 50 * time.Millisecond}}, topo.Declare)
	publisher := broker.NewPublisher(publisherSup, broker.PublisherConfig{})
	consumer := broker.NewConsumer(consumerSup, broker.ConsumerConfig{
		Queue:           topo.Queue,
		Prefetch:        8,
		Retry:           opt.retry,
		Recoverer:       opt.recoverer,
		ErrorExchange:   topo.ErrorExchange,
		ErrorRoutingKey: topo.ErrorKey,
		Publisher:       publisher,
		Unavailable:     database.IsFailure,
		AttemptTimeout:  opt.attemptTimeout,
		Probe:           database.Writable(opt.pool),
		ProbeBackoff:    broker.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond},
	}, tradeamqp.MarkOrderPaid(store, counts, nil, crashpoint.Set{}))
	wg.Go(func() { _ = consumerSup.Run(ctx) })
	wg.Go(func() { _ = publisherSup.Run(ctx) })
	wg.Go(func() { _ = consumer.Run(ctx) })
	stop := sync.OnceFunc(func() {
		cancel()
		wg.Wait()
		_ = publisher.Close()
	})
	t.Cleanup(stop)

	// The test's own connection, once the consumer's has declared the topology.
	if _, err := consumerSup.Connection(ctx); err != nil {
		t.Fatal(err)
	}
	mine, err := amqp091.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mine.Close() })
	ch, err := mine.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return &rig{pool: opt.pool, topo: topo, store: store, counts: counts, consumer: consumer, ch: ch, stop: stop}
}

// publish sends a pay.success message as pay does, with body as given,
// and waits for the broker's confirm.
func (r *rig) publish(t *testing.T, messageID string, body []byte) {
	t.Helper()
	dc, err := r.ch.PublishWithDeferredConfirmWithContext(context.Background(), r.topo.Exchange, r.topo.PaySuccessKey, true, false, amqp091.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp091.Persistent,
		MessageId:    messageID,
		Type:         trade.PaySuccessType,
		AppId:        "pay",
		Timestamp:    time.Now(),
		Body:         body,
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v %v", ok, err)
	}
}

// publishPayment sends the payment as a pay.success event under messageID.
func (r *rig) publishPayment(t *testing.T, messageID string, p trade.Payment) {
	t.Helper()
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t, messageID, body)
}

// parked waits for n messages in the error queue and takes them.
func (r *rig) parked(t *testing.T, n int, within time.Duration) []amqp091.Delivery {
	t.Helper()
	var got []amqp091.Delivery
	deadline := time.Now().Add(within)
	for len(got) < n {
		d, ok, err := r.ch.Get(r.topo.ErrorQueue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			got = append(got, d)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in %s after %v, want %d", len(got), r.topo.ErrorQueue, within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return got
}

// depth returns how many messages wait in queue.
func (r *rig) depth(t *testing.T, queue string) int {
	t.Helper()
	q, err := r.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

func newID() string { return uuid.NewString() }
