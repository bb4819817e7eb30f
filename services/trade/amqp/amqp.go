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
	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/services/trade"
)

// The queue types MQ_QUEUE_TYPE accepts.
const (
	QueueQuorum  = "quorum"  // replicated, the default
	QueueClassic = "classic" // a lazy classic queue: messages go to disk early
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
}

// Validate checks that every name is set and the queue type is known.
func (t Topology) Validate() error {
	for name, v := range map[string]string{
		"exchange": t.Exchange, "pay success key": t.PaySuccessKey, "queue": t.Queue,
		"error exchange": t.ErrorExchange, "error key": t.ErrorKey, "error queue": t.ErrorQueue,
	} {
		if v == "" {
			return fmt.Errorf("topology: %s is empty", name)
		}
	}
	if t.QueueType != QueueQuorum && t.QueueType != QueueClassic {
		return fmt.Errorf("topology: queue type %q: want %q or %q", t.QueueType, QueueQuorum, QueueClassic)
	}
	return nil
}

// Declare declares the exchanges, queues and bindings, idempotently: the
// broker's supervisor calls it on every new connection, so a broker that
// lost its definitions gets them back.
func (t Topology) Declare(ch *amqp091.Channel) error {
	args := amqp091.Table{"x-queue-type": t.QueueType}
	if t.QueueType == QueueClassic {
		args["x-queue-mode"] = "lazy"
	}
	steps := []struct {
		what string
		do   func() error
	}{
		{"exchange " + t.Exchange, func() error {
			return ch.ExchangeDeclare(t.Exchange, amqp091.ExchangeTopic, true, false, false, false, nil)
		}},
		{"queue " + t.Queue, func() error {
			_, err := ch.QueueDeclare(t.Queue, true, false, false, false, args)
			return err
		}},
		{"binding " + t.Queue + " ← " + t.PaySuccessKey, func() error {
			return ch.QueueBind(t.Queue, t.PaySuccessKey, t.Exchange, false, nil)
		}},
		{"exchange " + t.ErrorExchange, func() error {
			return ch.ExchangeDeclare(t.ErrorExchange, amqp091.ExchangeDirect, true, false, false, false, nil)
		}},
		{"queue " + t.ErrorQueue, func() error {
			_, err := ch.QueueDeclare(t.ErrorQueue, true, false, false, false, args)
			return err
		}},
		{"binding " + t.ErrorQueue + " ← " + t.ErrorKey, func() error {
			return ch.QueueBind(t.ErrorQueue, t.ErrorKey, t.ErrorExchange, false, nil)
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			// A PRECONDITION_FAILED here usually means the queue exists
			// with another type or arguments: it has to be deleted (or
			// MQ_QUEUE_TYPE changed) by a human.
			return fmt.Errorf("declare %s: %w", s.what, err)
		}
	}
	return nil
}

// Counts are the handler's outcomes.
type Counts struct {
	Applied, Duplicate, Discrepancy atomic.Int64
	// PayToPaid, if set before the consumer starts, is given for every
	// applied payment the time from its commit at pay (paidAt) to now.
	PayToPaid func(time.Duration)
}

// MarkOrderPaid returns the handler of pay.success deliveries: it decodes
// the event strictly (anything undecodable is malformed and parked at once)
// and applies it under the message's id. An error from the database is
// returned for the consumer to retry, or to pause on if the database is down.
func MarkOrderPaid(orders trade.Orders, counts *Counts, log *slog.Logger, crash crashpoint.Set) broker.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, d amqp091.Delivery) error {
		if d.CorrelationId != "" {
			ctx = correlation.WithID(ctx, d.CorrelationId)
		}
		if d.MessageId == "" {
			return broker.Malformed(fmt.Errorf("pay.success without message_id cannot be deduplicated"))
		}
		p, err := trade.DecodePaySuccess(d.Body)
		if err != nil {
			return broker.Malformed(err)
		}
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
	}
}

// UnconditionalOrders marks orders paid as the course's seed code does.
type UnconditionalOrders interface {
	MarkPaidUnconditionally(ctx context.Context, p trade.Payment) (bool, error)
}

// MarkOrderPaidUnconditionally is the seed-style handler that make chaos
// UNSAFE=1 runs (TRADE_IDEMPOTENCY=none): no message id needed, no inbox,
// an unconditional update — every copy of an event takes effect again.
func MarkOrderPaidUnconditionally(orders UnconditionalOrders, counts *Counts, log *slog.Logger, crash crashpoint.Set) broker.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context, d amqp091.Delivery) error {
		p, err := trade.DecodePaySuccess(d.Body)
		if err != nil {
			return broker.Malformed(err)
		}
		updated, err := orders.MarkPaidUnconditionally(ctx, p)
		if err != nil {
			return err
		}
		crash.Hit(crashpoint.TradeAfterCommit)
		if updated {
			counts.Applied.Add(1)
			log.InfoContext(ctx, "order paid (unconditionally)", "message_id", d.MessageId, "order_id", p.BizOrderNo, "redelivered", d.Redelivered)
		}
		return nil
	}
}
