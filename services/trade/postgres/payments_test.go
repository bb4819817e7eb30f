package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

func newStore(t *testing.T) *postgres.Store {
	t.Helper()
	return postgres.New(tradetest.NewPool(t))
}

func apply(t *testing.T, store *postgres.Store, messageID string, p trade.Payment) trade.Outcome {
	t.Helper()
	got, err := store.ApplyPayment(context.Background(), messageID, p, trade.FromEvent)
	if err != nil {
		t.Fatalf("apply payment of order %d under message %q: %v", p.BizOrderNo, messageID, err)
	}
	return got
}

func TestOneEventDeliveredTenTimesIsAppliedOnce(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	order := tradetest.Ordered(t, store, 7, 10_000)
	p := tradetest.PaymentOf(order)
	id := uuid.NewString()

	counts := map[trade.Outcome]int{}
	for range 10 {
		counts[apply(t, store, id, p)]++
	}
	if counts[trade.Applied] != 1 || counts[trade.Duplicate] != 9 {
		t.Fatalf("outcomes = %v, want 1 applied and 9 duplicates", counts)
	}
	// A second event with a new id for the same payment changes nothing either.
	if got := apply(t, store, uuid.NewString(), p); got != trade.Duplicate {
		t.Fatalf("a new message id for the same payment: outcome %v, want duplicate", got)
	}
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Paid || got.PayTime == nil || !got.PayTime.Equal(p.PaidAt) {
		t.Fatalf("order = %+v, want paid at %v", got, p.PaidAt)
	}
	if d := tradetest.Discrepancies(t, store); len(d) != 0 {
		t.Fatalf("discrepancies = %+v, want none", d)
	}
}

func TestConcurrentCopiesOfOneMessageApplyOnce(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	order := tradetest.Ordered(t, store, 7, 10_000)
	p := tradetest.PaymentOf(order)
	id := uuid.NewString()

	var mu sync.Mutex
	counts := map[trade.Outcome]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			got, err := store.ApplyPayment(context.Background(), id, p, trade.FromEvent)
			if err != nil {
				t.Errorf("apply: %v", err)
				return
			}
			mu.Lock()
			counts[got]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[trade.Applied] != 1 || counts[trade.Duplicate] != 15 {
		t.Fatalf("outcomes = %v, want 1 applied and 15 duplicates", counts)
	}
}

// The course's refund race: the order was paid and has moved on (shipped,
// or refunded and cancelled) when a late copy of its payment arrives.
func TestLateDuplicateLeavesAnOrderThatMovedOnUnchanged(t *testing.T) {
	t.Parallel()
	for _, moved := range []trade.OrderStatus{trade.Shipped, trade.Received, trade.Cancelled, trade.Finished} {
		t.Run(fmt.Sprint(moved), func(t *testing.T) {
			t.Parallel()
			pool := tradetest.NewPool(t)
			store := postgres.New(pool)
			order := tradetest.Ordered(t, store, 7, 10_000)
			p := tradetest.PaymentOf(order)
			if got := apply(t, store, uuid.NewString(), p); got != trade.Applied {
				t.Fatalf("first payment: %v, want applied", got)
			}
			closeTime := "NULL"
			if moved == trade.Cancelled {
				closeTime = "now()"
			}
			if _, err := pool.Exec(context.Background(),
				`UPDATE orders SET status = $2, close_time = `+closeTime+` WHERE id = $1`, order.ID, moved); err != nil {
				t.Fatalf("move order on: %v", err)
			}
			before := tradetest.Reload(t, store, order.ID)

			if got := apply(t, store, uuid.NewString(), p); got != trade.Duplicate {
				t.Fatalf("late duplicate: %v, want duplicate", got)
			}
			if after := tradetest.Reload(t, store, order.ID); after.Status != before.Status || !after.PayTime.Equal(*before.PayTime) {
				t.Fatalf("order changed from %+v to %+v", before, after)
			}
			if d := tradetest.Discrepancies(t, store); len(d) != 0 {
				t.Fatalf("discrepancies = %+v, want none: this payment was applied", d)
			}
		})
	}
}

func TestPaymentThatCannotPayItsOrderIsRecordedNotApplied(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(p *trade.Payment)
		cancel bool
		reason string
	}{
		{"another user", func(p *trade.Payment) { p.UserID++ }, false, trade.ReasonUserMismatch},
		{"less than the total", func(p *trade.Payment) { p.Amount-- }, false, trade.ReasonAmountMismatch},
		{"more than the total", func(p *trade.Payment) { p.Amount++ }, false, trade.ReasonAmountMismatch},
		{"no such order", func(p *trade.Payment) { p.BizOrderNo += 1000 }, false, trade.ReasonOrderNotFound},
		{"order cancelled before it was paid", func(*trade.Payment) {}, true, trade.ReasonOrderMovedOn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := newStore(t)
			order := tradetest.Ordered(t, store, 7, 10_000)
			if tt.cancel {
				if _, err := store.CancelUnpaid(context.Background(), order.ID); err != nil {
					t.Fatalf("cancel: %v", err)
				}
			}
			before := tradetest.Reload(t, store, order.ID)
			p := tradetest.PaymentOf(order)
			tt.change(&p)

			// Reported twice, under two message ids: recorded once.
			for range 2 {
				if got := apply(t, store, uuid.NewString(), p); got != trade.Discrepancy {
					t.Fatalf("outcome %v, want discrepancy", got)
				}
			}
			if after := tradetest.Reload(t, store, order.ID); after.Status != before.Status || after.PayTime != nil {
				t.Fatalf("order changed from %+v to %+v", before, after)
			}
			d := tradetest.Discrepancies(t, store)
			if len(d) != 1 || d[0].Reason != tt.reason || d[0].Payment.PayOrderID != p.PayOrderID || d[0].Amount != p.Amount || d[0].Source != trade.FromEvent {
				t.Fatalf("discrepancies = %+v, want one %s for pay order %d", d, tt.reason, p.PayOrderID)
			}
		})
	}
}

func TestPaymentFromThePollNeedsNoMessageID(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	order := tradetest.Ordered(t, store, 7, 10_000)
	p := tradetest.PaymentOf(order)
	for i, want := range []trade.Outcome{trade.Applied, trade.Duplicate} {
		got, err := store.ApplyPayment(context.Background(), "", p, trade.FromPoll)
		if err != nil || got != want {
			t.Fatalf("poll %d: %v, %v; want %v", i+1, got, err, want)
		}
	}
}

func TestInboxRecordsWhatEachMessageDid(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	store := postgres.New(pool)
	order := tradetest.Ordered(t, store, 7, 10_000)
	other := tradetest.Ordered(t, store, 8, 10_000)
	p := tradetest.PaymentOf(order)
	wrong := tradetest.PaymentOf(other)
	wrong.Amount++

	first, again, late := uuid.NewString(), uuid.NewString(), uuid.NewString()
	apply(t, store, first, p)
	apply(t, store, first, p) // a redelivery adds no row
	apply(t, store, again, p)
	apply(t, store, late, wrong)

	want := map[string]string{first: "applied", again: "duplicate", late: "discrepancy"}
	rows, err := pool.Query(context.Background(), `SELECT message_id, outcome FROM processed_messages`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var id, outcome string
		if err := rows.Scan(&id, &outcome); err != nil {
			t.Fatal(err)
		}
		got[id] = outcome
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("inbox = %v, want %v", got, want)
	}
}

// TestInboxPurgeForgetsOnlyMessagesOlderThanTheRetention ages three
// processed messages by 8 days, 6 days and none, purges with a retention
// of 7 days, and wants only the first forgotten: the others are still
// recognised by their id when a copy arrives. Even the forgotten one's copy
// changes nothing, its order having moved on.
func TestInboxPurgeForgetsOnlyMessagesOlderThanTheRetention(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	store := postgres.New(pool)
	ctx := context.Background()
	ages := []string{"8 days", "6 days", "0"}
	ids := make([]string, len(ages))
	payments := make([]trade.Payment, len(ages))
	for i, age := range ages {
		payments[i] = tradetest.PaymentOf(tradetest.Ordered(t, store, 7, 10_000))
		ids[i] = uuid.NewString()
		apply(t, store, ids[i], payments[i])
		if _, err := pool.Exec(ctx, `UPDATE processed_messages SET processed_at = now() - $2::interval WHERE message_id = $1`, ids[i], age); err != nil {
			t.Fatal(err)
		}
	}

	purged, err := store.PurgeProcessedMessages(ctx, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if purged != 1 {
		t.Errorf("purged %d message ids, want 1 (the one older than 7 days)", purged)
	}
	for i, id := range ids {
		var kept bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM processed_messages WHERE message_id = $1)`, id).Scan(&kept); err != nil {
			t.Fatal(err)
		}
		if want := i > 0; kept != want {
			t.Errorf("message %d days %s old: kept %v, want %v", i, ages[i], kept, want)
		}
		if got := apply(t, store, id, payments[i]); got != trade.Duplicate {
			t.Errorf("a copy of the message %s old: outcome %v, want duplicate", ages[i], got)
		}
	}
	if d := tradetest.Discrepancies(t, store); len(d) != 0 {
		t.Fatalf("discrepancies = %+v, want none", d)
	}
}
