// Command trade runs the trade service: orders and their refunds, the
// consumers that mark an order paid for each pay.success event and refunded
// for each refund.success, the outbox relay that announces each refund
// request, and the cron fallback that asks pay about orders and refunds
// whose event never came and cancels the orders that timed out.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/internal/logging"
	"github.com/paytrade/paytrade/internal/metrics"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/trade"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
	"github.com/paytrade/paytrade/services/trade/cron"
	"github.com/paytrade/paytrade/services/trade/httpapi"
	"github.com/paytrade/paytrade/services/trade/payclient"
	"github.com/paytrade/paytrade/services/trade/postgres"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "trade:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	healthcheck, err := httpserver.HealthcheckArgs("trade", args)
	if err != nil {
		return err
	}
	if healthcheck {
		// The container's health check: the image has nothing else to run.
		// It needs the address only, not the secrets the service refuses
		// to start without.
		return httpserver.Probe(ctx, config.NewReader(getenv).String("TRADE_HTTP_ADDR", defaultHTTPAddr), "/readyz")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := logging.New(stdout, cfg.LogLevel, "trade")
	logging.WarnUnsafe(log, cfg.Crash.String(), cfg.Dev, cfg.seedStyle())
	if err := httpserver.ServeDebug(ctx, cfg.DebugAddr, log); err != nil {
		return err
	}
	pool, err := database.OpenMigrated(ctx, cfg.DatabaseURL, migrations.FS, migrations.Trade)
	if err != nil {
		return err
	}
	defer pool.Close()

	payClient, err := payclient.New(payclient.Config{BaseURL: cfg.PayURL, Secret: cfg.JWTSecret, Timeout: cfg.PayTimeout})
	if err != nil {
		return err
	}
	store := postgres.New(pool, nil)
	svc := trade.NewService(store, payClient, log, nil)

	// Consuming and publishing use connections of their own, as RabbitMQ
	// advises: flow control that blocks a publishing connection must not
	// hold up the acks of the consumer.
	consumerBroker := cfg.Broker
	consumerBroker.ConnectionName, consumerBroker.Logger = "trade-consumer", log
	publisherBroker := cfg.Broker
	publisherBroker.ConnectionName, publisherBroker.Logger = "trade-publisher", log
	consumerSup := broker.NewSupervisor(consumerBroker, cfg.Topology.Declare)
	publisherSup := broker.NewSupervisor(publisherBroker, cfg.Topology.Declare)
	publisher := broker.NewPublisher(publisherSup, broker.PublisherConfig{ConfirmTimeout: cfg.Confirm, Logger: log})
	registry, reg := metrics.NewRegistry("trade")
	// The same relay as pay's, over trade's own outbox: refund.requested.
	relay := outbox.NewRelay(pool, publisher, outbox.RelayConfig{
		AppID: "trade", BatchSize: cfg.OutboxBatch, Poll: cfg.OutboxPoll, Retry: cfg.OutboxRetry, Logger: log, Crash: cfg.Crash,
		ObserveConfirm: metrics.Latency(reg, "outbox_confirm_seconds", "Time from publishing an outbox batch to its last confirm."),
	})
	store.WithEvents(postgres.Events{Exchange: cfg.Topology.TradeExchange, RefundRequestedKey: cfg.Topology.RefundRequestedKey, Committed: relay.Wake, Crash: cfg.Crash})
	counts := &tradeamqp.Counts{}
	markPaid, orders := markPaidAndOrders(cfg, store, counts, log)
	consumerCfg := broker.ConsumerConfig{
		Queue:           cfg.Topology.Queue,
		Prefetch:        cfg.Prefetch,
		Retry:           cfg.Retry,
		Recoverer:       cfg.Recoverer,
		ErrorExchange:   cfg.Topology.ErrorExchange,
		ErrorRoutingKey: cfg.Topology.ErrorKey,
		Publisher:       publisher,
		Unavailable:     database.IsFailure,
		AttemptTimeout:  cfg.AttemptTimeout,
		Probe:           database.Writable(pool),
		Logger:          log,
		AutoAck:         cfg.AutoAck,
	}
	consumer := broker.NewConsumer(consumerSup, consumerCfg, markPaid)
	refundCfg := consumerCfg
	refundCfg.Queue = cfg.Topology.RefundQueue
	refundConsumer := broker.NewConsumer(consumerSup, refundCfg, tradeamqp.MarkOrderRefunded(store, counts, log))
	fallback, err := cron.New(svc, store, cron.Config{
		Spec: cfg.CheckSpec, Grace: cfg.CheckGrace, Timeout: cfg.OrderTimeout, Batch: cfg.CheckBatch, Logger: log,
	})
	if err != nil {
		return err
	}

	registerMetrics(reg, consumer, refundConsumer, relay, store, counts, fallback, consumerSup, publisherSup)
	handler := httpapi.NewHandler(orders, svc, httpapi.Config{
		Auth: auth.NewAuthenticator(cfg.JWTSecret),
		Ready: map[string]func(context.Context) error{
			"database": pool.Ping,
			"broker": func(context.Context) error {
				if !consumerSup.Connected() {
					return broker.ErrNotConnected
				}
				return nil
			},
		},
		Instrument: metrics.NewHTTP(reg).Middleware,
		Metrics:    metrics.Handler(registry, log),
		Logger:     log,
	})

	// Each background part gets its own context so shutdown can stop them
	// in order: the consumer needs the broker to ack and park its last
	// messages, and the fallback needs the database.
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	consumerCtx, stopConsumer := context.WithCancel(context.WithoutCancel(ctx))
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var brokerDone, consumerDone, relayDone sync.WaitGroup
	brokerDone.Go(func() { _ = consumerSup.Run(brokerCtx) })
	brokerDone.Go(func() { _ = publisherSup.Run(brokerCtx) })
	consumerDone.Go(func() { _ = consumer.Run(consumerCtx) })
	consumerDone.Go(func() { _ = refundConsumer.Run(consumerCtx) })
	relayDone.Go(func() { _ = relay.Run(relayCtx) })
	consumerDone.Go(func() {
		database.PurgeEvery(consumerCtx, time.Hour, "processed message ids older than "+cfg.InboxRetention.String(),
			func(ctx context.Context) (int64, error) { return store.PurgeProcessedMessages(ctx, cfg.InboxRetention) }, log)
	})
	fallback.Start(context.WithoutCancel(ctx))

	err = httpserver.Serve(ctx, "trade", cfg.HTTPAddr, handler, log, cfg.ShutdownGrace)
	stopConsumer()
	consumerDone.Wait()
	fallback.Stop()
	// After the consumers and the fallback, whose transactions can write
	// refund.requested events; the relay needs the broker to finish its batch.
	stopRelay()
	relayDone.Wait()
	_ = publisher.Close()
	stopBroker()
	brokerDone.Wait()
	log.Info("stopped", "applied", counts.Applied.Load(), "duplicates", counts.Duplicate.Load(), "discrepancies", counts.Discrepancy.Load())
	return err
}
