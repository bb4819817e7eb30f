package tradetest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay"
	payhttp "github.com/paytrade/paytrade/services/pay/httpapi"
	"github.com/paytrade/paytrade/services/pay/paytest"
	paypg "github.com/paytrade/paytrade/services/pay/postgres"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/payclient"
	"github.com/paytrade/paytrade/services/trade/postgres"
)

// World is a trade service talking over HTTP to a real pay service, each on
// a database of its own; no broker plays a part, as if every pay.success
// event were lost. Pay's money invariants are checked when the test ends.
type World struct {
	Pay       *paypg.Store
	PayPool   *pgxpool.Pool
	PayURL    string
	Orders    *postgres.Store
	TradePool *pgxpool.Pool
	PayClient *payclient.Client
	Service   *trade.Service
	Keys      *authtest.Keys // signs the World's tokens: authtest.Shared
}

// NewWorld starts a World for this test.
func NewWorld(tb testing.TB) *World {
	tb.Helper()
	payPool := paytest.NewPool(tb)
	tb.Cleanup(func() { paytest.CheckInvariants(tb, payPool) })
	payStore := paypg.New(payPool, paytest.StoreConfig("pay.topic"))
	keys := authtest.Shared(tb)
	srv := httptest.NewServer(payhttp.NewHandler(payStore, payhttp.Config{Auth: keys.Authenticator(auth.AudiencePay)}))
	tb.Cleanup(srv.Close)
	client, err := payclient.New(payclient.Config{BaseURL: srv.URL, Signer: keys.Signer(auth.IssuerTrade)})
	if err != nil {
		tb.Fatal(err)
	}
	tradePool := NewPool(tb)
	orders := postgres.New(tradePool)
	return &World{Pay: payStore, PayPool: payPool, PayURL: srv.URL, Orders: orders, TradePool: tradePool, PayClient: client, Service: trade.NewService(orders, client, nil, nil), Keys: keys}
}

// Order creates an order of userID and gets its pay order, as a client
// would: trade applies at pay, over HTTP.
func (w *World) Order(tb testing.TB, userID, fee int64) (trade.Order, pay.PayOrder) {
	tb.Helper()
	o := Ordered(tb, w.Orders, userID, fee)
	po, _, err := w.Service.PayOrder(context.Background(), userID, o.ID, trade.PayOrderRequest{
		PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance,
	})
	if err != nil {
		tb.Fatalf("pay order of order %d: %v", o.ID, err)
	}
	paid, err := w.Pay.PayOrder(context.Background(), po.ID)
	if err != nil {
		tb.Fatal(err)
	}
	return o, paid
}

// PayAtPay pays the pay order with the password paytest.Funded gives.
func (w *World) PayAtPay(tb testing.TB, po pay.PayOrder) error {
	tb.Helper()
	_, err := w.Pay.Pay(context.Background(), pay.Payment{PayOrderID: po.ID, UserID: po.BizUserID, Password: "123"})
	return err
}

// DeliverRefunds hands every refund.requested waiting in trade's outbox to
// pay, as the broker would, and empties the outbox: pay decides each one,
// and whatever it announces is left unsent, as if refund.success were lost.
func (w *World) DeliverRefunds(tb testing.TB) int {
	tb.Helper()
	ctx := context.Background()
	rows, err := w.TradePool.Query(ctx, `DELETE FROM outbox_events WHERE message_type = $1 RETURNING id::text, payload`, trade.RefundRequestedType)
	if err != nil {
		tb.Fatalf("take refund requests from trade's outbox: %v", err)
	}
	type message struct {
		id   string
		body []byte
	}
	var msgs []message
	for rows.Next() {
		var m message
		if err := rows.Scan(&m.id, &m.body); err != nil {
			tb.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	for _, m := range msgs {
		req, err := pay.DecodeRefundRequested(m.body)
		if err != nil {
			tb.Fatalf("refund.requested %s: %v", m.id, err)
		}
		if _, err := w.Pay.Refund(ctx, m.id, req, ""); err != nil {
			tb.Fatalf("pay refund %s: %v", req.RefundID, err)
		}
	}
	return len(msgs)
}

// HoldLocked makes every attempt to change the orders fail, as rows that
// stay locked do: another session holds them until the test ends, and the
// trade database's sessions give up on a lock after 50 ms.
func (w *World) HoldLocked(tb testing.TB, ids ...int64) {
	tb.Helper()
	testenv.SetDatabase(tb, w.TradePool.Config().ConnString(), "lock_timeout", "50ms")
	w.TradePool.Reset()
	ctx := context.Background()
	tx, err := w.TradePool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `SELECT id FROM orders WHERE id = ANY($1) FOR UPDATE`, ids); err != nil {
		tb.Fatal(err)
	}
}
