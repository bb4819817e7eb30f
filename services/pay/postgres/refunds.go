package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/pay"
)

var _ pay.Refunder = (*Store)(nil)

// Refund decides a refund request, once per message and once per refund.
//
// In one transaction, sent in two round trips (see refundRead and
// refundWrite): the message id goes into the inbox first, so a redelivered
// copy waits for this one and then finds it there; the pay order is
// locked, so two refunds of it take turns; a refund id decided before is a
// duplicate. Then either everything happens — the pay order's refunded
// amount grows (3→4 when in full), the wallet is credited, the credit is
// booked in the ledger, the decision is recorded and refund.success goes
// into the outbox — or, for a request that cannot be honoured, only the
// rejection is recorded. The pay order's own rule
// (pay.PayOrder.RefundRejection) decides, under the lock; the statements
// only carry its decision out.
func (s *Store) Refund(ctx context.Context, messageID string, req pay.RefundRequest, correlationID string) (pay.RefundResult, error) {
	var (
		result pay.RefundResult
		credit string // the kind of refund credited; "" if none
	)
	err := database.InPipeline(ctx, s.pool, func(p *database.Pipeline) error {
		result, credit = 0, ""
		state, err := s.refundRead(ctx, p, messageID, req)
		if err != nil {
			return err
		}
		var b pgx.Batch
		read := s.refundWrite(ctx, &b, state, messageID, req, correlationID, &result)
		if err := p.Commit(ctx, &b, read); err != nil {
			return err
		}
		if result == pay.RefundApplied {
			credit = state.order.RefundKind(req.Amount)
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

// refundState is what a refund is decided on, read under the pay order's lock.
type refundState struct {
	copied  bool // the inbox held the message already
	order   pay.PayOrder
	found   bool // the business order has a pay order
	decided bool // the refund id was decided before
	now     time.Time
}

// refundRead is the first round trip: BEGIN, the inbox row, the pay order
// locked and read, and whether the refund id was decided before — after
// the lock, so that a decision a concurrent copy made under another
// message id is seen — with the database's time.
func (s *Store) refundRead(ctx context.Context, p *database.Pipeline, messageID string, req pay.RefundRequest) (refundState, error) {
	var st refundState
	var b pgx.Batch
	if messageID != "" {
		b.Queue(`INSERT INTO processed_messages (message_id, outcome) VALUES ($1, '') ON CONFLICT (message_id) DO NOTHING`, messageID)
	}
	b.Queue(`SELECT `+payOrderColumns+` FROM pay_orders WHERE biz_order_no = $1 FOR UPDATE`, req.BizOrderNo)
	b.Queue(`SELECT EXISTS (SELECT FROM refunds WHERE refund_id = $1), now()`, req.RefundID)
	err := p.Send(ctx, &b, func(br pgx.BatchResults) error {
		if messageID != "" {
			tag, err := br.Exec()
			if err != nil {
				return fmt.Errorf("record message %s in inbox: %w", messageID, err)
			}
			st.copied = tag.RowsAffected() == 0
		}
		var err error
		st.order, err = scanPayOrder(br.QueryRow())
		st.found = err == nil
		if err != nil && !errors.Is(err, pay.ErrPayOrderNotFound) {
			return fmt.Errorf("lock pay order of business order %d: %w", req.BizOrderNo, err)
		}
		if err := br.QueryRow().Scan(&st.decided, &st.now); err != nil {
			return fmt.Errorf("look up refund %s: %w", req.RefundID, err)
		}
		st.now = st.now.UTC()
		return nil
	})
	return st, err
}

// refundWrite queues in b, the second round trip's batch, what the
// domain's decision on st does, and returns the reader of its results,
// which sets result.
func (s *Store) refundWrite(ctx context.Context, b *pgx.Batch, st refundState, messageID string, req pay.RefundRequest,
	correlationID string, result *pay.RefundResult) func(pgx.BatchResults) error {
	recordOutcome := func(br pgx.BatchResults) error {
		if messageID == "" {
			return nil
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("record outcome of message %s: %w", messageID, err)
		}
		return nil
	}
	queueOutcome := func(outcome pay.RefundResult) {
		if messageID != "" {
			b.Queue(`UPDATE processed_messages SET outcome = $2 WHERE message_id = $1`, messageID, outcome.String())
		}
	}
	switch {
	case st.copied:
		*result = pay.RefundDuplicate
		return func(pgx.BatchResults) error { return nil }
	case st.decided:
		*result = pay.RefundDuplicate
		queueOutcome(pay.RefundDuplicate)
		return recordOutcome
	}
	rejection := pay.RejectNoPayOrder
	if st.found {
		rejection = st.order.RefundRejection(req)
	}
	var payOrderID *int64
	if st.found {
		payOrderID = &st.order.ID
	}
	if rejection != "" {
		// ON CONFLICT: a copy with no pay order to lock may race this one;
		// the message's outcome says which copy decided.
		b.Queue(`
			WITH rejected AS (
				INSERT INTO refunds (refund_id, biz_order_no, pay_order_id, user_id, amount, reason, outcome, rejection, requested_at, decided_at, message_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, nullif($11, ''))
				ON CONFLICT (refund_id) DO NOTHING
				RETURNING refund_id
			), outcome AS (
				UPDATE processed_messages SET outcome = CASE WHEN EXISTS (SELECT FROM rejected) THEN $12 ELSE $13 END
				WHERE message_id = $11
			)
			SELECT EXISTS (SELECT FROM rejected)`,
			req.RefundID, req.BizOrderNo, payOrderID, req.UserID, req.Amount, req.Reason, pay.RefundRejected, rejection,
			req.RequestedAt.UTC(), st.now, messageID, pay.RefundRefused.String(), pay.RefundDuplicate.String())
		return func(br pgx.BatchResults) error {
			var rejected bool
			if err := br.QueryRow().Scan(&rejected); err != nil {
				return fmt.Errorf("record rejection of refund %s: %w", req.RefundID, err)
			}
			*result = pay.RefundDuplicate
			if rejected {
				*result = pay.RefundRefused
			}
			return nil
		}
	}

	// The domain decided under the lock; the UPDATE still moves the pay
	// order only from the state it decided on, and the table's CHECKs keep
	// the credits within what was paid. The wallet is credited, the ledger
	// books the balance it left and the decision is recorded only if the
	// pay order moved; the ledger's and the decisions' unique refund ids
	// credit a refund once. If nothing was credited (the pay order moved
	// under its lock, or its wallet is gone: neither can happen), the
	// division by zero fails the statement, and with it the transaction,
	// whose COMMIT is already on its way in the same round trip.
	order := st.order
	credited := order.Credited(req.Amount, st.now)
	b.Queue(`
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
		SELECT 1 / (SELECT count(*) FROM credit)`,
		order.ID, order.BizUserID, credited.Status, credited.RefundedAmount, st.now, pay.Paid, order.RefundedAmount, req.Amount,
		req.RefundID, req.BizOrderNo, req.Reason, pay.RefundCredited, req.RequestedAt.UTC(), messageID)
	ev, evErr := outbox.NewEvent(s.cfg.Exchange, s.cfg.RefundSuccessKey, pay.RefundSuccessType, pay.RefundSuccess{
		RefundID:      req.RefundID,
		BizOrderNo:    order.BizOrderNo,
		PayOrderID:    order.ID,
		UserID:        order.BizUserID,
		Amount:        req.Amount,
		RefundedTotal: credited.RefundedAmount,
		RefundedAt:    st.now,
	}, correlationID)
	if evErr == nil {
		outbox.Queue(ctx, b, ev)
	}
	queueOutcome(pay.RefundApplied)
	return func(br pgx.BatchResults) error {
		if evErr != nil {
			return evErr
		}
		if _, err := br.Exec(); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "22012" { // division_by_zero: nothing credited
				err = errors.New("it moved under its lock or its wallet is missing")
			}
			return fmt.Errorf("credit account %d for pay order %d: %w", order.BizUserID, order.ID, err)
		}
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("insert outbox event %s: %w", ev.ID, err)
		}
		if err := recordOutcome(br); err != nil {
			return err
		}
		*result = pay.RefundApplied
		return nil
	}
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
