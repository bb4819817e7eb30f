package bench

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/systest"
)

// refundRun is what the refund phase measured.
type refundRun struct {
	conc      int
	requested int // refunds answered 202
	refunded  int // orders refunded at trade within the bound
	rate      float64
	latency   quantiles // a refund's request returning → its order refunded
}

// refundStep has n paid orders refunded by conc buyers in a closed loop,
// end to end — trade's outbox, pay's consumer crediting the wallet, pay's
// outbox, trade's consumer marking the order refunded — and waits for
// every order to show refunded. The rate runs from the first request to
// the last order refunded (its update_time).
func (s *system) refundStep(tb testing.TB, n, conc int) refundRun {
	tb.Helper()
	orders := s.prepare(tb, n)
	if r := s.settle(tb, orders, s.closedLoop(orders, conc), 2*time.Minute); r.paid != n {
		tb.Fatalf("refund phase: %d of %d orders paid before refunding", r.paid, n)
	}
	r := refundRun{conc: conc}
	returned := make([]time.Time, n)
	errs := make([]error, n)
	first := time.Now()
	_ = systest.Parallel(conc, n, func(i int) error {
		o := orders[i]
		errs[i] = s.client.Call(http.MethodPost, fmt.Sprintf("%s/orders/%d/refund", s.trade.BaseURL, o.orderID), o.buyer.token, "", http.StatusAccepted, nil)
		returned[i] = time.Now()
		return nil
	})
	ids := make([]int64, 0, n)
	returnedAt := map[int64]time.Time{}
	for i, err := range errs {
		if err != nil {
			tb.Errorf("refund of order %d: %v", orders[i].orderID, err)
			continue
		}
		r.requested++
		ids = append(ids, orders[i].orderID)
		returnedAt[orders[i].orderID] = returned[i]
	}

	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var refunded int
		if err := s.tradeDB.QueryRow(ctx, `SELECT count(*) FROM orders WHERE id = ANY($1) AND status = 7`, ids).Scan(&refunded); err != nil {
			tb.Fatalf("count refunded orders: %v", err)
		}
		if refunded == len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := s.tradeDB.Query(ctx, `SELECT id, update_time FROM orders WHERE id = ANY($1) AND status = 7`, ids)
	if err != nil {
		tb.Fatalf("read refunded orders: %v", err)
	}
	defer rows.Close()
	var last time.Time
	var lat []time.Duration
	for rows.Next() {
		var id int64
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			tb.Fatalf("scan refunded order: %v", err)
		}
		r.refunded++
		lat = append(lat, at.Sub(returnedAt[id]))
		if at.After(last) {
			last = at
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatalf("read refunded orders: %v", err)
	}
	r.latency = quantilesOf(lat)
	r.rate = perSecond(r.refunded, last.Sub(first))
	return r
}
