package trade_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// paidOrder is an order of user 7 for fee, paid at pay and marked paid by
// the fallback.
func paidOrder(t *testing.T, w *tradetest.World, fee int64) trade.Order {
	t.Helper()
	o, po := w.Order(t, 7, fee)
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Service.CheckUnpaid(context.Background(), 0, 10); err != nil || r.Paid != 1 {
		t.Fatalf("mark paid: %+v, %v", r, err)
	}
	return tradetest.Reload(t, w.Orders, o.ID)
}

func refundStatus(t *testing.T, w *tradetest.World, id int64) trade.RefundStatus {
	t.Helper()
	o := tradetest.Reload(t, w.Orders, id)
	if o.RefundStatus == nil {
		return ""
	}
	return *o.RefundStatus
}

func TestRefundFallbackAppliesWhatPaySaysAndHasItDecideWhatItNeverReceived(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)

	credited := paidOrder(t, w, 10_000)
	if _, err := w.Orders.RequestRefund(ctx, 7, credited.ID, trade.RefundRequest{}, ""); err != nil {
		t.Fatal(err)
	}
	// pay credits it; its refund.success is lost.
	if n := w.DeliverRefunds(t); n != 1 {
		t.Fatalf("%d refund requests delivered, want 1", n)
	}

	unheardOf := paidOrder(t, w, 2_000)
	if _, err := w.Orders.RequestRefund(ctx, 7, unheardOf.ID, trade.RefundRequest{}, ""); err != nil {
		t.Fatal(err)
	}
	// Its refund.requested has not reached pay (the broker is away): the
	// fallback has pay decide it.

	rejected := paidOrder(t, w, 3_000)
	r, err := w.Orders.RequestRefund(ctx, 7, rejected.ID, trade.RefundRequest{}, "")
	if err != nil {
		t.Fatal(err)
	}
	// pay receives this refund for another amount (a bug on the way) and
	// rejects it.
	bad := pay.RefundRequest{RefundID: r.ID, BizOrderNo: r.OrderID, UserID: r.UserID, Amount: r.Amount + 1, Reason: r.Reason, RequestedAt: r.RequestedAt}
	if got, err := w.Pay.Refund(ctx, uuid.NewString(), bad, ""); err != nil || got != pay.RefundRefused {
		t.Fatalf("pay's verdict: %v, %v; want rejected", got, err)
	}

	report, err := w.Service.CheckRefunds(ctx, 0, 2)
	if err != nil || report.RefundsChecked != 3 || report.Refunded != 2 || report.RefundsRejected != 1 || report.Failed != 0 {
		t.Fatalf("report %+v, %v; want 3 checked, 2 refunded, 1 rejected", report, err)
	}
	if got := tradetest.Reload(t, w.Orders, credited.ID); got.Status != trade.Refunded || refundStatus(t, w, credited.ID) != trade.RefundRefunded {
		t.Errorf("credited: %+v, want refunded", got)
	}
	if got := tradetest.Reload(t, w.Orders, unheardOf.ID); got.Status != trade.Refunded || refundStatus(t, w, unheardOf.ID) != trade.RefundRefunded {
		t.Errorf("not yet at pay: %+v, want refunded by the fallback", got)
	}
	if got := tradetest.Reload(t, w.Orders, rejected.ID); got.Status != trade.Paid || refundStatus(t, w, rejected.ID) != trade.RefundRejected {
		t.Errorf("rejected: %+v, want paid with its refund rejected", got)
	}
	// Nothing is left for a second run; the late refund.requested events of
	// the refunds pay decided without them credit nothing more.
	again, err := w.Service.CheckRefunds(ctx, 0, 2)
	if err != nil || again.RefundsChecked != 0 {
		t.Errorf("second run %+v, %v; want nothing left to check", again, err)
	}
	if n := w.DeliverRefunds(t); n != 2 {
		t.Errorf("%d late refund requests delivered, want the fallback's and the rejected one's", n)
	}
	if a, err := w.Pay.Account(ctx, 7); err != nil || a.Balance != 100_000-3_000 {
		t.Errorf("wallet %+v, %v; want 10000 and 2000 credited back once each, the rejected 3000 not", a, err)
	}
}

// Before refunds, a payment trade could not apply stayed debited: cancel
// answered already_paid and the fallback found it paid at every tick. Now
// the discrepancy requests its refund, and the order ends settled.
func TestAnOrderStuckByADiscrepancyIsRefundedAndEndsSettled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	o := tradetest.Ordered(t, w.Orders, 7, 10_000)
	po := paytest.Applied(t, w.Pay, 7, o.ID, 9_999) // a buggy client asked pay for less
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Service.CheckUnpaid(ctx, 0, 10); err != nil || r.Discrepancies != 1 {
		t.Fatalf("report %+v, %v; want the discrepancy", r, err)
	}
	if got := refundStatus(t, w, o.ID); got != trade.RefundRequested {
		t.Fatalf("refund status %q, want requested with the discrepancy", got)
	}
	if _, err := w.Service.Cancel(ctx, 7, o.ID); !errors.Is(err, trade.ErrAlreadyPaid) {
		t.Fatalf("cancel before the refund: %v, want already_paid", err)
	}

	w.DeliverRefunds(t)
	if r, err := w.Service.CheckRefunds(ctx, 0, 10); err != nil || r.Refunded != 1 {
		t.Fatalf("refund fallback %+v, %v; want the refund marked refunded", r, err)
	}
	if r, err := w.Service.CheckUnpaid(ctx, 0, 10); err != nil || r.Checked != 1 || r.Discrepancies != 0 || r.Paid != 0 || r.Failed != 0 {
		t.Errorf("unpaid check after the refund %+v, %v; want the order asked about and found not paid any more", r, err)
	}
	got, err := w.Service.Cancel(ctx, 7, o.ID)
	if err != nil || got.Status != trade.Cancelled {
		t.Fatalf("cancel after the refund: %+v, %v; want cancelled", got, err)
	}
	if a, err := w.Pay.Account(ctx, 7); err != nil || a.Balance != 100_000 {
		t.Errorf("wallet %+v, %v; want the 9999 paid back", a, err)
	}
	if refundStatus(t, w, o.ID) != trade.RefundRefunded {
		t.Errorf("refund status %q, want refunded", refundStatus(t, w, o.ID))
	}
}

// Three refunds that fail every time (their orders stay locked) hold up no
// refund behind them, as the payment check's failing orders hold up none:
// the walk goes on, the failing ones are tried at the next run, then left
// alone for a while.
func TestRefundsThatAlwaysFailHoldUpNoRefundBehindThemAndBackOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	var stuck, behind []int64
	for i := range 6 {
		o := paidOrder(t, w, 1_000)
		if _, err := w.Orders.RequestRefund(ctx, 7, o.ID, trade.RefundRequest{}, ""); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			stuck = append(stuck, o.ID) // the oldest three
		} else {
			behind = append(behind, o.ID)
		}
	}
	w.HoldLocked(t, stuck...)

	r, err := w.Service.CheckRefunds(ctx, 0, 2)
	if err != nil || r.Refunded != len(behind) || r.Failed != len(stuck) {
		t.Fatalf("first run: %+v, %v; want the %d refunds behind the stuck ones settled and the %d stuck ones failed", r, err, len(behind), len(stuck))
	}
	for _, id := range behind {
		if got := tradetest.Reload(t, w.Orders, id); got.Status != trade.Refunded {
			t.Fatalf("order %d behind the stuck refunds: status %d, want refunded", id, got.Status)
		}
	}
	if r, err := w.Service.CheckRefunds(ctx, 0, 2); err != nil || r.Failed != len(stuck) {
		t.Fatalf("second run: %+v, %v; want the stuck refunds tried again", r, err)
	}
	if r, err := w.Service.CheckRefunds(ctx, 0, 2); err != nil || r.Failed != 0 || r.BackingOff != len(stuck) {
		t.Fatalf("third run: %+v, %v; want the stuck refunds backing off, not tried", r, err)
	}
}

// The grace period is read on the database's clock: a replica whose own
// clock runs an hour ahead does not take a refund asked for a moment ago
// as one long overdue.
func TestRefundFallbackGraceIsReadOnTheDatabasesClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	o := paidOrder(t, w, 1_000)
	if _, err := w.Orders.RequestRefund(ctx, 7, o.ID, trade.RefundRequest{}, ""); err != nil {
		t.Fatal(err)
	}
	ahead := trade.NewService(w.Orders, w.PayClient, nil, func() time.Time { return time.Now().Add(time.Hour) })
	if r, err := ahead.CheckRefunds(ctx, 30*time.Minute, 10); err != nil || r.RefundsChecked != 0 {
		t.Fatalf("run on a replica an hour ahead: %+v, %v; want nothing checked within the grace period", r, err)
	}
}
