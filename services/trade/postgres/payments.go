package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/services/trade"
)

// ApplyPayment marks the payment's order paid, at most once per message.
//
// A message's usual cases take one statement, which commits on its own: one
// round trip, the consumer's hot path (see payInOneTrip). Every other case
// is one transaction: the message id goes into the inbox first, so a
// concurrent or later copy of the same message waits for this one and then
// finds it there; then the conditional UPDATE pays the order only if it is
// unpaid, owned by the payer and of exactly the amount paid. When the
// UPDATE matches nothing, the order says why: paid before by this payment
// (a duplicate), or not payable by it (a discrepancy, recorded once per
// payment and reason).
func (s *Store) ApplyPayment(ctx context.Context, messageID string, p trade.Payment, source trade.PaymentSource) (trade.Outcome, error) {
	if messageID != "" {
		outcome, done, err := s.payInOneTrip(ctx, messageID, p)
		if err != nil {
			return 0, fmt.Errorf("apply payment of order %d: %w", p.BizOrderNo, err)
		}
		if done {
			return outcome, nil
		}
	}
	var outcome trade.Outcome
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if messageID == "" {
			outcome, err = s.markPaid(ctx, tx, p, source)
			return err
		}
		outcome, err = s.markPaidOnce(ctx, tx, messageID, p, source)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("apply payment of order %d: %w", p.BizOrderNo, err)
	}
	if outcome == trade.Discrepancy {
		s.eventsCommitted() // its compensating refund.requested, if new
	}
	return outcome, nil
}

// payInOneTrip applies a message in one statement that commits on its own,
// when it can: the conditional UPDATE pays an unpaid order of exactly the
// payment by its payer unless the inbox holds the message, and the inbox
// row is written only with the order paid, so the statement either does
// both or writes nothing. A message the inbox holds is a duplicate. Done is
// false when the statement wrote nothing and the message is new (a
// discrepancy, or a copy that lost the race for the order's row lock):
// ApplyPayment's transaction then finds out which, the inbox row first.
func (s *Store) payInOneTrip(ctx context.Context, messageID string, p trade.Payment) (outcome trade.Outcome, done bool, err error) {
	var paid, seen bool
	err = database.Statement(ctx, s.pool, func(conn *pgxpool.Conn) error {
		return conn.QueryRow(ctx, `
			WITH seen AS (
				SELECT FROM processed_messages WHERE message_id = $1
			), paid AS (
				UPDATE orders SET status = $4, pay_time = $5, update_time = now()
				WHERE id = $2 AND status = $6 AND user_id = $7 AND total_fee = $8 AND NOT EXISTS (SELECT FROM seen)
				RETURNING id
			), inbox AS (
				INSERT INTO processed_messages (message_id, biz_order_no, outcome) SELECT $1, $2, $3 FROM paid
			)
			SELECT EXISTS (SELECT FROM paid), EXISTS (SELECT FROM seen)`,
			messageID, p.BizOrderNo, trade.Applied.String(),
			trade.Paid, p.PaidAt.UTC(), trade.Unpaid, p.UserID, p.Amount).Scan(&paid, &seen)
	})
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("mark order %d paid for message %s: %w", p.BizOrderNo, messageID, err)
	case paid:
		return trade.Applied, true, nil
	case seen:
		return trade.Duplicate, true, nil
	}
	return 0, false, nil
}

// markPaidOnce records messageID in the inbox and, only if it was not
// there, pays the order; the inbox row says what the message did.
func (s *Store) markPaidOnce(ctx context.Context, tx pgx.Tx, messageID string, p trade.Payment, source trade.PaymentSource) (trade.Outcome, error) {
	var recorded, paid bool
	// The UPDATE reads the INSERT's RETURNING, so it runs only for a
	// message the inbox did not hold; ON CONFLICT waits for a copy being
	// applied concurrently and then finds it.
	err := tx.QueryRow(ctx, `
		WITH inbox AS (
			INSERT INTO processed_messages (message_id, biz_order_no, outcome) VALUES ($1, $2, $3)
			ON CONFLICT (message_id) DO NOTHING
			RETURNING message_id
		), paid AS (
			UPDATE orders SET status = $4, pay_time = $5, update_time = now()
			WHERE id = $2 AND status = $6 AND user_id = $7 AND total_fee = $8 AND EXISTS (SELECT FROM inbox)
			RETURNING id
		)
		SELECT EXISTS (SELECT FROM inbox), EXISTS (SELECT FROM paid)`,
		messageID, p.BizOrderNo, trade.Applied.String(),
		trade.Paid, p.PaidAt.UTC(), trade.Unpaid, p.UserID, p.Amount).Scan(&recorded, &paid)
	switch {
	case err != nil:
		return 0, fmt.Errorf("record message %s in inbox and mark order %d paid: %w", messageID, p.BizOrderNo, err)
	case !recorded:
		return trade.Duplicate, nil
	case paid:
		return trade.Applied, nil
	}
	outcome, err := s.whyUnpaid(ctx, tx, messageID, p, source)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`, messageID, outcome.String()); err != nil {
		return 0, fmt.Errorf("record outcome of message %s: %w", messageID, err)
	}
	return outcome, nil
}

// markPaid pays the order of a payment that came with no message (the
// fallback's poll of pay): the conditional UPDATE alone keeps it once.
func (s *Store) markPaid(ctx context.Context, tx pgx.Tx, p trade.Payment, source trade.PaymentSource) (trade.Outcome, error) {
	tag, err := tx.Exec(ctx, `
		UPDATE orders SET status = $2, pay_time = $3, update_time = now()
		WHERE id = $1 AND status = $4 AND user_id = $5 AND total_fee = $6`,
		p.BizOrderNo, trade.Paid, p.PaidAt.UTC(), trade.Unpaid, p.UserID, p.Amount)
	if err != nil {
		return 0, fmt.Errorf("mark order %d paid: %w", p.BizOrderNo, err)
	}
	if tag.RowsAffected() == 1 {
		return trade.Applied, nil
	}
	return s.whyUnpaid(ctx, tx, "", p, source)
}

// whyUnpaid reads the order a payment's UPDATE did not match and says
// why: it was paid by this payment before (a duplicate), or the payment
// cannot pay it (a discrepancy, which it records).
func (s *Store) whyUnpaid(ctx context.Context, tx pgx.Tx, messageID string, p trade.Payment, source trade.PaymentSource) (trade.Outcome, error) {
	// FOR SHARE: the verdict below must hold until commit.
	order, err := scanOrder(tx.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 FOR SHARE`, p.BizOrderNo))
	if errors.Is(err, trade.ErrOrderNotFound) {
		return trade.Discrepancy, s.recordDiscrepancy(ctx, tx, messageID, p, source, trade.ReasonOrderNotFound, nil)
	}
	if err != nil {
		return 0, fmt.Errorf("read order %d: %w", p.BizOrderNo, err)
	}
	reason, duplicate := order.PaymentRejection(p)
	switch {
	case duplicate:
		return trade.Duplicate, nil
	case reason == "":
		return 0, fmt.Errorf("order %d is unpaid and matches the payment, yet was not updated", p.BizOrderNo)
	}
	return trade.Discrepancy, s.recordDiscrepancy(ctx, tx, messageID, p, source, reason, &order.Status)
}

// recordDiscrepancy records a payment that cannot pay its order and, in
// the same transaction, requests the refund of what remains of it to the
// payer, so no money stays debited for an order that did not take it. The
// order's one compensation covers every reason recorded for its payment.
func (s *Store) recordDiscrepancy(ctx context.Context, tx pgx.Tx, messageID string, p trade.Payment, source trade.PaymentSource, reason string, status *trade.OrderStatus) error {
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
	var claimed int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM refunds WHERE order_id = $1 AND status <> $2`,
		p.BizOrderNo, trade.RefundRejected).Scan(&claimed); err != nil {
		return fmt.Errorf("sum refunds of order %d: %w", p.BizOrderNo, err)
	}
	amount := trade.CompensationAmount(p.Amount, claimed)
	if amount == 0 {
		return nil
	}
	refund := trade.Refund{OrderID: p.BizOrderNo, UserID: p.UserID, Amount: amount,
		Reason: trade.CompensationReason(reason), RequestKey: trade.CompensationKey}
	if _, _, err := s.insertRefund(ctx, tx, refund, correlation.ID(ctx)); err != nil {
		return fmt.Errorf("request compensating refund of order %d: %w", p.BizOrderNo, err)
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

// purgeBatch bounds one purge statement, so that forgetting a long
// backlog holds no lock for long.
const purgeBatch = 10_000

// PurgeProcessedMessages forgets the inbox's message ids processed more
// than retention ago, by the database's clock, and returns how many. A copy
// of a message that arrives later still changes nothing, since the order
// has moved on from unpaid, but it is no longer recognised by its id: so
// retention must be longer than any copy can be late.
func (s *Store) PurgeProcessedMessages(ctx context.Context, retention time.Duration) (int64, error) {
	var purged int64
	for {
		tag, err := s.pool.Exec(ctx, `
			DELETE FROM processed_messages WHERE message_id IN (
				SELECT message_id FROM processed_messages WHERE processed_at < now() - $1::interval LIMIT $2)`,
			retention, purgeBatch)
		if err != nil {
			return purged, fmt.Errorf("purge processed messages: %w", err)
		}
		purged += tag.RowsAffected()
		if tag.RowsAffected() < purgeBatch {
			return purged, nil
		}
	}
}
