package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/services/pay"
)

// CreateAccount opens a wallet; an opening balance is booked as funding.
func (s *Store) CreateAccount(ctx context.Context, req pay.NewAccount) (pay.Account, error) {
	if err := req.Validate(); err != nil {
		return pay.Account{}, err
	}
	password, err := s.cfg.Peppers.Hash(req.UserID, req.Password)
	if err != nil {
		return pay.Account{}, fmt.Errorf("hash payment password of account %d: %w", req.UserID, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO accounts (user_id, balance, password_hash, password_key_id) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id) DO NOTHING`, req.UserID, req.Balance, password.Hash, password.KeyID)
		if err != nil {
			return fmt.Errorf("insert account %d: %w", req.UserID, err)
		}
		if tag.RowsAffected() == 0 {
			return pay.ErrAccountExists
		}
		if req.Balance == 0 {
			return nil
		}
		return insertLedger(ctx, tx, req.UserID, "funding", req.Balance, req.Balance, nil)
	})
	if err != nil {
		return pay.Account{}, err
	}
	return pay.Account{UserID: req.UserID, Balance: req.Balance}, nil
}

// Deposit adds funds to a wallet once per idempotency key: the deposit is
// recorded under its key in the credit's own transaction, and a retry under
// that key gets the first result back — the same request replayed, another
// one refused. The key is held for the transaction, so a concurrent retry
// is refused as in flight rather than credited.
func (s *Store) Deposit(ctx context.Context, d pay.Deposit) (pay.DepositResult, error) {
	if err := d.Validate(); err != nil {
		return pay.DepositResult{}, err
	}
	var result pay.DepositResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`,
			lockKey("deposit_key", d.IdempotencyKey)).Scan(&locked); err != nil {
			return fmt.Errorf("lock deposit key: %w", err)
		}
		if !locked {
			return pay.ErrIdempotencyInFlight
		}
		var first pay.Deposit
		var balance int64
		// FOR UPDATE: replayed only once the standby has it, as a payment is (claimIdempotencyKey).
		err := tx.QueryRow(ctx, `SELECT user_id, amount, balance_after FROM deposits WHERE idempotency_key = $1 FOR UPDATE`,
			d.IdempotencyKey).Scan(&first.UserID, &first.Amount, &balance)
		switch {
		case err == nil:
			if first.UserID != d.UserID || first.Amount != d.Amount {
				return pay.ErrIdempotencyKeyReused
			}
			result = pay.DepositResult{Account: pay.Account{UserID: d.UserID, Balance: balance}, Replayed: true}
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read deposit key: %w", err)
		}
		err = tx.QueryRow(ctx, `
			UPDATE accounts SET balance = balance + $2, updated_at = now()
			WHERE user_id = $1 AND balance <= $3::bigint - $2::bigint
			RETURNING balance`, d.UserID, d.Amount, int64(math.MaxInt64)).Scan(&balance)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := s.account(ctx, tx, d.UserID); err != nil {
				return err
			}
			return pay.ErrBalanceOverflow
		}
		if err != nil {
			return fmt.Errorf("credit account %d: %w", d.UserID, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO deposits (idempotency_key, user_id, amount, balance_after) VALUES ($1, $2, $3, $4)`,
			d.IdempotencyKey, d.UserID, d.Amount, balance); err != nil {
			return fmt.Errorf("record deposit under its key: %w", err)
		}
		result = pay.DepositResult{Account: pay.Account{UserID: d.UserID, Balance: balance}}
		return insertLedger(ctx, tx, d.UserID, "funding", d.Amount, balance, nil)
	})
	if err != nil {
		return pay.DepositResult{}, err
	}
	return result, nil
}

// Account returns a wallet.
func (s *Store) Account(ctx context.Context, userID int64) (pay.Account, error) {
	return s.account(ctx, s.pool, userID)
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (s *Store) account(ctx context.Context, q querier, userID int64) (pay.Account, error) {
	a := pay.Account{UserID: userID}
	err := q.QueryRow(ctx, `SELECT balance FROM accounts WHERE user_id = $1`, userID).Scan(&a.Balance)
	if errors.Is(err, pgx.ErrNoRows) {
		return pay.Account{}, pay.ErrAccountNotFound
	}
	if err != nil {
		return pay.Account{}, fmt.Errorf("read account %d: %w", userID, err)
	}
	return a, nil
}

func insertLedger(ctx context.Context, tx pgx.Tx, userID int64, kind string, amount, balanceAfter int64, payOrderID *int64) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id)
		VALUES ($1, $2, $3, $4, $5)`, userID, kind, amount, balanceAfter, payOrderID)
	if err != nil {
		return fmt.Errorf("book %s of %d for account %d: %w", kind, amount, userID, err)
	}
	return nil
}
