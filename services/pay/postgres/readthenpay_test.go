package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// A payment is decided on what its first round trip read and carried out
// by one statement in its second. Whatever changes in between — the
// balance spent by another payment, the pay order closed or expired, the
// Idempotency-Key used by another request — the statement's conditions
// hold the decision: the payment is answered as of now, never overdraws,
// never pays a closed order, never spends a key twice, and the right
// password is recorded all the same, leaving no check in progress.
func TestAPaymentIsAnsweredAsOfNowWhatChangedSinceItWasRead(t *testing.T) {
	t.Parallel()
	// Each change is made by the store itself, on a pool of its own: by
	// the time it is made, the payment has read and checked its password.
	type orders struct{ this, other pay.PayOrder }
	for _, tc := range []struct {
		name   string
		change func(ctx context.Context, store *postgres.Store, admin *pgxpool.Pool, o orders) error
		key    string
		want   error
		debits int // this payment's and the change's
	}{
		{"the balance spent by another payment", func(ctx context.Context, store *postgres.Store, _ *pgxpool.Pool, o orders) error {
			_, err := store.Pay(ctx, payment(o.other, "123"))
			return err
		}, "", pay.ErrInsufficientFunds, 1},
		{"the pay order closed", func(ctx context.Context, store *postgres.Store, _ *pgxpool.Pool, o orders) error {
			_, err := store.ClosePayOrder(ctx, o.this.BizOrderNo)
			return err
		}, "", pay.ErrPayOrderClosed, 0},
		{"the pay order expired", func(ctx context.Context, _ *postgres.Store, admin *pgxpool.Pool, o orders) error {
			_, err := admin.Exec(ctx, `UPDATE pay_orders SET pay_over_time = now() - interval '1 second' WHERE id = $1`, o.this.ID)
			return err
		}, "", pay.ErrPayOrderExpired, 0},
		{"its key used by the same payment, retried", func(ctx context.Context, store *postgres.Store, _ *pgxpool.Pool, o orders) error {
			_, err := store.Pay(ctx, keyed(o.this, "k1", "fp"))
			return err
		}, "k1", nil, 1},
		{"its key used by another payment", func(ctx context.Context, store *postgres.Store, _ *pgxpool.Pool, o orders) error {
			_, err := store.Pay(ctx, keyed(o.other, "k1", "another"))
			return err
		}, "k1", pay.ErrIdempotencyKeyReused, 1},
		{"nothing", func(context.Context, *postgres.Store, *pgxpool.Pool, orders) error { return nil }, "k1", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := testenv.NewDatabase(t, migrations.FS, migrations.Pay)
			admin, err := database.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(admin.Close)
			adminStore := postgres.New(admin, paytest.StoreConfig("pay.topic"))
			var o orders
			statement := &testenv.OnQuery{Text: "UPDATE pay_orders SET status = $5, pay_success_time", Fn: func() {
				if err := tc.change(ctx, adminStore, admin, o); err != nil {
					t.Errorf("change: %v", err)
				}
			}}
			pool, err := database.Open(ctx, url, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = statement })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pool.Close)
			store := postgres.New(pool, paytest.StoreConfig("pay.topic"))
			paytest.Funded(t, store, 1, 10_000)
			o = orders{paytest.Applied(t, store, 1, 7, 3_000), paytest.Applied(t, store, 1, 8, 8_000)}

			statement.Armed.Store(true)
			p := keyed(o.this, tc.key, "fp")
			_, err = store.Pay(ctx, p)
			if statement.Armed.Load() {
				t.Fatal("the payment never reached its statement: the test changes nothing")
			}
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("payment: %v, want %v", err, tc.want)
			}
			if snap := paytest.Snap(t, admin); snap.Debits != tc.debits {
				t.Errorf("%d debits, want %d", snap.Debits, tc.debits)
			}
			if n := checksInProgress(t, admin); n != 0 {
				t.Errorf("%d password checks left in progress, want the right password recorded", n)
			}
			paytest.CheckInvariants(t, admin)
		})
	}
}
