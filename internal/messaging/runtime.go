// Package messaging runs a service's side of the broker as one piece: a
// publishing and a consuming connection, the confirmed publisher, the
// outbox relay and the consumers, started together and stopped in the one
// order that loses nothing. A service declares its topology, hands over a
// handler per queue and knows nothing of the rest.
package messaging

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/metrics"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/tracing"
)

// Config is what a Runtime needs to know of its service.
type Config struct {
	Service string        // the app_id of every message and the prefix of the connection names
	Broker  broker.Config // the nodes and credentials; ConnectionName and Logger are set per connection
	// Declare declares the service's topology on every new connection.
	Declare        func(*amqp.Channel) error
	ConfirmTimeout time.Duration
	// Outbox tunes the relay; its AppID and Logger are the runtime's.
	Outbox outbox.RelayConfig
	// Consumer holds the settings every consumer shares (prefetch, retry,
	// recoverer, error exchange, attempt timeout); Queue, Publisher,
	// Unavailable, Probe and Logger are the runtime's.
	Consumer broker.ConsumerConfig
	Metrics  prometheus.Registerer // [none]
	Logger   *slog.Logger          // [discard]
}

// Runtime is a service's broker side. Make it with New, add consumers and
// the work that writes events, then Start and, at shutdown, Stop.
type Runtime struct {
	cfg        Config
	pool       *pgxpool.Pool
	log        *slog.Logger
	reg        prometheus.Registerer
	publishing *broker.Supervisor
	consuming  *broker.Supervisor
	publisher  *broker.Publisher
	relay      *outbox.Relay
	consumers  []*broker.Consumer
	writers    []func(context.Context)

	stopWriters, stopRelay, stopConnections context.CancelFunc
	writersDone, relayDone, connectionsDone sync.WaitGroup
}

// New returns the runtime of the service whose outbox is in pool's database.
func New(pool *pgxpool.Pool, cfg Config) *Runtime {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	// Consuming and publishing use connections of their own, as RabbitMQ
	// advises: flow control that blocks a publishing connection must not
	// hold up the acks of the consumers.
	connection := func(name string) *broker.Supervisor {
		b := cfg.Broker
		b.ConnectionName, b.Logger = cfg.Service+"-"+name, log
		sup := broker.NewSupervisor(b, cfg.Declare)
		metrics.Counter(prometheus.WrapRegistererWith(prometheus.Labels{"connection": name}, reg),
			"broker_reconnects_total", "Broker connections made after the first.", sup.Reconnects)
		return sup
	}
	rt := &Runtime{cfg: cfg, pool: pool, log: log, reg: reg}
	rt.publishing, rt.consuming = connection("publisher"), connection("consumer")
	rt.publisher = broker.NewPublisher(rt.publishing, broker.PublisherConfig{ConfirmTimeout: cfg.ConfirmTimeout, Logger: log})
	relayCfg := cfg.Outbox
	relayCfg.AppID, relayCfg.Logger = cfg.Service, log
	relayCfg.ObserveConfirm = metrics.Latency(reg, "outbox_confirm_seconds", "Time from publishing an outbox batch to its last confirm.")
	rt.relay = outbox.NewRelay(pool, rt.publisher, relayCfg)
	metrics.Outbox(reg, rt.relay)
	return rt
}

// Consume adds a consumer of queue, whose deliveries h handles, with its
// counters under the metric names prefix_*; event names what arrives there,
// for the metrics' help. Call it before Start.
func (rt *Runtime) Consume(prefix, queue, event string, h broker.Handler) *broker.Consumer {
	cfg := rt.cfg.Consumer
	cfg.Queue, cfg.Publisher, cfg.Logger = queue, rt.publisher, rt.log
	// A database that is down or refuses writes pauses consumption: the
	// world's fault, not the message's.
	cfg.Unavailable, cfg.Probe = database.IsFailure, database.Writable(rt.pool)
	c := broker.NewConsumer(rt.consuming, cfg, traced(queue, h))
	metrics.Consumer(rt.reg, prefix, queue+" ("+event+")", c)
	rt.consumers = append(rt.consumers, c)
	return c
}

// traced runs h in the span of processing each delivery, which continues
// the trace the message carries.
func traced(queue string, h broker.Handler) broker.Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		ctx, span := tracing.Process(ctx, queue, d)
		err := h(ctx, d)
		tracing.End(span, err)
		return err
	}
}

// WritesEvents adds work that runs beside the consumers and, like them, may
// write events: Stop ends it, and waits for it, before the relay's last
// batch. Call it before Start.
func (rt *Runtime) WritesEvents(work func(ctx context.Context)) {
	rt.writers = append(rt.writers, work)
}

// Wake tells the relay that events were committed, so it publishes them
// without waiting for its poll.
func (rt *Runtime) Wake() { rt.relay.Wake() }

// Publishing is the publishing connection's supervisor.
func (rt *Runtime) Publishing() *broker.Supervisor { return rt.publishing }

// Ready reports whether both connections are up, for /readyz.
func (rt *Runtime) Ready(context.Context) error {
	if !rt.publishing.Connected() || !rt.consuming.Connected() {
		return broker.ErrNotConnected
	}
	return nil
}

// Start runs the connections, the relay, the consumers and the work that
// writes events. They outlive ctx's cancellation: Stop ends them, in order.
func (rt *Runtime) Start(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	var connections, relay, writers context.Context
	connections, rt.stopConnections = context.WithCancel(ctx)
	relay, rt.stopRelay = context.WithCancel(ctx)
	writers, rt.stopWriters = context.WithCancel(ctx)
	for _, sup := range []*broker.Supervisor{rt.publishing, rt.consuming} {
		rt.connectionsDone.Go(func() { _ = sup.Run(connections) })
	}
	rt.relayDone.Go(func() {
		if err := rt.relay.Run(relay); err != nil {
			rt.log.Error("outbox relay stopped", "err", err)
		}
	})
	for _, c := range rt.consumers {
		rt.writersDone.Go(func() {
			if err := c.Run(writers); err != nil {
				rt.log.Error("consumer stopped", "err", err)
			}
		})
	}
	for _, work := range rt.writers {
		rt.writersDone.Go(func() { work(writers) })
	}
}

// Stop ends everything Start began, each part after what depends on it:
// the consumers and the work that writes events first (a consumer acks and
// parks on the connections, and its last transactions may write events),
// then the relay, which publishes those, then the publisher and the
// connections.
func (rt *Runtime) Stop() {
	if rt.stopWriters == nil {
		return
	}
	rt.stopWriters()
	rt.writersDone.Wait()
	rt.stopRelay()
	rt.relayDone.Wait()
	if err := rt.publisher.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		rt.log.Debug("close publisher", "err", err)
	}
	rt.stopConnections()
	rt.connectionsDone.Wait()
}
