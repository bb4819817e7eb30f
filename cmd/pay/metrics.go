package main

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrade/paytrade/internal/metrics"
	"github.com/paytrade/paytrade/services/pay"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
)

// registerMetrics exposes the counters pay's own parts keep; the messaging
// runtime registers the outbox's, the consumer's and the connections'.
func registerMetrics(reg prometheus.Registerer, payments, locks *atomic.Int64, counts *payamqp.Counts) {
	metrics.Counter(reg, "payments_total", "Payments committed (debit, pay order paid, event in the outbox).", payments.Load)
	metrics.Counter(reg, "payment_password_locks_total", "Wallets locked for too many wrong payment passwords in a row.", locks.Load)
	metrics.Counter(reg, "refunds_credited_total", "Refund requests credited: pay order refunded, wallet credited, refund.success in the outbox.", counts.Refunded.Load)
	metrics.Counter(reg, "refunds_rejected_total", "Refund requests that could not be honoured: nothing credited, the rejection recorded.", counts.Rejected.Load)
	metrics.Counter(reg, "refunds_duplicate_total", "Refund requests recognised as duplicates: acked, nothing credited.", counts.Duplicate.Load)
}

// refundsCredited registers the credits by kind — whole, or part of what
// was paid — and the cents they gave back, and returns what the store
// tells of each credit.
func refundsCredited(reg prometheus.Registerer) func(kind string, amount int64) {
	kinds := []string{pay.RefundWhole, pay.RefundPart}
	credits := metrics.Tally(reg, "refunds_credited_by_kind_total", "Refunds credited, by kind: the whole payment, or part of it.", "kind", kinds...)
	cents := metrics.Tally(reg, "refunded_cents_total", "Cents credited back to wallets, by kind of refund.", "kind", kinds...)
	return func(kind string, amount int64) {
		credits(kind, 1)
		cents(kind, amount)
	}
}
