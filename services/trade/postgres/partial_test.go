package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/reconcile"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

func partial(amount int64, key string) trade.RefundRequest {
	return trade.RefundRequest{Amount: amount, IdempotencyKey: key}
}

func requestPart(t *testing.T, store *postgres.Store, o trade.Order, amount int64, key string) trade.Refund {
	t.Helper()
	r, err := store.RequestRefund(context.Background(), o.UserID, o.ID, partial(amount, key), "")
	if err != nil {
		t.Fatalf("refund %d of order %d under %q: %v", amount, o.ID, key, err)
	}
	return r
}

func credit(t *testing.T, store *postgres.Store, r trade.Refund) {
	t.Helper()
	if got, err := store.ApplyRefundCredit(context.Background(), uuid.NewString(), creditOf(r)); err != nil || got != trade.Applied {
		t.Fatalf("credit of refund %s: %v, %v; want applied", r.ID, got, err)
	}
}

// newPartialStore returns a store over a database of its own, and the pool.
func newPartialStore(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	pool := tradetest.NewPool(t)
	return postgres.New(pool), pool
}

// checkTrade fails t on any broken rule of the trade database's refunds
// but a rejection waiting for an operator.
func checkTrade(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	broken, err := reconcile.CheckTrade(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	for rule, n := range broken {
		if rule != reconcile.CheckUnsettledRejections {
			t.Errorf("invariant broken: %s (%d)", rule, n)
		}
	}
}

func TestPartialRefundsKeepTheOrderPaidUntilCreditedInFull(t *testing.T) {
	t.Parallel()
	store, pool := newPartialStore(t)
	order := paid(t, store)

	first := requestPart(t, store, order, 2_500, "a")
	credit(t, store, first)
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Paid || got.RefundedAmount != 2_500 || *got.RefundStatus != trade.RefundRefunded {
		t.Fatalf("after a refund of 2500: %+v, want paid with 2500 refunded", got)
	}
	second := requestPart(t, store, order, 3_000, "b")
	got = tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Paid || got.RefundedAmount != 2_500 || *got.RefundStatus != trade.RefundRequested {
		t.Fatalf("with a second refund pending: %+v, want paid, 2500 refunded, the latest requested", got)
	}
	rest, err := store.RequestRefund(context.Background(), order.UserID, order.ID, trade.RefundRequest{}, "")
	if err != nil || rest.Amount != 4_500 {
		t.Fatalf("refund of what remains: %+v, %v; want 4500", rest, err)
	}
	if again, err := store.RequestRefund(context.Background(), order.UserID, order.ID, trade.RefundRequest{}, ""); err != nil || again.ID != rest.ID {
		t.Fatalf("what remains asked again while pending: %+v, %v; want refund %s", again, err, rest.ID)
	}
	credit(t, store, second)
	credit(t, store, rest)
	got = tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Refunded || got.RefundedAmount != order.TotalFee {
		t.Fatalf("after refunds of the whole total: %+v, want refunded (7) with %d refunded", got, order.TotalFee)
	}
	if _, err := store.RequestRefund(context.Background(), order.UserID, order.ID, partial(1, "c"), ""); !errors.Is(err, trade.ErrNotRefundable) {
		t.Errorf("a refund of an order refunded in full: %v, want %v", err, trade.ErrNotRefundable)
	}
	refunds, err := store.Refunds(context.Background(), order.ID)
	if err != nil || len(refunds) != 3 || refunds[0].ID != first.ID || refunds[2].ID != rest.ID {
		t.Errorf("refunds = %+v, %v; want the three, oldest first", refunds, err)
	}
	if events := refundEvents(t, pool); len(events) != 3 {
		t.Errorf("%d refund.requested events, want 3", len(events))
	}
	checkTrade(t, pool)
}

func TestRefundOverWhatRemainsIsRefusedAndTheKeyKeepsItsRefund(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newPartialStore(t)
	order := paid(t, store)
	r := requestPart(t, store, order, 6_000, "a")

	tests := []struct {
		name string
		req  trade.RefundRequest
		want error
	}{
		{"more than remains", partial(4_001, "b"), trade.ErrRefundExceeds},
		{"the same key for another amount", partial(5_000, "a"), trade.ErrRefundKeyReused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := store.RequestRefund(ctx, order.UserID, order.ID, tt.req, ""); !errors.Is(err, tt.want) {
				t.Errorf("request: %v, want %v", err, tt.want)
			}
		})
	}
	if again := requestPart(t, store, order, 6_000, "a"); again.ID != r.ID {
		t.Errorf("the same key and amount: refund %s, want %s", again.ID, r.ID)
	}
	if last := requestPart(t, store, order, 4_000, "b"); last.Amount != 4_000 {
		t.Errorf("what remains exactly: %+v", last)
	}
	if events := refundEvents(t, pool); len(events) != 2 {
		t.Errorf("%d refund.requested events, want 2", len(events))
	}
	checkTrade(t, pool)
}

// Racing partial refunds for the last amount: of each order's 10 000, 6000
// is asked for, then eight owner's clicks race for the 4000 left in
// pieces of 1500; on every order exactly two fit.
func TestRacingPartialRefundsForTheLastAmountAdmitExactlyWhatRemains(t *testing.T) {
	t.Parallel()
	store, pool := newPartialStore(t)
	testenv.Warm(t, pool, 4)
	for round := range 5 {
		order := paid(t, store)
		requestPart(t, store, order, 6_000, "first")

		var mu sync.Mutex
		admitted, refused := 0, 0
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				<-start
				_, err := store.RequestRefund(context.Background(), order.UserID, order.ID, partial(1_500, fmt.Sprint("race-", i)), "")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					admitted++
				case errors.Is(err, trade.ErrRefundExceeds):
					refused++
				default:
					t.Errorf("refund: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if admitted != 2 || refused != 6 {
			t.Fatalf("round %d: admitted %d and refused %d, want 2 and 6", round, admitted, refused)
		}
		if got := tradetest.Reload(t, store, order.ID); got.RefundClaimed != 9_000 {
			t.Errorf("round %d: claimed %d, want 9000", round, got.RefundClaimed)
		}
	}
	if events := refundEvents(t, pool); len(events) != 5*3 {
		t.Errorf("%d refund.requested events, want 15", len(events))
	}
	checkTrade(t, pool)
}

func TestRejectedRefundGivesItsAmountBackToAskFor(t *testing.T) {
	t.Parallel()
	store, pool := newPartialStore(t)
	order := paid(t, store)
	r := requestPart(t, store, order, 10_000, "all")
	if rejected, err := store.RejectRefund(context.Background(), r.ID, "not_paid"); err != nil || !rejected {
		t.Fatalf("reject: %v, %v", rejected, err)
	}
	if again, err := store.RejectRefund(context.Background(), r.ID, "not_paid"); err != nil || again {
		t.Fatalf("reject again: %v, %v; want nothing moved", again, err)
	}
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Paid || got.RefundClaimed != 0 || *got.RefundStatus != trade.RefundRejected {
		t.Fatalf("order = %+v, want paid, nothing claimed, its refund rejected", got)
	}
	requestPart(t, store, order, 10_000, "again")
	checkTrade(t, pool)
}

// A refund.success of a refund trade never requested, or of another
// amount than its refund row, moves no order: trade moves an order only
// with its own refund row.
func TestCreditOfARefundTradeDidNotRequestMovesNoOrder(t *testing.T) {
	t.Parallel()
	store, pool := newPartialStore(t)
	order := paid(t, store)
	r := requestPart(t, store, order, 2_000, "a")
	forged := creditOf(trade.Refund{ID: uuid.New(), OrderID: order.ID, UserID: order.UserID, Amount: order.TotalFee})
	wrong := creditOf(r)
	wrong.Amount = order.TotalFee
	for name, c := range map[string]trade.RefundCredit{"never requested": forged, "another amount": wrong} {
		if got, err := store.ApplyRefundCredit(context.Background(), uuid.NewString(), c); err != nil || got != trade.Duplicate {
			t.Errorf("%s: %v, %v; want nothing applied", name, got, err)
		}
	}
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Paid || got.RefundedAmount != 0 || *got.RefundStatus != trade.RefundRequested {
		t.Fatalf("order = %+v, want paid, nothing refunded", got)
	}
	checkTrade(t, pool)
}

// A transaction retried after a serialization failure reports what its
// last attempt did: the first attempt here sees its message as a
// duplicate (the inbox row is skipped) and fails at commit; the retry
// credits the refund and must say so.
func TestRetriedRefundCreditReportsItsOwnOutcome(t *testing.T) {
	t.Parallel()
	store, pool := newPartialStore(t)
	order := paid(t, store)
	r := requestPart(t, store, order, 10_000, "all")
	testenv.SkipFirstInsertThenFailItsCommit(t, pool, "processed_messages")

	got, err := store.ApplyRefundCredit(context.Background(), uuid.NewString(), creditOf(r))
	if err != nil {
		t.Fatal(err)
	}
	if fired := testenv.RetryFaultFired(t, pool); fired != 2 {
		t.Fatalf("the fault fired %d times, want 2: a first attempt and its retry", fired)
	}
	if o := tradetest.Reload(t, store, order.ID); got != trade.Applied || o.Status != trade.Refunded {
		t.Errorf("outcome %v with the order %v, want applied and refunded (7)", got, o.Status)
	}
}

func TestRejectedRefundIsSettledByARetryOrARecordedResolution(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newPartialStore(t)
	order := paid(t, store)
	first := requestPart(t, store, order, 4_000, "a")
	second := requestPart(t, store, order, 6_000, "b")
	for _, r := range []trade.Refund{first, second} {
		if _, err := store.RejectRefund(ctx, r.ID, "not_paid"); err != nil {
			t.Fatal(err)
		}
	}
	unsettled := func() int64 {
		broken, err := reconcile.CheckTrade(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		return broken[reconcile.CheckUnsettledRejections]
	}
	if n := unsettled(); n != 2 {
		t.Fatalf("%d unsettled rejections, want 2", n)
	}

	retry, err := store.RetryRefund(ctx, first.ID, "")
	if err != nil || retry.ID == first.ID || retry.Amount != 4_000 || retry.Status != trade.RefundRequested {
		t.Fatalf("retry: %+v, %v; want a new refund of 4000, requested", retry, err)
	}
	if again, err := store.RetryRefund(ctx, first.ID, ""); err != nil || again.ID != retry.ID {
		t.Fatalf("retry again: %+v, %v; want refund %s", again, err, retry.ID)
	}
	if _, err := store.ResolveRefund(ctx, second.ID, ""); err == nil {
		t.Fatal("a resolution without a note was recorded")
	}
	resolved, err := store.ResolveRefund(ctx, second.ID, "paid back by bank transfer")
	if err != nil || resolved.Settlement != "resolved: paid back by bank transfer" || resolved.SettledAt == nil {
		t.Fatalf("resolve: %+v, %v", resolved, err)
	}
	for name, err := range map[string]error{
		"retry of a resolved refund":    func() error { _, err := store.RetryRefund(ctx, second.ID, ""); return err }(),
		"resolve a refund not rejected": func() error { _, err := store.ResolveRefund(ctx, retry.ID, "x"); return err }(),
	} {
		if !errors.Is(err, trade.ErrRefundNotRejected) {
			t.Errorf("%s: %v, want %v", name, err, trade.ErrRefundNotRejected)
		}
	}
	if n := unsettled(); n != 0 {
		t.Errorf("%d unsettled rejections after settling both, want 0", n)
	}
	if list, err := store.RejectedRefunds(ctx, false, 10); err != nil || len(list) != 0 {
		t.Errorf("unsettled list = %+v, %v; want empty", list, err)
	}
	if got := tradetest.Reload(t, store, order.ID); got.RefundClaimed != 4_000 {
		t.Errorf("claimed %d, want the retry's 4000", got.RefundClaimed)
	}
	if events := refundEvents(t, pool); len(events) != 3 || events[2].RefundID != retry.ID {
		t.Errorf("refund.requested events = %+v, want the two refunds' and the retry's", events)
	}
	checkTrade(t, pool)
}
