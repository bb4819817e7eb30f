package bench

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/services/trade"
)

// refundRun is what a refund phase measured.
type refundRun struct {
	conc      int
	pieces    int // refunds an order is refunded in: 1, whole at once
	requested int // refunds answered 202
	refunded  int // orders refunded in full at trade within the bound
	credited  int // of the refunds requested, those marked refunded at trade within the bound
	rate      float64
	// refundRate is credited over the same time as rate: refunds, not
	// orders, per second.
	refundRate float64
	latency    quantiles // an order's last refund request returning → the order refunded
}

// refundStep has n paid orders refunded by conc buyers in a closed loop,
// end to end — trade's outbox, pay's consumer crediting the wallet, pay's
// outbox, trade's consumer marking the refund and its order — and waits
// for every order to show refunded in full. pieces is how each order is
// refunded: 1, whole at once (POST /orders/{id}/refund); more, as a shop
// refunds items one by one: pieces-1 parts of an equal share under their
// own Idempotency-Keys (POST /orders/{id}/refunds), then what remains,
// one request after the other. The rates run from the first request to
// the last order refunded (its update_time).
func (s *system) refundStep(tb testing.TB, n, conc, pieces int) refundRun {
	tb.Helper()
	orders := s.prepare(tb, n)
	if r := s.settle(tb, orders, s.closedLoop(orders, conc), 2*time.Minute); r.paid != n {
		tb.Fatalf("refund phase: %d of %d orders paid before refunding", r.paid, n)
	}
	r := refundRun{conc: conc, pieces: pieces}
	returned := make([]time.Time, n)
	requested := make([]int, n)
	errs := make([]error, n)
	first := time.Now()
	_ = systest.Parallel(conc, n, func(i int) error {
		o := orders[i]
		base := fmt.Sprintf("%s/orders/%d/", s.trade.BaseURL, o.orderID)
		for range pieces - 1 {
			key := http.Header{"Idempotency-Key": {uuid.NewString()}}
			status, body, err := s.client.Send(context.Background(), http.MethodPost, base+"refunds", o.buyer.token,
				fmt.Sprintf(`{"amount":%d,"reason":"user_request"}`, orderFee/int64(pieces)), key)
			if err == nil && status != http.StatusAccepted {
				err = fmt.Errorf("POST %srefunds: %d %s", base, status, body)
			}
			if errs[i] = err; err != nil {
				return nil
			}
			requested[i]++
		}
		errs[i] = s.client.Call(http.MethodPost, base+"refund", o.buyer.token, "", http.StatusAccepted, nil)
		if errs[i] == nil {
			requested[i]++
		}
		returned[i] = time.Now()
		return nil
	})
	ids := make([]int64, 0, n)
	returnedAt := map[int64]time.Time{}
	for i, err := range errs {
		r.requested += requested[i]
		if err != nil {
			tb.Errorf("refund of order %d: %v", orders[i].orderID, err)
			continue
		}
		ids = append(ids, orders[i].orderID)
		returnedAt[orders[i].orderID] = returned[i]
	}

	ctx := context.Background()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var refunded int
		if err := s.tradeDB.QueryRow(ctx, `SELECT count(*) FROM orders WHERE id = ANY($1) AND status = $2`, ids, trade.Refunded).Scan(&refunded); err != nil {
			tb.Fatalf("count refunded orders: %v", err)
		}
		if refunded == len(ids) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.tradeDB.QueryRow(ctx, `SELECT count(*) FROM refunds WHERE order_id = ANY($1) AND status = $2`,
		ids, trade.RefundRefunded).Scan(&r.credited); err != nil {
		tb.Fatalf("count refunds marked refunded: %v", err)
	}
	rows, err := s.tradeDB.Query(ctx, `SELECT id, update_time FROM orders WHERE id = ANY($1) AND status = $2`, ids, trade.Refunded)
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
	r.refundRate = perSecond(r.credited, last.Sub(first))
	return r
}
