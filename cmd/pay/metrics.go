package main

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrade/paytrade/internal/metrics"
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
