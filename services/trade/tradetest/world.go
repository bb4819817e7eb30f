package tradetest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/services/pay"
	payhttp "github.com/paytrade/paytrade/services/pay/httpapi"
	"github.com/paytrade/paytrade/services/pay/paytest"
	paypg "github.com/paytrade/paytrade/services/pay/postgres"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/payclient"
	"github.com/paytrade/paytrade/services/trade/postgres"
)

// Secret signs the tokens of a World.
const Secret = "tradetest-secret"

// World is a trade service talking over HTTP to a real pay service, each on
// a database of its own; no broker plays a part, as if every pay.success
// event were lost. Pay's money invariants are checked when the test ends.
type World struct {
	Pay     *paypg.Store
	PayURL  string
	Orders  *postgres.Store
	Service *trade.Service
}

// NewWorld starts a World for this test.
func NewWorld(tb testing.TB) *World {
	tb.Helper()
	payPool := paytest.NewPool(tb)
	tb.Cleanup(func() { paytest.CheckInvariants(tb, payPool) })
	payStore := paypg.New(payPool, paytest.StoreConfig("pay.topic"))
	srv := httptest.NewServer(payhttp.NewHandler(payStore, payhttp.Config{Auth: auth.NewAuthenticator([]byte(Secret))}))
	tb.Cleanup(srv.Close)
	client, err := payclient.New(payclient.Config{BaseURL: srv.URL, Secret: []byte(Secret)})
	if err != nil {
		tb.Fatal(err)
	}
	orders := postgres.New(NewPool(tb), nil)
	return &World{Pay: payStore, PayURL: srv.URL, Orders: orders, Service: trade.NewService(orders, client, nil, nil)}
}

// Order creates an order of userID and its pay order at pay, as a client would.
func (w *World) Order(tb testing.TB, userID, fee int64) (trade.Order, pay.PayOrder) {
	tb.Helper()
	o := Ordered(tb, w.Orders, userID, fee)
	return o, paytest.Applied(tb, w.Pay, userID, o.ID, fee)
}

// PayAtPay pays the pay order with the password paytest.Funded gives.
func (w *World) PayAtPay(tb testing.TB, po pay.PayOrder) error {
	tb.Helper()
	_, err := w.Pay.Pay(context.Background(), pay.Payment{PayOrderID: po.ID, UserID: po.BizUserID, Password: "123"})
	return err
}
