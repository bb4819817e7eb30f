package trade_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/payclient"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

func newWorld(t *testing.T) *tradetest.World { return tradetest.NewWorld(t) }

func TestCancelClosesThePayOrderFirstSoALaterPaymentIsRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	paytest.Funded(t, w.Pay, 7, 100_000)
	o, po := w.Order(t, 7, 10_000)

	got, err := w.Service.Cancel(ctx, 7, o.ID)
	if err != nil || got.Status != trade.Cancelled || got.CloseTime == nil {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	if err := w.PayAtPay(t, po); !errors.Is(err, pay.ErrPayOrderClosed) {
		t.Fatalf("paying a cancelled order: %v, want pay_order_closed", err)
	}
	// Cancelling again is answered with the cancelled order.
	if again, err := w.Service.Cancel(ctx, 7, o.ID); err != nil || again.Status != trade.Cancelled {
		t.Fatalf("cancel again: %+v, %v", again, err)
	}

	// An order that never got a pay order cannot get one once cancelled.
	bare := tradetest.Ordered(t, w.Orders, 7, 500)
	if _, err := w.Service.Cancel(ctx, 7, bare.ID); err != nil {
		t.Fatalf("cancel order without pay order: %v", err)
	}
	_, _, err = w.Pay.ApplyPayOrder(ctx, pay.Apply{BizOrderNo: bare.ID, BizUserID: 7, Amount: 500, PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance})
	if !errors.Is(err, pay.ErrPayOrderClosed) {
		t.Fatalf("apply for a cancelled order: %v, want pay_order_closed", err)
	}
}

func TestCancelOfAnOrderPaidAtPayMarksItPaidInstead(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	o, po := w.Order(t, 7, 10_000)
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Service.Cancel(context.Background(), 7, o.ID); !errors.Is(err, trade.ErrAlreadyPaid) {
		t.Fatalf("cancel a paid order: %v, want already_paid", err)
	}
	if got := tradetest.Reload(t, w.Orders, o.ID); got.Status != trade.Paid {
		t.Fatalf("order status %d, want paid", got.Status)
	}
}

func TestCancelRefusesOtherUsersAndOrdersThatMovedOn(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	o := tradetest.Ordered(t, w.Orders, 7, 100)
	if _, err := w.Service.Cancel(ctx, 8, o.ID); !errors.Is(err, trade.ErrOrderNotFound) {
		t.Fatalf("cancel another user's order: %v, want order_not_found", err)
	}
	if _, err := w.Orders.ApplyPayment(ctx, "m", tradetest.PaymentOf(o), trade.FromEvent); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Service.Cancel(ctx, 7, o.ID); !errors.Is(err, trade.ErrAlreadyPaid) {
		t.Fatalf("cancel a paid order: %v, want already_paid", err)
	}
}

func TestCancelWhilePayIsDownChangesNothing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(nil)
	srv.Close() // nothing listens there any more
	client, err := payclient.New(payclient.Config{BaseURL: srv.URL, Signer: authtest.Shared(t).Signer(auth.IssuerTrade), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	orders := postgres.New(tradetest.NewPool(t))
	svc := trade.NewService(orders, client, nil, nil)
	o := tradetest.Ordered(t, orders, 7, 100)
	if _, err := svc.Cancel(context.Background(), 7, o.ID); !errors.Is(err, trade.ErrPayUnavailable) {
		t.Fatalf("cancel with pay down: %v, want pay_unavailable", err)
	}
	if got := tradetest.Reload(t, orders, o.ID); got.Status != trade.Unpaid {
		t.Fatalf("order status %d, want still unpaid", got.Status)
	}
	// The fallback asks pay about a page of orders in one call, and gives
	// up its run when that call says pay is down, rather than waiting out
	// a timeout for every order.
	for range 4 {
		tradetest.Ordered(t, orders, 7, 100)
	}
	r, err := svc.CheckUnpaid(context.Background(), 0, 10)
	if !errors.Is(err, trade.ErrPayUnavailable) || r.Failed != 5 || r.Checked != 0 {
		t.Fatalf("fallback with pay down: %+v, %v; want its one call for the 5 orders failed and the run stopped", r, err)
	}
}

func TestFallbackMarksPaidTheOrdersWhoseEventWasLost(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	paytest.Funded(t, w.Pay, 7, 1_000_000)
	var paid, unpaid []trade.Order
	for i := range 6 {
		o, po := w.Order(t, 7, int64(1000+i))
		if i%2 == 0 {
			unpaid = append(unpaid, o)
			continue
		}
		if err := w.PayAtPay(t, po); err != nil {
			t.Fatal(err)
		}
		paid = append(paid, o)
	}
	// Young orders are left alone until the grace period has passed.
	r, err := w.Service.CheckUnpaid(ctx, time.Hour, 2)
	if err != nil || r.Checked != 0 {
		t.Fatalf("within grace: %+v, %v; want nothing checked", r, err)
	}
	r, err = w.Service.CheckUnpaid(ctx, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Checked != 6 || r.Paid != 3 || r.Failed != 0 {
		t.Fatalf("report %+v, want 6 checked and 3 paid", r)
	}
	for _, o := range paid {
		if got := tradetest.Reload(t, w.Orders, o.ID); got.Status != trade.Paid || got.PayTime == nil {
			t.Errorf("order %d: %+v, want paid", o.ID, got)
		}
	}
	for _, o := range unpaid {
		if got := tradetest.Reload(t, w.Orders, o.ID); got.Status != trade.Unpaid {
			t.Errorf("order %d: status %d, want unpaid", o.ID, got.Status)
		}
	}
}

func TestFallbackRecordsAPaymentOfAnotherAmountAsADiscrepancy(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	o := tradetest.Ordered(t, w.Orders, 7, 10_000)
	po := paytest.Applied(t, w.Pay, 7, o.ID, 9_999) // a buggy client asked pay for less
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	r, err := w.Service.CheckUnpaid(context.Background(), 0, 10)
	if err != nil || r.Discrepancies != 1 || r.Paid != 0 {
		t.Fatalf("report %+v, %v; want one discrepancy", r, err)
	}
	if got := tradetest.Reload(t, w.Orders, o.ID); got.Status != trade.Unpaid {
		t.Fatalf("order status %d, want unpaid", got.Status)
	}
	if d := tradetest.Discrepancies(t, w.Orders); len(d) != 1 || d[0].Reason != trade.ReasonAmountMismatch || d[0].Source != trade.FromPoll {
		t.Fatalf("discrepancies %+v", d)
	}
}

func TestOrderTimeoutClosesThePayOrderThenCancelsTheOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	o, po := w.Order(t, 7, 10_000)
	young, _ := w.Order(t, 7, 10_000)
	_, err := w.Orders.CreateOrder(context.Background(), 7, trade.NewOrder{TotalFee: 1, PaymentType: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Everything created before now counts as timed out with a zero timeout.
	r, err := w.Service.CloseExpired(context.Background(), 0, 2)
	if err != nil || r.Closed != 3 {
		t.Fatalf("report %+v, %v; want 3 closed", r, err)
	}
	for _, id := range []int64{o.ID, young.ID} {
		if got := tradetest.Reload(t, w.Orders, id); got.Status != trade.Cancelled {
			t.Fatalf("order %d status %d, want cancelled", id, got.Status)
		}
	}
	if err := w.PayAtPay(t, po); !errors.Is(err, pay.ErrPayOrderClosed) {
		t.Fatalf("payment after timeout: %v, want pay_order_closed", err)
	}
}

// A timeout racing a payment ends as exactly one of paid or cancelled: never
// charged for a cancelled order, never paid and cancelled.
func TestTimeoutRacingPaymentsEndsPaidOrCancelledNeverChargedButCancelled(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	const n = 40
	paytest.Funded(t, w.Pay, 7, n*1000)
	type pair struct {
		order trade.Order
		po    pay.PayOrder
	}
	pairs := make([]pair, n)
	for i := range pairs {
		o, po := w.Order(t, 7, 1000)
		pairs[i] = pair{o, po}
	}

	var wg sync.WaitGroup
	charged := make([]bool, n)
	// The payer starts from the newest order and the timeout from the
	// oldest, so they meet, and race, somewhere in the middle.
	wg.Go(func() {
		for i := n - 1; i >= 0; i-- {
			p := pairs[i]
			err := w.PayAtPay(t, p.po)
			switch {
			case err == nil:
				charged[i] = true
			case !errors.Is(err, pay.ErrPayOrderClosed):
				t.Errorf("pay order %d: %v", p.po.ID, err)
			}
		}
	})
	wg.Go(func() {
		for range 3 {
			if _, err := w.Service.CloseExpired(ctx, 0, 1); err != nil {
				t.Errorf("close expired: %v", err)
			}
		}
	})
	wg.Wait()
	// What the lost events would have done, the fallback does.
	if _, err := w.Service.CheckUnpaid(ctx, 0, 100); err != nil {
		t.Fatal(err)
	}

	counts := map[string]int{}
	for i, p := range pairs {
		o := tradetest.Reload(t, w.Orders, p.order.ID)
		po, err := w.Pay.PayOrder(ctx, p.po.ID)
		if err != nil {
			t.Fatal(err)
		}
		state := fmt.Sprintf("order %d, pay order %d, charged %v", o.Status, po.Status, charged[i])
		counts[state]++
		ok := (o.Status == trade.Paid && po.Status == pay.Paid && charged[i]) ||
			(o.Status == trade.Cancelled && po.Status == pay.Closed && !charged[i]) ||
			(o.Status == trade.Unpaid && po.Status == pay.Waiting && !charged[i])
		if !ok {
			t.Errorf("order %d ended as %s", o.ID, state)
		}
	}
	t.Logf("end states: %v", counts)
	if d := tradetest.Discrepancies(t, w.Orders); len(d) != 0 {
		t.Fatalf("discrepancies %+v", d)
	}
}
