//go:build faultinject

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

func newSeedStore(t *testing.T) (*postgres.Store, *pgxpool.Pool) {
	t.Helper()
	pool := tradetest.NewPool(t)
	return postgres.New(pool), pool
}

func updateTime(t *testing.T, pool *pgxpool.Pool, id int64) time.Time {
	t.Helper()
	var at time.Time
	if err := pool.QueryRow(context.Background(), `SELECT update_time FROM orders WHERE id = $1`, id).Scan(&at); err != nil {
		t.Fatalf("read update_time of order %d: %v", id, err)
	}
	return at.UTC()
}

func markPaidUnconditionally(t *testing.T, store *postgres.Store, p trade.Payment) bool {
	t.Helper()
	updated, err := store.MarkPaidUnconditionally(context.Background(), p)
	if err != nil {
		t.Fatalf("mark order %d paid unconditionally: %v", p.BizOrderNo, err)
	}
	return updated
}

func TestMarkPaidUnconditionallyPaysAnUnpaidOrder(t *testing.T) {
	t.Parallel()
	store, pool := newSeedStore(t)
	order := tradetest.Ordered(t, store, 7, 10_000)
	p := tradetest.PaymentOf(order)
	before := updateTime(t, pool, order.ID)

	if !markPaidUnconditionally(t, store, p) {
		t.Fatal("MarkPaidUnconditionally = false for an unpaid order, want true")
	}
	got := tradetest.Reload(t, store, order.ID)
	if got.Status != trade.Paid || got.PayTime == nil || !got.PayTime.Equal(p.PaidAt) || got.CloseTime != nil {
		t.Errorf("order = %+v, want paid at %v", got, p.PaidAt)
	}
	if u := updateTime(t, pool, order.ID); !u.After(before) {
		t.Errorf("update_time = %v, want it moved on from %v", u, before)
	}
}

// The double effect the inbox prevents: every copy of a payment updates
// the order again, where ApplyPayment recognises the copy.
func TestMarkPaidUnconditionallyUpdatesTheOrderAgainForEveryCopy(t *testing.T) {
	t.Parallel()
	store, pool := newSeedStore(t)
	order := tradetest.Ordered(t, store, 7, 10_000)
	p := tradetest.PaymentOf(order)

	for n := 1; n <= 2; n++ {
		prev := updateTime(t, pool, order.ID)
		if !markPaidUnconditionally(t, store, p) {
			t.Fatalf("copy %d: MarkPaidUnconditionally = false, want true: it updates whatever the order is", n)
		}
		if u := updateTime(t, pool, order.ID); !u.After(prev) {
			t.Errorf("copy %d: update_time = %v, want it moved on from %v: the copy updated the order again", n, u, prev)
		}
	}

	before := updateTime(t, pool, order.ID)
	got, err := store.ApplyPayment(context.Background(), uuid.NewString(), p, trade.FromEvent)
	if err != nil || got != trade.Duplicate {
		t.Fatalf("ApplyPayment of the same payment: %v, %v; want duplicate", got, err)
	}
	if u := updateTime(t, pool, order.ID); !u.Equal(before) {
		t.Errorf("ApplyPayment moved update_time from %v to %v, want it left alone", before, u)
	}
	if o := tradetest.Reload(t, store, order.ID); o.Status != trade.Paid || !o.PayTime.Equal(p.PaidAt) {
		t.Errorf("order = %+v, want paid at %v", o, p.PaidAt)
	}
}

// What ApplyPayment records as a discrepancy for a human to settle, the
// naive update applies.
func TestMarkPaidUnconditionallyIgnoresWhoPaidAndHowMuch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(p *trade.Payment)
	}{
		{"another user", func(p *trade.Payment) { p.UserID++ }},
		{"less than the total", func(p *trade.Payment) { p.Amount-- }},
		{"more than the total", func(p *trade.Payment) { p.Amount++ }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store, _ := newSeedStore(t)
			order := tradetest.Ordered(t, store, 7, 10_000)
			p := tradetest.PaymentOf(order)
			tt.change(&p)

			if !markPaidUnconditionally(t, store, p) {
				t.Fatal("MarkPaidUnconditionally = false, want true: it checks nothing but the id")
			}
			if got := tradetest.Reload(t, store, order.ID); got.Status != trade.Paid {
				t.Errorf("order = %+v, want it paid", got)
			}
			if d := tradetest.Discrepancies(t, store); len(d) != 0 {
				t.Errorf("discrepancies = %+v, want none: the naive path records nothing", d)
			}
		})
	}
}

// The course's refund race, unguarded: a late copy of the payment takes
// an order that has moved on back to paid.
func TestMarkPaidUnconditionallyTakesAnOrderThatMovedOnBackToPaid(t *testing.T) {
	t.Parallel()
	for _, moved := range []trade.OrderStatus{trade.Shipped, trade.Received, trade.Finished} {
		t.Run(fmt.Sprint(moved), func(t *testing.T) {
			t.Parallel()
			store, pool := newSeedStore(t)
			order := tradetest.Ordered(t, store, 7, 10_000)
			p := tradetest.PaymentOf(order)
			if got, err := store.ApplyPayment(context.Background(), uuid.NewString(), p, trade.FromEvent); err != nil || got != trade.Applied {
				t.Fatalf("first payment: %v, %v; want applied", got, err)
			}
			if _, err := pool.Exec(context.Background(), `UPDATE orders SET status = $2 WHERE id = $1`, order.ID, moved); err != nil {
				t.Fatalf("move order on: %v", err)
			}

			if !markPaidUnconditionally(t, store, p) {
				t.Fatal("late copy: MarkPaidUnconditionally = false, want true")
			}
			if got := tradetest.Reload(t, store, order.ID); got.Status != trade.Paid {
				t.Errorf("order status %v after a late copy, want it back at %v", got.Status, trade.Paid)
			}
		})
	}
}

func TestMarkPaidUnconditionallyCannotPayACancelledOrder(t *testing.T) {
	t.Parallel()
	store, pool := newSeedStore(t)
	order := tradetest.Ordered(t, store, 7, 10_000)
	if _, err := store.CancelUnpaid(context.Background(), order.ID); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	before := tradetest.Reload(t, store, order.ID)
	beforeUpdate := updateTime(t, pool, order.ID)

	updated, err := store.MarkPaidUnconditionally(context.Background(), tradetest.PaymentOf(order))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23514" {
		t.Fatalf("pay a cancelled order: updated=%v err=%v, want the schema's CHECK (23514) to refuse", updated, err)
	}
	after := tradetest.Reload(t, store, order.ID)
	if after.Status != trade.Cancelled || after.PayTime != nil || after.CloseTime == nil || !after.CloseTime.Equal(*before.CloseTime) {
		t.Errorf("order changed from %+v to %+v, want it still cancelled and unpaid", before, after)
	}
	if u := updateTime(t, pool, order.ID); !u.Equal(beforeUpdate) {
		t.Errorf("update_time moved from %v to %v", beforeUpdate, u)
	}
}

func TestMarkPaidUnconditionallyOfAMissingOrderUpdatesNothing(t *testing.T) {
	t.Parallel()
	store, _ := newSeedStore(t)
	order := tradetest.Ordered(t, store, 7, 10_000)
	p := tradetest.PaymentOf(order)
	p.BizOrderNo += 1000
	if markPaidUnconditionally(t, store, p) {
		t.Error("MarkPaidUnconditionally = true for an order that does not exist, want false")
	}
	if got := tradetest.Reload(t, store, order.ID); got.Status != trade.Unpaid {
		t.Errorf("another order = %+v, want it left unpaid", got)
	}
}
