// Package amqp connects the trade service to RabbitMQ: the topology it
// declares, and the handler that marks an order paid for each pay.success
// event on mark.order.pay.queue.
package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/services/trade"
)

// The queue types MQ_QUEUE_TYPE accepts.
const (
	QueueQuorum  = broker.QueueQuorum
	QueueClassic = broker.QueueClassic
)

// Topology names what trade declares on the broker.
type Topology struct {
	Exchange      string // pay.topic
	PaySuccessKey string // pay.success
	Queue         string // mark.order.pay.queue
	QueueType     string // QueueQuorum or QueueClassic
	ErrorExchange string // error.direct
	ErrorKey      string // error
	ErrorQueue    string // error.queue

	// The refund path. A topology without them (a test of the payment
	// path alone) declares none of it.
	TradeExchange      string // trade.topic, where trade's relay publishes
	RefundRequestedKey string // refund.requested, the key trade publishes refunds with
	RefundSuccessKey   string // refund.success
	RefundQueue        string // mark.order.refund.queue
}

// Validate checks that every name is set and the queue type is known.
func (t Topology) Validate() error {
	for name, v := range map[string]string{
		"exchange": t.Exchange, "pay success key": t.PaySuccessKey, "queue": t.Queue,
		"error exchange": t.ErrorExchange, "error key": t.ErrorKey, "error queue": t.ErrorQueue,
		"trade exchange": t.TradeExchange, "refund requested key": t.RefundRequestedKey,
		"refund success key": t.RefundSuccessKey, "refund queue": t.RefundQueue,
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

// Declaration is trade's part of the broker: the queues it consumes, the
// exchange it publishes to, and the error exchange and queue where what it
// cannot process ends.
func (t Topology) Declaration() broker.Declaration {
	errorRoute := broker.Binding{Exchange: t.ErrorExchange, Key: t.ErrorKey}
	d := broker.Declaration{
		QueueType: t.QueueType,
		Exchanges: []broker.Exchange{
			{Name: t.Exchange, Kind: amqp091.ExchangeTopic},
			{Name: t.ErrorExchange, Kind: amqp091.ExchangeDirect},
		},
		Queues: []broker.Queue{
			{Name: t.Queue, Bindings: []broker.Binding{{Exchange: t.Exchange, Key: t.PaySuccessKey}}},
			{Name: t.ErrorQueue, Bindings: []broker.Binding{errorRoute}},
		},
		DeadLetter: errorRoute,
	}
	if t.RefundQueue != "" {
		d.Exchanges = append(d.Exchanges, broker.Exchange{Name: t.TradeExchange, Kind: amqp091.ExchangeTopic})
		d.Queues = append(d.Queues, broker.Queue{Name: t.RefundQueue, Bindings: []broker.Binding{{Exchange: t.Exchange, Key: t.RefundSuccessKey}}})
	}
	return d
}

// Declare declares the exchanges, queues and bindings, idempotently: the
// broker's supervisor calls it on every new connection, so a broker that
// lost its definitions gets them back.
func (t Topology) Declare(ch *amqp091.Channel) error {
	return t.Declaration().Declare(ch)
}

// Permissions is all trade's broker user may do: declare its part,
// publish to its own exchange (and park), consume its two queues. It can
// neither publish to pay's exchange nor read pay's refund queue.
func (t Topology) Permissions() broker.Permissions {
	return t.Declaration().Permissions([]string{t.TradeExchange}, []string{t.Queue, t.RefundQueue})
}

// Counts are the handlers' outcomes.
type Counts struct {
	Applied, Duplicate, Discrepancy atomic.Int64
	Refunded, RefundDuplicate       atomic.Int64
	// PayToPaid, if set before the consumer starts, is given for every
	// applied payment the time from its commit at pay (paidAt) to now.
	PayToPaid func(time.Duration)
}

// MarkOrderPaid returns the handler of pay.success deliveries: it applies
// the event under the message's id (broker.Handle decodes it strictly and
// parks anything undecodable at once). An error from the database is
// returned for the consumer to retry, or to pause on if the database is down.
func MarkOrderPaid(orders trade.Orders, counts *Counts, log *slog.Logger, crash crashpoint.Set) broker.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return broker.Handle(trade.DecodePaySuccess, func(ctx context.Context, d amqp091.Delivery, p trade.Payment) error {
		outcome, err := orders.ApplyPayment(ctx, d.MessageId, p, trade.FromEvent)
		if err != nil {
			return err
		}
		crash.Hit(crashpoint.TradeAfterCommit)
		// The correlation id comes with ctx: the payment request's own.
		attrs := []any{"message_id", d.MessageId, "order_id", p.BizOrderNo,
			"pay_order_id", p.PayOrderID, "user_id", p.UserID, "amount", p.Amount, "redelivered", d.Redelivered}
		switch outcome {
		case trade.Applied:
			counts.Applied.Add(1)
			if counts.PayToPaid != nil {
				counts.PayToPaid(time.Since(p.PaidAt))
			}
			log.InfoContext(ctx, "order paid", attrs...)
		case trade.Duplicate:
			counts.Duplicate.Add(1)
			log.InfoContext(ctx, "duplicate pay.success acknowledged; nothing applied", attrs...)
		case trade.Discrepancy:
			counts.Discrepancy.Add(1)
			log.ErrorContext(ctx, "PAYMENT DISCREPANCY: pay.success could not be applied to its order; recorded for settlement", attrs...)
		}
		return nil
	})
}

// MarkOrderRefunded returns the handler of refund.success deliveries: it
// applies the credit under the message's id
// — the refund marked refunded and its order, if paid, moved to refunded.
// Like MarkOrderPaid, a database error is returned to be retried or paused on.
func MarkOrderRefunded(orders trade.Orders, counts *Counts, log *slog.Logger) broker.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return broker.Handle(trade.DecodeRefundSuccess, func(ctx context.Context, d amqp091.Delivery, c trade.RefundCredit) error {
		outcome, err := orders.ApplyRefundCredit(ctx, d.MessageId, c)
		if err != nil {
			return err
		}
		attrs := []any{"message_id", d.MessageId, "refund_id", c.RefundID, "order_id", c.BizOrderNo,
			"pay_order_id", c.PayOrderID, "user_id", c.UserID, "amount", c.Amount, "redelivered", d.Redelivered}
		if outcome == trade.Applied {
			counts.Refunded.Add(1)
			log.InfoContext(ctx, "order refunded", attrs...)
			return nil
		}
		counts.RefundDuplicate.Add(1)
		log.InfoContext(ctx, "duplicate refund.success acknowledged; nothing applied", attrs...)
		return nil
	})
}
