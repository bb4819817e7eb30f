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
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/trade"
)

const refundColumns = `id, order_id, user_id, amount, reason, coalesce(request_key, ''), status, requested_at, refunded_at,
	coalesce(rejection, ''), coalesce(settlement, ''), settled_at`

func scanRefund(row pgx.Row) (trade.Refund, error) {
	var r trade.Refund
	err := row.Scan(&r.ID, &r.OrderID, &r.UserID, &r.Amount, &r.Reason, &r.RequestKey, &r.Status, &r.RequestedAt, &r.RefundedAt,
		&r.Rejection, &r.Settlement, &r.SettledAt)
	if err != nil {
		return trade.Refund{}, err
	}
	r.RequestedAt = r.RequestedAt.UTC()
	r.RefundedAt = utc(r.RefundedAt)
	r.SettledAt = utc(r.SettledAt)
	return r, nil
}

// RequestRefund refunds part of the user's paid order (req.Amount, under
// req.IdempotencyKey) or what remains of it (neither). The order is
// locked, so refunds of it and a late payment message take turns, and the
// domain decides (trade.Order.CheckRefund) against refunds requested and
// not rejected; the conditional UPDATE of the order's claimed amount and
// its CHECK keep the same rule. The refund row and its refund.requested
// event are written in one transaction, so pay hears of every refund trade
// commits and of no other. The same key asked again returns its refund; a
// request for what remains returns the one still pending, if any.
func (s *Store) RequestRefund(ctx context.Context, userID, orderID int64, req trade.RefundRequest, correlationID string) (trade.Refund, error) {
	var (
		refund  trade.Refund
		created bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		created = false
		order, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR UPDATE`, orderID))
		if err != nil {
			return err
		}
		if err := order.CheckOwner(userID); err != nil {
			return err
		}
		var existing pgx.Row
		if req.Remainder() {
			existing = tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
				WHERE order_id = $1 AND request_key IS NULL AND status = $2 ORDER BY requested_at DESC LIMIT 1`, orderID, trade.RefundRequested)
		} else {
			existing = tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1 AND request_key = $2`, orderID, req.IdempotencyKey)
		}
		refund, err = scanRefund(existing)
		switch {
		case err == nil && !req.Remainder() && !refund.SameRequest(req):
			return trade.ErrRefundKeyReused
		case err == nil:
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read refund of order %d: %w", orderID, err)
		}
		refund = trade.Refund{OrderID: order.ID, UserID: order.UserID, Amount: req.Amount, Reason: trade.ReasonUserRequest, RequestKey: req.IdempotencyKey}
		if req.Remainder() {
			refund.Amount = order.RefundRemaining()
		}
		if err := order.CheckRefund(refund.Amount); err != nil {
			return err
		}
		if err := s.claim(ctx, tx, order, refund); err != nil {
			return err
		}
		refund, created, err = s.insertRefund(ctx, tx, refund, correlationID)
		return err
	})
	if err != nil {
		if _, refusal := problem.As(err); !refusal {
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

// claim moves the locked order's claimed amount as the domain says
// requesting r does, from the value it decided on.
func (s *Store) claim(ctx context.Context, tx pgx.Tx, order trade.Order, r trade.Refund) error {
	next := order.Claimed(r)
	tag, err := tx.Exec(ctx, `UPDATE orders SET refund_claimed = $2, update_time = now() WHERE id = $1 AND status = $3 AND refund_claimed = $4`,
		order.ID, next.RefundClaimed, trade.Paid, order.RefundClaimed)
	if err != nil {
		return fmt.Errorf("claim %d of order %d for a refund: %w", r.Amount, order.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("claim %d of order %d: it moved under its lock", r.Amount, order.ID)
	}
	return nil
}

// insertRefund writes r, a new refund, and its refund.requested event
// inside tx, unless the order has a refund under r's request key already;
// it returns the refund under the key and whether it is the one just
// written.
func (s *Store) insertRefund(ctx context.Context, tx pgx.Tx, r trade.Refund, correlationID string) (trade.Refund, bool, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return trade.Refund{}, false, fmt.Errorf("new refund id: %w", err)
	}
	refund, err := scanRefund(tx.QueryRow(ctx, `
		INSERT INTO refunds (id, order_id, user_id, amount, reason, request_key, status, requested_at)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7, now())
		ON CONFLICT (order_id, request_key) DO NOTHING
		RETURNING `+refundColumns,
		id, r.OrderID, r.UserID, r.Amount, r.Reason, r.RequestKey, trade.RefundRequested))
	if errors.Is(err, pgx.ErrNoRows) {
		existing, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1 AND request_key = $2`, r.OrderID, r.RequestKey))
		if err != nil {
			return trade.Refund{}, false, fmt.Errorf("read refund %q of order %d: %w", r.RequestKey, r.OrderID, err)
		}
		return existing, false, nil
	}
	if err != nil {
		return trade.Refund{}, false, fmt.Errorf("insert refund of order %d: %w", r.OrderID, err)
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

// Refunds returns the order's refunds, oldest first.
func (s *Store) Refunds(ctx context.Context, orderID int64) ([]trade.Refund, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1 ORDER BY requested_at, id`, orderID)
	if err != nil {
		return nil, fmt.Errorf("list refunds of order %d: %w", orderID, err)
	}
	refunds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (trade.Refund, error) { return scanRefund(row) })
	if err != nil {
		return nil, fmt.Errorf("list refunds of order %d: %w", orderID, err)
	}
	return refunds, nil
}

// ApplyRefundCredit records pay's credit of a refund. In one transaction:
// the message id goes into the inbox first (when there is one); the
// refund and its order are locked; the domain checks the credit is this
// refund's (trade.Refund.CheckCredit) and says what the order becomes
// (trade.Order.Credited); then the refund moves from requested to refunded
// and the order from the state decided on, each by a conditional UPDATE.
// A credit of a refund trade never requested, already applied, or not
// matching its refund moves nothing: an order moves only with its own
// refund row. The outcome is the last attempt's: a transaction retried
// after a serialization failure reports what it did, not what the first
// attempt saw.
func (s *Store) ApplyRefundCredit(ctx context.Context, messageID string, c trade.RefundCredit) (trade.Outcome, error) {
	var outcome trade.Outcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		outcome = trade.Duplicate
		if messageID != "" {
			tag, err := tx.Exec(ctx, `
				INSERT INTO processed_messages (message_id, biz_order_no, outcome) VALUES ($1, $2, $3)
				ON CONFLICT (message_id) DO NOTHING`, messageID, c.BizOrderNo, "refund_"+trade.Duplicate.String())
			if err != nil {
				return fmt.Errorf("record message %s in inbox: %w", messageID, err)
			}
			if tag.RowsAffected() == 0 {
				return nil
			}
		}
		moved, err := s.creditRefund(ctx, tx, c)
		if err != nil || !moved {
			return err
		}
		outcome = trade.Applied
		if messageID != "" {
			if _, err := tx.Exec(ctx, `UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`,
				messageID, "refund_"+trade.Applied.String()); err != nil {
				return fmt.Errorf("record outcome of message %s: %w", messageID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("apply refund %s of order %d: %w", c.RefundID, c.BizOrderNo, err)
	}
	return outcome, nil
}

// creditRefund moves c's refund to refunded and its order as the domain
// says, and reports whether they moved.
func (s *Store) creditRefund(ctx context.Context, tx pgx.Tx, c trade.RefundCredit) (bool, error) {
	// The order first, then its refund: the order of every other
	// transaction that locks both.
	order, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR UPDATE`, c.BizOrderNo))
	orderFound := err == nil
	if err != nil && !errors.Is(err, trade.ErrOrderNotFound) {
		return false, fmt.Errorf("lock order %d: %w", c.BizOrderNo, err)
	}
	refund, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1 FOR UPDATE`, c.RefundID))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil // never requested here: nothing of trade's moves
	case err != nil:
		return false, fmt.Errorf("lock refund %s: %w", c.RefundID, err)
	case refund.Status != trade.RefundRequested || refund.CheckCredit(c) != nil:
		return false, nil
	}
	tag, err := tx.Exec(ctx, `UPDATE refunds SET status = $2, refunded_at = $3 WHERE id = $1 AND status = $4`,
		refund.ID, trade.RefundRefunded, c.RefundedAt.UTC(), trade.RefundRequested)
	if err != nil {
		return false, fmt.Errorf("mark refund %s refunded: %w", refund.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return false, fmt.Errorf("mark refund %s refunded: it moved under its lock", refund.ID)
	}
	if !orderFound || !refund.ClaimsOrder() {
		return true, nil
	}
	next := order.Credited(refund)
	tag, err = tx.Exec(ctx, `
		UPDATE orders SET refunded_amount = $2, status = $3, update_time = now()
		WHERE id = $1 AND refunded_amount = $4 AND status = $5`,
		order.ID, next.RefundedAmount, next.Status, order.RefundedAmount, order.Status)
	if err != nil {
		return false, fmt.Errorf("add refund %s to order %d: %w", refund.ID, order.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return false, fmt.Errorf("add refund %s to order %d: it moved under its lock", refund.ID, order.ID)
	}
	return true, nil
}

// RejectRefund records pay's refusal of a refund still requested and, in
// the same transaction, gives its amount back to what the order's owner
// can ask for (trade.Order.Released).
func (s *Store) RejectRefund(ctx context.Context, id uuid.UUID, rejection string) (bool, error) {
	var rejected bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rejected = false
		var orderID int64
		if err := tx.QueryRow(ctx, `SELECT order_id FROM refunds WHERE id = $1`, id).Scan(&orderID); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return fmt.Errorf("read refund %s: %w", id, err)
		}
		order, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR UPDATE`, orderID))
		orderFound := err == nil
		if err != nil && !errors.Is(err, trade.ErrOrderNotFound) {
			return fmt.Errorf("lock order %d: %w", orderID, err)
		}
		refund, err := scanRefund(tx.QueryRow(ctx, `
			UPDATE refunds SET status = $2, rejection = $3 WHERE id = $1 AND status = $4
			RETURNING `+refundColumns, id, trade.RefundRejected, rejection, trade.RefundRequested))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reject refund %s: %w", id, err)
		}
		rejected = true
		if !orderFound || !refund.ClaimsOrder() {
			return nil
		}
		next := order.Released(refund)
		tag, err := tx.Exec(ctx, `UPDATE orders SET refund_claimed = $2, update_time = now() WHERE id = $1 AND refund_claimed = $3`,
			order.ID, next.RefundClaimed, order.RefundClaimed)
		if err != nil {
			return fmt.Errorf("release refund %s of order %d: %w", id, order.ID, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("release refund %s of order %d: it moved under its lock", id, order.ID)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return rejected, nil
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

// RefundOf returns the latest refund of an order, if it has one.
func (s *Store) RefundOf(ctx context.Context, orderID int64) (trade.Refund, bool, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1 ORDER BY requested_at DESC, id DESC LIMIT 1`, orderID))
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

// RejectedRefunds returns up to limit refunds pay rejected, oldest first:
// those nobody settled yet, or, with settled, every one.
func (s *Store) RejectedRefunds(ctx context.Context, settled bool, limit int) ([]trade.Refund, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+refundColumns+` FROM refunds
		WHERE status = $1 AND ($2 OR settlement IS NULL)
		ORDER BY requested_at, id LIMIT $3`, trade.RefundRejected, settled, limit)
	if err != nil {
		return nil, fmt.Errorf("list rejected refunds: %w", err)
	}
	refunds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (trade.Refund, error) { return scanRefund(row) })
	if err != nil {
		return nil, fmt.Errorf("list rejected refunds: %w", err)
	}
	return refunds, nil
}

// RetryRefund settles a rejected refund by asking pay again: in one
// transaction, a new refund of the same order, amount and reason with its
// refund.requested event (pay decides a refund id once, so a retry needs a
// new one), and the rejected refund settled as retried by it. An owner's
// refund is checked against what remains of the order like any other
// (trade.Order.CheckRefund). Retrying the same refund again returns the
// same new refund.
func (s *Store) RetryRefund(ctx context.Context, id uuid.UUID, correlationID string) (trade.Refund, error) {
	var (
		retry   trade.Refund
		created bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		created = false
		rejected, order, orderFound, err := s.lockRejected(ctx, tx, id)
		if err != nil {
			return err
		}
		key := "retry:" + rejected.ID.String()
		if rejected.Settlement != "" {
			retry, err = scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE order_id = $1 AND request_key = $2`, rejected.OrderID, key))
			if errors.Is(err, pgx.ErrNoRows) {
				return trade.ErrRefundNotRejected
			}
			return err
		}
		retry = trade.Refund{OrderID: rejected.OrderID, UserID: rejected.UserID, Amount: rejected.Amount, Reason: rejected.Reason, RequestKey: key}
		if retry.ClaimsOrder() {
			if !orderFound {
				return trade.ErrOrderNotFound
			}
			if err := order.CheckRefund(retry.Amount); err != nil {
				return err
			}
			if err := s.claim(ctx, tx, order, retry); err != nil {
				return err
			}
		}
		if retry, created, err = s.insertRefund(ctx, tx, retry, correlationID); err != nil {
			return err
		}
		return s.settle(ctx, tx, rejected.ID, "retried as "+retry.ID.String())
	})
	if err != nil {
		if _, refusal := problem.As(err); !refusal {
			err = fmt.Errorf("retry refund %s: %w", id, err)
		}
		return trade.Refund{}, err
	}
	if created {
		s.eventsCommitted()
	}
	return retry, nil
}

// ResolveRefund settles a rejected refund without asking pay again: the
// operator records how it was resolved (paid back another way, or not
// owed), and reconcile stops counting it.
func (s *Store) ResolveRefund(ctx context.Context, id uuid.UUID, note string) (trade.Refund, error) {
	if note == "" {
		return trade.Refund{}, problem.Invalidf("a resolution needs a note saying how the refund was settled")
	}
	var settled trade.Refund
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		rejected, _, _, err := s.lockRejected(ctx, tx, id)
		if err != nil {
			return err
		}
		if rejected.Settlement != "" {
			return trade.ErrRefundNotRejected
		}
		if err := s.settle(ctx, tx, id, "resolved: "+note); err != nil {
			return err
		}
		settled, err = scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1`, id))
		return err
	})
	if err != nil {
		if _, refusal := problem.As(err); !refusal {
			err = fmt.Errorf("resolve refund %s: %w", id, err)
		}
		return trade.Refund{}, err
	}
	return settled, nil
}

// lockRejected locks a rejected refund's order, then the refund, and
// returns both; a refund that is not rejected is ErrRefundNotRejected.
func (s *Store) lockRejected(ctx context.Context, tx pgx.Tx, id uuid.UUID) (trade.Refund, trade.Order, bool, error) {
	var orderID int64
	err := tx.QueryRow(ctx, `SELECT order_id FROM refunds WHERE id = $1`, id).Scan(&orderID)
	if errors.Is(err, pgx.ErrNoRows) {
		return trade.Refund{}, trade.Order{}, false, trade.ErrRefundNotFound
	}
	if err != nil {
		return trade.Refund{}, trade.Order{}, false, fmt.Errorf("read refund %s: %w", id, err)
	}
	order, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR UPDATE`, orderID))
	orderFound := err == nil
	if err != nil && !errors.Is(err, trade.ErrOrderNotFound) {
		return trade.Refund{}, trade.Order{}, false, fmt.Errorf("lock order %d: %w", orderID, err)
	}
	refund, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return trade.Refund{}, trade.Order{}, false, fmt.Errorf("lock refund %s: %w", id, err)
	}
	if refund.Status != trade.RefundRejected {
		return trade.Refund{}, trade.Order{}, false, trade.ErrRefundNotRejected
	}
	return refund, order, orderFound, nil
}

// settle records how an operator settled a rejected refund, once.
func (s *Store) settle(ctx context.Context, tx pgx.Tx, id uuid.UUID, settlement string) error {
	tag, err := tx.Exec(ctx, `UPDATE refunds SET settlement = $2, settled_at = now() WHERE id = $1 AND status = $3 AND settlement IS NULL`,
		id, settlement, trade.RefundRejected)
	if err != nil {
		return fmt.Errorf("settle refund %s: %w", id, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("settle refund %s: it moved under its lock", id)
	}
	return nil
}
