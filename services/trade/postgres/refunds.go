package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/services/trade"
)

const refundColumns = `id, order_id, user_id, amount, reason, status, requested_at, refunded_at, coalesce(rejection, '')`

func scanRefund(row pgx.Row) (trade.Refund, error) {
	var r trade.Refund
	err := row.Scan(&r.ID, &r.OrderID, &r.UserID, &r.Amount, &r.Reason, &r.Status, &r.RequestedAt, &r.RefundedAt, &r.Rejection)
	if err != nil {
		return trade.Refund{}, err
	}
	r.RequestedAt = r.RequestedAt.UTC()
	r.RefundedAt = utc(r.RefundedAt)
	return r, nil
}

// RequestRefund refunds the user's paid order. The order is locked, so a
// refund and a late payment message for it take turns; the refund row and
// its refund.requested event are written in one transaction, so pay hears
// of every refund trade commits and of no other. An order has at most one
// refund: asking again returns it.
func (s *Store) RequestRefund(ctx context.Context, userID, orderID int64, correlationID string) (trade.Refund, error) {
	var (
		refund  trade.Refund
		created bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		order, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR UPDATE`, orderID))
		if err != nil {
			return err
		}
		if order.UserID != userID {
			// Someone else's order does not exist for this user.
			return trade.ErrOrderNotFound
		}
		refund, err = scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1`, orderID))
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read refund of order %d: %w", orderID, err)
		case order.Status != trade.Paid:
			return trade.ErrNotRefundable
		}
		refund, created, err = s.insertRefund(ctx, tx, order.ID, order.UserID, order.TotalFee, trade.ReasonUserRequest, correlationID)
		return err
	})
	if err != nil {
		if !errors.Is(err, trade.ErrOrderNotFound) && !errors.Is(err, trade.ErrNotRefundable) {
			err = fmt.Errorf("request refund of order %d: %w", orderID, err)
		}
		return trade.Refund{}, err
	}
	if created {
		s.events.Crash.Hit(crashpoint.TradeAfterRefundCommit)
		s.eventsCommitted()
	}
	return refund, nil
}

// insertRefund writes a refund of orderID and its refund.requested event
// inside tx, unless the order has a refund already; it returns the order's
// refund and whether it is the one just written.
func (s *Store) insertRefund(ctx context.Context, tx pgx.Tx, orderID, userID, amount int64, reason, correlationID string) (trade.Refund, bool, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return trade.Refund{}, false, fmt.Errorf("new refund id: %w", err)
	}
	refund, err := scanRefund(tx.QueryRow(ctx, `
		INSERT INTO refunds (id, order_id, user_id, amount, reason, status, requested_at)
		VALUES ($1, $2, $3, $4, $5, $6, now())
		ON CONFLICT (order_id) DO NOTHING
		RETURNING `+refundColumns,
		id, orderID, userID, amount, reason, trade.RefundRequested))
	if errors.Is(err, pgx.ErrNoRows) {
		existing, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1`, orderID))
		if err != nil {
			return trade.Refund{}, false, fmt.Errorf("read refund of order %d: %w", orderID, err)
		}
		return existing, false, nil
	}
	if err != nil {
		return trade.Refund{}, false, fmt.Errorf("insert refund of order %d: %w", orderID, err)
	}
	ev, err := outbox.NewEvent(s.events.Exchange, s.events.RefundRequestedKey, trade.RefundRequestedType, refund.Requested(), correlationID)
	if err != nil {
		return trade.Refund{}, false, err
	}
	if err := outbox.Insert(ctx, tx, ev); err != nil {
		return trade.Refund{}, false, err
	}
	return refund, true, nil
}

// ApplyRefundCredit records pay's credit of a refund. In one transaction:
// the message id goes into the inbox first (when there is one), the refund
// moves from requested to refunded, and the order moves from paid to
// refunded with the conditional UPDATE — so a duplicate, or a credit for
// an order that was never paid here (a compensation), moves no order.
func (s *Store) ApplyRefundCredit(ctx context.Context, messageID string, c trade.RefundCredit) (trade.Outcome, error) {
	outcome := trade.Applied
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if messageID != "" {
			tag, err := tx.Exec(ctx, `
				INSERT INTO processed_messages (message_id, biz_order_no, outcome) VALUES ($1, $2, $3)
				ON CONFLICT (message_id) DO NOTHING`, messageID, c.BizOrderNo, "refund_"+trade.Applied.String())
			if err != nil {
				return fmt.Errorf("record message %s in inbox: %w", messageID, err)
			}
			if tag.RowsAffected() == 0 {
				outcome = trade.Duplicate
				return nil
			}
		}
		var refundMoved, orderMoved bool
		err := tx.QueryRow(ctx, `
			WITH refund AS (
				UPDATE refunds SET status = $3, refunded_at = $4
				WHERE id = $1 AND order_id = $2 AND status = $5
				RETURNING id
			), refunded AS (
				UPDATE orders SET status = $6, update_time = now()
				WHERE id = $2 AND status = $7
				RETURNING id
			)
			SELECT EXISTS (SELECT FROM refund), EXISTS (SELECT FROM refunded)`,
			c.RefundID, c.BizOrderNo, trade.RefundRefunded, c.RefundedAt.UTC(), trade.RefundRequested,
			trade.Refunded, trade.Paid).Scan(&refundMoved, &orderMoved)
		if err != nil {
			return fmt.Errorf("mark refund %s of order %d refunded: %w", c.RefundID, c.BizOrderNo, err)
		}
		if !refundMoved && !orderMoved {
			outcome = trade.Duplicate
			if messageID != "" {
				if _, err := tx.Exec(ctx, `UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`,
					messageID, "refund_"+trade.Duplicate.String()); err != nil {
					return fmt.Errorf("record outcome of message %s: %w", messageID, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("apply refund %s of order %d: %w", c.RefundID, c.BizOrderNo, err)
	}
	return outcome, nil
}

// RejectRefund records pay's refusal of a refund still requested.
func (s *Store) RejectRefund(ctx context.Context, id uuid.UUID, rejection string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE refunds SET status = $2, rejection = $3 WHERE id = $1 AND status = $4`,
		id, trade.RefundRejected, rejection, trade.RefundRequested)
	if err != nil {
		return false, fmt.Errorf("reject refund %s: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RequestedRefunds returns up to limit refunds still waiting for pay,
// requested longer than olderThan ago by the database's clock, oldest
// first, after the refund after (zero: from the start), walking the
// partial index of requested refunds.
func (s *Store) RequestedRefunds(ctx context.Context, olderThan time.Duration, after trade.Refund, limit int) ([]trade.Refund, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+refundColumns+` FROM refunds
		WHERE status = $1 AND requested_at < now() - $2::interval AND (requested_at, id) > ($3, $4)
		ORDER BY requested_at, id LIMIT $5`,
		trade.RefundRequested, olderThan, after.RequestedAt, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("list requested refunds: %w", err)
	}
	refunds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (trade.Refund, error) { return scanRefund(row) })
	if err != nil {
		return nil, fmt.Errorf("list requested refunds: %w", err)
	}
	return refunds, nil
}

// RefundOf returns the refund of an order, if it has one.
func (s *Store) RefundOf(ctx context.Context, orderID int64) (trade.Refund, bool, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1`, orderID))
	if errors.Is(err, pgx.ErrNoRows) {
		return trade.Refund{}, false, nil
	}
	if err != nil {
		return trade.Refund{}, false, fmt.Errorf("read refund of order %d: %w", orderID, err)
	}
	return r, true, nil
}

// RefundBacklog returns how many refunds wait for pay, how long the oldest
// has waited, and how many pay rejected: what /metrics shows of refunds.
func (s *Store) RefundBacklog(ctx context.Context) (waiting int64, oldest time.Duration, rejected int64, err error) {
	var seconds float64
	err = s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE status = $1),
			coalesce(extract(epoch FROM now() - min(requested_at) FILTER (WHERE status = $1)), 0)::float8,
			count(*) FILTER (WHERE status = $2)
		FROM refunds`, trade.RefundRequested, trade.RefundRejected).Scan(&waiting, &seconds, &rejected)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("read refund backlog: %w", err)
	}
	return waiting, time.Duration(seconds * float64(time.Second)), rejected, nil
}
