package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/services/trade"
)

// ApplyPayment marks the payment's order paid, at most once per message.
//
// In one transaction: the message id goes into the inbox first, so a
// concurrent or later copy of the same message waits for this one and then
// finds it there; then the conditional UPDATE pays the order only if it is
// unpaid, owned by the payer and of exactly the amount paid. When the
// UPDATE matches nothing, the order says why: paid before by this payment
// (a duplicate), or not payable by it (a discrepancy, recorded once per
// payment and reason).
func (s *Store) ApplyPayment(ctx context.Context, messageID string, p trade.Payment, source trade.PaymentSource) (trade.Outcome, error) {
	var outcome trade.Outcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if messageID != "" {
			tag, err := tx.Exec(ctx, `
				INSERT INTO processed_messages (message_id, biz_order_no, outcome) VALUES ($1, $2, 'pending')
				ON CONFLICT (message_id) DO NOTHING`, messageID, p.BizOrderNo)
			if err != nil {
				return fmt.Errorf("record message %s in inbox: %w", messageID, err)
			}
			if tag.RowsAffected() == 0 {
				outcome = trade.Duplicate
				return nil
			}
		}
		var err error
		outcome, err = s.applyInTx(ctx, tx, messageID, p, source)
		if err != nil || messageID == "" {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`, messageID, outcome.String()); err != nil {
			return fmt.Errorf("record outcome of message %s: %w", messageID, err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("apply payment of order %d: %w", p.BizOrderNo, err)
	}
	return outcome, nil
}

func (s *Store) applyInTx(ctx context.Context, tx pgx.Tx, messageID string, p trade.Payment, source trade.PaymentSource) (trade.Outcome, error) {
	tag, err := tx.Exec(ctx, `
		UPDATE orders SET status = $2, pay_time = $3, update_time = $4
		WHERE id = $1 AND status = $5 AND user_id = $6 AND total_fee = $7`,
		p.BizOrderNo, trade.Paid, p.PaidAt.UTC(), s.clock(), trade.Unpaid, p.UserID, p.Amount)
	if err != nil {
		return 0, fmt.Errorf("mark order %d paid: %w", p.BizOrderNo, err)
	}
	if tag.RowsAffected() == 1 {
		return trade.Applied, nil
	}
	// FOR SHARE: the verdict below must hold until commit.
	order, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR SHARE`, p.BizOrderNo))
	if errors.Is(err, trade.ErrOrderNotFound) {
		return trade.Discrepancy, recordDiscrepancy(ctx, tx, messageID, p, source, trade.ReasonOrderNotFound, nil)
	}
	if err != nil {
		return 0, fmt.Errorf("read order %d: %w", p.BizOrderNo, err)
	}
	reason := ""
	switch {
	case order.UserID != p.UserID:
		reason = trade.ReasonUserMismatch
	case order.TotalFee != p.Amount:
		reason = trade.ReasonAmountMismatch
	case order.PayTime != nil:
		// Paid before, and maybe moved on since (shipped, refunded):
		// this payment has had its effect already.
		return trade.Duplicate, nil
	case order.Status != trade.Unpaid:
		reason = trade.ReasonOrderMovedOn
	default:
		return 0, fmt.Errorf("order %d is unpaid and matches the payment, yet was not updated", p.BizOrderNo)
	}
	return trade.Discrepancy, recordDiscrepancy(ctx, tx, messageID, p, source, reason, &order.Status)
}

func recordDiscrepancy(ctx context.Context, tx pgx.Tx, messageID string, p trade.Payment, source trade.PaymentSource, reason string, status *trade.OrderStatus) error {
	var msgID *string
	if messageID != "" {
		msgID = &messageID
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO payment_discrepancies
			(biz_order_no, pay_order_id, user_id, amount, paid_at, reason, order_status, source, message_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (pay_order_id, reason) DO NOTHING`,
		p.BizOrderNo, p.PayOrderID, p.UserID, p.Amount, p.PaidAt.UTC(), reason, status, string(source), msgID)
	if err != nil {
		return fmt.Errorf("record discrepancy %s of order %d: %w", reason, p.BizOrderNo, err)
	}
	return nil
}

// DiscrepancyRecord is a payment that could not be applied, as recorded.
type DiscrepancyRecord struct {
	trade.Payment
	Reason      string
	OrderStatus *trade.OrderStatus
	Source      trade.PaymentSource
	MessageID   string
	CreatedAt   time.Time
}

// Discrepancies returns every recorded discrepancy, oldest first.
func (s *Store) Discrepancies(ctx context.Context) ([]DiscrepancyRecord, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT biz_order_no, pay_order_id, user_id, amount, paid_at, reason, order_status, source, coalesce(message_id, ''), created_at
		FROM payment_discrepancies ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list discrepancies: %w", err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DiscrepancyRecord, error) {
		var d DiscrepancyRecord
		err := row.Scan(&d.BizOrderNo, &d.PayOrderID, &d.UserID, &d.Amount, &d.PaidAt, &d.Reason, &d.OrderStatus, &d.Source, &d.MessageID, &d.CreatedAt)
		return d, err
	})
}
