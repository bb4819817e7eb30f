package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// paid returns an order of user 7 for 10 000, paid.
func paid(t *testing.T, store *postgres.Store) trade.Order {
	t.Helper()
	order := tradetest.Ordered(t, store, 7, 10_000)
	if got := apply(t, store, uuid.NewString(), tradetest.PaymentOf(order)); got != trade.Applied {
		t.Fatalf("payment: %v, want applied", got)
	}
	return tradetest.Reload(t, store, order.ID)
}

func requestRefund(t *testing.T, store *postgres.Store, o trade.Order) trade.Refund {
	t.Helper()
	r, err := store.RequestRefund(context.Background(), o.UserID, o.ID, trade.RefundRequest{}, "")
	if err != nil {
		t.Fatalf("request refund of order %d: %v", o.ID, err)
	}
	return r
}

// creditOf is pay's credit of r.
func creditOf(r trade.Refund) trade.RefundCredit {
	return trade.RefundCredit{RefundID: r.ID, BizOrderNo: r.OrderID, PayOrderID: 1000 + r.OrderID, UserID: r.UserID,
		Amount: r.Amount, RefundedTotal: r.Amount, RefundedAt: time.Now().UTC().Truncate(time.Microsecond)}
}

// refundEvents returns the refund.requested events in trade's outbox.
func refundEvents(t *testing.T, pool *pgxpool.Pool) []trade.RefundRequestedEvent {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT payload FROM outbox_events WHERE message_type = 'refund.requested' ORDER BY created_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var events []trade.RefundRequestedEvent
	for rows.Next() {
		var (
			payload []byte
			ev      trade.RefundRequestedEvent
		)
		if err := rows.Scan(&payload); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(payload, &ev); err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	return events
}

func TestRefundOfAPaidOrderIsWrittenWithItsEventOnceHoweverOftenAsked(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	store := postgres.New(pool)
	order := paid(t, store)

	var mu sync.Mutex
	ids := map[uuid.UUID]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			r, err := store.RequestRefund(context.Background(), order.UserID, order.ID, trade.RefundRequest{}, "")
			if err != nil {
				t.Errorf("request refund: %v", err)
				return
			}
			mu.Lock()
			ids[r.ID]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(ids) != 1 {
		t.Fatalf("refund ids = %v, want one refund however often asked", ids)
	}
	r := requestRefund(t, store, order)
	if ids[r.ID] != 8 || r.Status != trade.RefundRequested || r.Amount != order.TotalFee || r.Reason != trade.ReasonUserRequest {
		t.Errorf("refund = %+v, want the same one, requested, for %d, user_request", r, order.TotalFee)
	}
	events := refundEvents(t, pool)
	if len(events) != 1 || events[0] != r.Requested() {
		t.Errorf("events = %+v, want exactly %+v", events, r.Requested())
	}
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Paid || got.RefundStatus == nil || *got.RefundStatus != trade.RefundRequested || got.RefundTime != nil {
		t.Errorf("order = %+v, want still paid, refund requested, no refund time", got)
	}
}

func TestOnlyTheOwnerOfAPaidOrderCanAskForItsRefund(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	store := postgres.New(pool)
	unpaid := tradetest.Ordered(t, store, 7, 10_000)
	cancelled := tradetest.Ordered(t, store, 7, 10_000)
	if _, err := store.CancelUnpaid(context.Background(), cancelled.ID); err != nil {
		t.Fatal(err)
	}
	order := paid(t, store)
	tests := []struct {
		name          string
		user, orderID int64
		want          error
	}{
		{"unpaid", 7, unpaid.ID, trade.ErrNotRefundable},
		{"cancelled", 7, cancelled.ID, trade.ErrNotRefundable},
		{"another user's", 8, order.ID, trade.ErrOrderNotFound},
		{"no such order", 7, order.ID + 100, trade.ErrOrderNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := store.RequestRefund(context.Background(), tt.user, tt.orderID, trade.RefundRequest{}, ""); !errors.Is(err, tt.want) {
				t.Errorf("request refund: %v, want %v", err, tt.want)
			}
		})
	}
	if events := refundEvents(t, pool); len(events) != 0 {
		t.Errorf("refused requests wrote events: %+v", events)
	}
}

func TestRefundCreditMarksTheOrderRefundedOnceWhateverTheDuplicates(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	order := paid(t, store)
	c := creditOf(requestRefund(t, store, order))
	first := uuid.NewString()

	var mu sync.Mutex
	counts := map[trade.Outcome]int{}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			id := first
			if i%2 == 1 {
				id = uuid.NewString()
			}
			got, err := store.ApplyRefundCredit(context.Background(), id, c)
			if err != nil {
				t.Errorf("apply credit: %v", err)
				return
			}
			mu.Lock()
			counts[got]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got, err := store.ApplyRefundCredit(context.Background(), "", c); err != nil || got != trade.Duplicate {
		t.Errorf("the fallback's copy: %v, %v; want duplicate", got, err)
	}
	if counts[trade.Applied] != 1 || counts[trade.Duplicate] != 15 {
		t.Fatalf("outcomes = %v, want 1 applied and 15 duplicates", counts)
	}
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Refunded || got.RefundStatus == nil || *got.RefundStatus != trade.RefundRefunded ||
		got.RefundTime == nil || !got.RefundTime.Equal(c.RefundedAt) || !got.PayTime.Equal(*order.PayTime) {
		t.Errorf("order = %+v, want refunded at %v, paid time kept", got, c.RefundedAt)
	}
}

// The course's race, at trade's store: paid, refunded, then the late copy
// of pay.success arrives under a new message id.
func TestLatePaySuccessLeavesARefundedOrderRefundedAndRecordsNothing(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	store := postgres.New(pool)
	order := paid(t, store)
	r := requestRefund(t, store, order)
	if got, err := store.ApplyRefundCredit(context.Background(), uuid.NewString(), creditOf(r)); err != nil || got != trade.Applied {
		t.Fatalf("credit: %v, %v", got, err)
	}
	before := tradetest.Reload(t, store, order.ID)
	for _, id := range []string{uuid.NewString(), ""} {
		if got := apply(t, store, id, tradetest.PaymentOf(order)); got != trade.Duplicate {
			t.Fatalf("late pay.success %q: %v, want duplicate", id, got)
		}
	}
	after := tradetest.Reload(t, store, order.ID)
	if after.Status != trade.Refunded || *after.RefundStatus != trade.RefundRefunded || !after.RefundTime.Equal(*before.RefundTime) {
		t.Fatalf("order moved from %+v to %+v", before, after)
	}
	if d := tradetest.Discrepancies(t, store); len(d) != 0 {
		t.Errorf("discrepancies = %+v, want none", d)
	}
	if events := refundEvents(t, pool); len(events) != 1 {
		t.Errorf("%d refund events, want the one refund's only", len(events))
	}
	if _, err := store.RequestRefund(context.Background(), order.UserID, order.ID, trade.RefundRequest{}, ""); !errors.Is(err, trade.ErrNotRefundable) {
		t.Errorf("asking again after the refund in full: %v, want %v", err, trade.ErrNotRefundable)
	}
}

func TestDiscrepancyRequestsItsRefundInTheSameTransaction(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	store := postgres.New(pool)
	order := tradetest.Ordered(t, store, 7, 10_000)
	if _, err := store.CancelUnpaid(context.Background(), order.ID); err != nil {
		t.Fatal(err)
	}
	p := tradetest.PaymentOf(order)
	// Reported by two messages and by the fallback: one refund.
	apply(t, store, uuid.NewString(), p)
	apply(t, store, uuid.NewString(), p)
	if _, err := store.ApplyPayment(context.Background(), "", p, trade.FromPoll); err != nil {
		t.Fatal(err)
	}
	events := refundEvents(t, pool)
	want := trade.CompensationReason(trade.ReasonOrderMovedOn)
	if len(events) != 1 || events[0].Reason != want || events[0].UserID != p.UserID || events[0].Amount != p.Amount || events[0].BizOrderNo != order.ID {
		t.Fatalf("events = %+v, want one refund of %d to user %d for %s", events, p.Amount, p.UserID, want)
	}
	r, found, err := store.RefundOf(context.Background(), order.ID)
	if err != nil || !found || r.ID != events[0].RefundID || r.Status != trade.RefundRequested {
		t.Fatalf("refund = %+v, %v, %v; want the event's, requested", r, found, err)
	}
	// Its credit settles the refund and leaves the cancelled order cancelled.
	if got, err := store.ApplyRefundCredit(context.Background(), uuid.NewString(), creditOf(r)); err != nil || got != trade.Applied {
		t.Fatalf("credit: %v, %v", got, err)
	}
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Cancelled || got.RefundStatus == nil || *got.RefundStatus != trade.RefundRefunded {
		t.Errorf("order = %+v, want cancelled with its refund refunded", got)
	}
}
