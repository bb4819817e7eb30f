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
	hash, err := pay.HashPassword(req.Password, s.cfg.BcryptCost)
	if err != nil {
		return pay.Account{}, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO accounts (user_id, balance, password_hash) VALUES ($1, $2, $3)
			ON CONFLICT (user_id) DO NOTHING`, req.UserID, req.Balance, hash)
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

// Deposit adds funds to a wallet.
func (s *Store) Deposit(ctx context.Context, userID, amount int64) (pay.Account, error) {
	if err := pay.ValidateDeposit(amount); err != nil {
		return pay.Account{}, err
	}
	var balance int64
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			UPDATE accounts SET balance = balance + $2, updated_at = now()
			WHERE user_id = $1 AND balance <= $3::bigint - $2::bigint
			RETURNING balance`, userID, amount, int64(math.MaxInt64)).Scan(&balance)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := s.account(ctx, tx, userID); err != nil {
				return err
			}
			return pay.ErrBalanceOverflow
		}
		if err != nil {
			return fmt.Errorf("credit account %d: %w", userID, err)
		}
		return insertLedger(ctx, tx, userID, "funding", amount, balance, nil)
	})
	if err != nil {
		return pay.Account{}, err
	}
	return pay.Account{UserID: userID, Balance: balance}, nil
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
