//go:build !faultinject

package main

import (
	"log/slog"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/services/trade"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
	"github.com/paytrade/paytrade/services/trade/postgres"
)

// readFaults keeps the safe wiring, the only one this build has, and
// refuses the switches of a faultinject build: a shipped binary cannot be
// talked into crashing on purpose, dropping or applying twice.
func readFaults(r *config.Reader, c *tradeConfig) {
	c.Idempotent = true
	r.Unbuilt("PAYTRADE_CRASH_POINTS", "", "crash points")
	r.Unbuilt("TRADE_ACK_MODE", "manual", "the seed-style auto-ack")
	r.Unbuilt("TRADE_IDEMPOTENCY", "inbox", "the seed-style consumer")
}

// markPaidAndOrders is the inbox's pay.success handler and the store: the
// only ones this build has.
func markPaidAndOrders(c tradeConfig, store *postgres.Store, counts *tradeamqp.Counts, log *slog.Logger) (broker.Handler, trade.Orders) {
	return tradeamqp.MarkOrderPaid(store, counts, log, c.Crash), store
}

// wireAckMode keeps manual acks, the only mode this build has.
func wireAckMode(tradeConfig, *broker.ConsumerConfig) {}
