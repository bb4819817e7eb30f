package migrations_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// withData makes both databases hold one of everything the services write:
// a deposit, a wrong password, an idempotent payment, paid, refunded,
// cancelled and unpaid orders, a refund pay has not heard of yet, a
// discrepancy, inboxes and outboxes.
func withData(t *testing.T) *tradetest.World {
	t.Helper()
	ctx := context.Background()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	if _, err := w.Pay.Deposit(ctx, pay.Deposit{UserID: 7, Amount: 500, IdempotencyKey: "deposit-1"}); err != nil {
		t.Fatal(err)
	}
	paid := func(fee int64) trade.Order {
		t.Helper()
		o, po := w.Order(t, 7, fee)
		if err := w.PayAtPay(t, po); err != nil {
			t.Fatal(err)
		}
		return o
	}
	o, po := w.Order(t, 7, 1_000)
	if _, err := w.Pay.Pay(ctx, pay.Payment{PayOrderID: po.ID, UserID: 7, Password: "wrong"}); !errors.Is(err, pay.ErrWrongPassword) {
		t.Fatalf("pay with a wrong password: %v", err)
	}
	if _, err := w.Pay.Pay(ctx, pay.Payment{PayOrderID: po.ID, UserID: 7, Password: "123", IdempotencyKey: "pay-1", Fingerprint: []byte("request")}); err != nil {
		t.Fatal(err)
	}
	refunded, pending := paid(2_000), paid(3_000)
	cancelled, _ := w.Order(t, 7, 4_000)
	unpaid, _ := w.Order(t, 7, 5_000)
	if r, err := w.Service.CheckUnpaid(ctx, 0, 100); err != nil || r.Paid != 3 {
		t.Fatalf("fallback: %+v, %v; want orders %d, %d and %d paid", r, err, o.ID, refunded.ID, pending.ID)
	}
	if _, err := w.Service.Cancel(ctx, 7, cancelled.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Orders.RequestRefund(ctx, 7, refunded.ID, trade.RefundRequest{}, ""); err != nil {
		t.Fatal(err)
	}
	if n := w.DeliverRefunds(t); n != 1 {
		t.Fatalf("%d refunds delivered to pay, want 1", n)
	}
	if r, err := w.Service.CheckRefunds(ctx, 0, 100); err != nil || r.Refunded != 1 {
		t.Fatalf("refund fallback: %+v, %v; want order %d refunded", r, err, refunded.ID)
	}
	if _, err := w.Orders.RequestRefund(ctx, 7, pending.ID, trade.RefundRequest{}, ""); err != nil {
		t.Fatal(err)
	}
	mismatch := trade.Payment{BizOrderNo: unpaid.ID, PayOrderID: 1_000_000, UserID: 7, Amount: 1, PaidAt: time.Now().UTC()}
	if got, err := w.Orders.ApplyPayment(ctx, "message-1", mismatch, trade.FromEvent); err != nil || got != trade.Discrepancy {
		t.Fatalf("a payment of the wrong amount: %v, %v; want a discrepancy", got, err)
	}
	if got := tradetest.Reload(t, w.Orders, refunded.ID); got.Status != trade.Refunded {
		t.Fatalf("order %d has status %d, want refunded", refunded.ID, got.Status)
	}
	return w
}

// stepper migrates the database of pool one step at a time.
func stepper(t *testing.T, pool *pgxpool.Pool, dir string) *migrate.Migrate {
	t.Helper()
	src, err := iofs.New(migrations.FS, dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := database.ParseURL(pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = db.Close() })
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := migrate.NewWithInstance("iofs", src, cfg.Database, driver)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = m.Close() })
	return m
}

// Every down migration runs on a database holding what the services
// write (a refunded pay order, a refunded order…), and so does its up
// migration again on what the down one left; then the next one down, all
// the way to an empty database, which today's migrations then rebuild.
func TestEveryDownMigrationRunsOnADatabaseWithData(t *testing.T) {
	t.Parallel()
	w := withData(t)
	for _, db := range []struct {
		dir  string
		pool *pgxpool.Pool
	}{{migrations.Pay, w.PayPool}, {migrations.Trade, w.TradePool}} {
		m := stepper(t, db.pool, db.dir)
		for {
			v, _, err := m.Version()
			if errors.Is(err, migrate.ErrNilVersion) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Steps(-1); err != nil {
				t.Fatalf("%s: down from version %d: %v", db.dir, v, err)
			}
			if err := m.Steps(1); err != nil {
				t.Fatalf("%s: up to version %d again, after its down: %v", db.dir, v, err)
			}
			if err := m.Steps(-1); err != nil {
				t.Fatalf("%s: down from version %d, a second time: %v", db.dir, v, err)
			}
		}
		if err := m.Up(); err != nil {
			t.Fatalf("%s: up from nothing: %v", db.dir, err)
		}
		// The pool's connections remember the tables that were dropped.
		db.pool.Reset()
	}
}
