package main

import (
	"fmt"
	"log/slog"
	"time"

	robfig "github.com/robfig/cron/v3"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/httpserver"
	"github.com/paytrade/paytrade/internal/tracing"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
)

// maxCheckBatch is the most business orders pay reads in one call.
const maxCheckBatch = 500

// minInboxRetention is the shortest TRADE_INBOX_RETENTION accepted.
const minInboxRetention = 24 * time.Hour

// tradeConfig is everything the trade service reads from its environment.
type tradeConfig struct {
	DatabaseURL string
	HTTPAddr    string
	DebugAddr   string
	Keys        auth.ServiceKeys // its own private key and the public keys
	Dev         bool             // PAYTRADE_DEV=1: a laptop, not production
	PayURL      string
	PayTimeout  time.Duration
	Broker      broker.Config
	// PaySender is the broker user whose pay.success and refund.success
	// events trade applies (TRADE_MQ_PAY_USER).
	PaySender string
	Topology  tradeamqp.Topology
	Prefetch  int
	Retry     broker.Retry
	Recoverer broker.Recoverer
	// AttemptTimeout bounds each attempt at handling a message.
	AttemptTimeout time.Duration
	// InboxRetention is how long a processed message id is remembered.
	InboxRetention time.Duration
	Confirm        time.Duration
	OutboxBatch    int
	OutboxPoll     time.Duration
	OutboxRetry    broker.Backoff
	CheckSpec      string
	CheckGrace     time.Duration
	CheckBatch     int
	OrderTimeout   time.Duration
	LogLevel       slog.Level
	ShutdownGrace  time.Duration
	Crash          crashpoint.Set
	Tracing        tracing.Config
	AutoAck        bool
	Idempotent     bool
}

// seedStyle lists the settings that depart from the safe wiring: the
// course's seed consumer, for make chaos UNSAFE=1 only.
func (c tradeConfig) seedStyle() []string {
	var s []string
	if c.AutoAck {
		s = append(s, "TRADE_ACK_MODE=none")
	}
	if !c.Idempotent {
		s = append(s, "TRADE_IDEMPOTENCY=none")
	}
	return s
}

// defaultHTTPAddr is where trade listens unless TRADE_HTTP_ADDR says otherwise.
const defaultHTTPAddr = ":8085"

func loadConfig(getenv func(string) string) (tradeConfig, error) {
	r := config.NewReader(getenv)
	c := tradeConfig{
		DatabaseURL: r.String("TRADE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/trade?sslmode=disable"),
		HTTPAddr:    r.String("TRADE_HTTP_ADDR", defaultHTTPAddr),
		DebugAddr:   r.String("TRADE_DEBUG_ADDR", ""),
		PayURL:      r.String("PAY_SERVICE_URL", "http://127.0.0.1:8086"),
		PayTimeout:  r.Duration("TRADE_PAY_TIMEOUT", 3*time.Second),
		Broker:      broker.ReadConfig(r, "trade"),
		Topology: tradeamqp.Topology{
			Exchange:      r.String("MQ_PAY_EXCHANGE", "pay.topic"),
			PaySuccessKey: r.String("MQ_PAY_SUCCESS_KEY", "pay.success"),
			Queue:         r.String("MQ_MARK_ORDER_PAY_QUEUE", "mark.order.pay.queue"),
			QueueType:     r.String("MQ_QUEUE_TYPE", tradeamqp.QueueQuorum),
			ErrorExchange: r.String("MQ_ERROR_EXCHANGE", "error.direct"),
			ErrorKey:      r.String("MQ_ERROR_KEY", "error"),
			ErrorQueue:    r.String("MQ_ERROR_QUEUE", "error.queue"),

			TradeExchange:      r.String("MQ_TRADE_EXCHANGE", "trade.topic"),
			RefundRequestedKey: r.String("MQ_REFUND_REQUESTED_KEY", "refund.requested"),
			RefundSuccessKey:   r.String("MQ_REFUND_SUCCESS_KEY", "refund.success"),
			RefundQueue:        r.String("MQ_MARK_ORDER_REFUND_QUEUE", "mark.order.refund.queue"),
		},
		Confirm:     r.Duration("TRADE_PUBLISH_CONFIRM_TIMEOUT", 5*time.Second),
		OutboxBatch: r.Int("TRADE_OUTBOX_BATCH", 100, 1),
		OutboxPoll:  r.Duration("TRADE_OUTBOX_POLL_INTERVAL", time.Second),
		OutboxRetry: broker.Backoff{
			Initial:    r.Duration("TRADE_OUTBOX_RETRY_INITIAL_INTERVAL", time.Second),
			Multiplier: 2,
			Max:        r.Duration("TRADE_OUTBOX_RETRY_MAX_INTERVAL", 30*time.Second),
		},
		CheckSpec:     r.String("TRADE_PAY_CHECK_SPEC", "@every 20s"),
		CheckGrace:    r.Duration("TRADE_PAY_CHECK_GRACE", 30*time.Second),
		CheckBatch:    r.Int("TRADE_PAY_CHECK_BATCH", 100, 1),
		OrderTimeout:  r.Duration("TRADE_ORDER_TIMEOUT", 30*time.Minute),
		ShutdownGrace: r.Duration("TRADE_SHUTDOWN_GRACE", 10*time.Second),
		// A week: longer than any copy of a message can be late.
		InboxRetention: r.Duration("TRADE_INBOX_RETENTION", 7*24*time.Hour),
	}
	readFaults(r, &c)
	consumer := broker.ReadConsumerConfig(r, "TRADE")
	c.Prefetch, c.Retry, c.Recoverer, c.AttemptTimeout = consumer.Prefetch, consumer.Retry, consumer.Recoverer, consumer.AttemptTimeout
	c.Keys = auth.ReadServiceKeys(r, auth.IssuerTrade)
	c.Dev = c.Keys.Dev
	if c.Dev {
		// Anyone can sign with the published keys: nobody else may reach us.
		httpserver.LoopbackOnly(r, map[string]*string{"TRADE_HTTP_ADDR": &c.HTTPAddr, "TRADE_DEBUG_ADDR": &c.DebugAddr})
	}
	c.PaySender = broker.ReadSender(r, "TRADE_MQ_PAY_USER", c.Broker, c.Dev)
	if err := c.Topology.Validate(); err != nil {
		r.Fail(fmt.Errorf("MQ_QUEUE_TYPE and MQ_* names: %w", err))
	}
	if _, err := robfig.ParseStandard(c.CheckSpec); err != nil {
		r.Fail(fmt.Errorf("TRADE_PAY_CHECK_SPEC=%q: %w", c.CheckSpec, err))
	}
	// A copy of a message can be late by as long as trade was down or
	// paused, or the broker held it: days, not minutes.
	if c.InboxRetention < minInboxRetention {
		r.Fail(fmt.Errorf("TRADE_INBOX_RETENTION=%v: want at least %v, longer than any copy of a message can be late", c.InboxRetention, minInboxRetention))
	}
	// The fallback asks pay about a batch in one call, which pay bounds.
	if c.CheckBatch > maxCheckBatch {
		r.Fail(fmt.Errorf("TRADE_PAY_CHECK_BATCH=%d: want at most %d, what pay answers in one call", c.CheckBatch, maxCheckBatch))
	}
	if c.OrderTimeout <= c.CheckGrace {
		r.Fail(fmt.Errorf("TRADE_ORDER_TIMEOUT=%v must be longer than TRADE_PAY_CHECK_GRACE=%v", c.OrderTimeout, c.CheckGrace))
	}
	tracingCfg, err := tracing.ReadConfig(func(name string) string { return r.String(name, "") }, "trade")
	if err != nil {
		r.Fail(err)
	}
	c.Tracing = tracingCfg
	if err := c.LogLevel.UnmarshalText([]byte(r.String("LOG_LEVEL", "info"))); err != nil {
		r.Fail(fmt.Errorf("LOG_LEVEL: %w", err))
	}
	return c, r.Err()
}
