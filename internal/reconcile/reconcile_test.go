package reconcile_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/reconcile"
	"github.com/paytrade/paytrade/internal/reconcile/reconciletest"
)

func runReconcile(tb testing.TB, d *reconciletest.Databases, opts reconcile.Options) reconcile.Report {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := reconcile.Run(ctx, d.PayPool, d.TradePool, opts)
	if err != nil {
		tb.Fatalf("Run: %v", err)
	}
	return r
}

// counts maps each check's name to what it found.
func counts(r reconcile.Report) map[string]int64 {
	m := map[string]int64{}
	for _, c := range r.Checks() {
		m[c.Name] = c.Count
	}
	return m
}

func TestRunFindsNothingWrongWithConsistentDatabases(t *testing.T) {
	t.Parallel()
	d := reconciletest.New(t)
	d.Consistent(t)

	r := runReconcile(t, d, reconcile.Options{})
	if !r.OK() {
		t.Errorf("Run on consistent databases: %d failures, want none: %+v", r.Failures(), counts(r))
	}
	for name, n := range counts(r) {
		want := int64(0)
		switch name {
		case reconcile.CheckRecordedDiscrepancies:
			want = 1 // the payment of order 106, closed before it was paid
		case reconcile.CheckRejectedRefunds:
			want = 1 // the refund of order 108, settled
		}
		if n != want {
			t.Errorf("%s: found %d, want %d", name, n, want)
		}
	}
	if r.PaidPayOrders != 6 || r.PaidOrders != 5 || r.Refunds != 3 {
		t.Errorf("compared %d paid pay orders, %d paid orders and %d refunds, want 6, 5 and 3", r.PaidPayOrders, r.PaidOrders, r.Refunds)
	}
	if got := r.RecordedDiscrepancies.Items; len(got) != 1 || got[0].BizOrderNo != 106 ||
		!slices.Equal(got[0].Discrepancies, []string{"order_moved_on"}) || got[0].OrderStatus != 5 {
		t.Errorf("recorded discrepancies = %+v, want order 106's, order_moved_on, order status 5", got)
	}
}

func TestRunReportsEachKindOfInconsistency(t *testing.T) {
	t.Parallel()
	for _, tt := range reconciletest.Inconsistencies {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			d := reconciletest.New(t)
			d.Consistent(t)
			tt.Make(t, d)

			r := runReconcile(t, d, reconcile.Options{})
			got := counts(r)
			if got[tt.Check] != 1 {
				t.Errorf("%s: found %d, want 1", tt.Check, got[tt.Check])
			}
			for _, c := range r.Checks() {
				if c.Name != tt.Check && c.Severity == reconcile.Failure && c.Count != 0 {
					t.Errorf("%s: found %d, want 0 (only %s should fire)", c.Name, c.Count, tt.Check)
				}
			}
			if wantOK := tt.Severity != reconcile.Failure; r.OK() != wantOK {
				t.Errorf("OK() = %v, want %v", r.OK(), wantOK)
			}
		})
	}
}

func TestRunDescribesWhatItFinds(t *testing.T) {
	t.Parallel()
	d := reconciletest.New(t)
	d.Consistent(t)
	unpaid := d.Pay(t, 201, 1, 500)
	d.Order(t, 201, 1, 500, 1, false)
	waiting := d.PayOrder(t, 205, 1, 500, 1, time.Time{})
	d.Order(t, 205, 1, 500, 2, true)
	paid := d.Pay(t, 207, 1, 500)
	d.Order(t, 207, 2, 600, 2, true)
	wrong := d.PayOrder(t, 210, 1, 500, 3, reconciletest.PaidAt)
	d.Debit(t, 1, wrong, 400)
	d.Order(t, 210, 1, 500, 2, true)

	r := runReconcile(t, d, reconcile.Options{})

	if got := r.PaymentsWithoutPaidOrder.Items; len(got) != 1 ||
		got[0].PayOrderID != unpaid || got[0].BizOrderNo != 201 || got[0].UserID != 1 || got[0].Amount != 500 ||
		!got[0].PaidAt.Equal(reconciletest.PaidAt) || got[0].OrderStatus != 1 || got[0].OrderPaidAt != nil ||
		len(got[0].Discrepancies) != 0 {
		t.Errorf("payments without a paid order = %+v, want pay order %d of unpaid order 201", got, unpaid)
	}
	if got := r.PaidOrdersWithoutPayment.Items; len(got) != 1 || got[0].ID != 205 ||
		got[0].PayOrderID != waiting || got[0].PayOrderStatus == nil || *got[0].PayOrderStatus != 1 {
		t.Errorf("paid orders without a payment = %+v, want order 205 with its waiting pay order %d", got, waiting)
	}
	want := reconcile.Mismatch{BizOrderNo: 207, PayOrderID: paid, OrderUserID: 2, PayUserID: 1, TotalFee: 600, PaidAmount: 500}
	if got := r.Mismatches.Items; len(got) != 1 || got[0] != want {
		t.Errorf("mismatches = %+v, want %+v", got, want)
	}
	if got := r.Debits.Items; len(got) != 1 || got[0].PayOrderID != wrong || got[0].DebitSum != -400 ||
		got[0].Debits != 1 || got[0].Problem != "debit of -400, want -500" {
		t.Errorf("debits = %+v, want pay order %d debited -400 instead of -500", got, wrong)
	}
}

func TestRunExcusesOnlyRecentRefundsAsInFlight(t *testing.T) {
	t.Parallel()
	d := reconciletest.New(t)
	d.Consistent(t)
	d.Pay(t, 301, 1, 500)
	d.Order(t, 301, 1, 500, 2, true)
	d.RefundRequest(t, 301, 1, 500, "requested", time.Now())

	tests := []struct {
		name     string
		inFlight time.Duration
		check    string
		wantOK   bool
	}{
		{"excused for a minute", time.Minute, reconcile.CheckRefundsInFlight, true},
		{"nothing excused", 0, reconcile.CheckRefundsNotCredited, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runReconcile(t, d, reconcile.Options{InFlight: tt.inFlight})
			if got := counts(r)[tt.check]; got != 1 {
				t.Errorf("%s: found %d, want 1", tt.check, got)
			}
			if r.OK() != tt.wantOK {
				t.Errorf("OK() = %v, want %v", r.OK(), tt.wantOK)
			}
		})
	}
}

func TestRunExcusesOnlyRecentPaymentsAsInFlight(t *testing.T) {
	t.Parallel()
	d := reconciletest.New(t)
	d.Consistent(t)
	id := d.PayOrder(t, 301, 1, 500, 3, time.Now())
	d.Debit(t, 1, id, 500)
	d.Order(t, 301, 1, 500, 1, false)

	tests := []struct {
		name     string
		inFlight time.Duration
		check    string
		wantOK   bool
	}{
		{"excused for a minute", time.Minute, reconcile.CheckPaymentsInFlight, true},
		{"nothing excused", 0, reconcile.CheckPaymentsWithoutPaidOrder, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runReconcile(t, d, reconcile.Options{InFlight: tt.inFlight})
			if got := counts(r)[tt.check]; got != 1 {
				t.Errorf("%s: found %d, want 1", tt.check, got)
			}
			if r.OK() != tt.wantOK {
				t.Errorf("OK() = %v, want %v", r.OK(), tt.wantOK)
			}
		})
	}
}

// With pages of three rows, the merge crosses many page boundaries on
// both sides and looks findings up in several batches.
func TestRunMergesAcrossPagesAndCountsBeyondTheDetailsKept(t *testing.T) {
	t.Parallel()
	d := reconciletest.New(t)
	d.Fund(t, 1, 1_000_000)
	var wantUnapplied, wantUnpaidFor []int64
	for n := int64(1); n <= 40; n++ {
		switch {
		case n%7 == 0: // paid at pay only
			d.Pay(t, n, 1, 100+n)
			wantUnapplied = append(wantUnapplied, n)
		case n%5 == 0: // paid at trade only
			d.Order(t, n, 1, 100+n, 2, true)
			wantUnpaidFor = append(wantUnpaidFor, n)
		default:
			d.Pay(t, n, 1, 100+n)
			d.Order(t, n, 1, 100+n, 2, true)
		}
	}

	r := runReconcile(t, d, reconcile.Options{PageSize: 3, MaxDetails: 4})

	if r.PaymentsWithoutPaidOrder.Count != int64(len(wantUnapplied)) {
		t.Errorf("payments without a paid order: %d, want %d", r.PaymentsWithoutPaidOrder.Count, len(wantUnapplied))
	}
	if r.PaidOrdersWithoutPayment.Count != int64(len(wantUnpaidFor)) {
		t.Errorf("paid orders without a payment: %d, want %d", r.PaidOrdersWithoutPayment.Count, len(wantUnpaidFor))
	}
	var gotUnapplied, gotUnpaidFor []int64
	for _, p := range r.PaymentsWithoutPaidOrder.Items {
		gotUnapplied = append(gotUnapplied, p.BizOrderNo)
	}
	for _, o := range r.PaidOrdersWithoutPayment.Items {
		gotUnpaidFor = append(gotUnpaidFor, o.ID)
	}
	if !slices.Equal(gotUnapplied, wantUnapplied[:4]) || !r.PaymentsWithoutPaidOrder.Truncated() {
		t.Errorf("payments kept = %v, want the first four of %v, truncated", gotUnapplied, wantUnapplied)
	}
	if !slices.Equal(gotUnpaidFor, wantUnpaidFor[:4]) || !r.PaidOrdersWithoutPayment.Truncated() {
		t.Errorf("orders kept = %v, want the first four of %v, truncated", gotUnpaidFor, wantUnpaidFor)
	}
	if want := int64(40 - len(wantUnpaidFor)); r.PaidPayOrders != want {
		t.Errorf("compared %d paid pay orders, want %d", r.PaidPayOrders, want)
	}
	if want := int64(40 - len(wantUnapplied)); r.PaidOrders != want {
		t.Errorf("compared %d paid orders, want %d", r.PaidOrders, want)
	}
	if r.Mismatches.Count+r.LedgerDrift.Count+r.Debits.Count != 0 {
		t.Errorf("unexpected findings: %+v", counts(r))
	}
}
