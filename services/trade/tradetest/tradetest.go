// Package tradetest builds the trade service's pieces against the real
// PostgreSQL for tests.
package tradetest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/httpapi"
	"github.com/paytrade/paytrade/services/trade/postgres"
)

// NewPool returns a pool on a fresh, migrated trade database of this test.
func NewPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return testenv.NewPool(tb, migrations.FS, migrations.Trade)
}

// Ordered creates an unpaid order of userID for totalFee.
func Ordered(tb testing.TB, orders trade.Orders, userID, totalFee int64) trade.Order {
	tb.Helper()
	o, err := orders.CreateOrder(context.Background(), userID, trade.NewOrder{TotalFee: totalFee, PaymentType: trade.PaymentBalance})
	if err != nil {
		tb.Fatalf("create order of user %d: %v", userID, err)
	}
	return o
}

// PaymentOf is the payment that exactly pays o.
func PaymentOf(o trade.Order) trade.Payment {
	return trade.Payment{BizOrderNo: o.ID, PayOrderID: 1000 + o.ID, UserID: o.UserID, Amount: o.TotalFee, PaidAt: time.Now().UTC().Truncate(time.Microsecond)}
}

// Reload returns the order as stored now.
func Reload(tb testing.TB, orders trade.Orders, id int64) trade.Order {
	tb.Helper()
	o, err := orders.Order(context.Background(), id)
	if err != nil {
		tb.Fatalf("read order %d: %v", id, err)
	}
	return o
}

// Discrepancies returns the recorded discrepancies.
func Discrepancies(tb testing.TB, store *postgres.Store) []postgres.DiscrepancyRecord {
	tb.Helper()
	d, err := store.Discrepancies(context.Background())
	if err != nil {
		tb.Fatalf("list discrepancies: %v", err)
	}
	return d
}

// NewCountingPool returns a pool of one connection to a fresh trade
// database and the proxy that counts its round trips.
func NewCountingPool(tb testing.TB) (*pgxpool.Pool, *testenv.Proxy) {
	tb.Helper()
	return testenv.NewCountingPool(tb, migrations.FS, migrations.Trade)
}

// Server is trade's HTTP API over a database of its own, with no pay
// behind it: what a test of pay alone runs so that pay can ask which
// orders and refunds trade issued. Orders makes them.
type Server struct {
	URL    string
	Orders *postgres.Store
}

// NewServer starts a Server for this test, believing authtest.Shared's keys.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	orders := postgres.New(NewPool(tb))
	srv := httptest.NewServer(httpapi.NewHandler(orders, trade.NewService(orders, nil, nil, nil),
		httpapi.Config{Auth: authtest.Shared(tb).Authenticator(auth.AudienceTrade)}))
	tb.Cleanup(srv.Close)
	return &Server{URL: srv.URL, Orders: orders}
}
