package main

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/metrics"
	"github.com/paytrade/paytrade/internal/outbox"
)

// registerMetrics exposes the counters pay's parts keep.
func registerMetrics(reg prometheus.Registerer, payments *atomic.Int64, relay *outbox.Relay, sup *broker.Supervisor) {
	metrics.Counter(reg, "payments_total", "Payments committed (debit, pay order paid, event in the outbox).", payments.Load)
	metrics.Counter(reg, "outbox_published_total", "Outbox events the broker confirmed and routed.", func() int64 { return relay.Stats().Published })
	metrics.Counter(reg, "outbox_returned_total", "Outbox events the broker returned as unroutable; kept for a retry.", func() int64 { return relay.Stats().Returned })
	metrics.Counter(reg, "outbox_refused_total", "Outbox event attempts that made the broker close the channel (404 exchange gone, 403, 406); kept for a retry with backoff.", func() int64 { return relay.Stats().Refused })
	metrics.Counter(reg, "outbox_nacked_total", "Outbox events the broker nacked or did not confirm in time; kept for a retry.", func() int64 { return relay.Stats().Nacked })
	metrics.Sampled(reg, time.Second, []prometheus.Opts{
		{Name: "outbox_pending", Help: "Events waiting in the outbox."},
		{Name: "outbox_oldest_age_seconds", Help: "How long the oldest waiting event has waited."},
	}, func(ctx context.Context) ([]float64, error) {
		pending, oldest, err := relay.Backlog(ctx)
		return []float64{float64(pending), oldest.Seconds()}, err
	})
	metrics.Counter(reg, "broker_reconnects_total", "Broker connections made after the first.", sup.Reconnects)
}
