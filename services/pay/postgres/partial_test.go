package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

func partOf(po pay.PayOrder, amount int64) pay.RefundRequest {
	req := refundOf(po)
	req.Amount = amount
	return req
}

// refundSuccesses returns the refund.success events in pay's outbox.
func refundSuccesses(t *testing.T, pool *pgxpool.Pool) []pay.RefundSuccess {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT payload FROM outbox_events WHERE message_type = 'refund.success' ORDER BY created_at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var events []pay.RefundSuccess
	for rows.Next() {
		var payload []byte
		var ev pay.RefundSuccess
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

func TestPartialCreditsRaiseTheRefundedAmountAndRefundInFullAtTheTotal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	po := paidOrder(t, store) // 3000 of user 1's 10 000

	for _, step := range []struct {
		amount, total int64
		status        pay.PayOrderStatus
	}{{1_000, 1_000, pay.Paid}, {500, 1_500, pay.Paid}, {1_500, 3_000, pay.Refunded}} {
		if got := refund(t, store, uuid.NewString(), partOf(po, step.amount)); got != pay.RefundApplied {
			t.Fatalf("refund of %d: %v, want refunded", step.amount, got)
		}
		got, err := store.PayOrder(ctx, po.ID)
		if err != nil || got.RefundedAmount != step.total || got.Status != step.status || got.RefundTime == nil {
			t.Fatalf("after a refund of %d: %+v (%v), want %d refunded, status %d", step.amount, got, err, step.total, step.status)
		}
	}
	events := refundSuccesses(t, pool)
	if len(events) != 3 || events[1].Amount != 500 || events[1].RefundedTotal != 1_500 || events[2].RefundedTotal != 3_000 {
		t.Errorf("refund.success events = %+v, want each credit's amount and the running total", events)
	}
	req := partOf(po, 1)
	if got := refund(t, store, uuid.NewString(), req); got != pay.RefundRefused {
		t.Fatalf("a refund of a pay order refunded in full: %v, want rejected", got)
	}
	if d, err := store.RefundDecision(ctx, req.RefundID); err != nil || d.Rejection != pay.RejectAlreadyRefunded {
		t.Errorf("decision = %+v (%v), want %s", d, err, pay.RejectAlreadyRefunded)
	}
	if snap := paytest.Snap(t, pool); snap.Balances[1] != 10_000 || snap.Refunds != 3 || snap.Refunded != 3_000 {
		t.Errorf("balance %d with %d credits of %d, want 10000 and 3 credits of 3000", snap.Balances[1], snap.Refunds, snap.Refunded)
	}
}

// Racing credits for the last amount: 3000 was paid, 1000 credited; eight
// refunds of 800 under their own ids race for the 2000 left, each also
// delivered twice. Exactly two are credited, each once.
func TestRacingPartialCreditsForTheLastAmountCreditExactlyWhatRemains(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	po := paidOrder(t, store)
	refund(t, store, uuid.NewString(), partOf(po, 1_000))
	testenv.Warm(t, pool, 4)

	requests := make([]pay.RefundRequest, 8)
	for i := range requests {
		requests[i] = partOf(po, 800)
	}
	var mu sync.Mutex
	counts := map[pay.RefundResult]int{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			<-start
			got, err := store.Refund(context.Background(), uuid.NewString(), requests[i%8], "")
			if err != nil {
				t.Errorf("refund: %v", err)
				return
			}
			mu.Lock()
			counts[got]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if counts[pay.RefundApplied] != 2 || counts[pay.RefundRefused] != 6 || counts[pay.RefundDuplicate] != 8 {
		t.Fatalf("results = %v, want 2 refunded, 6 rejected and 8 duplicates", counts)
	}
	got, err := store.PayOrder(context.Background(), po.ID)
	if err != nil || got.RefundedAmount != 2_600 || got.Status != pay.Paid {
		t.Errorf("pay order = %+v (%v), want 2600 refunded, still paid", got, err)
	}
	if snap := paytest.Snap(t, pool); snap.Balances[1] != 7_000+2_600 || snap.Refunds != 3 {
		t.Errorf("balance %d with %d credits, want 9600 and 3", snap.Balances[1], snap.Refunds)
	}
}

// A transaction retried after a serialization failure reports what its
// last attempt did: the first attempt sees its message as a duplicate
// (the inbox row is skipped) and fails at commit; the retry credits.
func TestRetriedRefundReportsItsOwnOutcome(t *testing.T) {
	t.Parallel()
	store, pool := newStore(t)
	po := paidOrder(t, store)
	testenv.SkipFirstInsertThenFailItsCommit(t, pool, "processed_messages")

	got, err := store.Refund(context.Background(), uuid.NewString(), refundOf(po), "")
	if err != nil {
		t.Fatal(err)
	}
	if fired := testenv.RetryFaultFired(t, pool); fired != 2 {
		t.Fatalf("the fault fired %d times, want 2: a first attempt and its retry", fired)
	}
	if got != pay.RefundApplied || len(refundSuccesses(t, pool)) != 1 {
		t.Errorf("result %v, want refunded with its refund.success", got)
	}
}

func TestEachCreditIsToldOnceAfterItsCommitWithItsKindAndAmount(t *testing.T) {
	t.Parallel()
	pool := paytest.NewPool(t)
	t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
	type credit struct {
		kind   string
		amount int64
	}
	var told []credit
	cfg := paytest.StoreConfig("pay.topic")
	cfg.RefundCredited = func(kind string, amount int64) { told = append(told, credit{kind, amount}) }
	store := postgres.New(pool, cfg)
	po := paidOrder(t, store) // 3000

	part := partOf(po, 1_000)
	refund(t, store, uuid.NewString(), part)
	refund(t, store, uuid.NewString(), part) // the same refund id again: a duplicate
	refund(t, store, "", partOf(po, 2_001))  // more than remains: rejected
	refund(t, store, uuid.NewString(), partOf(po, 2_000))
	whole := paytest.Applied(t, store, 1, 8, 500)
	if _, err := store.Pay(context.Background(), payment(whole, "123")); err != nil {
		t.Fatalf("pay: %v", err)
	}
	refund(t, store, uuid.NewString(), refundOf(whole))

	want := []credit{{pay.RefundPart, 1_000}, {pay.RefundPart, 2_000}, {pay.RefundWhole, 500}}
	if !slices.Equal(told, want) {
		t.Errorf("credits told = %v, want %v", told, want)
	}
}
