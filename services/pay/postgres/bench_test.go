package postgres_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// BenchmarkPayTransaction measures the whole payment transaction — lock,
// bcrypt at minimum cost, debit, 1→3, ledger row, outbox row — against the
// real PostgreSQL, one wallet per parallel worker so wallets do not contend.
func BenchmarkPayTransaction(b *testing.B) {
	ctx := context.Background()
	pool := paytest.NewPool(b)
	store := postgres.New(pool, paytest.StoreConfig("pay.topic"))
	const wallets = 64
	for u := int64(1); u <= wallets; u++ {
		paytest.Funded(b, store, u, 1<<40)
	}
	orders := make([]pay.PayOrder, b.N)
	for i := range orders {
		orders[i] = paytest.Applied(b, store, int64(i%wallets)+1, int64(i)+1, 100)
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			o := orders[next.Add(1)-1]
			if _, err := store.Pay(ctx, payment(o, "123")); err != nil {
				b.Error(err)
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pays/s")
	paytest.CheckInvariants(b, pool)
}
