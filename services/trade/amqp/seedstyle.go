//go:build faultinject

package amqp

import (
	"context"
	"log/slog"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/services/trade"
)

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
