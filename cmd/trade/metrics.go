package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrade/paytrade/internal/metrics"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
	"github.com/paytrade/paytrade/services/trade/cron"
	"github.com/paytrade/paytrade/services/trade/postgres"
)

// registerMetrics exposes the counters trade's own parts keep, and gives
// the consumer's handler the histogram of pay-to-paid latency; the messaging
// runtime registers the outbox's, the consumers' and the connections'.
func registerMetrics(reg prometheus.Registerer, store *postgres.Store, counts *tradeamqp.Counts, fallback *cron.Fallback) {
	metrics.Counter(reg, "consumer_applied_total", "Events that marked an order paid.", counts.Applied.Load)
	metrics.Counter(reg, "consumer_duplicates_total", "Events recognised as duplicates: acked, nothing applied.", counts.Duplicate.Load)
	metrics.Counter(reg, "consumer_discrepancies_total", "Events that could not pay their order: recorded as discrepancies.", counts.Discrepancy.Load)
	counts.PayToPaid = metrics.Latency(reg, "pay_to_paid_seconds",
		"From a payment's commit at pay (its paidAt) to its order marked paid by the consumer; across hosts it includes their clock skew.")
	metrics.Counter(reg, "refund_consumer_refunded_total", "refund.success events that marked a refund refunded.", counts.Refunded.Load)
	metrics.Counter(reg, "refund_consumer_duplicates_total", "refund.success events recognised as duplicates: acked, nothing applied.", counts.RefundDuplicate.Load)
	metrics.Sampled(reg, time.Second, []prometheus.Opts{
		{Name: "refunds_waiting", Help: "Refunds requested and not yet credited or rejected by pay."},
		{Name: "refunds_oldest_waiting_seconds", Help: "How long the oldest waiting refund has waited: past a cron period, look."},
		{Name: "refunds_rejected", Help: "Refunds pay could not honour (nothing credited); each needs a human."},
	}, func(ctx context.Context) ([]float64, error) {
		waiting, oldest, rejected, err := store.RefundBacklog(ctx)
		return []float64{float64(waiting), oldest.Seconds(), float64(rejected)}, err
	})

	cronStat := func(f func(cron.Stats) int64) func() int64 {
		return func() int64 { return f(fallback.Stats()) }
	}
	metrics.Counter(reg, "cron_runs_total", "Fallback ticks run.", cronStat(func(s cron.Stats) int64 { return s.Runs }))
	metrics.Counter(reg, "cron_skipped_total", "Fallback ticks skipped because another replica ran one.", cronStat(func(s cron.Stats) int64 { return s.Skipped }))
	metrics.Counter(reg, "cron_failed_total", "Fallback ticks that ended in an error.", cronStat(func(s cron.Stats) int64 { return s.Failed }))
	metrics.Counter(reg, "cron_orders_paid_total", "Orders the fallback found paid at pay and marked paid.", cronStat(func(s cron.Stats) int64 { return s.OrdersPaid }))
	metrics.Counter(reg, "cron_orders_closed_total", "Orders the fallback closed at pay and cancelled after their timeout.", cronStat(func(s cron.Stats) int64 { return s.OrdersClosed }))
	metrics.Counter(reg, "cron_refunds_refunded_total", "Refunds the fallback found credited at pay and marked refunded.", cronStat(func(s cron.Stats) int64 { return s.Refunded }))
	metrics.Counter(reg, "cron_refunds_rejected_total", "Refunds the fallback found rejected at pay and recorded as such.", cronStat(func(s cron.Stats) int64 { return s.RefundsRejected }))
}
