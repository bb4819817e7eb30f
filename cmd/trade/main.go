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
	"syscall"
	"time"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/health"
	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/internal/logging"
	"github.com/paytrade/paytrade/internal/messaging"
	"github.com/paytrade/paytrade/internal/metrics"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/tracing"
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
	stopTracing, err := tracing.Start(cfg.Tracing, stderr, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	pool, err := database.OpenMigrated(ctx, cfg.DatabaseURL, migrations.FS, migrations.Trade)
	if err != nil {
		return err
	}
	defer pool.Close()

	payClient, err := payclient.New(payclient.Config{BaseURL: cfg.PayURL, Signer: cfg.Keys.Signer, Timeout: cfg.PayTimeout})
	if err != nil {
		return err
	}
	registry, reg := metrics.NewRegistry("trade")
	consumerCfg := broker.ConsumerConfig{
		Prefetch:        cfg.Prefetch,
		Retry:           cfg.Retry,
		Recoverer:       cfg.Recoverer,
		ErrorExchange:   cfg.Topology.ErrorExchange,
		ErrorRoutingKey: cfg.Topology.ErrorKey,
		AttemptTimeout:  cfg.AttemptTimeout,
		Sender:          cfg.PaySender,
	}
	wireAckMode(cfg, &consumerCfg)
	messages := messaging.New(pool, messaging.Config{
		Service: "trade", Broker: cfg.Broker, Declare: cfg.Topology.Declare, ConfirmTimeout: cfg.Confirm,
		Outbox:   outbox.RelayConfig{BatchSize: cfg.OutboxBatch, Poll: cfg.OutboxPoll, Retry: cfg.OutboxRetry, Crash: cfg.Crash},
		Consumer: consumerCfg, Metrics: reg, Logger: log,
	})
	store := postgres.New(pool)
	store.WithEvents(postgres.Events{Exchange: cfg.Topology.TradeExchange, RefundRequestedKey: cfg.Topology.RefundRequestedKey, Committed: messages.Wake, Crash: cfg.Crash})
	svc := trade.NewService(store, payClient, log, nil)
	counts := &tradeamqp.Counts{}
	markPaid, orders := markPaidAndOrders(cfg, store, counts, log)
	messages.Consume("consumer", cfg.Topology.Queue, cfg.Topology.PaySuccessKey, markPaid)
	messages.Consume("refund_consumer", cfg.Topology.RefundQueue, cfg.Topology.RefundSuccessKey, tradeamqp.MarkOrderRefunded(store, counts, log))
	fallback, err := cron.New(svc, store, cron.Config{
		Spec: cfg.CheckSpec, Grace: cfg.CheckGrace, Timeout: cfg.OrderTimeout, Batch: cfg.CheckBatch, Logger: log,
	})
	if err != nil {
		return err
	}
	// The fallback writes refund.requested events too: it stops with the
	// consumers, before the relay's last batch.
	messages.WritesEvents(func(ctx context.Context) {
		fallback.Start(ctx)
		<-ctx.Done()
		fallback.Stop()
	})
	messages.WritesEvents(func(ctx context.Context) {
		database.PurgeEvery(ctx, time.Hour, "processed message ids older than "+cfg.InboxRetention.String(),
			func(ctx context.Context) (int64, error) { return store.PurgeProcessedMessages(ctx, cfg.InboxRetention) }, log)
	})

	registerMetrics(reg, store, counts, fallback)
	handler := httpapi.NewHandler(orders, svc, httpapi.Config{
		Auth:       cfg.Keys.Authenticator,
		Ready:      map[string]health.Check{"database": database.Primary(pool), "broker": health.Reachable(messages.Ready)},
		Instrument: metrics.NewHTTP(reg).Middleware,
		Metrics:    metrics.Handler(registry, log),
		Logger:     log,
	})

	messages.Start(ctx)
	err = httpserver.Serve(ctx, "trade", cfg.HTTPAddr, handler, log, cfg.ShutdownGrace)
	messages.Stop()
	log.Info("stopped", "applied", counts.Applied.Load(), "duplicates", counts.Duplicate.Load(), "discrepancies", counts.Discrepancy.Load())
	return err
}
