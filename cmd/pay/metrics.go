package main

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/metrics"
	"github.com/paytrade/paytrade/internal/outbox"
	payamqp "github.com/paytrade/paytrade/services/pay/amqp"
)

// registerMetrics exposes the counters pay's parts keep.
func registerMetrics(reg prometheus.Registerer, payments, locks *atomic.Int64, relay *outbox.Relay, refundConsumer *broker.Consumer, counts *payamqp.Counts, sup, consumerSup *broker.Supervisor) {
	metrics.Counter(reg, "payments_total", "Payments committed (debit, pay order paid, event in the outbox).", payments.Load)
	metrics.Counter(reg, "payment_password_locks_total", "Wallets locked for too many wrong payment passwords in a row.", locks.Load)
	metrics.Outbox(reg, relay)
	metrics.Consumer(reg, "refund_consumer", "pay.refund.queue (refund.requested)", refundConsumer)
	metrics.Counter(reg, "refunds_credited_total", "Refund requests credited: pay order refunded, wallet credited, refund.success in the outbox.", counts.Refunded.Load)
	metrics.Counter(reg, "refunds_rejected_total", "Refund requests that could not be honoured: nothing credited, the rejection recorded.", counts.Rejected.Load)
	metrics.Counter(reg, "refunds_duplicate_total", "Refund requests recognised as duplicates: acked, nothing credited.", counts.Duplicate.Load)
	metrics.Counter(reg, "broker_reconnects_total", "Broker connections made after the first, publishing.", sup.Reconnects)
	metrics.Counter(reg, "refund_consumer_reconnects_total", "Broker connections of the refund consumer made after its first.", consumerSup.Reconnects)
}
