package amqp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/trade"
	tradeamqp "github.com/paytrade/paytrade/services/trade/amqp"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

func TestPaySuccessMarksTheOrderPaidAndDuplicatesChangeNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	order := tradetest.Ordered(t, r.store, 7, 10_000)
	p := tradetest.PaymentOf(order)
	id := newID()
	for range 10 {
		r.publishPayment(t, id, p)
	}
	r.publishPayment(t, newID(), p) // the same payment under a new message id
	testenv.WaitFor(t, 10*time.Second, "all 11 events handled", func() bool {
		return r.counts.Applied.Load()+r.counts.Duplicate.Load() == 11
	})
	if a, d := r.counts.Applied.Load(), r.counts.Duplicate.Load(); a != 1 || d != 10 {
		t.Fatalf("applied %d, duplicates %d; want 1 and 10", a, d)
	}
	if got := tradetest.Reload(t, r.store, order.ID); got.Status != trade.Paid || !got.PayTime.Equal(p.PaidAt) {
		t.Fatalf("order %+v, want paid at %v", got, p.PaidAt)
	}
	if n := r.depth(t, r.topo.ErrorQueue); n != 0 {
		t.Fatalf("%d parked, want none", n)
	}
}

func TestMalformedPaySuccessIsParkedWithItsReasonAndNothingIsApplied(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	order := tradetest.Ordered(t, r.store, 7, 10_000)
	valid := fmt.Sprintf(`{"bizOrderNo":%d,"payOrderId":5,"userId":7,"amount":10000,"paidAt":"2026-11-21T10:00:00Z"}`, order.ID)
	tests := []struct {
		name, messageID, body, reason string
	}{
		{"not JSON", newID(), `pay.success for order ` + fmt.Sprint(order.ID), "invalid character"},
		{"a bare JSON number", newID(), `42`, "cannot unmarshal number"},
		{"JSON null", newID(), `null`, "not a JSON object"},
		{"missing fields", newID(), fmt.Sprintf(`{"bizOrderNo":%d}`, order.ID), "lacks [amount paidAt payOrderId userId]"},
		{"negative amount", newID(), strings.Replace(valid, `"amount":10000`, `"amount":-10000`, 1), "amount -10000 is not positive"},
		{"amount as a string", newID(), strings.Replace(valid, `"amount":10000`, `"amount":"10000"`, 1), "cannot unmarshal string"},
		{"fractional amount", newID(), strings.Replace(valid, `"amount":10000`, `"amount":100.5`, 1), "cannot unmarshal number 100.5"},
		{"bad time", newID(), strings.Replace(valid, `2026-11-21T10:00:00Z`, `yesterday`, 1), "cannot parse"},
		{"trailing data", newID(), valid + `{}`, "data after the JSON object"},
		{"oversized", newID(), valid[:len(valid)-1] + `,"pad":"` + strings.Repeat("x", trade.MaxEventBytes) + `"}`, "exceeds"},
		{"no message id", "", valid, "without message_id"},
	}
	for _, tt := range tests {
		r.publish(t, tt.messageID, []byte(tt.body))
	}
	parked := r.parked(t, len(tests), 10*time.Second)
	byBody := map[string]amqp091.Delivery{}
	for _, d := range parked {
		byBody[string(d.Body)] = d
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := byBody[tt.body]
			if !ok {
				t.Fatalf("not parked")
			}
			if tt.messageID != "" && d.MessageId != tt.messageID {
				t.Errorf("message id %q, want the original %q", d.MessageId, tt.messageID)
			}
			if d.Type != trade.PaySuccessType || d.ContentType != "application/json" || d.DeliveryMode != amqp091.Persistent {
				t.Errorf("properties lost: type %q, content type %q, delivery mode %d", d.Type, d.ContentType, d.DeliveryMode)
			}
			h := d.Headers
			if h["x-exception-type"] != "malformed" || !strings.Contains(fmt.Sprint(h["x-exception-message"]), tt.reason) {
				t.Errorf("x-exception-type %v, x-exception-message %q; want malformed, mentioning %q", h["x-exception-type"], h["x-exception-message"], tt.reason)
			}
			if h["x-original-exchange"] != r.topo.Exchange || h["x-original-routing-key"] != r.topo.PaySuccessKey {
				t.Errorf("original exchange/key %v/%v", h["x-original-exchange"], h["x-original-routing-key"])
			}
			if fmt.Sprint(h["x-attempts"]) != "1" {
				t.Errorf("x-attempts %v, want 1: malformed messages are not retried", h["x-attempts"])
			}
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(h["x-failed-at"])); err != nil {
				t.Errorf("x-failed-at %v: %v", h["x-failed-at"], err)
			}
		})
	}
	if got := tradetest.Reload(t, r.store, order.ID); got.Status != trade.Unpaid {
		t.Fatalf("order status %d, want unpaid", got.Status)
	}
	if s := r.consumer.Stats(); s.Retried != 0 || s.Malformed != int64(len(tests)) {
		t.Fatalf("stats %+v: want %d malformed and no retries", s, len(tests))
	}
	if n := r.depth(t, r.topo.Queue); n != 0 {
		t.Fatalf("%d messages left in %s, want none", n, r.topo.Queue)
	}
}

func TestPaySuccessOfAnotherUserOrAmountRecordsADiscrepancyAndIsAcked(t *testing.T) {
	t.Parallel()
	r := newRig(t, rigOptions{})
	order := tradetest.Ordered(t, r.store, 7, 10_000)
	wrongUser, wrongAmount := tradetest.PaymentOf(order), tradetest.PaymentOf(order)
	wrongUser.UserID = 8
	wrongAmount.Amount = 1
	wrongAmount.PayOrderID++
	r.publishPayment(t, newID(), wrongUser)
	r.publishPayment(t, newID(), wrongAmount)
	testenv.WaitFor(t, 10*time.Second, "both events handled", func() bool { return r.counts.Discrepancy.Load() == 2 })
	if got := tradetest.Reload(t, r.store, order.ID); got.Status != trade.Unpaid {
		t.Fatalf("order status %d, want unpaid", got.Status)
	}
	reasons := map[string]bool{}
	for _, d := range tradetest.Discrepancies(t, r.store) {
		reasons[d.Reason] = true
	}
	if !reasons[trade.ReasonUserMismatch] || !reasons[trade.ReasonAmountMismatch] || len(reasons) != 2 {
		t.Fatalf("discrepancy reasons %v", reasons)
	}
	if n := r.depth(t, r.topo.Queue) + r.depth(t, r.topo.ErrorQueue); n != 0 {
		t.Fatalf("%d messages left or parked; discrepancies are recorded and acked", n)
	}
}

func TestDatabaseDownDuringConsumptionParksNothingAndAppliesEverythingOnceBack(t *testing.T) {
	t.Parallel()
	// The consumer reaches PostgreSQL through a proxy the test can cut.
	r, _, proxy := proxiedRig(t, rigOptions{retry: broker.Retry{MaxAttempts: 2, InitialInterval: 10 * time.Millisecond}})

	const n = 30
	var orders []trade.Order
	for range n {
		orders = append(orders, tradetest.Ordered(t, r.store, 7, 1000))
	}
	proxy.SetDown(true)
	proxy.CutAll()
	for _, o := range orders {
		r.publishPayment(t, newID(), tradetest.PaymentOf(o))
	}
	testenv.WaitFor(t, 10*time.Second, "the consumer to pause", func() bool { return r.consumer.Stats().Pauses >= 1 })
	time.Sleep(500 * time.Millisecond) // a while down, with messages waiting
	if parked := r.depth(t, r.topo.ErrorQueue); parked != 0 {
		t.Fatalf("%d healthy messages parked while the database was down", parked)
	}
	proxy.SetDown(false)

	testenv.WaitFor(t, 20*time.Second, "every order paid", func() bool { return r.counts.Applied.Load() == n })
	for _, o := range orders {
		if got := tradetest.Reload(t, r.store, o.ID); got.Status != trade.Paid {
			t.Fatalf("order %d status %d, want paid", o.ID, got.Status)
		}
	}
	if parked := r.depth(t, r.topo.ErrorQueue); parked != 0 {
		t.Fatalf("%d messages parked, want none", parked)
	}
	t.Logf("consumer stats: %+v", r.consumer.Stats())
}

func TestTopologyIsQuorumByDefaultAndClassicOnRequest(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{tradeamqp.QueueQuorum, tradeamqp.QueueClassic} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, rigOptions{queueType: typ})
			// Declaring again with the same arguments is fine, and the
			// broker refuses other arguments: that proves what was declared.
			conn, err := amqp091.Dial(testenv.AMQPURL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ch, _ := conn.Channel()
			if err := r.topo.Declare(ch); err != nil {
				t.Fatalf("declare again: %v", err)
			}
			// A plain classic queue differs from both: from the quorum
			// queue in type, from the declared classic one in its
			// dead-letter route to the error exchange.
			other := amqp091.Table{"x-queue-type": tradeamqp.QueueClassic}
			_, err = ch.QueueDeclare(r.topo.Queue, true, false, false, false, other)
			var amqpErr *amqp091.Error
			if !errors.As(err, &amqpErr) || amqpErr.Code != amqp091.PreconditionFailed {
				t.Fatalf("declare %s with %v: %v, want PRECONDITION_FAILED", r.topo.Queue, other, err)
			}
		})
	}
}

// proxiedRig is a rig whose consumer reaches a trade database of its own
// through a proxy the test can stall; it returns the database's URL too.
func proxiedRig(t *testing.T, opt rigOptions) (*rig, string, *testenv.Proxy) {
	t.Helper()
	dbURL := testenv.NewDatabase(t, migrations.FS, migrations.Trade)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, dbURL))
	pool, err := database.Open(context.Background(), proxy.RewriteURL(t, dbURL))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	opt.pool = pool
	return newRig(t, opt), dbURL, proxy
}

// TestDatabaseThatRefusesPausesConsumptionAndParksNothing turns the
// database into one that answers but refuses — read-only, as a standby
// after a failover; or timing out every lock — while healthy pay.success
// events arrive. Each is the database's fault: the consumer must pause,
// park none of them, and apply every one once the database takes writes.
func TestDatabaseThatRefusesPausesConsumptionAndParksNothing(t *testing.T) {
	t.Parallel()
	refusals := []struct {
		name   string
		refuse func(t *testing.T, dbURL string, r *rig) (restore func())
	}{
		{"read-only 25006", func(t *testing.T, dbURL string, r *rig) func() {
			testenv.SetDatabase(t, dbURL, "default_transaction_read_only", "on")
			// Sessions made afresh, so the consumer meets the refusal
			// itself rather than a connection ended under it.
			r.pool.Reset()
			return func() { testenv.SetDatabase(t, dbURL, "default_transaction_read_only", "") }
		}},
		{"lock timeout 55P03", func(t *testing.T, dbURL string, r *rig) func() {
			testenv.SetDatabase(t, dbURL, "lock_timeout", "50ms")
			r.pool.Reset()
			// Another session holds every order locked.
			ctx := context.Background()
			holder, err := database.Open(ctx, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			tx, err := holder.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(ctx, `SELECT id FROM orders FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			return func() {
				_ = tx.Rollback(ctx)
				holder.Close()
			}
		}},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, dbURL, _ := proxiedRig(t, rigOptions{retry: broker.Retry{MaxAttempts: 2, InitialInterval: 10 * time.Millisecond}})
			const n = 20
			var orders []trade.Order
			for range n {
				orders = append(orders, tradetest.Ordered(t, r.store, 7, 1000))
			}
			restore := tc.refuse(t, dbURL, r)
			for _, o := range orders {
				r.publishPayment(t, newID(), tradetest.PaymentOf(o))
			}
			testenv.WaitFor(t, 10*time.Second, "the consumer to pause", func() bool { return r.consumer.Stats().Pauses >= 1 })
			time.Sleep(time.Second) // a while refused, with messages waiting
			if parked := r.depth(t, r.topo.ErrorQueue); parked != 0 {
				t.Fatalf("%d healthy messages parked while the database refused them", parked)
			}
			restore()

			testenv.WaitFor(t, 20*time.Second, "every order paid", func() bool { return r.counts.Applied.Load() == n })
			if parked := r.depth(t, r.topo.ErrorQueue); parked != 0 {
				t.Fatalf("%d messages parked, want none", parked)
			}
			t.Logf("consumer stats: %+v", r.consumer.Stats())
		})
	}
}

// TestDatabaseThatStopsAnsweringPausesConsumptionAndShutdownStillEnds
// stalls the database connection without closing it: every handler attempt
// must end at its deadline and pause the consumer, nothing may be parked,
// everything is applied once the database answers again, and stopping the
// consumer in the middle of an attempt must not wait for the database.
func TestDatabaseThatStopsAnsweringPausesConsumptionAndShutdownStillEnds(t *testing.T) {
	t.Parallel()
	const attemptTimeout = 500 * time.Millisecond
	r, _, proxy := proxiedRig(t, rigOptions{attemptTimeout: attemptTimeout})
	const n = 10
	var orders []trade.Order
	for range n + 1 {
		orders = append(orders, tradetest.Ordered(t, r.store, 7, 1000))
	}
	proxy.SetStalled(true)
	for _, o := range orders[:n] {
		r.publishPayment(t, newID(), tradetest.PaymentOf(o))
	}
	testenv.WaitFor(t, 10*attemptTimeout, "the consumer to pause", func() bool { return r.consumer.Stats().Pauses >= 1 })
	if parked := r.depth(t, r.topo.ErrorQueue); parked != 0 {
		t.Fatalf("%d healthy messages parked while the database did not answer", parked)
	}
	proxy.SetStalled(false)
	// An attempt that gave up may still have committed, its bytes held by
	// the stalled network and delivered late: its redelivery is then a
	// duplicate. Either way, every order ends paid exactly once.
	testenv.WaitFor(t, 20*time.Second, "every order paid", func() bool {
		return r.counts.Applied.Load()+r.counts.Duplicate.Load() == n
	})
	for _, o := range orders[:n] {
		if got := tradetest.Reload(t, r.store, o.ID); got.Status != trade.Paid {
			t.Fatalf("order %d status %d, want paid", o.ID, got.Status)
		}
	}

	proxy.SetStalled(true)
	delivered := r.consumer.Stats().Delivered
	r.publishPayment(t, newID(), tradetest.PaymentOf(orders[n]))
	testenv.WaitFor(t, 5*time.Second, "the handler to start on the last event", func() bool { return r.consumer.Stats().Delivered > delivered })
	stopped := make(chan struct{})
	start := time.Now()
	go func() { r.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Logf("consumer stopped %v after being asked mid-attempt, the database silent", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * attemptTimeout):
		t.Fatalf("consumer did not stop within %v while the database did not answer", 10*attemptTimeout)
	}
	proxy.SetStalled(false) // the pool's connections close without waiting out their timeouts
	if parked := r.depth(t, r.topo.ErrorQueue); parked != 0 {
		t.Fatalf("%d messages parked, want none", parked)
	}
}
