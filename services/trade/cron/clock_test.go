package cron

import (
	"context"
	"testing"
	"time"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// skewed is a trade whose own clock is off the database's by skew, over
// the World's databases and pay: its service runs on that clock (the store
// takes none: every time it writes is the database's).
func skewed(t *testing.T, w *tradetest.World, skew time.Duration, cfg Config) (*postgres.Store, *trade.Service, *Fallback) {
	t.Helper()
	clock := func() time.Time { return time.Now().Add(skew) }
	orders := postgres.New(w.TradePool)
	svc := trade.NewService(orders, w.PayClient, nil, clock)
	f, err := New(svc, orders, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return orders, svc, f
}

// A trade whose clock runs 40 minutes behind the database's, with orders
// timing out after 30 minutes, cancels no order made a moment ago: an
// order's age is read on the database's clock from a creation time the
// database wrote.
func TestAFreshOrderIsNotCancelledByATradeWhoseClockRunsBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	orders, svc, f := skewed(t, w, -40*time.Minute, Config{Spec: "@every 1h", Grace: 30 * time.Second, Timeout: 30 * time.Minute})
	o := tradetest.Ordered(t, orders, 7, 1_000)
	if _, _, err := svc.PayOrder(ctx, 7, o.ID, trade.PayOrderRequest{PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance}); err != nil {
		t.Fatal(err)
	}
	r, err := f.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := tradetest.Reload(t, orders, o.ID); r.Closed != 0 || got.Status != trade.Unpaid {
		t.Fatalf("tick: %+v; order %d has status %d, want it unpaid and nothing closed", r, o.ID, got.Status)
	}
	var age time.Duration
	if err := w.TradePool.QueryRow(ctx, `SELECT now() - create_time FROM orders WHERE id = $1`, o.ID).Scan(&age); err != nil {
		t.Fatal(err)
	}
	if age < 0 || age > time.Minute {
		t.Errorf("the order's age by the database's clock is %v, want the moment since it was made", age)
	}
}

// A trade whose clock runs 40 minutes ahead of the database's finds, at
// its next tick, a payment whose pay.success was lost and a refund whose
// refund.requested was lost: their times are the database's, not 40
// minutes in its future.
func TestATradeWhoseClockRunsAheadSettlesLostPaymentsAndRefundsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	orders, svc, f := skewed(t, w, 40*time.Minute, Config{Spec: "@every 1h", Grace: 0, Timeout: 30 * time.Minute})
	pending := func() (trade.Order, trade.PayOrder) {
		o := tradetest.Ordered(t, orders, 7, 1_000)
		po, _, err := svc.PayOrder(ctx, 7, o.ID, trade.PayOrderRequest{PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Pay.Pay(ctx, pay.Payment{PayOrderID: po.ID, UserID: 7, Password: "123"}); err != nil {
			t.Fatal(err)
		}
		return o, po
	}
	refunded, po := pending()
	if _, err := orders.ApplyPayment(ctx, "", trade.Payment{BizOrderNo: refunded.ID, PayOrderID: po.ID, UserID: 7, Amount: 1_000, PaidAt: time.Now().UTC()}, trade.FromPoll); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.RequestRefund(ctx, 7, refunded.ID, trade.RefundRequest{}, ""); err != nil {
		t.Fatal(err)
	}
	lost, _ := pending()

	r, err := f.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Paid != 1 || r.Refunded != 1 {
		t.Errorf("tick: %+v; want the lost payment applied and the lost refund settled", r)
	}
	if got := tradetest.Reload(t, orders, lost.ID); got.Status != trade.Paid {
		t.Errorf("order %d with a lost payment: status %d, want paid", lost.ID, got.Status)
	}
	if got := tradetest.Reload(t, orders, refunded.ID); got.Status != trade.Refunded {
		t.Errorf("order %d with a lost refund: status %d, want refunded", refunded.ID, got.Status)
	}
}
