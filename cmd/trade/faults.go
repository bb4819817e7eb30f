//go:build faultinject

package main

import (
	"fmt"
	"log/slog"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/services/trade"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
	"github.com/paytrade/paytrade/services/trade/postgres"
)

// readFaults reads the switches only a faultinject build has: crash points
// (PAYTRADE_CRASH_POINTS) and the course's seed-style consumer
// (TRADE_ACK_MODE, TRADE_IDEMPOTENCY), for make chaos and make bench.
func readFaults(r *config.Reader, c *tradeConfig) {
	crash, err := crashpoint.Parse(r.String("PAYTRADE_CRASH_POINTS", ""))
	if err != nil {
		r.Fail(fmt.Errorf("PAYTRADE_CRASH_POINTS: %w", err))
	}
	c.Crash = crash
	// Spring's acknowledge-mode: manual, or none (the broker forgets a
	// message as it sends it).
	switch mode := r.String("TRADE_ACK_MODE", "manual"); mode {
	case "manual":
	case "none":
		c.AutoAck = true
	default:
		r.Fail(fmt.Errorf("TRADE_ACK_MODE=%q: want manual or none", mode))
	}
	// inbox: deduplicate by message id and update conditionally; none: the
	// course's first markOrderPaySuccess, an unconditional update, and a
	// refund asked of pay anew at every request.
	switch mode := r.String("TRADE_IDEMPOTENCY", "inbox"); mode {
	case "inbox":
		c.Idempotent = true
	case "none":
	default:
		r.Fail(fmt.Errorf("TRADE_IDEMPOTENCY=%q: want inbox or none", mode))
	}
}

// markPaidAndOrders is the pay.success handler and the orders the HTTP API
// serves: the inbox's, or the seed's unconditional update and refund when
// c asks for them.
func markPaidAndOrders(c tradeConfig, store *postgres.Store, counts *tradeamqp.Counts, log *slog.Logger) (broker.Handler, trade.Orders) {
	if !c.Idempotent {
		return tradeamqp.MarkOrderPaidUnconditionally(store, counts, log, c.Crash), postgres.SeedRefunds{Store: store}
	}
	return tradeamqp.MarkOrderPaid(store, counts, log, c.Crash), store
}

// wireAckMode gives the consumers the acknowledge mode c asks for.
func wireAckMode(c tradeConfig, consumer *broker.ConsumerConfig) {
	consumer.AutoAck = c.AutoAck
}
