// Command pay runs the pay service: wallets, pay orders, pay-by-balance,
// the consumer that credits each refund trade requests, and the outbox relay
// that announces each payment and each refund on RabbitMQ.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

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
	"github.com/paytrade/paytrade/services/pay"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
	"github.com/paytrade/paytrade/services/pay/httpapi"
	"github.com/paytrade/paytrade/services/pay/postgres"
	"github.com/paytrade/paytrade/services/pay/tradeclient"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "pay:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	healthcheck, err := httpserver.HealthcheckArgs("pay", args)
	if err != nil {
		return err
	}
	if healthcheck {
		// The container's health check: the image has nothing else to run.
		// It needs the address only, not the secrets the service refuses
		// to start without.
		return httpserver.Probe(ctx, config.NewReader(getenv).String("PAY_HTTP_ADDR", defaultHTTPAddr), "/readyz")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	// pay acts on a service's word only for what trade confirms.
	trade, err := tradeclient.New(tradeclient.Config{BaseURL: cfg.TradeURL, Signer: cfg.Keys.Signer, Timeout: cfg.TradeTimeout})
	if err != nil {
		return fmt.Errorf("TRADE_SERVICE_URL: %w", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := logging.New(stdout, cfg.LogLevel, "pay")
	logging.WarnUnsafe(log, cfg.Crash.String(), cfg.Dev, cfg.seedStyle())
	if cfg.DevPepper {
		log.Warn("PAY_PASSWORD_PEPPERS is not set: payment passwords are peppered with a secret derived from pay's signing key, for development only", "key_id", cfg.Peppers[0].ID)
	}
	if err := httpserver.ServeDebug(ctx, cfg.DebugAddr, log); err != nil {
		return err
	}
	stopTracing, err := tracing.Start(cfg.Tracing, stderr, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	pool, err := database.OpenMigrated(ctx, cfg.DatabaseURL, migrations.FS, migrations.Pay)
	if err != nil {
		return err
	}
	defer pool.Close()

	registry, reg := metrics.NewRegistry("pay")
	consumerCfg := cfg.Consumer
	consumerCfg.ErrorExchange, consumerCfg.ErrorRoutingKey = cfg.Topology.ErrorExchange, cfg.Topology.ErrorKey
	messages := messaging.New(pool, messaging.Config{
		Service: "pay", Broker: cfg.Broker, Declare: cfg.Topology.Declare, ConfirmTimeout: cfg.Confirm,
		Outbox:   outbox.RelayConfig{BatchSize: cfg.OutboxBatch, Poll: cfg.OutboxPoll, Retry: cfg.OutboxRetry, Crash: cfg.Crash},
		Consumer: consumerCfg, Metrics: reg, Logger: log,
	})
	var payments, locks atomic.Int64
	storeCfg := postgres.Config{
		Exchange:         cfg.Exchange,
		PaySuccessKey:    cfg.PaySuccessKey,
		RefundSuccessKey: cfg.RefundKey,
		Peppers:          cfg.Peppers,
		PasswordChecks:   cfg.PasswordChecks,
		EventsCommitted:  func() { payments.Add(1); messages.Wake() },
		PasswordLocked: func(l pay.PasswordLock) {
			locks.Add(1)
			log.Warn("payment password locked", "user_id", l.UserID, "locks_in_a_row", l.Locks, "until", l.Until)
		},
		RefundCredited: refundsCredited(reg),
		Crash:          cfg.Crash,
	}
	defer wirePublishMode(cfg, messages.Publishing(), &storeCfg, log)()
	store := postgres.New(pool, storeCfg)
	refundCounts := &payamqp.Counts{}
	messages.Consume("refund_consumer", cfg.Topology.RefundQueue, cfg.Topology.RefundRequestedKey,
		payamqp.CreditRefund(refunderOf(cfg, store), refundCounts, log))
	messages.WritesEvents(func(ctx context.Context) {
		database.PurgeEvery(ctx, time.Hour, "idempotency keys older than "+pay.IdempotencyKeyRetention.String(), store.PurgeIdempotencyKeys, log)
	})
	registerMetrics(reg, &payments, &locks, refundCounts)
	handler := httpapi.NewHandler(store, httpapi.Config{
		Auth:              cfg.Keys.Authenticator,
		IdempotencySecret: cfg.Keys.Signer.DeriveSecret("idempotency"),
		Ready:             map[string]health.Check{"database": database.Primary(pool), "broker": health.Reachable(messages.Ready)},
		Instrument:        metrics.NewHTTP(reg).Middleware,
		Metrics:           metrics.Handler(registry, log),
		Trade:             trade,
		Logger:            log,
	})

	messages.Start(ctx)
	err = httpserver.Serve(ctx, "pay", cfg.HTTPAddr, handler, log, cfg.ShutdownGrace)
	messages.Stop()
	log.Info("stopped")
	return err
}
