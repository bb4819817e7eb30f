package cron

import (
	"context"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

func TestScheduledFallbackMarksALostPaymentPaidWithinOnePeriod(t *testing.T) {
	t.Parallel()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	o, po := w.Order(t, 7, 10_000)
	f, err := New(w.Service, w.Orders, Config{Spec: "@every 1s", Grace: time.Millisecond, Timeout: time.Hour, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	t.Cleanup(f.Stop)

	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	// One period, and a little for the tick itself.
	testenv.WaitFor(t, 1500*time.Millisecond, "the fallback to mark the order paid", func() bool {
		return tradetest.Reload(t, w.Orders, o.ID).Status == trade.Paid
	})
	// The tick counts its work when it ends, a moment after the update.
	testenv.WaitFor(t, time.Second, "the tick to count the order", func() bool { return f.Stats().OrdersPaid == 1 })
}

func TestFallbackTickSkipsWhileAnotherReplicaRunsOne(t *testing.T) {
	t.Parallel()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	o, po := w.Order(t, 7, 10_000)
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	f, err := New(w.Service, w.Orders, Config{Spec: "@every 1h", Grace: 0, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Another replica holds the tick's lock: this one skips and changes nothing.
	ran, err := w.Orders.Exclusively(ctx, lockName, func(context.Context) error {
		if _, err := f.Tick(ctx); err != nil {
			t.Errorf("tick: %v", err)
		}
		return nil
	})
	if !ran || err != nil {
		t.Fatalf("hold the lock: ran=%v err=%v", ran, err)
	}
	if s := f.Stats(); s.Skipped != 1 || s.Runs != 0 {
		t.Fatalf("stats %+v, want one skip", s)
	}
	if got := tradetest.Reload(t, w.Orders, o.ID); got.Status != trade.Unpaid {
		t.Fatalf("order status %d, want unpaid: the skipped tick must not have run", got.Status)
	}
	// Lock released: the next tick does the work.
	r, err := f.Tick(ctx)
	if err != nil || r.Paid != 1 {
		t.Fatalf("tick: %+v, %v; want one order paid", r, err)
	}
}

func TestFallbackTickCancelsTimedOutOrdersBeforeCheckingTheRest(t *testing.T) {
	t.Parallel()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	expired, _ := w.Order(t, 7, 10_000)
	f, err := New(w.Service, w.Orders, Config{Spec: "@every 1h", Grace: 0, Timeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	r, err := f.Tick(context.Background())
	if err != nil || r.Closed != 1 || r.Checked != 0 {
		t.Fatalf("tick: %+v, %v; want the order closed and nothing left to check", r, err)
	}
	if got := tradetest.Reload(t, w.Orders, expired.ID); got.Status != trade.Cancelled {
		t.Fatalf("order status %d, want cancelled", got.Status)
	}
}

func TestNewRefusesAScheduleThatDoesNotParse(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"", "every 20s", "@every", "* * *"} {
		if _, err := New(nil, nil, Config{Spec: spec}); err == nil {
			t.Errorf("spec %q: no error", spec)
		}
	}
}

func TestOrdersThatAlwaysFailHoldUpNoOrderBehindThemAndBackOff(t *testing.T) {
	t.Parallel()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	var stuck []int64
	var behind []trade.Order
	for i := range 8 {
		o, po := w.Order(t, 7, 1_000)
		if err := w.PayAtPay(t, po); err != nil {
			t.Fatal(err)
		}
		if i < 3 {
			stuck = append(stuck, o.ID) // the oldest three
		} else {
			behind = append(behind, o)
		}
	}
	w.HoldLocked(t, stuck...)
	f, err := New(w.Service, w.Orders, Config{Spec: "@every 1h", Grace: 0, Timeout: time.Hour, Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	r, err := f.Tick(ctx)
	if err != nil || r.Paid != len(behind) || r.Failed != len(stuck) {
		t.Fatalf("first tick: %+v, %v; want the %d orders behind the stuck ones paid and the %d stuck ones failed", r, err, len(behind), len(stuck))
	}
	for _, o := range behind {
		if got := tradetest.Reload(t, w.Orders, o.ID); got.Status != trade.Paid {
			t.Fatalf("order %d behind the stuck ones: status %d, want paid", o.ID, got.Status)
		}
	}
	// Failed once: tried again at the next run, within one period.
	if r, err := f.Tick(ctx); err != nil || r.Failed != len(stuck) {
		t.Fatalf("second tick: %+v, %v; want the stuck orders tried again", r, err)
	}
	// Failed twice: left alone for a while.
	if r, err := f.Tick(ctx); err != nil || r.Failed != 0 || r.BackingOff != len(stuck) {
		t.Fatalf("third tick: %+v, %v; want the stuck orders backing off, not tried", r, err)
	}
}

func TestFailingTimeoutPassDoesNotSkipThePaymentCheck(t *testing.T) {
	t.Parallel()
	w := tradetest.NewWorld(t)
	paytest.Funded(t, w.Pay, 7, 100_000)
	var expired []int64
	for range 3 {
		o, _ := w.Order(t, 7, 1_000)
		expired = append(expired, o.ID)
	}
	if _, err := w.TradePool.Exec(context.Background(), `UPDATE orders SET create_time = now() - interval '2 hours' WHERE id = ANY($1)`, expired); err != nil {
		t.Fatal(err)
	}
	paid, po := w.Order(t, 7, 1_000)
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	w.HoldLocked(t, expired...)
	f, err := New(w.Service, w.Orders, Config{Spec: "@every 1h", Grace: 0, Timeout: time.Hour, Batch: 10})
	if err != nil {
		t.Fatal(err)
	}

	r, _ := f.Tick(context.Background())
	if r.Paid != 1 {
		t.Fatalf("tick: %+v; want the paid order found although the timed-out ones could not be cancelled", r)
	}
	if got := tradetest.Reload(t, w.Orders, paid.ID); got.Status != trade.Paid {
		t.Fatalf("order %d: status %d, want paid", paid.ID, got.Status)
	}
}
