//go:build faultinject

package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/services/pay"
)

// SeedRefunds is the store with the refund of seed-style code, kept to be
// broken by make chaos UNSAFE=1 (PAY_IDEMPOTENCY=none): no inbox, no refund
// id remembered, no condition on the pay order's status and no ledger row
// — every refund.requested delivered credits the wallet again.
type SeedRefunds struct{ *Store }

var _ pay.Refunder = SeedRefunds{}

// Refund credits the business order's payment back, whatever came before.
func (s SeedRefunds) Refund(ctx context.Context, _ string, req pay.RefundRequest, correlationID string) (pay.RefundResult, error) {
	var (
		result pay.RefundResult
		ev     outbox.Event
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		now, err := dbNow(ctx, tx)
		if err != nil {
			return err
		}
		var id, user, total int64
		// The pay order's CHECKs cap what it records as refunded; the
		// wallet is credited the whole request, every time.
		err = tx.QueryRow(ctx, `
			UPDATE pay_orders SET refunded_amount = least(amount, refunded_amount + $4),
				status = CASE WHEN refunded_amount + $4 >= amount THEN $2 ELSE status END,
				refund_time = $3, update_time = $3
			WHERE biz_order_no = $1 AND pay_success_time IS NOT NULL
			RETURNING id, biz_user_id, refunded_amount`, req.BizOrderNo, pay.Refunded, now, req.Amount).Scan(&id, &user, &total)
		if err == pgx.ErrNoRows {
			result = pay.RefundRefused
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark pay order of business order %d refunded: %w", req.BizOrderNo, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + $2, updated_at = $3 WHERE user_id = $1`, user, req.Amount, now); err != nil {
			return fmt.Errorf("credit account %d: %w", user, err)
		}
		result = pay.RefundApplied
		ev, err = outbox.NewEvent(s.cfg.Exchange, s.cfg.RefundSuccessKey, pay.RefundSuccessType, pay.RefundSuccess{
			RefundID: req.RefundID, BizOrderNo: req.BizOrderNo, PayOrderID: id, UserID: user, Amount: req.Amount, RefundedTotal: total, RefundedAt: now,
		}, correlationID)
		if err != nil || s.cfg.PublishAfterCommit != nil {
			return err
		}
		return outbox.Insert(ctx, tx, ev)
	})
	if err != nil {
		return 0, fmt.Errorf("refund business order %d unconditionally: %w", req.BizOrderNo, err)
	}
	if result == pay.RefundApplied {
		if s.cfg.PublishAfterCommit != nil {
			s.cfg.PublishAfterCommit(ctx, ev)
		}
		s.cfg.EventsCommitted()
	}
	return result, nil
}

// seedWiring can replace the outbox with the course's seed wiring.
type seedWiring struct {
	// PublishAfterCommit, when set, replaces the outbox: the event is not
	// written in the payment's transaction but handed to this function
	// after the commit, in the request. For make bench and make chaos
	// UNSAFE=1 only: a crash or broker outage between the commit and the
	// publish loses the event for good.
	PublishAfterCommit func(ctx context.Context, ev outbox.Event)
}

func (w seedWiring) outboxed() bool { return w.PublishAfterCommit == nil }

func (w seedWiring) publishAfterCommit(ctx context.Context, ev outbox.Event) {
	if w.PublishAfterCommit != nil {
		w.PublishAfterCommit(ctx, ev)
	}
}
