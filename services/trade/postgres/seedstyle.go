//go:build faultinject

package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/services/trade"
)

// MarkPaidUnconditionally is the course's first markOrderPaySuccess, kept
// to be broken by make chaos UNSAFE=1: no inbox and no condition but the
// id, so every copy of a message pays the order again, whatever it has
// become, whoever paid and however much. The schema's CHECKs still refuse
// to make a cancelled order paid.
func (s *Store) MarkPaidUnconditionally(ctx context.Context, p trade.Payment) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE orders SET status = $2, pay_time = $3, update_time = now() WHERE id = $1`,
		p.BizOrderNo, trade.Paid, p.PaidAt.UTC())
	if err != nil {
		return false, fmt.Errorf("mark order %d paid unconditionally: %w", p.BizOrderNo, err)
	}
	return tag.RowsAffected() == 1, nil
}

// SeedRefunds is the store with the refund request of seed-style code,
// kept to be broken by make chaos UNSAFE=1 (TRADE_IDEMPOTENCY=none): a paid
// order's refund is asked of pay anew every time, with a fresh refund id
// and no refund recorded, so a buyer clicking twice, or an order paid again
// by a late duplicate, is refunded again.
type SeedRefunds struct{ *Store }

// RequestRefund sends a new refund.requested for the user's paid order:
// of the amount asked for, or of its whole total for "what remains",
// whatever was refunded before.
func (s SeedRefunds) RequestRefund(ctx context.Context, userID, orderID int64, req trade.RefundRequest, correlationID string) (trade.Refund, error) {
	order, err := s.Order(ctx, orderID)
	switch {
	case err != nil:
		return trade.Refund{}, err
	case order.UserID != userID:
		return trade.Refund{}, trade.ErrOrderNotFound
	case order.Status != trade.Paid:
		return trade.Refund{}, trade.ErrNotRefundable
	}
	id, err := uuid.NewV7()
	if err != nil {
		return trade.Refund{}, fmt.Errorf("new refund id: %w", err)
	}
	amount := req.Amount
	if req.Remainder() {
		amount = order.TotalFee
	}
	refund := trade.Refund{ID: id, OrderID: order.ID, UserID: order.UserID, Amount: amount,
		Reason: trade.ReasonUserRequest, Status: trade.RefundRequested}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&refund.RequestedAt); err != nil {
			return err
		}
		refund.RequestedAt = refund.RequestedAt.UTC()
		ev, err := outbox.NewEvent(s.events.Exchange, s.events.RefundRequestedKey, trade.RefundRequestedType, refund.Requested(), correlationID)
		if err != nil {
			return err
		}
		return outbox.Insert(ctx, tx, ev)
	})
	if err != nil {
		return trade.Refund{}, fmt.Errorf("request refund of order %d: %w", orderID, err)
	}
	s.eventsCommitted()
	return refund, nil
}
