// Package paytest builds the pay service's pieces against the real
// PostgreSQL for tests, and checks the money invariants of docs/design.md.
package paytest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paytrade/paytrade/internal/reconcile"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// NewPool returns a pool on a fresh, migrated pay database of this test.
func NewPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return testenv.NewPool(tb, migrations.FS, migrations.Pay)
}

// StoreConfig is the store configuration tests use: the tests' pepper,
// test exchange names.
func StoreConfig(exchange string) postgres.Config {
	return postgres.Config{Exchange: exchange, PaySuccessKey: "pay.success", Peppers: Peppers()}
}

// Peppers are the payment-password peppers of the tests (testenv.PayPeppers).
func Peppers() pay.Peppers {
	p, err := pay.ParsePeppers(testenv.PayPeppers)
	if err != nil {
		panic(err) // a constant: every test would fail
	}
	return p
}

// Funded opens a wallet for userID with balance and password "123".
func Funded(tb testing.TB, svc pay.Service, userID, balance int64) pay.Account {
	tb.Helper()
	a, err := svc.CreateAccount(context.Background(), pay.NewAccount{UserID: userID, Password: "123", Balance: balance})
	if err != nil {
		tb.Fatalf("create account %d: %v", userID, err)
	}
	return a
}

// Applied applies for a pay order of bizOrderNo by userID.
func Applied(tb testing.TB, svc pay.Service, userID, bizOrderNo, amount int64) pay.PayOrder {
	tb.Helper()
	o, _, err := svc.ApplyPayOrder(context.Background(), pay.Apply{
		BizOrderNo: bizOrderNo, BizUserID: userID, Amount: amount, PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance,
	})
	if err != nil {
		tb.Fatalf("apply pay order for business order %d: %v", bizOrderNo, err)
	}
	return o
}

// Snapshot is the money state of a pay database.
type Snapshot struct {
	Balances      map[int64]int64
	LedgerEntries int
	Debits        int
	PaidOrders    int
	PaidAmount    int64 // of pay orders paid and not refunded
	Refunds       int   // refund ledger rows
	Refunded      int64 // credited back
	Funding       int64
	OutboxEvents  int
}

// Snap reads the money state of the database.
func Snap(tb testing.TB, pool *pgxpool.Pool) Snapshot {
	tb.Helper()
	ctx := context.Background()
	s := Snapshot{Balances: map[int64]int64{}}
	rows, err := pool.Query(ctx, `SELECT user_id, balance FROM accounts`)
	if err != nil {
		tb.Fatalf("read balances: %v", err)
	}
	for rows.Next() {
		var id, bal int64
		if err := rows.Scan(&id, &bal); err != nil {
			tb.Fatalf("scan balance: %v", err)
		}
		s.Balances[id] = bal
	}
	rows.Close()
	err = pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM ledger_entries),
		(SELECT count(*) FROM ledger_entries WHERE kind = 'debit'),
		(SELECT count(*) FROM pay_orders WHERE status = 3),
		(SELECT coalesce(sum(amount), 0) FROM pay_orders WHERE status = 3),
		(SELECT count(*) FROM ledger_entries WHERE kind = 'refund'),
		(SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = 'refund'),
		(SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE kind = 'funding'),
		(SELECT count(*) FROM outbox_events)`).
		Scan(&s.LedgerEntries, &s.Debits, &s.PaidOrders, &s.PaidAmount, &s.Refunds, &s.Refunded, &s.Funding, &s.OutboxEvents)
	if err != nil {
		tb.Fatalf("read totals: %v", err)
	}
	return s
}

// CheckInvariants fails the test if money was created, lost or left
// unexplained, by the rules reconcile checks (reconcile.PayRules): every
// balance is the sum of its ledger and none is negative, each paid pay
// order has exactly one debit of its amount, its credits add up to its
// refunded amount and never above what was paid, and funding = balances +
// paid − credited.
func CheckInvariants(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	broken, err := reconcile.CheckPay(context.Background(), pool)
	if err != nil {
		tb.Fatalf("check invariants: %v", err)
	}
	for rule, n := range broken {
		tb.Errorf("invariant broken: %s (%d)", rule, n)
	}
}

// NewCountingPool returns a pool of one connection to a fresh pay
// database and the proxy that counts its round trips.
func NewCountingPool(tb testing.TB) (*pgxpool.Pool, *testenv.Proxy) {
	tb.Helper()
	return testenv.NewCountingPool(tb, migrations.FS, migrations.Pay)
}
