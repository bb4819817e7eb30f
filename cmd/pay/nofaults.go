//go:build !faultinject

package main

import (
	"log/slog"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// readFaults keeps the safe wiring, the only one this build has, and
// refuses the switches of a faultinject build: a shipped binary cannot be
// talked into crashing on purpose or losing payments.
func readFaults(r *config.Reader, c *payConfig) {
	c.PublishMode, c.Idempotent = publishOutbox, true
	r.Unbuilt("PAYTRADE_CRASH_POINTS", "", "crash points")
	r.Unbuilt("PAY_PUBLISH_MODE", publishOutbox, "the seed-style publish")
	r.Unbuilt("PAY_IDEMPOTENCY", "inbox", "the seed-style refund")
}

// wirePublishMode has nothing to swap in: this build publishes through the
// outbox only.
func wirePublishMode(payConfig, *broker.Supervisor, *postgres.Config, *slog.Logger) (closeInline func()) {
	return func() {}
}

// refunderOf is the store: this build refunds once only.
func refunderOf(_ payConfig, store *postgres.Store) pay.Refunder { return store }
