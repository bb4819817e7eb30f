package postgres

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/services/pay"
)

// ApplyPayOrder returns the business order's pay order, creating it if
// there is none. Asking again for the same user and amount returns the same
// pay order; anything else is a conflict.
func (s *Store) ApplyPayOrder(ctx context.Context, req pay.Apply) (pay.PayOrder, bool, error) {
	if err := req.Validate(); err != nil {
		return pay.PayOrder{}, false, err
	}
	var (
		order   pay.PayOrder
		created bool
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockBizOrder(ctx, tx, req.BizOrderNo); err != nil {
			return err
		}
		// FOR UPDATE: a pay order found is answered only once the standby
		// has it, as a replayed payment is (claimIdempotencyKey).
		existing, err := scanPayOrder(tx.QueryRow(ctx, `SELECT `+payOrderColumns+` FROM pay_orders WHERE biz_order_no = $1 FOR UPDATE`, req.BizOrderNo))
		switch {
		case err == nil:
			if existing.Status == pay.Closed {
				return pay.ErrPayOrderClosed
			}
			if !existing.SameRequest(req) {
				return pay.ErrBizOrderConflict
			}
			order = existing
			return nil
		case !errors.Is(err, pay.ErrPayOrderNotFound):
			return fmt.Errorf("read pay order of business order %d: %w", req.BizOrderNo, err)
		}
		var closed bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM closed_biz_orders WHERE biz_order_no = $1)`, req.BizOrderNo).Scan(&closed); err != nil {
			return fmt.Errorf("check closure of business order %d: %w", req.BizOrderNo, err)
		}
		if closed {
			return pay.ErrPayOrderClosed
		}
		order, err = scanPayOrder(tx.QueryRow(ctx, `
			INSERT INTO pay_orders (biz_order_no, biz_user_id, amount, status, pay_channel_code, pay_type,
				order_info, pay_over_time, create_time, update_time)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval, now(), now())
			RETURNING `+payOrderColumns,
			req.BizOrderNo, req.BizUserID, req.Amount, pay.Waiting, req.PayChannelCode, req.PayType,
			req.OrderInfo, pay.PayWindow))
		if err != nil {
			return fmt.Errorf("insert pay order for business order %d: %w", req.BizOrderNo, err)
		}
		created = true
		return nil
	})
	if err != nil {
		return pay.PayOrder{}, false, err
	}
	return order, created, nil
}

// Pay pays a pay order from its owner's wallet. Once the password is
// checked, everything happens in one transaction: the pay order is locked, so concurrent attempts queue and
// only the first can succeed; the debit is conditional, so a balance never
// goes below zero; the pay order moves 1→3, the debit is booked, and the
// pay.success event and the idempotency record are written — all or none.
func (s *Store) Pay(ctx context.Context, p pay.Payment) (pay.PaymentResult, error) {
	if err := p.Validate(); err != nil {
		return pay.PaymentResult{}, err
	}
	// The password first, always, and outside the transaction: a replayed
	// key answers only a caller who passed the same check, and the hash is
	// never compared holding the pay order's lock or a pooled connection.
	if err := s.checkPassword(ctx, p.UserID, p.Password); err != nil {
		return pay.PaymentResult{}, err
	}
	var (
		result pay.PaymentResult
		event  outbox.Event
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if p.IdempotencyKey != "" {
			replay, found, err := s.claimIdempotencyKey(ctx, tx, p)
			if err != nil || found {
				result = replay
				return err
			}
		}
		order, ev, err := s.payInTx(ctx, tx, p)
		if err != nil {
			return err
		}
		if s.cfg.outboxed() {
			if err := outbox.Insert(ctx, tx, ev); err != nil {
				return err
			}
		}
		result, event = pay.PaymentResult{PayOrder: order}, ev
		if p.IdempotencyKey != "" {
			return saveIdempotencyKey(ctx, tx, p, order)
		}
		return nil
	})
	if err != nil {
		return pay.PaymentResult{}, err
	}
	if !result.Replayed {
		s.cfg.Crash.Hit(crashpoint.PayAfterCommit)
		s.cfg.publishAfterCommit(ctx, event)
		s.cfg.EventsCommitted()
	}
	return result, nil
}

// payInTx pays p inside tx and returns the paid pay order and its
// pay.success event, which the caller writes to the outbox.
//
// Two statements: one locks the pay order, one debits, marks the pay order
// paid and books the ledger row. Fewer round trips is the payment's cost on
// a busy database; the bench's profile showed pay's time going to them
// once bcrypt was paid for.
func (s *Store) payInTx(ctx context.Context, tx pgx.Tx, p pay.Payment) (pay.PayOrder, outbox.Event, error) {
	// The database's time comes with the lock: the expiry it is checked
	// against was written on it.
	var now time.Time
	order, err := scanPayOrder(tx.QueryRow(ctx, `
		SELECT `+payOrderColumns+`, now() FROM pay_orders WHERE id = $1 FOR UPDATE`, p.PayOrderID), &now)
	if err != nil {
		if errors.Is(err, pay.ErrPayOrderNotFound) {
			return order, outbox.Event{}, err
		}
		return order, outbox.Event{}, fmt.Errorf("lock pay order %d: %w", p.PayOrderID, err)
	}
	if order.BizUserID != p.UserID {
		// Someone else's pay order is, to this user, no pay order at all.
		return order, outbox.Event{}, pay.ErrPayOrderNotFound
	}
	now = now.UTC()
	if err := order.CheckPayable(now); err != nil {
		return order, outbox.Event{}, err
	}

	// The debit is conditional (no overdraft); the pay order moves only if
	// the debit happened, and the ledger row books the balance it left.
	var (
		balance *int64
		paid    bool
	)
	err = tx.QueryRow(ctx, `
		WITH debit AS (
			UPDATE accounts SET balance = balance - $3, updated_at = $4
			WHERE user_id = $2 AND balance >= $3
			RETURNING balance
		), paid AS (
			UPDATE pay_orders SET status = $5, pay_success_time = $4, update_time = $4
			WHERE id = $1 AND status = $6 AND EXISTS (SELECT FROM debit)
			RETURNING id
		), booked AS (
			INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id)
			SELECT $2, 'debit', -$3::bigint, balance, $1 FROM debit WHERE EXISTS (SELECT FROM paid)
		)
		SELECT (SELECT balance FROM debit), EXISTS (SELECT FROM paid)`,
		order.ID, p.UserID, order.Amount, now, pay.Paid, pay.Waiting).Scan(&balance, &paid)
	switch {
	case err != nil:
		return order, outbox.Event{}, fmt.Errorf("debit account %d for pay order %d: %w", p.UserID, order.ID, err)
	case balance == nil:
		return order, outbox.Event{}, pay.ErrInsufficientFunds
	case !paid:
		// Cannot happen under the lock taken above; the caller rolls
		// the debit back.
		return order, outbox.Event{}, fmt.Errorf("mark pay order %d paid: it is no longer waiting", order.ID)
	}
	order.Status = pay.Paid
	order.PaySuccessTime = &now

	ev, err := outbox.NewEvent(s.cfg.Exchange, s.cfg.PaySuccessKey, pay.PaySuccessType, pay.PaySuccess{
		BizOrderNo: order.BizOrderNo,
		PayOrderID: order.ID,
		UserID:     order.BizUserID,
		Amount:     order.Amount,
		PaidAt:     now,
	}, p.CorrelationID)
	return order, ev, err
}

// claimIdempotencyKey makes this transaction the only one working under the
// payment's idempotency key, and returns the earlier result if the key was
// already used for this same request. The lock is transaction-scoped, so a
// crash never leaves a key stuck "in flight".
func (s *Store) claimIdempotencyKey(ctx context.Context, tx pgx.Tx, p pay.Payment) (pay.PaymentResult, bool, error) {
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`,
		lockKey("idempotency_key", fmt.Sprint(p.UserID), p.IdempotencyKey)).Scan(&locked); err != nil {
		return pay.PaymentResult{}, false, fmt.Errorf("lock idempotency key: %w", err)
	}
	if !locked {
		return pay.PaymentResult{}, false, pay.ErrIdempotencyInFlight
	}
	var (
		hash  []byte
		saved []byte
	)
	// FOR UPDATE writes the row's lock to WAL, so this transaction's commit
	// waits for the synchronous standby like any write's, and with it for
	// the commit that stored the answer (WAL is flushed in order): a
	// payment whose own wait was canceled is replayed only once a failover
	// can no longer take it back.
	err := tx.QueryRow(ctx, `SELECT request_hash, pay_order FROM idempotency_keys WHERE user_id = $1 AND key = $2 FOR UPDATE`,
		p.UserID, p.IdempotencyKey).Scan(&hash, &saved)
	if errors.Is(err, pgx.ErrNoRows) {
		return pay.PaymentResult{}, false, nil
	}
	if err != nil {
		return pay.PaymentResult{}, false, fmt.Errorf("read idempotency key: %w", err)
	}
	if !hmac.Equal(hash, p.Fingerprint) {
		return pay.PaymentResult{}, false, pay.ErrIdempotencyKeyReused
	}
	var order pay.PayOrder
	if err := json.Unmarshal(saved, &order); err != nil {
		return pay.PaymentResult{}, false, fmt.Errorf("decode saved payment: %w", err)
	}
	return pay.PaymentResult{PayOrder: order, Replayed: true}, true, nil
}

func saveIdempotencyKey(ctx context.Context, tx pgx.Tx, p pay.Payment, order pay.PayOrder) error {
	saved, err := json.Marshal(order)
	if err != nil {
		return fmt.Errorf("encode payment for idempotency key: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO idempotency_keys (user_id, key, request_hash, pay_order) VALUES ($1, $2, $3, $4)`,
		p.UserID, p.IdempotencyKey, p.Fingerprint, saved); err != nil {
		return fmt.Errorf("save idempotency key: %w", err)
	}
	return nil
}

// PurgeIdempotencyKeys forgets idempotency keys older than the retention
// period; a retry after that is treated as a new request.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval`, pay.IdempotencyKeyRetention)
	if err != nil {
		return 0, fmt.Errorf("purge idempotency keys: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ClosePayOrder closes a business order's payment so it can never be paid:
// a waiting pay order moves 1→2; with no pay order yet, the closure is
// recorded so that none can be applied for. A paid one is refused; a
// refunded one is as good as closed, and returned as it is.
func (s *Store) ClosePayOrder(ctx context.Context, bizOrderNo int64) (pay.PayOrderClosure, error) {
	if bizOrderNo <= 0 {
		return pay.PayOrderClosure{}, pay.ErrPayOrderNotFound
	}
	closure := pay.PayOrderClosure{BizOrderNo: bizOrderNo}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockBizOrder(ctx, tx, bizOrderNo); err != nil {
			return err
		}
		order, err := scanPayOrder(tx.QueryRow(ctx, `SELECT `+payOrderColumns+` FROM pay_orders WHERE biz_order_no = $1 FOR UPDATE`, bizOrderNo))
		if errors.Is(err, pay.ErrPayOrderNotFound) {
			if _, err := tx.Exec(ctx, `INSERT INTO closed_biz_orders (biz_order_no) VALUES ($1) ON CONFLICT DO NOTHING`, bizOrderNo); err != nil {
				return fmt.Errorf("record closure of business order %d: %w", bizOrderNo, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock pay order of business order %d: %w", bizOrderNo, err)
		}
		switch order.Status {
		case pay.Paid:
			return pay.ErrAlreadyPaid
		case pay.Closed, pay.Refunded:
			// Neither can ever be paid (again): closed already.
		default:
			tag, err := tx.Exec(ctx, `UPDATE pay_orders SET status = $2, update_time = now() WHERE id = $1 AND status = $3`,
				order.ID, pay.Closed, order.Status)
			if err != nil {
				return fmt.Errorf("close pay order %d: %w", order.ID, err)
			}
			if tag.RowsAffected() != 1 {
				return fmt.Errorf("close pay order %d: its status changed under the lock", order.ID)
			}
			order.Status = pay.Closed
		}
		closure.PayOrder = &order
		return nil
	})
	if err != nil {
		return pay.PayOrderClosure{}, err
	}
	return closure, nil
}
