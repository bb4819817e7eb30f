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
	"sync"
	"sync/atomic"
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
	"github.com/paytrade/paytrade/services/pay"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
	"github.com/paytrade/paytrade/services/pay/httpapi"
	"github.com/paytrade/paytrade/services/pay/postgres"
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
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	log := logging.New(stdout, cfg.LogLevel, "pay")
	logging.WarnUnsafe(log, cfg.Crash.String(), cfg.Dev, cfg.seedStyle())
	if err := httpserver.ServeDebug(ctx, cfg.DebugAddr, log); err != nil {
		return err
	}
	pool, err := database.OpenMigrated(ctx, cfg.DatabaseURL, migrations.FS, migrations.Pay)
	if err != nil {
		return err
	}
	defer pool.Close()

	cfg.Broker.Logger = log
	supervisor := broker.NewSupervisor(cfg.Broker, cfg.Topology.Declare)
	// The refund consumer has a connection of its own, as trade's does:
	// flow control that blocks publishing must not hold up its acks.
	consumerBroker := cfg.Broker
	consumerBroker.ConnectionName = "pay-consumer"
	consumerSup := broker.NewSupervisor(consumerBroker, cfg.Topology.Declare)
	publisher := broker.NewPublisher(supervisor, broker.PublisherConfig{ConfirmTimeout: cfg.Confirm, Logger: log})
	registry, reg := metrics.NewRegistry("pay")
	relay := outbox.NewRelay(pool, publisher, outbox.RelayConfig{
		AppID: "pay", BatchSize: cfg.OutboxBatch, Poll: cfg.OutboxPoll, Retry: cfg.OutboxRetry, Logger: log, Crash: cfg.Crash,
		ObserveConfirm: metrics.Latency(reg, "outbox_confirm_seconds", "Time from publishing an outbox batch to its last confirm."),
	})
	var payments, locks atomic.Int64
	storeCfg := postgres.Config{
		Exchange:         cfg.Exchange,
		PaySuccessKey:    cfg.PaySuccessKey,
		RefundSuccessKey: cfg.RefundKey,
		BcryptCost:       cfg.BcryptCost,
		EventsCommitted:  func() { payments.Add(1); relay.Wake() },
		PasswordLocked: func(l pay.PasswordLock) {
			locks.Add(1)
			log.Warn("payment password locked", "user_id", l.UserID, "locks_in_a_row", l.Locks, "until", l.Until)
		},
		Crash: cfg.Crash,
	}
	defer wireSeedStyle(cfg, supervisor, &storeCfg, log)()
	store := postgres.New(pool, storeCfg)
	refundCounts := &payamqp.Counts{}
	consumerCfg := cfg.Consumer
	consumerCfg.Queue = cfg.Topology.RefundQueue
	consumerCfg.ErrorExchange, consumerCfg.ErrorRoutingKey = cfg.Topology.ErrorExchange, cfg.Topology.ErrorKey
	consumerCfg.Publisher = publisher
	consumerCfg.Unavailable, consumerCfg.Probe = database.IsFailure, database.Writable(pool)
	consumerCfg.Logger = log
	refundConsumer := broker.NewConsumer(consumerSup, consumerCfg, payamqp.CreditRefund(refunderOf(cfg, store), refundCounts, log))
	registerMetrics(reg, &payments, &locks, relay, refundConsumer, refundCounts, supervisor, consumerSup)
	handler := httpapi.NewHandler(store, httpapi.Config{
		Auth:              auth.NewAuthenticator(cfg.JWTSecret),
		IdempotencySecret: append([]byte("idempotency\x00"), cfg.JWTSecret...),
		Ready: map[string]func(context.Context) error{
			"database": pool.Ping,
			"broker": func(context.Context) error {
				if !supervisor.Connected() {
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
	// in order: the relay needs the broker connection to finish its batch.
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	consumerCtx, stopConsumer := context.WithCancel(context.WithoutCancel(ctx))
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var brokerDone, consumerDone, relayDone sync.WaitGroup
	brokerDone.Go(func() { _ = supervisor.Run(brokerCtx) })
	brokerDone.Go(func() { _ = consumerSup.Run(brokerCtx) })
	consumerDone.Go(func() { _ = refundConsumer.Run(consumerCtx) })
	relayDone.Go(func() { _ = relay.Run(relayCtx) })
	relayDone.Go(func() {
		database.PurgeEvery(relayCtx, time.Hour, "idempotency keys older than "+pay.IdempotencyKeyRetention.String(), store.PurgeIdempotencyKeys, log)
	})

	err = httpserver.Serve(ctx, "pay", cfg.HTTPAddr, handler, log, cfg.ShutdownGrace)
	// The consumer first: its last transactions can write refund.success
	// events, which the relay then still publishes.
	stopConsumer()
	consumerDone.Wait()
	stopRelay()
	relayDone.Wait()
	_ = publisher.Close()
	stopBroker()
	brokerDone.Wait()
	log.Info("stopped")
	return err
}
