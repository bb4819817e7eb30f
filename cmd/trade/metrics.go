package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/metrics"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
	"github.com/paytrade/paytrade/services/trade/cron"
)

// registerMetrics exposes the counters trade's parts keep, and gives the
// consumer's handler the histogram of pay-to-paid latency.
func registerMetrics(reg prometheus.Registerer, consumer *broker.Consumer, counts *tradeamqp.Counts, fallback *cron.Fallback, consumerSup, publisherSup *broker.Supervisor) {
	stat := func(f func(broker.ConsumerStats) int64) func() int64 {
		return func() int64 { return f(consumer.Stats()) }
	}
	metrics.Counter(reg, "consumer_delivered_total", "pay.success deliveries handed to the handler, redeliveries included.", stat(func(s broker.ConsumerStats) int64 { return s.Delivered }))
	metrics.Counter(reg, "consumer_acked_total", "Deliveries acked after their transaction committed.", stat(func(s broker.ConsumerStats) int64 { return s.Acked }))
	metrics.Counter(reg, "consumer_retried_total", "Extra handler attempts (local retry).", stat(func(s broker.ConsumerStats) int64 { return s.Retried }))
	metrics.Counter(reg, "consumer_parked_total", "Messages parked in the error queue, confirmed.", stat(func(s broker.ConsumerStats) int64 { return s.Parked }))
	metrics.Counter(reg, "consumer_malformed_total", "Messages that could not be decoded (parked at once).", stat(func(s broker.ConsumerStats) int64 { return s.Malformed }))
	metrics.Counter(reg, "consumer_rejected_total", "Messages rejected by the reject recoverer (dead-lettered to the error queue by the declared topology).", stat(func(s broker.ConsumerStats) int64 { return s.Rejected }))
	metrics.Counter(reg, "consumer_requeued_total", "Deliveries nacked back to the queue.", stat(func(s broker.ConsumerStats) int64 { return s.Requeued }))
	metrics.Counter(reg, "consumer_pauses_total", "Times consumption paused because the database was down.", stat(func(s broker.ConsumerStats) int64 { return s.Pauses }))
	metrics.Counter(reg, "consumer_applied_total", "Events that marked an order paid.", counts.Applied.Load)
	metrics.Counter(reg, "consumer_duplicates_total", "Events recognised as duplicates: acked, nothing applied.", counts.Duplicate.Load)
	metrics.Counter(reg, "consumer_discrepancies_total", "Events that could not pay their order: recorded as discrepancies.", counts.Discrepancy.Load)
	counts.PayToPaid = metrics.Latency(reg, "pay_to_paid_seconds",
		"From a payment's commit at pay (its paidAt) to its order marked paid by the consumer; across hosts it includes their clock skew.")

	cronStat := func(f func(cron.Stats) int64) func() int64 {
		return func() int64 { return f(fallback.Stats()) }
	}
	metrics.Counter(reg, "cron_runs_total", "Fallback ticks run.", cronStat(func(s cron.Stats) int64 { return s.Runs }))
	metrics.Counter(reg, "cron_skipped_total", "Fallback ticks skipped because another replica ran one.", cronStat(func(s cron.Stats) int64 { return s.Skipped }))
	metrics.Counter(reg, "cron_failed_total", "Fallback ticks that ended in an error.", cronStat(func(s cron.Stats) int64 { return s.Failed }))
	metrics.Counter(reg, "cron_orders_paid_total", "Orders the fallback found paid at pay and marked paid.", cronStat(func(s cron.Stats) int64 { return s.OrdersPaid }))
	metrics.Counter(reg, "cron_orders_closed_total", "Orders the fallback closed at pay and cancelled after their timeout.", cronStat(func(s cron.Stats) int64 { return s.OrdersClosed }))

	for name, sup := range map[string]*broker.Supervisor{"consumer": consumerSup, "publisher": publisherSup} {
		metrics.Counter(prometheus.WrapRegistererWith(prometheus.Labels{"connection": name}, reg),
			"broker_reconnects_total", "Broker connections made after the first.", sup.Reconnects)
	}
}
