//go:build faultinject

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// readFaults reads the switches only a faultinject build has: crash points
// (PAYTRADE_CRASH_POINTS) and the course's seed-style wiring
// (PAY_PUBLISH_MODE, PAY_IDEMPOTENCY), for make chaos and make bench.
func readFaults(r *config.Reader, c *payConfig) {
	crash, err := crashpoint.Parse(r.String("PAYTRADE_CRASH_POINTS", ""))
	if err != nil {
		r.Fail(fmt.Errorf("PAYTRADE_CRASH_POINTS: %w", err))
	}
	c.Crash = crash
	c.PublishMode = r.String("PAY_PUBLISH_MODE", publishOutbox)
	switch c.PublishMode {
	case publishOutbox, publishInlineConfirmed, publishInline:
	default:
		r.Fail(fmt.Errorf("PAY_PUBLISH_MODE=%q: want %s, %s or %s", c.PublishMode, publishOutbox, publishInlineConfirmed, publishInline))
	}
	// inbox: a refund is credited once per message and per refund, only
	// from a paid pay order; none: seed-style, every delivery credits.
	switch mode := r.String("PAY_IDEMPOTENCY", "inbox"); mode {
	case "inbox":
		c.Idempotent = true
	case "none":
	default:
		r.Fail(fmt.Errorf("PAY_IDEMPOTENCY=%q: want inbox or none", mode))
	}
}

// wirePublishMode swaps in the seed's publish where c asks for it: the
// event published in the request after the commit instead of the outbox.
// It returns what to close at shutdown.
func wirePublishMode(c payConfig, sup *broker.Supervisor, storeCfg *postgres.Config, log *slog.Logger) (closeInline func()) {
	if c.PublishMode == publishOutbox {
		return func() {}
	}
	inline := broker.NewInlinePublisher(sup, broker.InlinePublisherConfig{
		Confirm:   c.PublishMode == publishInlineConfirmed,
		Publisher: broker.PublisherConfig{ConfirmTimeout: c.Confirm, Logger: log},
	})
	storeCfg.PublishAfterCommit = publishAfterCommit(inline, log)
	return func() { _ = inline.Close() }
}

// refunderOf is the store, or the seed's refund when c asks for it.
func refunderOf(c payConfig, store *postgres.Store) pay.Refunder {
	if !c.Idempotent {
		return postgres.SeedRefunds{Store: store}
	}
	return store
}

// publishAfterCommit publishes a payment's event as the course's seed code
// does, in the request after the commit; when that fails, the event is
// logged and lost.
func publishAfterCommit(inline *broker.InlinePublisher, log *slog.Logger) func(context.Context, outbox.Event) {
	return func(ctx context.Context, ev outbox.Event) {
		if err := inline.Publish(context.WithoutCancel(ctx), ev.Message("pay", time.Now())); err != nil {
			log.ErrorContext(ctx, "publish pay.success after commit failed; the event is lost", "message_id", ev.ID, "err", err)
		}
	}
}
