package postgres_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// TestApplyingAPaymentTakesOneRoundTrip counts, on the wire, what trade's
// consumer waits for before it acks a pay.success: one round trip for the
// inbox row and the conditional UPDATE, and one for a copy already applied.
// The first payment warms the connection's statement cache up, as a busy
// pool's connections are.
func TestApplyingAPaymentTakesOneRoundTrip(t *testing.T) {
	t.Parallel()
	pool, proxy := tradetest.NewCountingPool(t)
	store := postgres.New(pool)
	warm := tradetest.PaymentOf(tradetest.Ordered(t, store, 7, 10_000))
	warmID := uuid.NewString()
	apply(t, store, warmID, warm)
	apply(t, store, warmID, warm)

	p := tradetest.PaymentOf(tradetest.Ordered(t, store, 7, 10_000))
	id := uuid.NewString()
	for _, tc := range []struct {
		name string
		want trade.Outcome
	}{
		{"first delivery", trade.Applied},
		{"redelivered copy", trade.Duplicate},
	} {
		var got trade.Outcome
		n := proxy.CountRoundTrips(func() { got = apply(t, store, id, p) })
		if got != tc.want || n != 1 {
			t.Errorf("%s: outcome %v in %d round trips, want %v in 1", tc.name, got, n, tc.want)
		}
	}
	if o := tradetest.Reload(t, store, p.BizOrderNo); o.Status != trade.Paid {
		t.Fatalf("order %d status %v, want paid", o.ID, o.Status)
	}
}
