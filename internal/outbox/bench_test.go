package outbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/outbox"
)

// BenchmarkRelayBatch measures draining the outbox: claim, publish
// persistent and mandatory with pipelined confirms, delete — against the
// real PostgreSQL and RabbitMQ, into a durable classic queue.
func BenchmarkRelayBatch(b *testing.B) {
	f := newFixture(b)
	deliveries := f.bindQueue(b)
	go func() {
		for range deliveries { // keep the queue short
		}
	}()
	sup := broker.NewSupervisor(broker.Config{URL: f.amqpURL}, func(*amqp.Channel) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sup.Run(ctx) })
	b.Cleanup(func() { cancel(); wg.Wait() })
	if _, err := sup.Connection(ctx); err != nil {
		b.Fatal(err)
	}
	pub := broker.NewPublisher(sup, broker.PublisherConfig{ConfirmTimeout: 10 * time.Second})
	b.Cleanup(func() { _ = pub.Close() })
	relay := outbox.NewRelay(f.pool, pub, outbox.RelayConfig{AppID: "bench", BatchSize: 200})

	f.insert(b, b.N)
	b.ResetTimer()
	for published := 0; published < b.N; {
		n, err := relay.RelayBatch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		published += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if n := f.pending(b); n != 0 {
		b.Fatalf("%d events left in the outbox", n)
	}
}
