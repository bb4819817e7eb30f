package postgres_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

func TestCreateOrderStartsUnpaidAndRefusesBadInput(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	o, err := store.CreateOrder(ctx, 7, trade.NewOrder{TotalFee: 12_345, PaymentType: trade.PaymentBalance})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if o.ID <= 0 || o.UserID != 7 || o.TotalFee != 12_345 || o.Status != trade.Unpaid || o.PayTime != nil || o.CloseTime != nil {
		t.Fatalf("created %+v", o)
	}
	if got := tradetest.Reload(t, store, o.ID); got.ID != o.ID || !got.CreateTime.Equal(o.CreateTime) || got.Status != o.Status {
		t.Fatalf("read back %+v, want %+v", got, o)
	}
	for _, bad := range []trade.NewOrder{
		{TotalFee: 0, PaymentType: 3}, {TotalFee: -1, PaymentType: 3},
		{TotalFee: trade.MaxTotalFee + 1, PaymentType: 3}, {TotalFee: 1, PaymentType: 0}, {TotalFee: 1, PaymentType: 4},
	} {
		_, err := store.CreateOrder(ctx, 7, bad)
		if p, ok := problem.As(err); !ok || p.Kind != problem.Invalid {
			t.Errorf("create %+v: err %v, want an invalid request", bad, err)
		}
	}
	if _, err := store.Order(ctx, o.ID+1); !errors.Is(err, trade.ErrOrderNotFound) {
		t.Fatalf("absent order: %v, want order_not_found", err)
	}
}

func TestOrdersListsOnlyTheUsersOwnNewestFirst(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	var mine []trade.Order
	for i := range 5 {
		mine = append(mine, tradetest.Ordered(t, store, 7, int64(100+i)))
		tradetest.Ordered(t, store, 8, 1)
	}
	if _, err := store.CancelUnpaid(ctx, mine[1].ID); err != nil {
		t.Fatal(err)
	}
	all, err := store.Orders(ctx, trade.OrderFilter{UserID: 7})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0].ID != mine[4].ID || all[4].ID != mine[0].ID {
		t.Fatalf("orders of user 7 = %+v, want their 5, newest first", all)
	}
	two, _ := store.Orders(ctx, trade.OrderFilter{UserID: 7, Limit: 2})
	cancelled, _ := store.Orders(ctx, trade.OrderFilter{UserID: 7, Status: trade.Cancelled})
	if len(two) != 2 || len(cancelled) != 1 || cancelled[0].ID != mine[1].ID {
		t.Fatalf("limit 2 gave %d, status 5 gave %+v", len(two), cancelled)
	}
}

func TestCancelUnpaidMovesOnlyAnUnpaidOrder(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	ctx := context.Background()
	unpaid := tradetest.Ordered(t, store, 7, 100)
	got, err := store.CancelUnpaid(ctx, unpaid.ID)
	if err != nil || got.Status != trade.Cancelled || got.CloseTime == nil {
		t.Fatalf("cancel unpaid: %+v, %v", got, err)
	}
	paid := tradetest.Ordered(t, store, 7, 100)
	apply(t, store, "m1", tradetest.PaymentOf(paid))
	got, err = store.CancelUnpaid(ctx, paid.ID)
	if err != nil || got.Status != trade.Paid || got.CloseTime != nil {
		t.Fatalf("cancel paid: %+v, %v; want it left paid", got, err)
	}
	if _, err := store.CancelUnpaid(ctx, paid.ID+100); !errors.Is(err, trade.ErrOrderNotFound) {
		t.Fatalf("cancel absent: %v", err)
	}
}

func TestUnpaidOrdersWalksOldestFirstPageByPage(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	store := postgres.New(pool)
	ctx := context.Background()
	var want []int64
	for i := range 7 {
		o := tradetest.Ordered(t, store, 7, 100)
		// Same creation time for some, so the id breaks the tie.
		if _, err := pool.Exec(ctx, `UPDATE orders SET create_time = $2 WHERE id = $1`, o.ID, time.Unix(1_000_000+int64(i/2), 0)); err != nil {
			t.Fatal(err)
		}
		want = append(want, o.ID)
	}
	apply(t, store, "paid", tradetest.PaymentOf(tradetest.Reload(t, store, want[3])))
	want = append(want[:3], want[4:]...)
	tradetest.Ordered(t, store, 7, 100) // created now: not before the cutoff

	var got []int64
	var after trade.Order
	for {
		page, err := store.UnpaidOrders(ctx, time.Hour, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			got = append(got, o.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1]
	}
	if len(got) != len(want) {
		t.Fatalf("walked %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("walked %v, want %v", got, want)
		}
	}
}

func TestExclusivelyRunsOneHolderAtATime(t *testing.T) {
	t.Parallel()
	pool := tradetest.NewPool(t)
	// Two stores over one database stand for two trade replicas.
	a, b := postgres.New(pool), postgres.New(pool)
	ctx := context.Background()
	var running, ran, skipped atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		store := a
		if i%2 == 1 {
			store = b
		}
		wg.Go(func() {
			ok, err := store.Exclusively(ctx, "tick", func(context.Context) error {
				if running.Add(1) != 1 {
					t.Error("two holders at once")
				}
				time.Sleep(50 * time.Millisecond)
				running.Add(-1)
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			if ok {
				ran.Add(1)
			} else {
				skipped.Add(1)
			}
		})
	}
	wg.Wait()
	if ran.Load() < 1 || ran.Load()+skipped.Load() != 8 {
		t.Fatalf("ran %d, skipped %d", ran.Load(), skipped.Load())
	}
	// Released: the next caller runs.
	ok, err := a.Exclusively(ctx, "tick", func(context.Context) error { return nil })
	if !ok || err != nil {
		t.Fatalf("after release: ran=%v err=%v", ok, err)
	}
}
