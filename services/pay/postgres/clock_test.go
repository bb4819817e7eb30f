package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// A pay whose clock runs 40 minutes behind or ahead of the database's
// stamps its pay orders, payments and refunds with the database's time,
// since that is what they are compared with (a pay order's expiry at
// payment, reconcile's window for payments and refunds in flight); and it
// purges an idempotency key by the database's clock, which wrote its
// creation time.
func TestAPayWhoseClockIsOffStampsPaymentsAndRefundsWithTheDatabasesTime(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{-40 * time.Minute, 40 * time.Minute} {
		t.Run(skew.String(), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := paytest.NewPool(t)
			t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
			cfg := paytest.StoreConfig("pay.topic")
			cfg.Now = func() time.Time { return time.Now().Add(skew) }
			store := postgres.New(pool, cfg)
			po := paidOrder(t, store)
			refund(t, store, "message-1", refundOf(po))

			var times map[string]float64
			if err := pool.QueryRow(ctx, `
				SELECT jsonb_build_object(
					'create_time', extract(epoch FROM now() - create_time),
					'pay_over_time', extract(epoch FROM now() + $2::interval - pay_over_time),
					'pay_success_time', extract(epoch FROM now() - pay_success_time),
					'refund_time', extract(epoch FROM now() - refund_time),
					'decided_at', (SELECT extract(epoch FROM now() - decided_at) FROM refunds WHERE pay_order_id = $1))
				FROM pay_orders WHERE id = $1`, po.ID, pay.PayWindow).Scan(&times); err != nil {
				t.Fatal(err)
			}
			for column, seconds := range times {
				if ago := time.Duration(seconds * float64(time.Second)); ago < 0 || ago > time.Minute {
					t.Errorf("%s is %v before the database's now, want the moment since it was written (negative: after)", column, ago)
				}
			}

			if _, err := store.Pay(ctx, keyed(paytest.Applied(t, store, 1, 8, 1_000), "kept", "fp")); err != nil {
				t.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '23 hours 30 minutes'`); err != nil {
				t.Fatal(err)
			}
			if n, err := store.PurgeIdempotencyKeys(ctx); err != nil || n != 0 {
				t.Errorf("purged %d keys (err %v), want none: the key is 23h30m old by the database's clock", n, err)
			}
		})
	}
}
