package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/pay"
)

var _ pay.Refunder = (*Store)(nil)

// Refund decides a refund request, once per message and once per refund.
//
// In one transaction: the message id goes into the inbox first, so a
// redelivered copy waits for this one and then finds it there; the pay
// order is locked, so two refunds of it take turns; a refund id decided
// before is a duplicate. Then either everything happens — the pay order's
// refunded amount grows (3→4 when in full), the wallet is credited, the credit is booked in the ledger,
// the decision is recorded and refund.success goes into the outbox — or,
// for a request that cannot be honoured, only the rejection is recorded.
// The pay order's own rule (pay.PayOrder.RefundRejection) decides, under
// the lock; the statements only carry its decision out.
func (s *Store) Refund(ctx context.Context, messageID string, req pay.RefundRequest, correlationID string) (pay.RefundResult, error) {
	var (
		result pay.RefundResult
		credit string // the kind of refund credited; "" if none
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		result, credit = 0, ""
		if messageID != "" {
			tag, err := tx.Exec(ctx, `INSERT INTO processed_messages (message_id, outcome) VALUES ($1, '') ON CONFLICT (message_id) DO NOTHING`, messageID)
			if err != nil {
				return fmt.Errorf("record message %s in inbox: %w", messageID, err)
			}
			if tag.RowsAffected() == 0 {
				result = pay.RefundDuplicate
				return nil
			}
		}
		var err error
		result, credit, err = s.refundInTx(ctx, tx, messageID, req, correlationID)
		if err != nil {
			return err
		}
		if messageID != "" {
			if _, err := tx.Exec(ctx, `UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`, messageID, result.String()); err != nil {
				return fmt.Errorf("record outcome of message %s: %w", messageID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("refund %s of business order %d: %w", req.RefundID, req.BizOrderNo, err)
	}
	if credit != "" {
		s.cfg.Crash.Hit(crashpoint.PayAfterRefundCommit)
		s.cfg.EventsCommitted()
		if s.cfg.RefundCredited != nil {
			s.cfg.RefundCredited(credit, req.Amount)
		}
	}
	return result, nil
}

// refundInTx decides req inside tx; when it credits req, and so writes
// refund.success, it also returns the kind of refund it credited.
func (s *Store) refundInTx(ctx context.Context, tx pgx.Tx, messageID string, req pay.RefundRequest, correlationID string) (pay.RefundResult, string, error) {
	order, err := scanPayOrder(tx.QueryRow(ctx, `SELECT `+payOrderColumns+` FROM pay_orders WHERE biz_order_no = $1 FOR UPDATE`, req.BizOrderNo))
	found := err == nil
	if err != nil && !errors.Is(err, pay.ErrPayOrderNotFound) {
		return 0, "", fmt.Errorf("lock pay order of business order %d: %w", req.BizOrderNo, err)
	}
	// Under the pay order's lock, a refund id decided by a concurrent copy
	// under another message id is seen here.
	var decided bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM refunds WHERE refund_id = $1)`, req.RefundID).Scan(&decided); err != nil {
		return 0, "", fmt.Errorf("look up refund %s: %w", req.RefundID, err)
	}
	if decided {
		return pay.RefundDuplicate, "", nil
	}
	rejection := pay.RejectNoPayOrder
	if found {
		rejection = order.RefundRejection(req)
	}
	now, err := dbNow(ctx, tx)
	if err != nil {
		return 0, "", err
	}
	var payOrderID *int64
	if found {
		payOrderID = &order.ID
	}
	if rejection != "" {
		// ON CONFLICT: a copy with no pay order to lock may race this one.
		tag, err := tx.Exec(ctx, `
			INSERT INTO refunds (refund_id, biz_order_no, pay_order_id, user_id, amount, reason, outcome, rejection, requested_at, decided_at, message_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, nullif($11, ''))
			ON CONFLICT (refund_id) DO NOTHING`,
			req.RefundID, req.BizOrderNo, payOrderID, req.UserID, req.Amount, req.Reason, pay.RefundRejected, rejection, req.RequestedAt.UTC(), now, messageID)
		if err != nil {
			return 0, "", fmt.Errorf("record rejection of refund %s: %w", req.RefundID, err)
		}
		if tag.RowsAffected() == 0 {
			return pay.RefundDuplicate, "", nil
		}
		return pay.RefundRefused, "", nil
	}

	// The domain decided under the lock; the UPDATE still moves the pay
	// order only from the state it decided on, and the table's CHECKs keep
	// the credits within what was paid. The wallet is credited, the ledger
	// books the balance it left and the decision is recorded only if the
	// pay order moved; the ledger's and the decisions' unique refund ids
	// credit a refund once.
	credited := order.Credited(req.Amount, now)
	var balance *int64
	err = tx.QueryRow(ctx, `
		WITH credited AS (
			UPDATE pay_orders SET status = $3, refunded_amount = $4, refund_time = $5, update_time = $5
			WHERE id = $1 AND status = $6 AND refunded_amount = $7
			RETURNING id
		), credit AS (
			UPDATE accounts SET balance = balance + $8, updated_at = $5
			WHERE user_id = $2 AND EXISTS (SELECT FROM credited)
			RETURNING balance
		), booked AS (
			INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id, refund_id)
			SELECT $2, 'refund', $8::bigint, balance, $1, $9 FROM credit
		), decided AS (
			INSERT INTO refunds (refund_id, biz_order_no, pay_order_id, user_id, amount, reason, outcome, requested_at, decided_at, message_id, refunded_total)
			SELECT $9, $10, $1, $2, $8, $11, $12, $13, $5, nullif($14, ''), $4 FROM credit
		)
		SELECT (SELECT balance FROM credit)`,
		order.ID, order.BizUserID, credited.Status, credited.RefundedAmount, now, pay.Paid, order.RefundedAmount, req.Amount,
		req.RefundID, req.BizOrderNo, req.Reason, pay.RefundCredited, req.RequestedAt.UTC(), messageID).Scan(&balance)
	switch {
	case err != nil:
		return 0, "", fmt.Errorf("credit account %d for pay order %d: %w", order.BizUserID, order.ID, err)
	case balance == nil:
		// Cannot happen under the lock taken above, unless the wallet is
		// gone; the caller rolls back.
		return 0, "", fmt.Errorf("credit pay order %d: it moved under its lock or its wallet is missing", order.ID)
	}
	ev, err := outbox.NewEvent(s.cfg.Exchange, s.cfg.RefundSuccessKey, pay.RefundSuccessType, pay.RefundSuccess{
		RefundID:      req.RefundID,
		BizOrderNo:    order.BizOrderNo,
		PayOrderID:    order.ID,
		UserID:        order.BizUserID,
		Amount:        req.Amount,
		RefundedTotal: credited.RefundedAmount,
		RefundedAt:    now,
	}, correlationID)
	if err != nil {
		return 0, "", err
	}
	if err := outbox.Insert(ctx, tx, ev); err != nil {
		return 0, "", err
	}
	return pay.RefundApplied, order.RefundKind(req.Amount), nil
}

const refundColumns = `refund_id, biz_order_no, pay_order_id, user_id, amount, reason, outcome, coalesce(rejection, ''),
	coalesce(refunded_total, 0), requested_at, decided_at`

// RefundDecision returns what pay decided about a refund request, or
// ErrRefundNotFound if it has not received it.
func (s *Store) RefundDecision(ctx context.Context, refundID uuid.UUID) (pay.RefundDecision, error) {
	var d pay.RefundDecision
	err := s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE refund_id = $1`, refundID).Scan(
		&d.RefundID, &d.BizOrderNo, &d.PayOrderID, &d.UserID, &d.Amount, &d.Reason, &d.Outcome, &d.Rejection, &d.RefundedTotal, &d.RequestedAt, &d.DecidedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return pay.RefundDecision{}, pay.ErrRefundNotFound
	}
	if err != nil {
		return pay.RefundDecision{}, fmt.Errorf("read refund %s: %w", refundID, err)
	}
	d.RequestedAt, d.DecidedAt = d.RequestedAt.UTC(), d.DecidedAt.UTC()
	if d.Outcome == pay.RefundCredited {
		t := d.DecidedAt
		d.RefundedAt = &t
	}
	return d, nil
}

// DecideRefund decides req now, without a message: trade's fallback asks
// it for a refund whose refund.requested has not reached pay. The refund
// id keeps it to one decision, whichever way the request comes first.
func (s *Store) DecideRefund(ctx context.Context, req pay.RefundRequest, correlationID string) (pay.RefundDecision, error) {
	if err := req.Validate(); err != nil {
		return pay.RefundDecision{}, problem.Invalidf(err.Error())
	}
	if _, err := s.Refund(ctx, "", req, correlationID); err != nil {
		return pay.RefundDecision{}, err
	}
	return s.RefundDecision(ctx, req.RefundID)
}
