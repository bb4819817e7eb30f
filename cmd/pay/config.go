package main

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/internal/tracing"
	"github.com/paytrade/paytrade/services/pay"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
)

// payConfig is everything the pay service reads from its environment.
type payConfig struct {
	DatabaseURL   string
	HTTPAddr      string
	DebugAddr     string
	Keys          auth.ServiceKeys // its own private key and the public keys
	Dev           bool             // PAYTRADE_DEV=1: a laptop, not production
	TradeURL      string           // where pay asks trade which orders and refunds it issued
	TradeTimeout  time.Duration
	Exchange      string
	PaySuccessKey string
	Topology      payamqp.Topology
	Consumer      broker.ConsumerConfig
	RefundKey     string
	Peppers       pay.Peppers // PAY_PASSWORD_PEPPERS, or derived in development
	DevPepper     bool        // the pepper is derived from the service's key: development only
	// PasswordChecks bounds the costly password checks run at once.
	PasswordChecks int
	Broker         broker.Config
	Confirm        time.Duration
	OutboxBatch    int
	OutboxPoll     time.Duration
	OutboxRetry    broker.Backoff
	LogLevel       slog.Level
	ShutdownGrace  time.Duration
	Crash          crashpoint.Set
	Tracing        tracing.Config
	PublishMode    string
	Idempotent     bool // PAY_IDEMPOTENCY=inbox: refunds credited once
}

// The ways pay can get its pay.success events to the broker
// (PAY_PUBLISH_MODE). Only the outbox keeps the promises, and only the
// outbox is in the default build; the others are the course's seed wiring,
// for make bench and make chaos UNSAFE=1 (see faults.go).
const (
	publishOutbox          = "outbox"           // in the payment's transaction; a relay publishes with confirms
	publishInlineConfirmed = "inline-confirmed" // in the request after the commit, waiting for the confirm
	publishInline          = "inline"           // in the request after the commit, no confirms
)

// seedStyle lists the settings that depart from the safe wiring.
func (c payConfig) seedStyle() []string {
	var s []string
	if c.PublishMode != publishOutbox {
		s = append(s, "PAY_PUBLISH_MODE="+c.PublishMode)
	}
	if !c.Idempotent {
		s = append(s, "PAY_IDEMPOTENCY=none")
	}
	return s
}

// defaultHTTPAddr is where pay listens unless PAY_HTTP_ADDR says otherwise.
const defaultHTTPAddr = ":8086"

func loadConfig(getenv func(string) string) (payConfig, error) {
	r := config.NewReader(getenv)
	c := payConfig{
		DatabaseURL:    r.String("PAY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pay?sslmode=disable"),
		HTTPAddr:       r.String("PAY_HTTP_ADDR", defaultHTTPAddr),
		DebugAddr:      r.String("PAY_DEBUG_ADDR", ""),
		TradeURL:       r.String("TRADE_SERVICE_URL", "http://127.0.0.1:8085"),
		TradeTimeout:   r.Duration("PAY_TRADE_TIMEOUT", 3*time.Second),
		Exchange:       r.String("MQ_PAY_EXCHANGE", "pay.topic"),
		PaySuccessKey:  r.String("MQ_PAY_SUCCESS_KEY", "pay.success"),
		RefundKey:      r.String("MQ_REFUND_SUCCESS_KEY", "refund.success"),
		PasswordChecks: r.Int("PAY_PASSWORD_CHECKS", runtime.NumCPU(), 1),
		Broker:         broker.ReadConfig(r, "pay"),
		Confirm:        r.Duration("PAY_PUBLISH_CONFIRM_TIMEOUT", 5*time.Second),
		OutboxBatch:    r.Int("PAY_OUTBOX_BATCH", 100, 1),
		OutboxPoll:     r.Duration("PAY_OUTBOX_POLL_INTERVAL", time.Second),
		OutboxRetry: broker.Backoff{
			Initial:    r.Duration("PAY_OUTBOX_RETRY_INITIAL_INTERVAL", time.Second),
			Multiplier: 2,
			Max:        r.Duration("PAY_OUTBOX_RETRY_MAX_INTERVAL", 30*time.Second),
		},
		ShutdownGrace: r.Duration("PAY_SHUTDOWN_GRACE", 10*time.Second),
	}
	readFaults(r, &c)
	c.Topology = payamqp.Topology{
		Exchange:           c.Exchange,
		TradeExchange:      r.String("MQ_TRADE_EXCHANGE", "trade.topic"),
		RefundRequestedKey: r.String("MQ_REFUND_REQUESTED_KEY", "refund.requested"),
		RefundQueue:        r.String("MQ_PAY_REFUND_QUEUE", "pay.refund.queue"),
		QueueType:          r.String("MQ_QUEUE_TYPE", broker.QueueQuorum),
		ErrorExchange:      r.String("MQ_ERROR_EXCHANGE", "error.direct"),
		ErrorKey:           r.String("MQ_ERROR_KEY", "error"),
		ErrorQueue:         r.String("MQ_ERROR_QUEUE", "error.queue"),
	}
	if err := c.Topology.Validate(); err != nil {
		r.Fail(fmt.Errorf("MQ_QUEUE_TYPE and MQ_* names: %w", err))
	}
	// pay's refund consumer: the same settings as trade's, named PAY_.
	c.Consumer = broker.ReadConsumerConfig(r, "PAY")
	c.Keys = auth.ReadServiceKeys(r, auth.IssuerPay)
	c.Dev = c.Keys.Dev
	if c.Dev {
		// Anyone can sign with the published keys: nobody else may reach us.
		httpserver.LoopbackOnly(r, map[string]*string{"PAY_HTTP_ADDR": &c.HTTPAddr, "PAY_DEBUG_ADDR": &c.DebugAddr})
	}
	c.Consumer.Sender = broker.ReadSender(r, "PAY_MQ_TRADE_USER", c.Broker, c.Dev)
	c.Peppers, c.DevPepper = readPeppers(r, c.Keys)
	tracingCfg, err := tracing.ReadConfig(func(name string) string { return r.String(name, "") }, "pay")
	if err != nil {
		r.Fail(err)
	}
	c.Tracing = tracingCfg
	if err := c.LogLevel.UnmarshalText([]byte(r.String("LOG_LEVEL", "info"))); err != nil {
		r.Fail(fmt.Errorf("LOG_LEVEL: %w", err))
	}
	return c, r.Err()
}

// readPeppers reads the payment-password peppers from PAY_PASSWORD_PEPPERS
// ("id:base64secret,…", the current one first). It fails closed, as the
// signing keys do: unset outside development is a configuration error. In
// development an unset one is derived from the service's own key, and
// derived reports so. No error shows a secret.
func readPeppers(r *config.Reader, keys auth.ServiceKeys) (peppers pay.Peppers, derived bool) {
	v := r.String("PAY_PASSWORD_PEPPERS", "")
	switch {
	case v == "" && keys.Dev && keys.Signer != nil:
		return pay.Peppers{pay.DevPepper(keys.Signer.DeriveSecret("payment password pepper"))}, true
	case v == "":
		r.Fail(errors.New("PAY_PASSWORD_PEPPERS is not set: give pay a pepper, id:base64secret of at least 32 random bytes (head -c 32 /dev/urandom | base64), or set PAYTRADE_DEV=1 on a laptop"))
		return nil, false
	}
	peppers, err := pay.ParsePeppers(v)
	if err != nil {
		r.Fail(fmt.Errorf("PAY_PASSWORD_PEPPERS: %w", err))
	}
	return peppers, false
}
