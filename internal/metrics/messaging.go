package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/outbox"
)

// Consumer exposes a broker consumer's counters as <prefix>_delivered_total
// and so on; what follows "of" in each help text is what queue says.
func Consumer(reg prometheus.Registerer, prefix, queue string, consumer *broker.Consumer) {
	stat := func(f func(broker.ConsumerStats) int64) func() int64 {
		return func() int64 { return f(consumer.Stats()) }
	}
	Counter(reg, prefix+"_delivered_total", "Deliveries of "+queue+" handed to the handler, redeliveries included.", stat(func(s broker.ConsumerStats) int64 { return s.Delivered }))
	Counter(reg, prefix+"_acked_total", "Deliveries of "+queue+" acked after their transaction committed.", stat(func(s broker.ConsumerStats) int64 { return s.Acked }))
	Counter(reg, prefix+"_retried_total", "Extra handler attempts (local retry) on "+queue+".", stat(func(s broker.ConsumerStats) int64 { return s.Retried }))
	Counter(reg, prefix+"_parked_total", "Messages of "+queue+" parked in the error queue, confirmed.", stat(func(s broker.ConsumerStats) int64 { return s.Parked }))
	Counter(reg, prefix+"_malformed_total", "Messages of "+queue+" that could not be decoded (parked at once).", stat(func(s broker.ConsumerStats) int64 { return s.Malformed }))
	Counter(reg, prefix+"_forbidden_total", "Messages of "+queue+" published by a broker user not allowed to send them (parked at once, never handled).", stat(func(s broker.ConsumerStats) int64 { return s.Forbidden }))
	Counter(reg, prefix+"_rejected_total", "Messages of "+queue+" rejected by the reject recoverer (dead-lettered to the error queue by the declared topology).", stat(func(s broker.ConsumerStats) int64 { return s.Rejected }))
	Counter(reg, prefix+"_requeued_total", "Deliveries of "+queue+" nacked back to the queue.", stat(func(s broker.ConsumerStats) int64 { return s.Requeued }))
	Counter(reg, prefix+"_pauses_total", "Times consumption of "+queue+" paused because the database was down.", stat(func(s broker.ConsumerStats) int64 { return s.Pauses }))
}

// Outbox exposes an outbox relay's counters and, read at scrape time, the
// backlog waiting in its table.
func Outbox(reg prometheus.Registerer, relay *outbox.Relay) {
	Counter(reg, "outbox_published_total", "Outbox events the broker confirmed and routed.", func() int64 { return relay.Stats().Published })
	Counter(reg, "outbox_returned_total", "Outbox events the broker returned as unroutable; kept for a retry.", func() int64 { return relay.Stats().Returned })
	Counter(reg, "outbox_refused_total", "Outbox event attempts that made the broker close the channel (404 exchange gone, 403, 406); kept for a retry with backoff.", func() int64 { return relay.Stats().Refused })
	Counter(reg, "outbox_nacked_total", "Outbox events the broker nacked or did not confirm in time; kept for a retry.", func() int64 { return relay.Stats().Nacked })
	Sampled(reg, time.Second, []prometheus.Opts{
		{Name: "outbox_pending", Help: "Events waiting in the outbox."},
		{Name: "outbox_oldest_age_seconds", Help: "How long the oldest waiting event has waited."},
	}, func(ctx context.Context) ([]float64, error) {
		pending, oldest, err := relay.Backlog(ctx)
		return []float64{float64(pending), oldest.Seconds()}, err
	})
}
