package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// paidOrder funds user 1 with 10 000, pays a pay order of 3 000 for
// business order 7 and returns it.
func paidOrder(t *testing.T, store *postgres.Store) pay.PayOrder {
	t.Helper()
	paytest.Funded(t, store, 1, 10_000)
	po := paytest.Applied(t, store, 1, 7, 3_000)
	if _, err := store.Pay(context.Background(), payment(po, "123")); err != nil {
		t.Fatalf("pay: %v", err)
	}
	return po
}

func refundOf(po pay.PayOrder) pay.RefundRequest {
	return pay.RefundRequest{RefundID: uuid.New(), BizOrderNo: po.BizOrderNo, UserID: po.BizUserID, Amount: po.Amount,
		Reason: "user_request", RequestedAt: time.Now().UTC()}
}

func refund(t *testing.T, store *postgres.Store, messageID string, req pay.RefundRequest) pay.RefundResult {
	t.Helper()
	got, err := store.Refund(context.Background(), messageID, req, "")
	if err != nil {
		t.Fatalf("refund %s under message %q: %v", req.RefundID, messageID, err)
	}
	return got
}

// refundEvents counts the refund.success events in the outbox.
func refundEvents(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_events WHERE message_type = 'refund.success'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRefundCreditsOnceWhateverTheDuplicates(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	po := paidOrder(t, store)
	req := refundOf(po)
	first := uuid.NewString()

	var mu sync.Mutex
	counts := map[pay.RefundResult]int{}
	var wg sync.WaitGroup
	// Concurrent copies: the same message redelivered, and the same
	// refund re-sent under new message ids.
	for i := range 16 {
		wg.Go(func() {
			id := first
			if i%2 == 1 {
				id = uuid.NewString()
			}
			got, err := store.Refund(context.Background(), id, req, "")
			if err != nil {
				t.Errorf("refund: %v", err)
				return
			}
			mu.Lock()
			counts[got]++
			mu.Unlock()
		})
	}
	wg.Wait()
	// And late copies of both kinds.
	counts[refund(t, store, first, req)]++
	counts[refund(t, store, uuid.NewString(), req)]++
	if counts[pay.RefundApplied] != 1 || counts[pay.RefundDuplicate] != 17 {
		t.Fatalf("results = %v, want 1 refunded and 17 duplicates", counts)
	}

	snap := paytest.Snap(t, pool)
	if snap.Balances[1] != 10_000 || snap.Refunds != 1 || snap.Refunded != 3_000 {
		t.Errorf("balance %d, %d credits of %d in all; want 10000, 1 credit of 3000", snap.Balances[1], snap.Refunds, snap.Refunded)
	}
	if n := refundEvents(t, pool); n != 1 {
		t.Errorf("%d refund.success events in the outbox, want 1", n)
	}
	got, err := store.PayOrder(context.Background(), po.ID)
	if err != nil || got.Status != pay.Refunded || got.RefundTime == nil || got.PaySuccessTime == nil {
		t.Errorf("pay order = %+v (%v), want refunded with its pay and refund times", got, err)
	}
	d, err := store.RefundDecision(context.Background(), req.RefundID)
	if err != nil || d.Outcome != pay.RefundCredited || d.RefundedAt == nil || d.PayOrderID == nil || *d.PayOrderID != po.ID {
		t.Errorf("decision = %+v (%v), want refunded from pay order %d", d, err, po.ID)
	}
}

func TestRefundNobodyCanHonourChangesNothingButIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	po := paidOrder(t, store)
	waiting := paytest.Applied(t, store, 1, 8, 1_000)
	refundedBefore := refundOf(po)
	if got := refund(t, store, uuid.NewString(), refundedBefore); got != pay.RefundApplied {
		t.Fatalf("first refund: %v, want refunded", got)
	}
	before := paytest.Snap(t, pool)

	other := func(mutate func(*pay.RefundRequest)) pay.RefundRequest {
		req := refundOf(po)
		mutate(&req)
		return req
	}
	tests := []struct {
		name string
		req  pay.RefundRequest
		want string
	}{
		{"another refund of a refunded pay order", refundOf(po), pay.RejectAlreadyRefunded},
		{"a pay order never paid", refundOf(waiting), pay.RejectNotPaid},
		{"a business order with no pay order", other(func(r *pay.RefundRequest) { r.BizOrderNo = 999 }), pay.RejectNoPayOrder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := refund(t, store, uuid.NewString(), tt.req); got != pay.RefundRefused {
				t.Fatalf("result %v, want rejected", got)
			}
			d, err := store.RefundDecision(ctx, tt.req.RefundID)
			if err != nil || d.Outcome != pay.RefundRejected || d.Rejection != tt.want || d.RefundedAt != nil {
				t.Errorf("decision = %+v (%v), want rejected as %s", d, err, tt.want)
			}
			// A copy of a rejected refund is a duplicate, not a second record.
			if got := refund(t, store, uuid.NewString(), tt.req); got != pay.RefundDuplicate {
				t.Errorf("copy of a rejected refund: %v, want duplicate", got)
			}
		})
	}
	after := paytest.Snap(t, pool)
	if after.Balances[1] != before.Balances[1] || after.Refunds != before.Refunds || after.OutboxEvents != before.OutboxEvents {
		t.Errorf("rejections changed money or events: before %+v, after %+v", before, after)
	}
	if _, err := store.RefundDecision(ctx, uuid.New()); !errors.Is(err, pay.ErrRefundNotFound) {
		t.Errorf("decision of a refund never received: %v, want %v", err, pay.ErrRefundNotFound)
	}
}

func TestRefundOfAnotherUserOrMoreThanWasPaidIsRejected(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	po := paidOrder(t, store)
	paytest.Funded(t, store, 2, 0)
	tests := []struct {
		name   string
		mutate func(*pay.RefundRequest)
		want   string
	}{
		{"more than paid", func(r *pay.RefundRequest) { r.Amount = po.Amount + 1 }, pay.RejectExceedsRemaining},
		{"to another user", func(r *pay.RefundRequest) { r.UserID = 2 }, pay.RejectUserMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := refundOf(po)
			tt.mutate(&req)
			if got := refund(t, store, uuid.NewString(), req); got != pay.RefundRefused {
				t.Fatalf("result %v, want rejected", got)
			}
			d, err := store.RefundDecision(context.Background(), req.RefundID)
			if err != nil || d.Rejection != tt.want {
				t.Errorf("decision = %+v (%v), want rejected as %s", d, err, tt.want)
			}
		})
	}
	snap := paytest.Snap(t, pool)
	if snap.Balances[1] != 7_000 || snap.Balances[2] != 0 || snap.Refunds != 0 {
		t.Errorf("balances %v with %d credits, want 7000 and 0 untouched, no credit", snap.Balances, snap.Refunds)
	}
}

func TestRefundedPayOrderCanNeverBePaidAgainButCloses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	po := paidOrder(t, store)
	refund(t, store, uuid.NewString(), refundOf(po))
	if _, err := store.Pay(ctx, payment(po, "123")); !errors.Is(err, pay.ErrAlreadyPaid) {
		t.Errorf("pay a refunded pay order: %v, want %v", err, pay.ErrAlreadyPaid)
	}
	closure, err := store.ClosePayOrder(ctx, po.BizOrderNo)
	if err != nil || closure.PayOrder == nil || closure.PayOrder.Status != pay.Refunded {
		t.Errorf("close a refunded pay order: %+v (%v), want it answered as it is, refunded", closure, err)
	}
}
