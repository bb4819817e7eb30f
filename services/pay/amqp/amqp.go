// Package amqp connects the pay service to RabbitMQ: the topology it
// declares, and the handler that credits a refund for each refund.requested
// event on pay.refund.queue. It runs on the same consumer as trade's.
package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/services/pay"
)

// Topology names what pay declares on the broker.
type Topology struct {
	Exchange           string // pay.topic, where pay's relay publishes
	TradeExchange      string // trade.topic, where refund.requested comes from
	RefundRequestedKey string // refund.requested
	RefundQueue        string // pay.refund.queue
	QueueType          string // broker.QueueQuorum or broker.QueueClassic
	ErrorExchange      string // error.direct
	ErrorKey           string // error
	ErrorQueue         string // error.queue
}

// Validate checks that every name is set and the queue type is known.
func (t Topology) Validate() error {
	for name, v := range map[string]string{
		"exchange": t.Exchange, "trade exchange": t.TradeExchange, "refund requested key": t.RefundRequestedKey,
		"refund queue": t.RefundQueue, "error exchange": t.ErrorExchange, "error key": t.ErrorKey, "error queue": t.ErrorQueue,
	} {
		if v == "" {
			return fmt.Errorf("topology: %s is empty", name)
		}
	}
	if err := broker.ValidQueueType(t.QueueType); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	return nil
}

// Declaration is pay's part of the broker: its exchange, trade's (which
// its refund queue is bound to), its refund queue dead-lettering to the
// error exchange, and the error exchange and queue.
func (t Topology) Declaration() broker.Declaration {
	errorRoute := broker.Binding{Exchange: t.ErrorExchange, Key: t.ErrorKey}
	return broker.Declaration{
		QueueType: t.QueueType,
		Exchanges: []broker.Exchange{
			{Name: t.Exchange, Kind: amqp091.ExchangeTopic},
			{Name: t.TradeExchange, Kind: amqp091.ExchangeTopic},
			{Name: t.ErrorExchange, Kind: amqp091.ExchangeDirect},
		},
		Queues: []broker.Queue{
			{Name: t.RefundQueue, Bindings: []broker.Binding{{Exchange: t.TradeExchange, Key: t.RefundRequestedKey}}},
			{Name: t.ErrorQueue, Bindings: []broker.Binding{errorRoute}},
		},
		DeadLetter: errorRoute,
	}
}

// Declare declares the Declaration idempotently, on every new connection.
func (t Topology) Declare(ch *amqp091.Channel) error {
	return t.Declaration().Declare(ch)
}

// Permissions is all pay's broker user may do: declare its part, publish
// to its own exchange (and park), consume its refund queue. It can
// neither publish to trade's exchange nor read trade's queues.
func (t Topology) Permissions() broker.Permissions {
	return t.Declaration().Permissions([]string{t.Exchange}, []string{t.RefundQueue})
}

// Counts are the handler's outcomes.
type Counts struct {
	Refunded, Rejected, Duplicate atomic.Int64
}

// CreditRefund returns the handler of refund.requested deliveries: it
// decides the refund under the message's id (broker.Handle decodes the
// event strictly and parks anything undecodable at once). An error from the
// database is returned for the consumer to retry, or to pause on.
func CreditRefund(refunds pay.Refunder, counts *Counts, log *slog.Logger) broker.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return broker.Handle(pay.DecodeRefundRequested, func(ctx context.Context, d amqp091.Delivery, req pay.RefundRequest) error {
		result, err := refunds.Refund(ctx, d.MessageId, req, d.CorrelationId)
		if err != nil {
			return err
		}
		attrs := []any{"message_id", d.MessageId, "refund_id", req.RefundID, "order_id", req.BizOrderNo,
			"user_id", req.UserID, "amount", req.Amount, "reason", req.Reason, "redelivered", d.Redelivered}
		switch result {
		case pay.RefundApplied:
			counts.Refunded.Add(1)
			log.InfoContext(ctx, "refund credited", attrs...)
		case pay.RefundRefused:
			counts.Rejected.Add(1)
			log.ErrorContext(ctx, "REFUND REJECTED: the request cannot be honoured; nothing credited, recorded for settlement", attrs...)
		case pay.RefundDuplicate:
			counts.Duplicate.Add(1)
			log.InfoContext(ctx, "duplicate refund.requested acknowledged; nothing credited", attrs...)
		}
		return nil
	})
}
