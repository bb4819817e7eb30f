package postgres

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
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

// Pay pays a pay order from its owner's wallet, in two round trips to the
// database as a rule. The first counts the password check as in progress
// and reads what the payment needs (the pay order, the balance, whether
// the Idempotency-Key was used); the domain decides on that, once the hash
// is compared with no row locked and no connection held; the second is one
// statement that records the right password, marks the pay order paid,
// debits the wallet, books the debit and writes the pay.success event and
// the idempotency record, all or none, under conditions that hold the
// decision: the order still waiting and unexpired, the check unlapsed, the
// balance never below zero (its CHECK), the key unused (its key).
//
// A replay, a hash to renew, the seed-style wiring or a condition that no
// longer holds go the locked way (payLocked): the pay order is locked, so
// concurrent attempts queue and only the first can succeed, and the debit
// is conditional.
func (s *Store) Pay(ctx context.Context, p pay.Payment) (pay.PaymentResult, error) {
	if err := p.Validate(); err != nil {
		return pay.PaymentResult{}, err
	}
	// The password first, always: whatever was read with it is answered
	// only to a caller who passed the check.
	release, refusal := s.wallets.enter(p.UserID)
	if refusal != nil {
		return pay.PaymentResult{}, refusal
	}
	defer release()
	check, seen, err := s.readForPayment(ctx, p)
	if err != nil {
		s.wallets.seen(p.UserID, err)
		return pay.PaymentResult{}, err
	}
	rehash, err := s.compare(ctx, check, p.Password)
	if err != nil {
		s.wallets.seen(p.UserID, err)
		return pay.PaymentResult{}, err
	}
	refusal = seen.refusal(p)
	if refusal == nil && !seen.keyUsed && rehash == nil && s.cfg.outboxed() {
		result, outcome, err := s.payInOneStatement(ctx, p, check, seen)
		switch {
		case err != nil:
			return pay.PaymentResult{}, err
		case outcome == statementPaid:
			s.committed(ctx, result, outbox.Event{})
			return result, nil
		case outcome == statementLapsed:
			return pay.PaymentResult{}, pay.ErrPasswordChecksBusy.WithRetryAfter(pay.BusyRetry)
		case outcome == statementInFlight:
			return pay.PaymentResult{}, pay.ErrIdempotencyInFlight
		case outcome == statementRolledBack:
			if err := s.recordRight(ctx, check, nil); err != nil {
				return pay.PaymentResult{}, err
			}
		}
		// The order, the balance or the key changed since they were read:
		// the locked way answers as of now.
	} else {
		if err := s.recordRight(ctx, check, rehash); err != nil {
			return pay.PaymentResult{}, err
		}
		if refusal != nil && !seen.keyUsed {
			return pay.PaymentResult{}, refusal
		}
	}
	return s.payLocked(ctx, p)
}

// paymentSeen is what a payment reads with its password check.
type paymentSeen struct {
	order   pay.PayOrder
	found   bool
	balance int64
	keyUsed bool // the payment's Idempotency-Key has an answer already
	now     time.Time
}

// refusal is the domain's answer to p as seen, or nil: p can be paid.
func (seen paymentSeen) refusal(p pay.Payment) error {
	if !seen.found {
		return pay.ErrPayOrderNotFound
	}
	return seen.order.CheckPayment(p.UserID, seen.balance, seen.now)
}

// readForPayment counts p's password check and reads what paying needs, in
// one round trip.
func (s *Store) readForPayment(ctx context.Context, p pay.Payment) (countedCheck, paymentSeen, error) {
	var b pgx.Batch
	check := queueCountAttempt(&b, p.UserID)
	b.Queue(`
		SELECT `+payOrderColumns+`, now(),
			COALESCE((SELECT balance FROM accounts WHERE user_id = $2), 0),
			EXISTS (SELECT FROM idempotency_keys WHERE user_id = $2 AND key = $3)
		FROM pay_orders WHERE id = $1`, p.PayOrderID, p.UserID, p.IdempotencyKey)
	br := s.pool.SendBatch(ctx, &b)
	defer br.Close()
	check, err := scanCountedAttempt(br.QueryRow(), check)
	if err != nil {
		return check, paymentSeen{}, err
	}
	var seen paymentSeen
	seen.order, err = scanPayOrder(br.QueryRow(), &seen.now, &seen.balance, &seen.keyUsed)
	switch {
	case err == nil:
		seen.found = true
		seen.now = seen.now.UTC()
	case !errors.Is(err, pay.ErrPayOrderNotFound):
		return check, seen, fmt.Errorf("read pay order %d: %w", p.PayOrderID, err)
	}
	if err := br.Close(); err != nil {
		return check, seen, fmt.Errorf("count payment password attempt of account %d: %w", p.UserID, err)
	}
	return check, seen, nil
}

// What payInOneStatement did.
type statementOutcome int

const (
	statementPaid       statementOutcome = iota
	statementNotPaid                     // the right password recorded; the order was not payable as read, or locked
	statementInFlight                    // the right password recorded; the key is another request's now
	statementLapsed                      // nothing done: the password check lapsed
	statementRolledBack                  // nothing done: the balance or the key changed since read
)

// payInOneStatement pays p as decided on seen, in one statement that is
// its own transaction. Every condition the decision rests on is in it, so
// it pays or changes nothing but the password's record. It never waits for
// the pay order: one that another transaction holds is left to payLocked.
// The Idempotency-Key's advisory lock is taken as payLocked takes it, so a
// request under a key another is working under is refused as in flight.
func (s *Store) payInOneStatement(ctx context.Context, p pay.Payment, check countedCheck, seen paymentSeen) (pay.PaymentResult, statementOutcome, error) {
	order := seen.order.PaidAt(seen.now)
	ev, err := s.paySuccessEvent(order, p.CorrelationID)
	if err != nil {
		return pay.PaymentResult{}, 0, err
	}
	saved, err := json.Marshal(order)
	if err != nil {
		return pay.PaymentResult{}, 0, fmt.Errorf("encode payment for idempotency key: %w", err)
	}
	var recorded, paid, keyLocked bool
	// Never canceled with the request, as a COMMIT is not.
	stmtCtx := context.WithoutCancel(ctx)
	err = database.Statement(stmtCtx, s.pool, func(conn *pgxpool.Conn) error {
		return conn.QueryRow(stmtCtx, `
			WITH `+rightPasswordCTE+`, key_lock AS (
				SELECT $8::text = '' OR pg_try_advisory_xact_lock($11) AS locked
			), paid AS (
				UPDATE pay_orders SET status = $5, pay_success_time = $6, update_time = $6
				WHERE id = (SELECT id FROM pay_orders WHERE id = $4 FOR UPDATE SKIP LOCKED)
					AND biz_user_id = $1 AND status = $7 AND pay_over_time >= now()
					AND EXISTS (SELECT FROM right_password) AND (SELECT locked FROM key_lock)
				RETURNING id, amount
			), debit AS (
				UPDATE accounts AS acc SET balance = acc.balance - paid.amount, updated_at = $6
				FROM paid WHERE acc.user_id = $1
				RETURNING acc.balance, paid.id, paid.amount
			), booked AS (
				INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id)
				SELECT $1, 'debit', -amount, balance, id FROM debit
			), keyed AS (
				INSERT INTO idempotency_keys (user_id, key, request_hash, pay_order)
				SELECT $1, $8::text, $9::bytea, $10::jsonb FROM paid WHERE $8::text <> ''
			), announced AS (
				`+outbox.InsertFrom("debit", 12)+`
			)
			SELECT EXISTS (SELECT FROM right_password), EXISTS (SELECT FROM debit), (SELECT locked FROM key_lock)`,
			append([]any{check.userID, check.id, checkLease, order.ID, pay.Paid, seen.now, pay.Waiting,
				p.IdempotencyKey, p.Fingerprint, saved, idempotencyLock(p)}, outbox.Args(ctx, ev)...)...).Scan(&recorded, &paid, &keyLocked)
	})
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.CheckViolation || pgErr.Code == pgerrcode.UniqueViolation):
		return pay.PaymentResult{}, statementRolledBack, nil
	case err != nil:
		return pay.PaymentResult{}, 0, fmt.Errorf("pay pay order %d: %w", order.ID, err)
	case !recorded:
		return pay.PaymentResult{}, statementLapsed, nil
	case paid:
		return pay.PaymentResult{PayOrder: order}, statementPaid, nil
	case !keyLocked:
		return pay.PaymentResult{}, statementInFlight, nil
	}
	return pay.PaymentResult{}, statementNotPaid, nil
}

// payLocked pays p in a transaction that locks what it reads: the
// idempotency key, then the pay order.
func (s *Store) payLocked(ctx context.Context, p pay.Payment) (pay.PaymentResult, error) {
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
	s.committed(ctx, result, event)
	return result, nil
}

// committed follows a payment's commit: the crash point, the seed-style
// publish and the relay's wake-up, unless it was a replay.
func (s *Store) committed(ctx context.Context, result pay.PaymentResult, event outbox.Event) {
	if result.Replayed {
		return
	}
	s.cfg.Crash.Hit(crashpoint.PayAfterCommit)
	s.cfg.publishAfterCommit(ctx, event)
	s.cfg.EventsCommitted()
}

// payInTx pays p inside tx and returns the paid pay order and its
// pay.success event, which the caller writes to the outbox.
//
// Two statements: one locks the pay order, one debits, marks the pay order
// paid and books the ledger row.
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
	now = now.UTC()
	if err := order.CheckPayer(p.UserID, now); err != nil {
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
	order = order.PaidAt(now)
	ev, err := s.paySuccessEvent(order, p.CorrelationID)
	return order, ev, err
}

// paySuccessEvent announces that order was paid.
func (s *Store) paySuccessEvent(order pay.PayOrder, correlationID string) (outbox.Event, error) {
	return outbox.NewEvent(s.cfg.Exchange, s.cfg.PaySuccessKey, pay.PaySuccessType, pay.PaySuccess{
		BizOrderNo: order.BizOrderNo,
		PayOrderID: order.ID,
		UserID:     order.BizUserID,
		Amount:     order.Amount,
		PaidAt:     *order.PaySuccessTime,
	}, correlationID)
}

// claimIdempotencyKey makes this transaction the only one working under the
// payment's idempotency key, and returns the earlier result if the key was
// already used for this same request. The lock is transaction-scoped, so a
// crash never leaves a key stuck "in flight".
func (s *Store) claimIdempotencyKey(ctx context.Context, tx pgx.Tx, p pay.Payment) (pay.PaymentResult, bool, error) {
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, idempotencyLock(p)).Scan(&locked); err != nil {
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

// idempotencyLock is the advisory lock of p's Idempotency-Key: whoever
// holds it is the only one working under the key.
func idempotencyLock(p pay.Payment) int64 {
	return lockKey("idempotency_key", fmt.Sprint(p.UserID), p.IdempotencyKey)
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
